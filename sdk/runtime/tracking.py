"""IMAGE and VIDEO running modes: detector, two-pass alignment, tracking, smoothing, timings.

The logic here is independent of how landmarks are computed: it drives a :class:`CropModel`,
any callable that returns landmarks for an image and an image -> crop similarity (the
:class:`~facelm.runtime.Landmarker` is one; :func:`landmarker_crop_model` adapts it).

IMAGE mode (:func:`detect_image`), for every image:
    detector -> crop from the detection's alignment points -> landmarks (pass 1) -> crop from
    pass 1's own five points -> landmarks (pass 2, the result).

VIDEO mode (:class:`VideoTracker`), frames with increasing timestamps:
    the previous frame's K landmarks give the next crop: a least-squares similarity from them to
    a crop-space template of the same K points (the face's own pass-2 landmarks from the frame it
    was detected on), so all K points, not five, decide the crop. The crop's five equivalent points
    go through a One Euro filter (:data:`TrackingConfig.crop_filter`), because the model is
    sensitive to its own crop (docs/video.md). The detector runs again only when the mean
    landmark score falls below ``min_score`` or too few landmarks lie inside the frame.

Every result carries per-stage timings in milliseconds: ``detector`` or ``tracking``, and the
crop model's own stages (``warp``, ``model``, ``decode`` where it reports them), ``smoothing``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from facelm.alignment import estimate_alignment, invert_affine, transform_points, umeyama
from facelm.detect.base import Detection, FaceDetector, five_points_for_transform
from facelm.errors import InputError
from facelm.layouts import Layout
from facelm.smoothing import OneEuroConfig, OneEuroFilter


@dataclass
class CropLandmarks:
    """What a crop model returns for one image and one crop.

    Attributes:
        crop: (K, 2) float64 landmarks in the crop's pixels.
        scores: (K,) heatmap peak values.
        timings: stage -> milliseconds (e.g. ``warp``, ``model``, ``decode``).
    """

    crop: np.ndarray
    scores: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)


class CropModel(Protocol):
    """Landmarks of the face that the similarity ``transform`` maps into the model's crop."""

    input_size: int
    layout: Layout

    def __call__(self, image: np.ndarray, transform: np.ndarray) -> CropLandmarks: ...


@dataclass
class FrameResult:
    """Landmarks of one image or video frame, or ``landmarks is None`` when no face was found.

    Attributes:
        landmarks: (K, 2) float64 image pixels (smoothed when smoothing is on), or None.
        raw_landmarks: (K, 2) before smoothing.
        scores: (K,) heatmap peak values.
        transform: (2, 3) image -> crop similarity of the final pass.
        detection: the detector's output when the detector ran on this frame.
        source: ``detector`` (detected on this frame) or ``tracking``.
        timings: stage -> milliseconds; ``total`` is their sum.
        timestamp_ms: the frame's timestamp (VIDEO mode).
    """

    landmarks: np.ndarray | None
    raw_landmarks: np.ndarray | None = None
    scores: np.ndarray | None = None
    transform: np.ndarray | None = None
    detection: Detection | None = None
    source: str = "detector"
    timings: dict[str, float] = field(default_factory=dict)
    timestamp_ms: float | None = None

    def to_dict(self) -> dict:
        """JSON-ready record (``"face": null`` when no face)."""
        d: dict = {"timestamp_ms": self.timestamp_ms, "source": self.source,
                   "timings_ms": {k: round(v, 4) for k, v in self.timings.items()}}
        if self.landmarks is None:
            d["face"] = None
            return d
        lm = np.asarray(self.landmarks)
        d["face"] = {
            "landmarks": np.round(lm, 3).tolist(),
            "scores": np.round(np.asarray(self.scores, np.float64), 4).tolist(),
            "score": round(float(np.mean(self.scores)), 4),
            "box": [round(float(v), 2) for v in np.concatenate([lm.min(0), lm.max(0)])],
            "detection": self.detection.to_dict() if self.detection is not None else None,
        }
        return d


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0


