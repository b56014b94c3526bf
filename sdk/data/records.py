"""Face records shared by every loader, images, five alignment points and detector-point files.

A loader turns a data set on disk into a list of :class:`FaceRecord`: one face with its
image path, ground-truth landmarks, ground-truth box (when the data set has one) and, when
a detector-points file was given, the detector's five points (the paper aligns with
detector points; by default the five points come from the ground truth).
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelm.errors import InputError
from facelm.layouts import Layout


@dataclass(frozen=True)
class FaceRecord:
    """One annotated face.

    Attributes:
        image: path of the image file.
        landmarks: (K, 2) float64 ground truth in image pixels.
        name: key of the face (file name relative to the data set's image root).
        bbox: (4,) ``x1 y1 x2 y2`` ground-truth box, or None (NME then uses the landmarks' tight box).
        five_points: (5, 2) detector points (ArcFace order), or None to derive them from ``landmarks``.
    """

    image: Path
    landmarks: np.ndarray
    name: str
    bbox: np.ndarray | None = None
    five_points: np.ndarray | None = None

    def alignment_points(self, layout: Layout) -> np.ndarray:
        """(5, 2) float64: the detector points if any, else the layout's five points of the ground truth."""
        if self.five_points is not None:
            return np.asarray(self.five_points, dtype=np.float64)
        return layout.five_points(self.landmarks)

    def gt_box(self) -> np.ndarray:
        """(4,) ``x1 y1 x2 y2``: the data set's box, else the tight box of the landmarks."""
        if self.bbox is not None:
            return np.asarray(self.bbox, dtype=np.float64)
        return np.concatenate([self.landmarks.min(axis=0), self.landmarks.max(axis=0)])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB.

    Raises:
        InputError: the file is missing or not a readable image.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"image {p} does not exist")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot decode image {p}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def parse_numbers(text: str, where: str) -> np.ndarray:
    """Whitespace-separated numbers -> float64 array; InputError naming ``where`` on junk."""
    try:
        return np.array([float(t) for t in text.split()], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{where}: not a number ({exc})") from None


def check_landmarks(pts: np.ndarray, layout: Layout, where: str) -> np.ndarray:
    """Validate (K, 2) finite landmarks for ``layout``."""
    pts = np.asarray(pts, dtype=np.float64)
    if pts.shape != (layout.num_points, 2):
        raise InputError(f"{where}: expected {layout.num_points} points for {layout.name}, got shape {pts.shape}")
    if not np.all(np.isfinite(pts)):
        raise InputError(f"{where}: landmarks contain NaN or Inf")
    return pts


def load_detector_points(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a file of detector five points per image.

    Formats:
        ``.json``: ``{"NAME": [[x, y], ... 5 points], ...}``;
        anything else: one line per image, ``NAME x1 y1 x2 y2 x3 y3 x4 y4 x5 y5`` (ArcFace order:
        image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner).
        Blank lines and lines starting with ``#`` are ignored.
    Returns:
        name -> (5, 2) float64.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"detector points file {p} does not exist")
    out: dict[str, np.ndarray] = {}
    if p.suffix.lower() == ".json":
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise InputError(f"{p}: invalid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise InputError(f"{p}: expected a JSON object mapping image names to five points")
        items = [(str(k), np.asarray(v, dtype=np.float64)) for k, v in data.items()]
    else:
        items = []
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            name, _, rest = line.strip().partition(" ")
            items.append((name, parse_numbers(rest, f"{p}:{n}")))
    for name, arr in items:
        if arr.size != 10 or not np.all(np.isfinite(arr)):
            raise InputError(f"{p}: {name!r} needs 5 finite points (10 numbers), got {arr.size} numbers")
        out[name] = arr.reshape(5, 2)
    return out


def attach_detector_points(records: list[FaceRecord], points: dict[str, np.ndarray]) -> list[FaceRecord]:
    """Records with ``five_points`` set from ``points`` (keyed by record name or image file name).

    Raises:
        InputError: some records have no detector points (names the first few).
    """
    out, missing = [], []
    for r in records:
        five = points.get(r.name, points.get(r.image.name))
        if five is None:
            missing.append(r.name)
        else:
            out.append(dataclasses.replace(r, five_points=np.asarray(five, dtype=np.float64)))
    if missing:
        raise InputError(f"{len(missing)} of {len(records)} images have no detector points, e.g. {missing[:3]}")
    return out
