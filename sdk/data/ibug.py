"""300W / iBUG ``.pts`` files (68 points), each next to its image with the same stem.

Format::

    version: 1
    n_points:  68
    {
    x y
    ...
    }

300W coordinates are 1-based (Matlab); :func:`read_pts` subtracts 1 by default so points
follow this project's 0-based pixel-centre convention.
"""
from __future__ import annotations

import os
from pathlib import Path

from facelm.errors import InputError
from facelm.layouts import IBUG68
from facelm.data.records import FaceRecord, check_landmarks, parse_numbers

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def read_pts(path: str | os.PathLike, one_based: bool = True):
    """Parse a ``.pts`` file: (68, 2) float64 in 0-based pixels."""
    p = Path(path)
    text = p.read_text(encoding="utf-8", errors="replace")
    if "{" not in text or "}" not in text:
        raise InputError(f"{p}: not a .pts file (no '{{ ... }}' block)")
    header, body = text.split("{", 1)
    body = body.split("}", 1)[0]
    declared = None
    for line in header.splitlines():
        if line.strip().lower().startswith("n_points"):
            declared = int(parse_numbers(line.split(":", 1)[1], str(p))[0])
    pts = parse_numbers(body, str(p))
    if pts.size % 2:
        raise InputError(f"{p}: odd number of coordinates")
    pts = pts.reshape(-1, 2)
    if declared is not None and declared != len(pts):
        raise InputError(f"{p}: n_points says {declared} but {len(pts)} points follow")
    if one_based:
        pts = pts - 1.0
    return check_landmarks(pts, IBUG68, str(p))


def load_ibug(root: str | os.PathLike, one_based: bool = True) -> list[FaceRecord]:
    """Read every ``.pts`` under ``root`` (recursively) with its image, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"300W folder {root} does not exist")
    records = []
    for pts in sorted(root.rglob("*.pts")):
        image = next((pts.with_suffix(s) for s in IMAGE_SUFFIXES if pts.with_suffix(s).is_file()), None)
        if image is None:
            raise InputError(f"{pts}: no image with the same name ({', '.join(IMAGE_SUFFIXES)})")
        records.append(FaceRecord(image=image, landmarks=read_pts(pts, one_based),
                                  name=str(image.relative_to(root))))
    if not records:
        raise InputError(f"no .pts files under {root}")
    return records
