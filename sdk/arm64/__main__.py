"""``python -m facelm.arm64 setup [--root DIR]``: the same as ``facelm arm64 setup`` (used by ``make arm64``)."""
import argparse
import sys

from facelm.cli.arm64 import drive, register
from facelm.errors import FacelmError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m facelm")
    register(parser.add_subparsers(dest="command", required=True), "arm64", "the aarch64 emulation runtime")
    args = parser.parse_args(["arm64", *(sys.argv[1:] if argv is None else argv)])
    try:
        return drive(args)
    except FacelmError as exc:
        print(f"facelm arm64: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
