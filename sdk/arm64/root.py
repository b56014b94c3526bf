"""What a built aarch64 root is, and the host tools running it needs (no building here).

:mod:`.run` runs code in a root and :mod:`.sysroot` builds one; both import this module,
and neither imports the other's dependencies back (no cycle between the files).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from facelm.errors import FacelmError

PYTHON_VERSION = "3.11"
SITE_DIR = "site"
#: Host tool -> Debian package that provides it.
TOOL_PACKAGES: dict[str, str] = {
    "qemu-aarch64": "qemu-user",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu",
}


class Arm64Error(FacelmError):
    """The aarch64 emulation runtime is missing, cannot be built, or a run under qemu failed."""


@dataclass(frozen=True)
class Arm64Root:
    """A built aarch64 root.

    ``path``: the root handed to ``qemu-aarch64 -L``; ``python``: its python3.11 (an
    aarch64 ELF, run only through qemu); ``site``: the folder on the emulated PYTHONPATH;
    ``stamp``: the parsed stamp file (spec, Debian package versions, wheel files).
    """

    path: Path
    stamp: dict

    @property
    def python(self) -> Path:
        return self.path / "usr" / "bin" / f"python{PYTHON_VERSION}"

    @property
    def site(self) -> Path:
        return self.path / SITE_DIR


def default_root() -> Path:
    """``$FACELM_ARM64_ROOT`` or ``~/.cache/facelm/arm64``."""
    env = os.environ.get("FACELM_ARM64_ROOT")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "facelm" / "arm64"


def missing_tools(tools: dict[str, str] | None = None) -> dict[str, str]:
    """The tools of ``tools`` (default: qemu and both cross compilers) not on PATH -> their apt package."""
    tools = TOOL_PACKAGES if tools is None else tools
    return {t: pkg for t, pkg in tools.items() if shutil.which(t) is None}


def check_tools(tools: dict[str, str] | None = None) -> None:
    """Raise one :class:`Arm64Error` naming every missing tool and the exact apt packages to install."""
    missing = missing_tools(tools)
    if missing:
        pkgs = " ".join(sorted(set(missing.values())))
        raise Arm64Error(f"missing {', '.join(sorted(missing))}: install with `apt-get install -y {pkgs}`")
