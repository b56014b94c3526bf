"""``facelm arm64 setup``: build the cached aarch64 runtime that runs artifacts under qemu-user.

Defaults come from :func:`facelm.arm64.default_root` (``$FACELM_ARM64_ROOT`` or
``~/.cache/facelm/arm64``).
"""
from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text + ". Emulated numerics are real aarch64 "
                       "numerics; emulated time is never latency.")
    actions = p.add_subparsers(dest="arm64_action", metavar="ACTION", required=True)
    s = actions.add_parser("setup", help="build (once, cached) the aarch64 python/numpy/LiteRT/TVM root",
                           description="Build the aarch64 root: Debian 12 arm64 packages (dpkg -x) and aarch64 "
                           "wheels. Idempotent; needs apt's arm64 lists (root: dpkg --add-architecture arm64) and "
                           "the apt packages qemu-user, gcc-aarch64-linux-gnu, g++-aarch64-linux-gnu. "
                           "A few minutes and ~450 MB once.")
    s.add_argument("--root", type=Path, default=None,
                   help="where to build it (default: $FACELM_ARM64_ROOT or ~/.cache/facelm/arm64)")
    s.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from facelm.arm64 import setup

    root = setup(args.root, progress=not args.quiet)
    print(root.path)
    return 0
