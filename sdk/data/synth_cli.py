"""``facelm synth OUT --count N [--seed S] [--size PX]``: write synthetic faces in the JD folder format."""
from __future__ import annotations

import argparse

from sdk.data.synth import SynthConfig, write_jd_folder

_DEFAULT = SynthConfig()


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text + ". Layout: OUT/picture/NAME.jpg, "
                       "OUT/landmark/NAME.jpg.txt (106 points), OUT/bbox/NAME.jpg.rect.")
    p.add_argument("out", help="output folder (must not exist or be empty)")
    p.add_argument("--count", type=int, required=True, help="number of faces")
    p.add_argument("--seed", type=int, default=0, help="data-set seed (default 0); face i depends only on (seed, i)")
    p.add_argument("--size", type=int, default=_DEFAULT.size, help=f"image side in pixels (default {_DEFAULT.size})")
    p.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality (default 95)")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    out = write_jd_folder(args.out, args.count, seed=args.seed, size=args.size,
                          workers=args.workers, quality=args.quality)
    print(f"wrote {args.count} synthetic faces to {out}")
    return 0
