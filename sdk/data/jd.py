"""JD-landmark folders: ``picture/NAME.jpg``, ``landmark/NAME.jpg.txt``, ``bbox/NAME.jpg.rect``.

``landmark/NAME.jpg.txt``: first line ``106``, then 106 lines ``x y`` (pixels, 0-based).
``bbox/NAME.jpg.rect``: ``x1 y1 x2 y2`` (optional; without it NME uses the landmarks' tight box).
The synthetic generator (``facelm synth``) writes the same format.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facelm.errors import InputError
from facelm.layouts import JD106, Layout
from facelm.data.records import FaceRecord, check_landmarks, parse_numbers

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def is_jd_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` has ``picture/`` and ``landmark/`` subfolders."""
    p = Path(path)
    return (p / "picture").is_dir() and (p / "landmark").is_dir()


def read_jd_landmarks(path: str | os.PathLike, layout: Layout = JD106) -> np.ndarray:
    """Parse one ``NAME.jpg.txt``: (K, 2) float64."""
    p = Path(path)
    lines = [l for l in p.read_text(encoding="utf-8").splitlines() if l.strip()]
    if not lines:
        raise InputError(f"{p}: empty landmark file")
    head = parse_numbers(lines[0], f"{p}:1")
    if head.size != 1 or int(head[0]) != head[0]:
        raise InputError(f"{p}: the first line must be the number of points, got {lines[0]!r}")
    k = int(head[0])
    if len(lines) - 1 != k:
        raise InputError(f"{p}: header says {k} points but {len(lines) - 1} lines follow")
    pts = np.stack([parse_numbers(l, f"{p}:{i + 2}") for i, l in enumerate(lines[1:])]) if k else np.zeros((0, 2))
    if pts.shape[1:] != (2,):
        raise InputError(f"{p}: every point line must hold 'x y'")
    return check_landmarks(pts, layout, str(p))


def read_rect(path: str | os.PathLike) -> np.ndarray:
    """Parse one ``NAME.jpg.rect``: (4,) float64 ``x1 y1 x2 y2``."""
    p = Path(path)
    b = parse_numbers(p.read_text(encoding="utf-8"), str(p))
    if b.size != 4 or not (b[2] > b[0] and b[3] > b[1]):
        raise InputError(f"{p}: expected 'x1 y1 x2 y2' with x2 > x1 and y2 > y1, got {b.tolist()}")
    return b


def load_jd(root: str | os.PathLike, layout: Layout = JD106) -> list[FaceRecord]:
    """Read every annotated face of a JD-landmark folder, sorted by name.

    Every ``landmark/*.txt`` must have its picture; pictures without landmarks are skipped
    (a test folder may hold unlabelled images).

    Raises:
        InputError: not a JD folder, no annotations, a picture missing, or a malformed file.
    """
    root = Path(root)
    if not is_jd_folder(root):
        raise InputError(f"{root} is not a JD-landmark folder (needs picture/ and landmark/)")
    records = []
    for txt in sorted((root / "landmark").glob("*.txt")):
        name = txt.name[:-4]  # NAME.jpg
        image = root / "picture" / name
        if not image.is_file():
            raise InputError(f"{txt}: its picture {image} is missing")
        rect = root / "bbox" / f"{name}.rect"
        bbox = read_rect(rect) if rect.is_file() else None
        records.append(FaceRecord(image=image, landmarks=read_jd_landmarks(txt, layout), name=name, bbox=bbox))
    if not records:
        raise InputError(f"{root}/landmark holds no annotation files")
    return records
