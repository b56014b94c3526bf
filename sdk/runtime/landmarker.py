"""The app-facing landmark API, in the style of MediaPipe Tasks.

::

    from facelm.runtime import Landmarker
    with Landmarker.create_from_model_path("artifacts/int8.tflite") as lm:
        result = lm.detect(image_rgb, five_points)   # five points from any face detector
        result.landmarks                              # (K, 2) in the original image's pixels

A model path may be an artifact folder (its ``manifest.json`` chooses the file, default
``int8``) or a ``.tflite`` file. With a ``manifest.json`` beside the file, its sha256 is
checked before the model is loaded; a lone ``.tflite`` is described by the metadata
``facelm convert`` embeds in it. Preprocessing is :func:`facelm.preprocess.preprocess_face`
with the artifact's normalisation, and decoding is :func:`facelm.codec.decode` on the raw
(int8 or float) output, exactly as in the conversion's drift measurement.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facelm.artifacts import DEFAULT_RUNTIME_ARTIFACT
from facelm.errors import InputError
from facelm.runtime.manifest import MANIFEST_NAME, ModelContract, load_manifest


@dataclass
class LandmarkerOptions:
    """How to build a :class:`Landmarker`.

    Attributes:
        model_path: an artifact folder or a ``.tflite`` file.
        artifact: artifact name used when ``model_path`` is a folder (``fp32``, ``int8``, ...).
        num_threads: CPU threads for LiteRT.
        verify: check the manifest's sha256 of the file before loading it.
    """

    model_path: str | os.PathLike
    artifact: str = DEFAULT_RUNTIME_ARTIFACT
    num_threads: int = 1
    verify: bool = True


@dataclass
class LandmarkerResult:
    """Landmarks of one face.

    Attributes:
        landmarks: (K, 2) float64 ``(x, y)`` in the original image's pixels.
        scores: (K,) float32 heatmap peak values.
        landmarks_crop: (K, 2) float64 in the aligned crop's pixels.
        transform: (2, 3) image -> crop similarity used.
    """

    landmarks: np.ndarray
    scores: np.ndarray
    landmarks_crop: np.ndarray
    transform: np.ndarray
    layout: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _resolve(options: LandmarkerOptions) -> tuple[Path, ModelContract]:
    """(tflite path, the model contract) for the options; hashes checked when ``options.verify``."""
    from facelm.runtime.tflite import read_tflite_metadata

    path = Path(options.model_path)
    if path.is_dir():
        manifest = load_manifest(path, verify=False)
        entry = manifest.artifact(options.artifact)
        if entry.format != "tflite":
            raise InputError(f"artifact {options.artifact!r} is {entry.format}; Landmarker runs .tflite artifacts")
        return manifest.artifact_path(options.artifact, verify=options.verify), manifest.contract
    if not path.is_file():
        raise InputError(f"no model at {path}")
    if path.suffix != ".tflite":
        raise InputError(f"{path} is not a .tflite file or an artifact folder")
    if (path.parent / MANIFEST_NAME).is_file():
        manifest = load_manifest(path.parent, verify=False)
        match = [a for a in manifest.artifacts if a.file == path.name]
        if match:
            return manifest.artifact_path(match[0].name, verify=options.verify), manifest.contract
    meta = read_tflite_metadata(path)
    if meta is None:
        raise InputError(f"{path} has no facelm metadata and no manifest.json beside it; "
                         "convert it with `facelm convert`")
    return path, ModelContract.from_dict(meta)


class Landmarker:
    """Face landmarks from a converted ``.tflite`` artifact. Use :meth:`create_from_options`."""

    def __init__(self, options: LandmarkerOptions, _token: object = None) -> None:
        if _token is not _CREATE:
            raise InputError("build a Landmarker with Landmarker.create_from_model_path or create_from_options")
        from facelm.alignment import reference_template
        from facelm.runtime.tflite import TfliteRunner

        path, contract = _resolve(options)
        self._contract = contract
        self._size = contract.model.input_side
        template = np.asarray(contract.preprocess.five_point_template, dtype=np.float64)
        if not np.allclose(template, reference_template(self._size), atol=1e-6):
            raise InputError(f"{path} was converted with a different alignment template than this facelm uses")
        self._runner = TfliteRunner(path, num_threads=options.num_threads)
        self.options = options
        self.path = path
        self._closed = False

    # -- construction -----------------------------------------------------------------
    @classmethod
    def create_from_options(cls, options: LandmarkerOptions) -> "Landmarker":
        return cls(options, _CREATE)

    @classmethod
    def create_from_model_path(cls, model_path: str | os.PathLike, artifact: str = DEFAULT_RUNTIME_ARTIFACT) -> "Landmarker":
        return cls(LandmarkerOptions(model_path=model_path, artifact=artifact), _CREATE)

    # -- use --------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self._size

    @property
    def contract(self) -> ModelContract:
        """The model's typed contract (model, preprocess, layout, decode sections)."""
        return self._contract

    def detect(self, image: np.ndarray, five_points: np.ndarray) -> LandmarkerResult:
        """Landmarks of the face given by five points.

        Args:
            image: (H, W, 3) uint8 RGB.
            five_points: (5, 2) pixels in ``image`` (eye centres, nose tip, mouth corners).
        Returns:
            :class:`LandmarkerResult` with landmarks in ``image`` pixels.
        """
        if self._closed:
            raise InputError("this Landmarker is closed")
        from facelm.postprocess import output_to_landmarks
        from facelm.preprocess import preprocess_face

        x, m = preprocess_face(image, _five_points(five_points), self._size, self._contract.preprocess.normalization)
        raw = self._runner.run_raw(x[None])
        lms = output_to_landmarks(raw, self._runner.output_spec, self._contract.model, self._contract.decode, m)
        return LandmarkerResult(landmarks=lms.image[0], scores=lms.scores[0], landmarks_crop=lms.crop[0],
                                transform=m, layout=self._contract.layout.name)

    def close(self) -> None:
        self._runner = None
        self._closed = True

    def __enter__(self) -> "Landmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CREATE = object()


def _five_points(points) -> np.ndarray:
    """(5, 2) finite float64 pixels, or :class:`InputError`."""
    try:
        pts = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"five_points must be a (5, 2) array of pixel coordinates, got {points!r:.60}") from None
    if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
        raise InputError(f"five_points must be a (5, 2) array of finite pixel coordinates, got shape {pts.shape}")
    return pts
