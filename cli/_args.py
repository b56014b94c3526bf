"""Pieces every command module shares: the parser class, its help formatter, API defaults."""
from __future__ import annotations

import argparse
import inspect
import sys
from typing import Any, Callable, NoReturn


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Appends ``(default: X)`` to an option's help once, unless the default is None, False,
    an empty list or a flag's, or the help already mentions it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        if ("%(default)" in text or d is None or d is False or d == [] or d is argparse.SUPPRESS
                or action.nargs == 0 or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``facelm bench: error: ...``), exit 2,
    and whose help shows each default once (:class:`HelpFormatter`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see '{self.prog} --help')", file=sys.stderr)
        raise SystemExit(2)


def defaults_of(func: Callable) -> dict[str, Any]:
    """The keyword defaults of a typed API function: the CLI's defaults where no dataclass holds them."""
    return {name: p.default for name, p in inspect.signature(func).parameters.items()
            if p.default is not inspect.Parameter.empty}


def print_help_of(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace], int]:
    """A driver for a command given without its subcommand: print the command's help."""

    def drive(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return drive


def add_adb_flags(p: argparse.ArgumentParser) -> None:
    """``--adb`` and ``--adb-port`` (devices, bench, virtual-device)."""
    p.add_argument("--adb", default=None, help="adb executable (default: adb on PATH)")
    p.add_argument("--adb-port", type=int, default=None, help="adb server port (default: adb's, 5037)")


def adb_from_args(args: argparse.Namespace, timeout_s: float):
    """The :class:`~facelm.android_bench.adb.Adb` client the ``--adb`` flags ask for."""
    from facelm.android_bench.adb import Adb

    return Adb(args.adb, server_port=args.adb_port, timeout_s=timeout_s)