def _add(timings: dict[str, float], more: dict[str, float]) -> None:
    for k, v in more.items():
        timings[k] = timings.get(k, 0.0) + float(v)


def _finish(timings: dict[str, float]) -> dict[str, float]:
    timings["total"] = sum(v for k, v in timings.items() if k != "total")
    return timings


def refine(image: np.ndarray, model: CropModel, transform: np.ndarray, passes: int,
           timings: dict[str, float]) -> tuple[CropLandmarks, np.ndarray]:
    """Run the model in ``transform``'s crop, then ``passes`` more times, each in the crop of the
    previous pass's own five points. Returns the last pass and its transform."""
    out = model(image, transform)
    _add(timings, out.timings)
    for _ in range(passes):
        five = model.layout.five_points(transform_points(out.crop, invert_affine(transform)))
        transform = estimate_alignment(five, model.input_size)
        out = model(image, transform)
        _add(timings, out.timings)
    return out, transform


def detect_image(image: np.ndarray, model: CropModel, detector: FaceDetector | None = None,
                 five_points: np.ndarray | None = None, refine_passes: int = 1) -> FrameResult:
    """IMAGE mode for one image: the detector's best face (or the caller's five points).

    Args:
        image: (H, W, 3) uint8 RGB.
        model: the crop model.
        detector: used when ``five_points`` is None.
        five_points: (5, 2) image pixels, ArcFace order (then no detector and no refinement pass).
        refine_passes: extra passes re-aligned from the previous pass's own five points.
    """
    timings: dict[str, float] = {}
    det = None
    if five_points is not None:
        m = estimate_alignment(np.asarray(five_points, np.float64), model.input_size)
        refine_passes = 0
    else:
        if detector is None:
            raise InputError("IMAGE mode needs a detector or five points")
        t0 = time.perf_counter()
        faces = detector.detect(image)
        timings["detector"] = _ms(t0)
        if not faces:
            return FrameResult(landmarks=None, timings=_finish(timings))
        det = faces[0]
        m = det.alignment(model.input_size)
    out, m = refine(image, model, m, refine_passes, timings)
    lm = transform_points(out.crop, invert_affine(m))
    return FrameResult(landmarks=lm, raw_landmarks=lm, scores=out.scores, transform=m, detection=det,
                       source="detector", timings=_finish(timings))


@dataclass(frozen=True)
class TrackingConfig:
    """VIDEO-mode settings.

    Attributes:
        min_score: the detector runs again when the mean landmark score falls below this.
        min_inside: ... or when fewer than this fraction of landmarks lie inside the frame.
        refine_passes: passes after a detection (see :func:`detect_image`).
        crop_filter: One Euro on the crop's five equivalent points (None: raw 106-point fit).
        predict: extrapolate the crop to the new frame's timestamp with the crop's velocity
            (the previous frame's landmarks are one frame old; without this the crop trails a moving
            face and the model, sensitive to its crop, trails with it).
        velocity_cutoff: low-pass cutoff (Hz) of that velocity (its noise would otherwise be
            amplified into the crop); 0 = unfiltered.
        smoothing: One Euro on the output landmarks (None: off).
    """

    min_score: float = 0.25
    min_inside: float = 0.7
    refine_passes: int = 1
    crop_filter: OneEuroConfig | None = None
    predict: bool = True
    velocity_cutoff: float = 10.0
    smoothing: OneEuroConfig | None = None


def crop_scale(transform: np.ndarray) -> float:
    """Crop pixels per image pixel of a (2, 3) similarity."""
    m = np.asarray(transform, np.float64)
    return float(math.sqrt(abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))


