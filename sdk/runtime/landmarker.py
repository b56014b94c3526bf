"""The app-facing landmark API, in the style of MediaPipe Tasks.

::

    from sdk.runtime import Landmarker
    with Landmarker.create_from_model_path("artifacts/int8.tflite") as lm:
        result = lm.detect(image_rgb, five_points)   # five points from any face detector
        result.landmarks                              # (K, 2) in the original image's pixels

A model path may be an artifact folder (its ``manifest.json`` chooses the file, default
``int8``) or a ``.tflite`` file. With a ``manifest.json`` beside the file, its sha256 is
checked before the model is loaded; a lone ``.tflite`` is described by the metadata
``facelm convert`` embeds in it. Preprocessing is :func:`sdk.preprocess.preprocess_face`
with the artifact's normalisation, and decoding is :func:`sdk.codec.decode` on the raw
(int8 or float) output, exactly as in the conversion's drift measurement.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import InputError
from sdk.runtime.manifest import MANIFEST_NAME, ManifestError, load_manifest


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
    artifact: str = "int8"
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


def _resolve(options: LandmarkerOptions) -> tuple[Path, dict[str, Any]]:
    """(tflite path, description dict with model/preprocess/layout/decode) for the options."""
    from sdk.runtime.tflite import read_tflite_metadata

    path = Path(options.model_path)
    if path.is_dir():
        manifest = load_manifest(path, verify=False)
        entry = manifest.artifact(options.artifact)
        if entry.format != "tflite":
            raise InputError(f"artifact {options.artifact!r} is {entry.format}; Landmarker runs .tflite artifacts")
        file = manifest.artifact_path(options.artifact, verify=options.verify)
        return file, manifest.to_dict()
    if not path.is_file():
        raise InputError(f"no model at {path}")
    if path.suffix != ".tflite":
        raise InputError(f"{path} is not a .tflite file or an artifact folder")
    if (path.parent / MANIFEST_NAME).is_file():
        manifest = load_manifest(path.parent, verify=False)
        match = [a for a in manifest.artifacts if a.file == path.name]
        if match:
            if options.verify:
                manifest.artifact_path(match[0].name, verify=True)
            return path, manifest.to_dict()
    meta = read_tflite_metadata(path)
    if meta is None:
        raise InputError(f"{path} has no facelm metadata and no manifest.json beside it; "
                         "convert it with `facelm convert`")
    return path, meta


class Landmarker:
    """Face landmarks from a converted ``.tflite`` artifact. Use :meth:`create_from_options`."""

    def __init__(self, options: LandmarkerOptions, _token: object = None) -> None:
        if _token is not _CREATE:
            raise InputError("build a Landmarker with Landmarker.create_from_model_path or create_from_options")
        from sdk.codec import DecodeConfig
        from sdk.layouts import get_layout
        from sdk.preprocess import Normalization
        from sdk.runtime.tflite import TfliteRunner

        path, desc = _resolve(options)
        try:
            model, pre = desc["model"], desc["preprocess"]
            self._size = int(model["input_size"][0])
            self._stride = float(model["stride"])
            self._norm = Normalization(mean=tuple(pre["mean"]), std=tuple(pre["std"]), color=pre.get("color", "RGB"))
            self._decode = DecodeConfig.from_dict(dict(desc["decode"]))
            self._layout = get_layout(desc["layout"]["name"])
            template = np.asarray(pre["five_point_template"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"{path}: incomplete model description ({exc})") from exc
        from sdk.alignment import reference_template

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
    def create_from_model_path(cls, model_path: str | os.PathLike, artifact: str = "int8") -> "Landmarker":
        return cls(LandmarkerOptions(model_path=model_path, artifact=artifact), _CREATE)

    # -- use --------------------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self._size

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
        from sdk.alignment import invert_affine, transform_points
        from sdk.codec import decode, heatmap_to_input
        from sdk.preprocess import preprocess_face

        x, m = preprocess_face(image, np.asarray(five_points, dtype=np.float64), self._size, self._norm)
        raw = self._runner.run_raw(x[None])
        q = self._runner.output_spec.quantization
        kwargs = dict(self._decode.as_kwargs(), layout="nhwc")
        if q is not None:
            kwargs.update(scale=q.scale, zero_point=q.zero_point)
        coords, scores = decode(raw, **kwargs)
        crop = heatmap_to_input(coords[0], self._stride)
        return LandmarkerResult(landmarks=transform_points(crop, invert_affine(m)), scores=np.asarray(scores[0]),
                                landmarks_crop=crop, transform=m, layout=self._layout.name)

    def close(self) -> None:
        self._runner = None
        self._closed = True

    def __enter__(self) -> "Landmarker":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CREATE = object()
