"""The ``facelm`` command line: the command table, the top-level parser and the dispatcher.

Three layers, as in TVM's tvmc: this module declares the top-level parser and dispatches;
each command lives in its own module of :mod:`facelm.cli` whose ``register(subparsers, name,
help)`` declares its flags (defaults taken from the config dataclasses) and sets ``func``
(the driver). A driver turns arguments into a call of the typed Python API and returns an
exit code. Library code raises :class:`~facelm.errors.FacelmError`, never argparse errors.

Only the module of the command being run is imported, so ``facelm --help`` and the light
commands work on an install without the extras. A command whose imports need an extra
fails with one line naming it (:func:`missing_extra`).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import re
import sys
from dataclasses import dataclass
from typing import Sequence

from facelm import __version__
from facelm.errors import FacelmError

from ._args import Parser


@dataclass(frozen=True)
class Command:
    """One ``facelm`` command.

    Attributes:
        name: the command as typed.
        module: the module whose ``register(subparsers, name, help)`` declares it.
        help: one line for ``facelm --help``.
        extra: the pyproject extra its heavy imports come from (None: the light install has it).
    """

    name: str
    module: str
    help: str
    extra: str | None = None


# Adding a command: one row here and one module with register() and drive().
COMMANDS: tuple[Command, ...] = (
    Command("layouts", "facelm.cli.layouts", "show landmark layouts (points, regions, flip pairs)"),
    Command("synth", "facelm.cli.synth", "write synthetic 106-point faces in the JD-landmark folder format"),
    Command("synth-video", "facelm.cli.synth_video", "write a synthetic face clip with exact per-frame 106-point ground truth"),
    Command("detect", "facelm.cli.detect", "landmarks for an image, a folder or a video: JSONL and overlays (IMAGE/VIDEO modes)"),
    Command("train", "facelm.cli.train", "train a heatmap model with the paper's recipe (CPU/CUDA, DDP via torchrun)", "torch"),
    Command("evaluate", "facelm.cli.evaluate", "NME / AUC@0.08 / FR of a checkpoint on a data set, with and without flip test", "torch"),
    Command("model", "facelm.cli.model", "model zoo: paper GFLOPs/size table, config info", "torch"),
    Command("convert", "facelm.cli.convert", "convert weights to verified TFLite/TVM artifacts with a drift report", "convert"),
    Command("quant-debug", "facelm.cli.quant_debug", "per-layer int8 error, landmark sensitivity, int8_mixed and GPU readiness of artifacts", "convert"),
    Command("devices", "facelm.cli.devices", "list adb devices and their facts (SoC, cores, thermal)"),
    Command("bench", "facelm.cli.bench", "benchmark artifacts on phones over adb or on this host; 'bench report' renders the records"),
    Command("virtual-device", "facelm.cli.virtual_device", "serve a virtual adb device on loopback for dry runs"),
    Command("arm64", "facelm.cli.arm64", "build the aarch64 emulation runtime (qemu-user) used by --arm64-check and virtual-device --arch arm64"),
    Command("app-kit", "facelm.cli.app_kit", "write the app kit: model, portable C + JNI/Java pre/post-processing, golden tests"),
)

#: Import names of the heavy packages, by the pyproject extra that installs them
#: (tests/test_cli.py checks them against the installed package's extras).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "tvm": ("tvm", "tvm_ffi"),
    "convert": ("torch", "onnx", "onnxruntime", "onnxsim", "onnx2tf", "tensorflow", "tf_keras", "keras"),
}


def _findable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_extra(exc: ImportError, command: Command | None) -> str | None:
    """The extra to install for ``exc``, or None when ``exc`` is not about a heavy package.

    The module is the exception's ``name`` when that is a heavy package. An ImportError
    without a name (one raised by an import hook) counts only when its message names a
    heavy package that cannot be found. The extra is the command's own when it holds that
    module (``convert`` without torch needs facelm[convert], not facelm[torch]).
    """
    heavy = [m for mods in EXTRA_MODULES.values() for m in mods]
    if exc.name:
        module = exc.name.partition(".")[0]
    else:
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", str(exc)))
        module = next((m for m in heavy if m in words and not _findable(m)), "")
    if module not in heavy:
        return None
    if command and command.extra and module in EXTRA_MODULES[command.extra]:
        return command.extra
    return next(extra for extra, mods in EXTRA_MODULES.items() if module in mods)


def _register(sub: argparse._SubParsersAction, command: Command) -> argparse.ArgumentParser:
    parser = importlib.import_module(command.module).register(sub, command.name, command.help)
    if parser is None:  # pragma: no cover - programming error, caught by tests
        raise RuntimeError(f"{command.module}.register must return its parser")
    return parser


def build_parser(commands: Sequence[Command] | None = None) -> argparse.ArgumentParser:
    """The top-level parser. ``commands`` are registered fully (their modules imported);
    every other command of :data:`COMMANDS` is listed by name and help only. None: all."""
    full = {c.name for c in (COMMANDS if commands is None else commands)}
    parser = Parser(prog="facelm", description="Sub-pixel face landmarks from PyTorch to phones.")
    parser.add_argument("--version", action="version", version=f"facelm {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        if command.name in full:
            _register(sub, command)
        else:
            sub.add_parser(command.name, help=command.help)
    return parser


def _split(argv: list[str]) -> tuple[list[str], Command | None]:
    """(top-level options before the command, the command). The top-level options take no values."""
    for i, token in enumerate(argv):
        if not token.startswith("-"):
            return argv[:i], next((c for c in COMMANDS if c.name == token), None)
    return argv, None


def _with_default_subcommand(argv: list[str], parser: argparse.ArgumentParser, name: str) -> list[str]:
    """Insert the command's DEFAULT_SUBCOMMAND when the word after it is not a subcommand
    (``facelm bench PATH`` = ``facelm bench run PATH``)."""
    cmd_parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[name]
    default = cmd_parser.get_default("default_subcommand")
    i = argv.index(name) + 1
    if default is None or i == len(argv) or argv[i] in ("-h", "--help"):
        return argv
    subs = next((a.choices for a in cmd_parser._actions if isinstance(a, argparse._SubParsersAction)), {})
    return argv if argv[i] in subs else argv[:i] + [default] + argv[i:]


def _exit_code(exc: SystemExit) -> int:
    return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``facelm`` console script. Returns the exit code.

    Exit codes: 0 = done; 1 = done, but a gate or a run failed (the command says which);
    2 = bad usage, a :class:`FacelmError` (one line ``facelm: error: ...``; ``--debug``
    re-raises it) or a missing extra; 130 = interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    top, command = _split(argv)
    debug = "--debug" in top
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
    )
    label = command.name if command else "facelm"
    try:
        parser = build_parser([command] if command else [])
        try:
            args = parser.parse_args(_with_default_subcommand(argv, parser, command.name) if command else argv)
        except SystemExit as exc:  # --help, --version, or a usage error already printed
            return _exit_code(exc)
        if not getattr(args, "func", None):
            parser.print_help()
            return 0
        label = " ".join(filter(None, (command.name, getattr(args, "subcommand", None))))
        rc = args.func(args)
        return 0 if rc is None else int(rc)
    except ImportError as exc:
        extra = missing_extra(exc, command)
        if debug or extra is None:
            raise
        print(f"facelm: error: '{label}' needs facelm[{extra}]: pip install 'facelm[{extra}]'", file=sys.stderr)
        return 2
    except FacelmError as exc:
        if debug:
            raise
        print(f"facelm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facelm: interrupted", file=sys.stderr)
        return 130