class VideoTracker:
    """VIDEO mode: detect once, then track with the previous frame's landmarks.

    Args:
        model: the crop model.
        detector: runs on the first frame and whenever tracking is lost.
        config: tracking and smoothing settings.
    """

    def __init__(self, model: CropModel, detector: FaceDetector, config: TrackingConfig | None = None) -> None:
        self.model, self.detector = model, detector
        self.config = config or TrackingConfig()
        self._last_ts: float | None = None
        self._prev: np.ndarray | None = None  # (K, 2) image landmarks of the last frame (raw)
        self._template: np.ndarray | None = None  # (K, 2) crop-space template of this face
        self._crop_filter = OneEuroFilter(self.config.crop_filter) if self.config.crop_filter else None
        self._fit: tuple[float, np.ndarray] | None = None  # (timestamp, five points) of the last crop fit
        self._velocity: np.ndarray | None = None  # (5, 2) image px per ms
        self._smoother = OneEuroFilter(self.config.smoothing) if self.config.smoothing else None
        self.detector_runs = 0

    def reset(self) -> None:
        """Forget the face (the next frame runs the detector); timestamps still must increase."""
        self._prev = self._template = None
        self._fit = self._velocity = None
        for f in (self._crop_filter, self._smoother):
            if f is not None:
                f.reset()

    def _lost(self, lm: np.ndarray, scores: np.ndarray, shape: tuple[int, ...]) -> bool:
        h, w = shape[:2]
        inside = (lm[:, 0] >= -0.5) & (lm[:, 0] <= w - 0.5) & (lm[:, 1] >= -0.5) & (lm[:, 1] <= h - 0.5)
        return float(np.mean(scores)) < self.config.min_score or float(inside.mean()) < self.config.min_inside

    def _observe(self, five: np.ndarray, ts: float) -> None:
        """Record the crop that fits the landmarks of the frame at ``ts`` and update its velocity."""
        if self._fit is not None and self.config.predict:
            t0, p0 = self._fit
            v = (five - p0) / (ts - t0)
            if self._velocity is None or self.config.velocity_cutoff <= 0:
                self._velocity = v
            else:
                from facelm.smoothing import smoothing_factor

                a = smoothing_factor(self.config.velocity_cutoff, (ts - t0) / 1000.0)
                self._velocity = self._velocity + a * (v - self._velocity)
        self._fit = (ts, five)

    def _track_transform(self, ts: float) -> np.ndarray:
        """The crop for the frame at ``ts`` from the previous frame's landmarks."""
        size = self.model.input_size
        five = five_points_for_transform(umeyama(self._prev, self._template), size)
        self._observe(five, self._last_fit_ts)
        if self._velocity is not None:
            five = five + self._velocity * (ts - self._last_fit_ts)
        if self._crop_filter is not None:
            m = estimate_alignment(five, size)
            five = self._crop_filter(five, ts, value_scale=1.0 / crop_scale(m))
        return estimate_alignment(five, size)

    def process(self, image: np.ndarray, timestamp_ms: float) -> FrameResult:
        """Landmarks of one frame.

        Args:
            image: (H, W, 3) uint8 RGB.
            timestamp_ms: capture time in ms; must be larger than the previous frame's.
        Raises:
            InputError: a timestamp that does not increase.
        """
        ts = float(timestamp_ms)
        if not math.isfinite(ts):
            raise InputError(f"timestamp must be finite, got {timestamp_ms}")
        if self._last_ts is not None and ts <= self._last_ts:
            raise InputError(f"video timestamps must increase: got {ts:g} ms after {self._last_ts:g} ms")
        self._last_ts = ts
        timings: dict[str, float] = {}
        result = None
        if self._prev is not None:
            t0 = time.perf_counter()
            m = self._track_transform(ts)
            timings["tracking"] = _ms(t0)
            out = self.model(image, m)
            _add(timings, out.timings)
            lm = transform_points(out.crop, invert_affine(m))
            if not self._lost(lm, out.scores, image.shape):
                result = FrameResult(landmarks=lm, raw_landmarks=lm, scores=out.scores, transform=m,
                                     source="tracking")
        if result is None:
            self._prev = self._template = None
            self._fit = self._velocity = None
            if self._crop_filter is not None:
                self._crop_filter.reset()
            self.detector_runs += 1
            result = detect_image(image, self.model, self.detector, refine_passes=self.config.refine_passes)
            _add(timings, result.timings)
            timings.pop("total", None)
            if result.landmarks is None:
                if self._smoother is not None:
                    self._smoother.reset()
                result.timestamp_ms, result.timings = ts, _finish(timings)
                return result
            # The face's own crop-space landmarks become the template for the 106-point fit.
            self._template = transform_points(result.landmarks, result.transform)
            if self._crop_filter is not None:
                self._crop_filter(five_points_for_transform(result.transform, self.model.input_size), ts,
                                  value_scale=1.0 / crop_scale(result.transform))
        self._prev = result.raw_landmarks
        self._last_fit_ts = ts
        if self._smoother is not None:
            t0 = time.perf_counter()
            result.landmarks = self._smoother(result.raw_landmarks, ts, value_scale=1.0 / crop_scale(result.transform))
            timings["smoothing"] = _ms(t0)
        result.timestamp_ms, result.timings = ts, _finish(timings)
        return result


