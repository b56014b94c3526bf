"""``facelm synth OUT --count N``: write synthetic faces in the JD-landmark folder format.

A shell over :func:`facelm.data.synth.write_jd_folder`; its keyword defaults are the flags' defaults.
"""
from __future__ import annotations

import argparse

from facelm.data.synth import PRESETS, SynthConfig, write_jd_folder

from ._args import defaults_of


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    d = defaults_of(write_jd_folder)
    p = sub.add_parser(name, help=help_text, description=help_text + ". Layout: OUT/picture/NAME.jpg, "
                       "OUT/landmark/NAME.jpg.txt (106 points), OUT/bbox/NAME.jpg.rect.")
    p.add_argument("out", help="output folder (must not exist or be empty)")
    p.add_argument("--count", type=int, required=True, help="number of faces")
    p.add_argument("--seed", type=int, default=d["seed"], help="data-set seed; face i depends only on (seed, i)")
    p.add_argument("--size", type=int, default=d["size"], help="image side in pixels")
    p.add_argument("--workers", type=int, default=d["workers"], help="processes")
    p.add_argument("--quality", type=int, default=d["quality"], help="JPEG quality")
    p.add_argument("--preset", choices=PRESETS, default=PRESETS[0],
                   help="face distribution: the default renderer, or 'realistic' (pose to 60 degrees yaw, "
                        "expressions, occluders, real backgrounds; SynthConfig.realistic)")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    cfg = SynthConfig.preset(args.preset, size=args.size)
    out = write_jd_folder(args.out, args.count, seed=args.seed, size=args.size, cfg=cfg,
                          workers=args.workers, quality=args.quality)
    print(f"wrote {args.count} synthetic faces ({args.preset}) to {out}")
    return 0
