"""Device paths -> sandbox paths of the virtual device (used by its shell rewriting and the sync service).

Kept apart from :mod:`.server` so that :mod:`.sync` needs nothing from the server module
(no import cycle between the two files).
"""
from __future__ import annotations

import os
import posixpath
from pathlib import Path

#: Top-level device folders mapped into the sandbox (``/data/...`` -> ``ROOT/data/...``).
MAPPED_ROOTS = ("data", "sys", "proc", "sdcard")


def device_path(root: Path, remote: str) -> Path | None:
    """Map an absolute device path to the sandbox; None when outside the mapped roots."""
    if not remote.startswith("/"):
        return None
    norm = posixpath.normpath(remote)
    parts = norm.lstrip("/").split("/")
    if not parts or parts[0] not in MAPPED_ROOTS:
        return None
    return Path(root, *parts)


def confined(root: Path, local: Path) -> bool:
    """True when ``local``'s real path (symlinks resolved) stays inside the sandbox ``root``."""
    base = os.path.realpath(root)
    real = os.path.realpath(local)
    return real == base or real.startswith(base.rstrip("/") + "/")