class ImageSmoother:
    """IMAGE mode on a stream: detect every frame, with optional One Euro smoothing.

    The baseline that VIDEO mode is compared with (and what ``facelm detect --mode image`` does
    on a video).
    """

    def __init__(self, model: CropModel, detector: FaceDetector, smoothing: OneEuroConfig | None = None,
                 refine_passes: int = 1) -> None:
        self.model, self.detector, self.refine_passes = model, detector, refine_passes
        self._smoother = OneEuroFilter(smoothing) if smoothing else None
        self._last_ts: float | None = None

    def process(self, image: np.ndarray, timestamp_ms: float) -> FrameResult:
        ts = float(timestamp_ms)
        if self._last_ts is not None and ts <= self._last_ts:
            raise InputError(f"video timestamps must increase: got {ts:g} ms after {self._last_ts:g} ms")
        self._last_ts = ts
        r = detect_image(image, self.model, self.detector, refine_passes=self.refine_passes)
        r.timestamp_ms = ts
        if r.landmarks is None:
            if self._smoother is not None:
                self._smoother.reset()
            return r
        if self._smoother is not None:
            t0 = time.perf_counter()
            r.landmarks = self._smoother(r.raw_landmarks, ts, value_scale=1.0 / crop_scale(r.transform))
            r.timings.pop("total", None)
            r.timings["smoothing"] = _ms(t0)
            _finish(r.timings)
        return r


class LandmarkerCropModel:
    """Adapt a :class:`~facelm.runtime.Landmarker` (``detect(image, five_points)``) to a crop model.

    The crop is handed over as the five points that reproduce the similarity exactly
    (:func:`facelm.detect.five_points_for_transform`). Timings: the Landmarker's own per-stage
    timings when its result carries them, else ``landmarker`` (warp + model + decode).
    """

    def __init__(self, landmarker) -> None:
        from facelm.layouts import JD106

        self.landmarker = landmarker
        self.input_size = int(landmarker.input_size)
        self.layout: Layout = JD106

    def __call__(self, image: np.ndarray, transform: np.ndarray) -> CropLandmarks:
        from facelm.layouts import get_layout

        t0 = time.perf_counter()
        r = self.landmarker.detect(image, five_points_for_transform(transform, self.input_size))
        total = _ms(t0)
        if getattr(r, "layout", None):
            self.layout = get_layout(r.layout)
        timings = dict(getattr(r, "timings", None) or {}) or {"landmarker": total}
        timings.pop("total", None)
        return CropLandmarks(crop=np.asarray(r.landmarks_crop, np.float64), scores=np.asarray(r.scores),
                             timings=timings)
