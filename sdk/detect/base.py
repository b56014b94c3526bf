"""What every face detector returns, and how its points become an alignment.

A detector gives, per face, a box, a score and a few *alignment points* in image pixels.
Which points depends on the detector (:data:`POINT_NAMES`): a Haar cascade gives a box only,
so its points are a fixed prior placed in the box; BlazeFace gives both eyes, the nose tip and
the mouth centre. :func:`alignment_transform` fits the least-squares similarity from whatever
points a detection has to the same points of the reference template
(:func:`facelm.alignment.reference_template`; the mouth centre's template point is the mean of
the two mouth corners), so every detector drives the same crop as five points do.

:func:`five_points_for_transform` turns any image -> crop similarity back into the five points
that reproduce it exactly, which is how a detection (or a tracked crop) feeds
``Landmarker.detect(image, five_points)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Protocol, Sequence

import cv2
import numpy as np

from facelm.alignment import invert_affine, reference_template, transform_points, umeyama
from facelm.errors import InputError

#: Alignment point vocabulary. The first five are ArcFace's order (image-left eye first).
POINT_NAMES = ("eye_left", "eye_right", "nose_tip", "mouth_left", "mouth_right", "mouth_centre")


def template_points(names: Sequence[str], size: int) -> np.ndarray:
    """Reference-template positions of named alignment points in a ``size`` crop.

    Returns:
        (P, 2) float64 crop pixels.
    """
    five = reference_template(size)
    table = {n: five[i] for i, n in enumerate(POINT_NAMES[:5])}
    table["mouth_centre"] = 0.5 * (five[3] + five[4])
    try:
        return np.stack([table[n] for n in names])
    except KeyError as exc:
        raise InputError(f"unknown alignment point {exc.args[0]!r}; known: {', '.join(POINT_NAMES)}") from None


@dataclass(frozen=True)
class Detection:
    """One detected face.

    Attributes:
        box: (4,) float64 ``x1, y1, x2, y2`` in image pixels.
        score: detector confidence in [0, 1].
        points: (P, 2) float64 alignment points in image pixels, named by ``point_names``.
        point_names: names from :data:`POINT_NAMES`, one per row of ``points``.
        detector: which detector produced it (``haar``, ``blazeface``, ``five_points``).
        extra: detector-specific values (e.g. BlazeFace's ear tragions).
    """

    box: np.ndarray
    score: float
    points: np.ndarray
    point_names: tuple[str, ...]
    detector: str
    extra: dict = field(default_factory=dict)

    def alignment(self, size: int) -> np.ndarray:
        """(2, 3) image -> ``size`` crop similarity fitted to this detection's points."""
        return alignment_transform(self.points, self.point_names, size)

    def to_dict(self) -> dict:
        """JSON-ready description (pixels, rounded to 1/1000 px)."""
        return {"detector": self.detector, "score": round(float(self.score), 5),
                "box": [round(float(v), 3) for v in self.box],
                "points": {n: [round(float(v), 3) for v in p] for n, p in zip(self.point_names, self.points)}}


def alignment_transform(points: np.ndarray, names: Sequence[str], size: int) -> np.ndarray:
    """Least-squares similarity from named image points to their template points.

    Args:
        points: (P, 2) image pixels, P >= 2.
        names: P names from :data:`POINT_NAMES`.
        size: crop side in pixels.
    Returns:
        (2, 3) float64 image -> crop transform.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape != (len(names), 2):
        raise InputError(f"alignment points {pts.shape} do not match {len(names)} names")
    return umeyama(pts, template_points(names, size))


def five_points_for_transform(m: np.ndarray, size: int) -> np.ndarray:
    """The five image points whose alignment is exactly the similarity ``m``.

    ``estimate_alignment(five_points_for_transform(m, s), s)`` equals ``m`` to float precision
    when ``m`` is a similarity (it is the template mapped through ``m``'s inverse).

    Returns:
        (5, 2) float64 image pixels, ArcFace order.
    """
    return transform_points(reference_template(size), invert_affine(m))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of boxes ``x1 y1 x2 y2``: a (4,), b (N, 4) -> (N,)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0.0, None)
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class FaceDetector(Protocol):
    """What the runtime needs from a detector."""

    name: str

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB image, best score first."""
        ...


def check_rgb(image: np.ndarray) -> np.ndarray:
    """The image as (H, W, 3) uint8, or an InputError naming what is wrong."""
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.shape[0] == 0 or img.shape[1] == 0:
        raise InputError(f"image must be (H, W, 3) RGB, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise InputError(f"image must be uint8, got {img.dtype}")
    return np.ascontiguousarray(img)


#: Most pixels detectors work on; a bigger image is shrunk first (``INTER_AREA``), which bounds
#: their memory and time (a 10,000 px photo is never warped or converted at full size).
MAX_PIXELS = 2_000_000


def downscaled(img: np.ndarray, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, float]:
    """The image shrunk (aspect kept) to at most ``max_pixels`` pixels, and the factor undoing it.

    Returns:
        ``(small, f)``: (h, w, 3) uint8 and original pixels per small pixel (1.0: unchanged).
    """
    h, w = img.shape[:2]
    if h * w <= max_pixels:
        return img, 1.0
    f = math.sqrt(h * w / float(max_pixels))
    size = (max(1, round(w / f)), max(1, round(h / f)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), f


def rescaled(det: Detection, f: float) -> Detection:
    """A detection found in an image shrunk by ``f`` (:func:`downscaled`), in original pixels.

    Pixel centres are at integers in both images: ``x = (x_small + 0.5) * f - 0.5``.
    """
    if f == 1.0:
        return det

    def up(v):
        return (np.asarray(v, np.float64) + 0.5) * f - 0.5

    extra = {k: up(v).tolist() if isinstance(v, list) and np.shape(v) == (2,) else v for k, v in det.extra.items()}
    return replace(det, box=up(det.box), points=up(det.points), extra=extra)
