"""``facelm evaluate CHECKPOINT --data DIR``: NME / AUC@0.08 / FR with and without the flip test.

A shell over :func:`facelm.training.evaluate.evaluate_checkpoint`; its keyword defaults and
:class:`facelm.codec.DecodeConfig`'s are the flags' defaults.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from facelm.codec.config import METHODS, DecodeConfig

from ._args import defaults_of


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    from facelm.training.evaluate import evaluate_checkpoint

    d = defaults_of(evaluate_checkpoint)
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("checkpoint", help="facelm checkpoint (.pt), or 'demo' for the shipped demo checkpoint")
    p.add_argument("--data", required=True, help="JD-landmark folder, WFLW annotation file or 300W folder")
    p.add_argument("--limit", type=int, default=d["limit"], help="evaluate the first N faces only (0: all)")
    p.add_argument("--detector-points", default=d["detector_points"],
                   help="file of detector five points per image (default: from the ground truth)")
    p.add_argument("--method", choices=METHODS, default=DecodeConfig().method, help="heatmap decoding")
    p.add_argument("--device", default=d["device"], help="cpu or cuda[:N]")
    p.add_argument("--ced", help="write the CED plot (PNG) here")
    p.add_argument("--json", help="write the metrics (JSON) here")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from facelm.training.evaluate import evaluate_checkpoint

    ckpt = args.checkpoint
    if ckpt == "demo":
        from facelm.assets import demo_checkpoint

        ckpt = demo_checkpoint()
    res = evaluate_checkpoint(ckpt, args.data, limit=args.limit, detector_points=args.detector_points,
                              decode=DecodeConfig(method=args.method), device=args.device, progress=True)
    summ = res.summary()
    for name, key in (("no flip test", "plain"), ("flip test", "flip")):
        s = summ[key]
        print(f"{name:>12}: NME {100 * s['nme']:.2f}%  AUC@0.08 {100 * s['auc']:.2f}  FR@0.08 {100 * s['fr']:.2f}%"
              f"  ({s['count']} faces)")
    if args.ced:
        from facelm.metrics import plot_ced

        plot_ced({"no flip test": res.nme_plain, "flip test": res.nme_flip}, args.ced, title=Path(str(ckpt)).name)
    if args.json:
        from facelm.fileio import atomic_write_text

        atomic_write_text(args.json, json.dumps(summ, indent=2) + "\n")
    return 0
