"""WFLW annotation files (``list_98pt_rect_attr_train.txt`` / ``..._test.txt``).

One face per line: 196 numbers (x0 y0 ... x97 y97), 4 numbers of the box
(x_min y_min x_max y_max), 6 attribute flags (pose, expression, illumination, make-up,
occlusion, blur), then the image path relative to ``WFLW_images/``.
"""
from __future__ import annotations

import os
from pathlib import Path

from facelm.errors import InputError
from facelm.layouts import WFLW98
from facelm.data.records import FaceRecord, check_landmarks, parse_numbers

ATTRIBUTES = ("pose", "expression", "illumination", "make_up", "occlusion", "blur")


def load_wflw(annotation_file: str | os.PathLike, image_root: str | os.PathLike | None = None) -> list[FaceRecord]:
    """Read a WFLW annotation file.

    Args:
        annotation_file: the ``list_98pt_rect_attr_*.txt`` file.
        image_root: folder the image paths are relative to; default ``WFLW_images`` next to the
            annotation file's folder, else the annotation file's own folder.
    Returns:
        one record per line (the same image may hold several faces: names get ``#n`` suffixes).
    """
    ann = Path(annotation_file)
    if not ann.is_file():
        raise InputError(f"WFLW annotation file {ann} does not exist")
    if image_root is None:
        guess = ann.parent.parent / "WFLW_images"
        image_root = guess if guess.is_dir() else ann.parent
    root = Path(image_root)
    records, seen = [], {}
    n_num = 2 * WFLW98.num_points + 4 + len(ATTRIBUTES)
    for n, line in enumerate(ann.read_text(encoding="utf-8").splitlines(), 1):
        tok = line.split()
        if not tok:
            continue
        if len(tok) != n_num + 1:
            raise InputError(f"{ann}:{n}: expected {n_num} numbers and an image path, got {len(tok)} fields")
        nums = parse_numbers(" ".join(tok[:n_num]), f"{ann}:{n}")
        rel = tok[-1]
        pts = check_landmarks(nums[: 2 * WFLW98.num_points].reshape(-1, 2), WFLW98, f"{ann}:{n}")
        bbox = nums[2 * WFLW98.num_points: 2 * WFLW98.num_points + 4]
        seen[rel] = seen.get(rel, 0) + 1
        name = rel if seen[rel] == 1 else f"{rel}#{seen[rel]}"
        records.append(FaceRecord(image=root / rel, landmarks=pts, name=name, bbox=bbox))
    if not records:
        raise InputError(f"{ann} holds no annotations")
    return records
