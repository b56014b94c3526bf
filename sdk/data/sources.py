"""One entry point over the loaders: a path (and an optional format) -> records and layout."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from facelm.errors import InputError
from facelm.layouts import IBUG68, JD106, WFLW98, Layout
from facelm.data.ibug import load_ibug
from facelm.data.jd import is_jd_folder, load_jd
from facelm.data.records import FaceRecord, attach_detector_points, load_detector_points
from facelm.data.wflw import load_wflw

Format = Literal["auto", "jd", "wflw", "300w"]
FORMATS = ("auto", "jd", "wflw", "300w")


def detect_format(path: str | os.PathLike) -> str:
    """``"jd"`` for a folder with picture/ and landmark/, ``"wflw"`` for a ``.txt`` file,
    ``"300w"`` for a folder holding ``.pts`` files."""
    p = Path(path)
    if p.is_dir() and is_jd_folder(p):
        return "jd"
    if p.is_file() and p.suffix.lower() == ".txt":
        return "wflw"
    if p.is_dir() and next(p.rglob("*.pts"), None) is not None:
        return "300w"
    raise InputError(f"cannot tell the data format of {p}: expected a JD-landmark folder (picture/, landmark/), "
                     "a WFLW annotation .txt file or a folder of 300W .pts files")


def load_records(
    path: str | os.PathLike,
    fmt: Format = "auto",
    image_root: str | os.PathLike | None = None,
    detector_points: str | os.PathLike | None = None,
) -> tuple[list[FaceRecord], Layout]:
    """Load a data set.

    Args:
        path: JD folder, WFLW annotation file or 300W folder.
        fmt: ``"auto"`` (see :func:`detect_format`), ``"jd"``, ``"wflw"`` or ``"300w"``.
        image_root: WFLW image folder (see :func:`facelm.data.wflw.load_wflw`).
        detector_points: optional file of detector five points per image
            (:func:`facelm.data.records.load_detector_points`); default: five points from the ground truth.
    Returns:
        ``(records, layout)``.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown data format {fmt!r}; known: {', '.join(FORMATS)}")
    kind = detect_format(path) if fmt == "auto" else fmt
    if kind == "jd":
        records, layout = load_jd(path), JD106
    elif kind == "wflw":
        records, layout = load_wflw(path, image_root), WFLW98
    else:
        records, layout = load_ibug(path), IBUG68
    if detector_points is not None:
        records = attach_detector_points(records, load_detector_points(detector_points))
    return records, layout
