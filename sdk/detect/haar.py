"""Default face detector: OpenCV's bundled frontal-face Haar cascade (nothing to download).

A cascade gives a box only. The five alignment points are a fixed prior inside the box
(:data:`BOX_PRIOR`); the runtime then re-aligns from its own first landmark pass, so the prior
only has to put the face roughly in the crop.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from facelm.detect.base import MAX_PIXELS, POINT_NAMES, Detection, check_rgb, downscaled, rescaled
from facelm.errors import InputError

#: ArcFace five points as fractions of the cascade's square box ``(x - x1) / w, (y - y1) / w``.
#: Median over 166 near-frontal synthetic faces (|yaw|, |pitch| <= 8 deg) that
#: ``haarcascade_frontalface_default`` found, made left-right symmetric (measured: eyes
#: (0.311, 0.408), (0.673, 0.408); nose (0.493, 0.618); mouth (0.349, 0.772), (0.636, 0.772)).
BOX_PRIOR = np.array([[0.31, 0.41], [0.69, 0.41], [0.50, 0.62], [0.35, 0.77], [0.65, 0.77]])


@dataclass(frozen=True)
class HaarOptions:
    """``cv2.CascadeClassifier.detectMultiScale`` settings.

    Attributes:
        cascade: file name under ``cv2.data.haarcascades``, or a path.
        scale_factor: image pyramid step.
        min_neighbors: overlapping hits a box needs.
        min_size: smallest face side in pixels.
        equalize: equalise the grey histogram first (helps dim or low-contrast frames).
        max_pixels: most pixels worked on (a bigger image is shrunk first; ``min_size``
            applies to the shrunk image).
    """

    cascade: str = "haarcascade_frontalface_default.xml"
    scale_factor: float = 1.1
    min_neighbors: int = 4
    min_size: int = 40
    equalize: bool = True
    max_pixels: int = MAX_PIXELS


class HaarDetector:
    """Frontal faces with OpenCV's Haar cascade. Scores are ``w / (1 + w)`` of the cascade's
    level weight ``w`` (a monotone squash to [0, 1), not a probability)."""

    name = "haar"

    def __init__(self, options: HaarOptions | None = None) -> None:
        self.options = options or HaarOptions()
        path = self.options.cascade
        if "/" not in path:
            path = cv2.data.haarcascades + path
        self._cascade = cv2.CascadeClassifier(path)
        if self._cascade.empty():
            raise InputError(f"cannot load the Haar cascade {path}")

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB image, best score first."""
        o = self.options
        img, f = downscaled(check_rgb(image), o.max_pixels)
        grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        if o.equalize:
            grey = cv2.equalizeHist(grey)
        boxes, _, weights = self._cascade.detectMultiScale3(
            grey, scaleFactor=o.scale_factor, minNeighbors=o.min_neighbors,
            minSize=(o.min_size, o.min_size), outputRejectLevels=True)
        out = []
        for (x, y, w, h), lw in zip(np.asarray(boxes).reshape(-1, 4), np.asarray(weights).reshape(-1)):
            pts = np.array([x, y], np.float64) + BOX_PRIOR * float(w)
            lw = max(float(lw), 0.0)
            out.append(Detection(box=np.array([x, y, x + w, y + h], np.float64), score=lw / (1.0 + lw),
                                 points=pts, point_names=POINT_NAMES[:5], detector=self.name))
        return [rescaled(d, f) for d in sorted(out, key=lambda d: -d.score)]
