"""``facelm app-kit``: a thin shell over :func:`facelm.appkit.build_kit`.

Writes the folder an app developer receives with the model: model.tflite and its manifest,
portable C pre/post-processing, JNI + Java ``FaceLandmarks``, golden vectors and a Makefile
(``make -C KIT test``, ``test-arm64``, ``test-jni``). See docs/app_kit.md.
"""
from __future__ import annotations

import argparse

from facelm.cli._args import defaults_of


def register(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    """Declare the flags; defaults come from :func:`facelm.appkit.build_kit`."""
    from facelm.appkit.kit import build_kit

    d = defaults_of(build_kit)
    p = subparsers.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("artifacts", help="artifact folder written by `facelm convert` (holds manifest.json)")
    p.add_argument("--out", required=True, help="kit folder to write (written atomically)")
    p.add_argument("--artifact", default=d["artifact"], help="which .tflite artifact of the manifest to pack")
    p.add_argument("--force", action="store_true", default=d["force"], help="replace an existing --out folder")
    p.add_argument("--cases", type=int, default=d["cases"], help="synthetic golden faces to write")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from facelm.appkit import build_kit

    result = build_kit(args.artifacts, args.out, artifact=args.artifact, force=args.force, cases=args.cases)
    print(f"wrote {result.path}/ (artifact {result.artifact}, {len(result.cases)} golden cases); "
          f"check it with: make -C {result.path} test test-arm64 test-jni")
    return 0
