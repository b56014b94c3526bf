"""The ``facelm`` command line (console script ``facelm``, or ``python -m facelm.cli``).

The command table, parser and dispatcher are in :mod:`facelm.cli.app`; each command is one
module here (``facelm.cli.bench`` is ``facelm bench``). See docs/architecture.md, "CLI".
"""
from facelm.cli.app import COMMANDS, Command, build_parser, main

__all__ = ["COMMANDS", "Command", "build_parser", "main"]
