"""``facelm evaluate CHECKPOINT --data DIR``: NME / AUC@0.08 / FR with and without the flip test.

A shell over :func:`facelm.evaluate` (``facelm.workflows``); its keyword defaults and
:class:`facelm.codec.DecodeConfig`'s are the flags' defaults.
"""
from __future__ import annotations

import argparse

from facelm.codec.config import METHODS, DecodeConfig

from ._args import defaults_of


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    from facelm.workflows import DEMO_CHECKPOINT, evaluate

    d = defaults_of(evaluate)
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("checkpoint", help=f"facelm checkpoint (.pt), or '{DEMO_CHECKPOINT}' for the shipped demo checkpoint")
    p.add_argument("--data", required=True, help="JD-landmark folder, WFLW annotation file or 300W folder")
    p.add_argument("--limit", type=int, default=d["limit"], help="evaluate the first N faces only (0: all)")
    p.add_argument("--detector-points", default=d["detector_points"],
                   help="file of detector five points per image (default: from the ground truth)")
    p.add_argument("--method", choices=METHODS, default=DecodeConfig().method, help="heatmap decoding")
    p.add_argument("--device", default=d["device"], help="cpu or cuda[:N]")
    p.add_argument("--ced", default=d["ced"], help="write the CED plot (PNG) here")
    p.add_argument("--json", default=d["json_out"], help="write the metrics (JSON) here")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from facelm.workflows import evaluate

    res = evaluate(args.checkpoint, args.data, limit=args.limit, detector_points=args.detector_points,
                   decode=DecodeConfig(method=args.method), device=args.device, ced=args.ced, json_out=args.json,
                   progress=True)
    summ = res.summary()
    for name, key in (("no flip test", "plain"), ("flip test", "flip")):
        s = summ[key]
        print(f"{name:>12}: NME {100 * s['nme']:.2f}%  AUC@0.08 {100 * s['auc']:.2f}  FR@0.08 {100 * s['fr']:.2f}%"
              f"  ({s['count']} faces)")
    return 0
