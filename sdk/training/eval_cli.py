"""``facelm evaluate CHECKPOINT --data DIR``: NME / AUC@0.08 / FR with and without the flip test."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("checkpoint", help="facelm checkpoint (.pt), or 'demo' for the shipped demo checkpoint")
    p.add_argument("--data", required=True, help="JD-landmark folder, WFLW annotation file or 300W folder")
    p.add_argument("--limit", type=int, default=0, help="evaluate the first N faces only (default: all)")
    p.add_argument("--detector-points", help="file of detector five points per image (default: from the ground truth)")
    p.add_argument("--method", default="dark", help="heatmap decoding: dark, quarter or argmax (default dark)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--ced", help="write the CED plot (PNG) here")
    p.add_argument("--json", help="write the metrics (JSON) here")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from sdk.training.evaluate import evaluate_checkpoint

    ckpt = args.checkpoint
    if ckpt == "demo":
        from sdk.assets import demo_checkpoint

        ckpt = demo_checkpoint()
    res = evaluate_checkpoint(ckpt, args.data, limit=args.limit, detector_points=args.detector_points,
                              method=args.method, device=args.device, progress=True)
    summ = res.summary()
    for name, key in (("no flip test", "plain"), ("flip test", "flip")):
        s = summ[key]
        print(f"{name:>12}: NME {100 * s['nme']:.2f}%  AUC@0.08 {100 * s['auc']:.2f}  FR@0.08 {100 * s['fr']:.2f}%"
              f"  ({s['count']} faces)")
    if args.ced:
        from sdk.metrics import plot_ced

        plot_ced({"no flip test": res.nme_plain, "flip test": res.nme_flip}, args.ced, title=Path(str(ckpt)).name)
    if args.json:
        Path(args.json).write_text(json.dumps(summ, indent=2) + "\n", encoding="utf-8")
    return 0
