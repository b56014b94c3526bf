"""The ``facelm`` command line.

Three layers, as in TVM's tvmc: this module declares the top-level parser and
dispatches; each subcommand lives in its own module with a ``register(subparsers)``
function that declares its flags and sets ``func`` (the driver). Drivers turn
arguments into a call of the typed Python API and return an exit code.

Subcommand modules are imported lazily so that ``facelm --help`` stays fast and a
light runtime install (no torch, no TensorFlow) can still run the commands it has.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Callable, Sequence

from sdk import __version__
from sdk.errors import FacelmError

# (command, module, one-line help). The module must define register(subparsers).
COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("layouts", "sdk.layouts_cli", "show landmark layouts (points, regions, flip pairs)"),
    ("synth", "sdk.data.synth_cli", "write synthetic 106-point faces in the JD-landmark folder format"),
    ("train", "sdk.training.train_cli", "train a heatmap model with the paper's recipe (CPU/CUDA, DDP via torchrun)"),
    ("evaluate", "sdk.training.eval_cli", "NME / AUC@0.08 / FR of a checkpoint on a data set, with and without flip test"),
    ("model", "sdk.model.cli", "model zoo: paper GFLOPs/size table, config info"),
    ("convert", "converters.cli", "convert weights to verified TFLite/TVM artifacts with a drift report"),
    ("devices", "android_bench.devices_cli", "list adb devices and their facts (SoC, cores, thermal)"),
    ("bench", "android_bench.bench_cli", "benchmark .tflite artifacts on phones over adb (or locally); 'bench report'"),
    ("virtual-device", "android_bench.virtual_device_cli", "serve a virtual adb device on loopback for dry runs"),
)


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="facelm",
        description="Sub-pixel face landmarks from PyTorch to phones.",
    )
    parser.add_argument("--version", action="version", version=f"facelm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_text in COMMANDS:
        register: Callable = importlib.import_module(module).register
        p = register(sub, name, help_text)
        if p is None:  # pragma: no cover - programming error, caught by tests
            raise RuntimeError(f"{module}.register must return its parser")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facelm`` console script. Returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
    )
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        rc = args.func(args)
        return 0 if rc is None else int(rc)
    except FacelmError as exc:
        if debug:
            raise
        print(f"facelm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facelm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
