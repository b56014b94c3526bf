"""IMAGE and VIDEO running modes: detector, two-pass alignment, tracking, smoothing, timings.

The logic here is independent of how landmarks are computed: it drives a :class:`CropModel`,
any callable that returns landmarks for an image and an image -> crop similarity (the
:class:`~facelm.runtime.Landmarker` is one).

IMAGE mode (:func:`detect_image`), for every image:
    detector -> crop from the detection's alignment points -> landmarks (pass 1) -> crop from
    pass 1's own five points -> landmarks (pass 2, the result).

VIDEO mode (:class:`VideoTracker`), frames with increasing timestamps:
    a detection gives the anchor crop (IMAGE mode's pass-2 crop). On each later frame the crop
    moves with the image: a similarity fitted (RANSAC) to pyramidal Lucas-Kanade flow of corners
    inside the face region (:func:`estimate_motion`), clamped per frame. One model pass in that
    crop gives the landmarks. The model's landmarks never move the crop: the demo model moves
    them 1.19x as far as its crop moves, so a crop fitted to them diverges (docs/video.md).
    Health checks, none of which trusts the model's score alone: the image motion's scale and
    rotation step, the crop's speed, the landmarks' shape against the face's anchor-time shape
    (similarity-fit residual and scale), the mean score, the share of landmarks inside the frame,
    and every ``check_every`` frames (or on large motion) the detector itself; a failed check
    re-detects, a detector that disagrees with the track re-anchors it.

Every result carries per-stage timings in milliseconds: ``detector`` and/or ``tracking``, and the
crop model's own stages (``warp``, ``model``, ``decode`` where it reports them), ``smoothing``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from facelm.alignment import estimate_alignment, invert_affine, transform_points, umeyama
from facelm.detect.base import Detection, FaceDetector, five_points_for_transform
from facelm.errors import InputError
from facelm.layouts import Layout
from facelm.postprocess import crop_to_image
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
        source: ``detector`` (detected, or re-anchored on a detection, on this frame) or ``tracking``.
        timings: stage -> milliseconds; ``total`` is their sum.
        timestamp_ms: the frame's timestamp (VIDEO mode).
        health: VIDEO mode's measured checks (e.g. ``scale_step``, ``speed``, ``shape_residual``,
            ``fit_scale``, ``disagreement``) and ``redetect``, the first check that failed.
    """

    landmarks: np.ndarray | None
    raw_landmarks: np.ndarray | None = None
    scores: np.ndarray | None = None
    transform: np.ndarray | None = None
    detection: Detection | None = None
    source: str = "detector"
    timings: dict[str, float] = field(default_factory=dict)
    timestamp_ms: float | None = None
    health: dict = field(default_factory=dict)

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


def to_image(crop: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """(K, 2) crop pixels -> image pixels through the inverse of the image -> crop ``transform``
    (:func:`facelm.postprocess.crop_to_image` for one face)."""
    return crop_to_image(np.asarray(crop, np.float64)[None], transform)[0]


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(2, 3) affine ``a after b``: ``x -> a(b(x))``."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.concatenate([a[:, :2] @ b[:, :2], (a[:, :2] @ b[:, 2] + a[:, 2])[:, None]], axis=1)


def refine(image: np.ndarray, model: CropModel, transform: np.ndarray, passes: int,
           timings: dict[str, float]) -> tuple[CropLandmarks, np.ndarray]:
    """Run the model in ``transform``'s crop, then ``passes`` more times, each in the crop of the
    previous pass's own five points. Returns the last pass and its transform."""
    out = model(image, transform)
    _add(timings, out.timings)
    for _ in range(passes):
        transform = estimate_alignment(model.layout.five_points(to_image(out.crop, transform)), model.input_size)
        out = model(image, transform)
        _add(timings, out.timings)
    return out, transform


def _image_result(image: np.ndarray, model: CropModel, det: Detection | None, m: np.ndarray, passes: int,
                  timings: dict[str, float]) -> FrameResult:
    out, m = refine(image, model, m, passes, timings)
    lm = to_image(out.crop, m)
    return FrameResult(landmarks=lm, raw_landmarks=lm, scores=out.scores, transform=m, detection=det,
                       source="detector", timings=_finish(timings))


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
    if five_points is not None:
        m = estimate_alignment(np.asarray(five_points, np.float64), model.input_size)
        return _image_result(image, model, None, m, 0, timings)
    if detector is None:
        raise InputError("IMAGE mode needs a detector or five points")
    t0 = time.perf_counter()
    faces = detector.detect(image)
    timings["detector"] = _ms(t0)
    if not faces:
        return FrameResult(landmarks=None, timings=_finish(timings))
    return _image_result(image, model, faces[0], faces[0].alignment(model.input_size), refine_passes, timings)


@dataclass(frozen=True)
class TrackingConfig:
    """VIDEO-mode settings.

    The crop moves with the *image* (a similarity fitted to optical flow of the face region,
    :func:`estimate_motion`), never with the model's own landmarks: the demo model moves its
    landmarks 1.19x as far as its crop (FACTS.md), so a crop fitted to them diverges.

    IOD = the eye distance of the crop's five template points in the image, so a threshold means
    the same for any face size. "Measured" = the extreme over correctly tracked frames (mean error
    < 10% IOD) of the five real motions of astronaut, grace_hopper and obama and the three
    synthetic clips, int8, ``auto`` detector (docs/video.md, "VIDEO mode health checks").

    Attributes:
        min_score: re-detect when the mean landmark score falls below this (measured >= 0.81; the
            score stayed above it while the old tracker collapsed, so it is never the only check).
        min_inside: ... or when fewer than this fraction of landmarks lie inside the frame.
        refine_passes: passes after a detection (see :func:`detect_image`).
        max_scale_step: the crop's scale may change by at most this factor per frame (|log| of it;
            measured <= 0.025 on a 2x zoom in 45 frames, <= 0.032 synthetic). A larger image motion
            is implausible: the detector runs and, if it sees the face, re-anchors; if not, the crop
            moves by the clamped motion and the shape checks decide.
        max_rotation_step_deg: the same for rotation, degrees per frame (measured <= 0.17 real,
            <= 4.2 synthetic fast).
        max_speed: a crop whose five points move more than this (IOD per frame, mean) is plausible
            but large motion: the detector cross-checks the frame (measured <= 0.23 on the fast
            clips, which so run no extra detections; up to 0.75 when a face leaves).
        max_shape_residual: re-detect when the landmarks, fitted by a similarity to the face's
            anchor-time landmarks, leave an RMS residual above this (fraction of IOD): the crop no
            longer holds that face's shape (measured <= 0.035 real, <= 0.048 synthetic; 0.125-0.18
            with the face half out of the frame).
        max_fit_scale: ... or when that fit's scale leaves [1/x, x] (the landmarks say the face
            fills the crop differently from the anchor frame; measured |log| <= 0.014 real, 0.029
            synthetic).
        check_every: the detector cross-checks the track every this many frames (0: never).
        max_disagreement: re-anchor on the detector when its crop (corrected by the anchor frame's
            detector-vs-refined offset) and the tracked crop differ by more than this (five points,
            mean distance, fraction of IOD) or by a scale ratio beyond ``1 + max_disagreement``
            (measured <= 0.054 IOD and scale |log| <= 0.057 real; 0.44 on a drifted synthetic track).
        refresh_residual: a shape residual above this (fraction of IOD) marks the anchor stale
            (made on a face cut by the border, or before a pose or expression change): the
            detector cross-checks the next frame and, if the residual is still above it there,
            re-anchors on that detection (an anchor taken as the face re-entered left 0.045).
        max_anchor_zoom: when the face's size has changed by more than this factor since the anchor
            frame, the detector runs and a fresh anchor is taken at the new size (the model's output
            depends on the face's resolution, and the anchor fixes it: without this the 2x zoom
            clip's VIDEO error was 1.26x IMAGE's, with it 0.97x; slow clips stay within 1.06x).
        min_flow_points: fewest inlier flow points that make a motion estimate; fewer: re-detect
            (measured >= 39 of 50 real, >= 12 synthetic).
        smoothing: One Euro on the output landmarks (None: off).
    """

    min_score: float = 0.25
    min_inside: float = 0.7
    refine_passes: int = 1
    max_scale_step: float = 0.10
    max_rotation_step_deg: float = 10.0
    max_speed: float = 0.25
    max_shape_residual: float = 0.12
    max_fit_scale: float = 1.25
    check_every: int = 10
    max_disagreement: float = 0.15
    refresh_residual: float = 0.03
    max_anchor_zoom: float = 1.25
    min_flow_points: int = 8
    smoothing: OneEuroConfig | None = None

    def __post_init__(self) -> None:
        if not (self.max_scale_step > 0 and self.max_rotation_step_deg > 0 and self.max_speed > 0
                and self.max_shape_residual > 0 and self.max_disagreement > 0
                and self.max_fit_scale > 1 and self.max_anchor_zoom > 1):
            raise InputError(f"tracking thresholds must be positive (max_fit_scale, max_anchor_zoom > 1), got {self}")
        if self.check_every < 0 or self.min_flow_points < 3 or self.refine_passes < 0:
            raise InputError(f"need check_every >= 0, min_flow_points >= 3, refine_passes >= 0, got {self}")


def crop_scale(transform: np.ndarray) -> float:
    """Crop pixels per image pixel of a (2, 3) similarity."""
    m = np.asarray(transform, np.float64)
    return float(math.sqrt(abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))


def _grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)


def face_roi(shape: tuple[int, ...], transform: np.ndarray, size: int, grow: float = 0.25) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` image pixels: the bounding box of the crop's square, grown by ``grow`` of
    its side on each edge (room for the face's motion to the next frame), clipped to the image."""
    quad = to_image(np.array([[0.0, 0.0], [size, 0.0], [size, size], [0.0, size]]), transform)
    lo, hi = quad.min(0), quad.max(0)
    pad = grow * (hi - lo)
    h, w = shape[:2]
    x0, y0 = (int(max(0, math.floor(v))) for v in lo - pad)
    x1, y1 = int(min(w, math.ceil(hi[0] + pad[0]))), int(min(h, math.ceil(hi[1] + pad[1])))
    return x0, y0, max(x0, x1), max(y0, y1)


def face_mask(shape: tuple[int, ...], transform: np.ndarray, size: int, margin: float = 0.15,
              origin: tuple[int, int] = (0, 0)) -> np.ndarray:
    """(H, W) uint8 mask (255 inside) of the crop's square, shrunk by ``margin`` of its side on
    each edge, in the pixels of an image whose top-left is the full image's ``origin``: where
    :func:`estimate_motion` looks for corners."""
    lo, hi = margin * size, (1.0 - margin) * size
    quad = to_image(np.array([[lo, lo], [hi, lo], [hi, hi], [lo, hi]]), transform) - np.asarray(origin, np.float64)
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(quad).astype(np.int32), 255)
    return mask


_LK = dict(winSize=(15, 15), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


def estimate_motion(prev_grey: np.ndarray, grey: np.ndarray, transform: np.ndarray, size: int,
                    max_corners: int = 50) -> tuple[np.ndarray | None, int]:
    """Similarity of the face region from one frame to the next.

    Shi-Tomasi corners of ``prev_grey`` inside the crop of ``transform`` (:func:`face_mask`),
    pyramidal Lucas-Kanade flow to ``grey`` (15 px window, 4 levels), then a RANSAC similarity
    (1 px reprojection threshold). Only the region around the face (:func:`face_roi`) is read.

    Args:
        prev_grey, grey: (H, W) uint8 frames.
        transform: (2, 3) image -> crop similarity of the face in ``prev_grey``.
        size: crop side.
    Returns:
        ``(A, inliers)``: A (2, 3) previous-frame pixels -> this frame's pixels, or None when
        fewer than 3 points survive; the number of RANSAC inliers.
    """
    x0, y0, x1, y1 = face_roi(prev_grey.shape, transform, size)
    if x1 - x0 < 16 or y1 - y0 < 16:
        return None, 0
    a, b = prev_grey[y0:y1, x0:x1], grey[y0:y1, x0:x1]
    mask = face_mask(a.shape, transform, size, origin=(x0, y0))
    ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if len(ys) < 8 or len(xs) < 8:
        return None, 0
    u0, v0, u1, v1 = xs[0], ys[0], xs[-1] + 1, ys[-1] + 1  # corners are sought in the mask's box only
    p0 = cv2.goodFeaturesToTrack(a[v0:v1, u0:u1], maxCorners=max_corners, qualityLevel=0.01, minDistance=4,
                                 mask=mask[v0:v1, u0:u1], blockSize=5)
    if p0 is None or len(p0) < 3:
        return None, 0
    p0 = p0 + np.array([u0, v0], np.float32)
    p1, st, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, **_LK)
    ok = st[:, 0] == 1
    if ok.sum() < 3:
        return None, int(ok.sum())
    m, inl = cv2.estimateAffinePartial2D(p0[ok], p1[ok], method=cv2.RANSAC, ransacReprojThreshold=1.0,
                                         maxIters=500, confidence=0.995)
    if m is None:
        return None, 0
    m = m.astype(np.float64)
    o = np.array([x0, y0], np.float64)
    m[:, 2] += o - m[:, :2] @ o  # ROI pixels -> image pixels
    return m, int(inl.sum())


def clamp_motion(a: np.ndarray, centre: np.ndarray, max_scale_step: float, max_rotation_deg: float
                 ) -> tuple[np.ndarray, float, float]:
    """``(A', scale_step, rotation_deg)``: the similarity ``a`` with its scale change and rotation
    clamped to ``exp(+-max_scale_step)`` and ``+-max_rotation_deg`` about ``centre`` (which still
    moves to ``a(centre)``); and the measured |log scale| and |rotation| in degrees."""
    s = crop_scale(a)
    rot = math.atan2(a[1, 0], a[0, 0])
    step, deg = abs(math.log(s)), abs(math.degrees(rot))
    if step <= max_scale_step and deg <= max_rotation_deg:
        return a, step, deg
    s2 = math.exp(float(np.clip(math.log(s), -max_scale_step, max_scale_step)))
    r2 = math.radians(float(np.clip(math.degrees(rot), -max_rotation_deg, max_rotation_deg)))
    out = np.empty((2, 3))
    out[:, :2] = s2 * np.array([[math.cos(r2), -math.sin(r2)], [math.sin(r2), math.cos(r2)]])
    c = np.asarray(centre, np.float64)
    out[:, 2] = a[:, :2] @ c + a[:, 2] - out[:, :2] @ c
    return out, step, deg


class VideoTracker:
    """VIDEO mode: detect, then move the crop with the image and check the track every frame.

    Args:
        model: the crop model.
        detector: runs on the first frame, when a check fails, every ``check_every`` frames and on
            large motion.
        config: tracking and smoothing settings.

    Attributes:
        detector_runs: how many times the detector ran.
        reanchors: how many times a disagreeing detector re-anchored a live track.
    """

    def __init__(self, model: CropModel, detector: FaceDetector, config: TrackingConfig | None = None) -> None:
        self.model, self.detector = model, detector
        self.config = config or TrackingConfig()
        self._last_ts: float | None = None
        self._smoother = OneEuroFilter(self.config.smoothing) if self.config.smoothing else None
        self.detector_runs = 0
        self.reanchors = 0
        self.reset()

    def reset(self) -> None:
        """Forget the face (the next frame runs the detector); timestamps still must increase."""
        self._m: np.ndarray | None = None  # (2, 3) image -> crop of the last frame
        self._anchor_m: np.ndarray | None = None  # (2, 3) the anchor frame's crop
        self._grey: np.ndarray | None = None  # last frame, grey
        self._template: np.ndarray | None = None  # (K, 2) crop-space landmarks at the anchor
        self._offset: np.ndarray | None = None  # (2, 3) detector crop -> refined crop at the anchor
        self._since_check = 0
        self._stale = False  # the last frame's shape residual was above refresh_residual
        if self._smoother is not None:
            self._smoother.reset()

    # -- checks -------------------------------------------------------------------------------
    def _iod(self) -> float:
        """Inter-ocular distance of the reference template, crop pixels."""
        five = five_points_for_transform(np.array([[1.0, 0, 0], [0, 1.0, 0]]), self.model.input_size)
        return float(np.linalg.norm(five[1] - five[0]))

    def _shape(self, crop: np.ndarray) -> tuple[float, float]:
        """(RMS residual / IOD, scale) of the similarity fit from ``crop`` landmarks to the template."""
        f = umeyama(crop, self._template)
        r = transform_points(crop, f) - self._template
        return float(np.sqrt((r ** 2).sum(1).mean())) / self._iod(), crop_scale(f)

    def _inside(self, lm: np.ndarray, shape: tuple[int, ...]) -> float:
        h, w = shape[:2]
        return float(((lm[:, 0] >= -0.5) & (lm[:, 0] <= w - 0.5) & (lm[:, 1] >= -0.5) & (lm[:, 1] <= h - 0.5)).mean())

    def _disagreement(self, det: Detection, m: np.ndarray) -> tuple[float, float]:
        """(five-point distance / IOD, |log scale ratio|) between the tracked crop ``m`` and the
        detection's crop corrected by the anchor's detector -> refined offset."""
        size = self.model.input_size
        expect = compose(self._offset, det.alignment(size))
        a, b = five_points_for_transform(m, size), five_points_for_transform(expect, size)
        iod = float(np.linalg.norm(a[1] - a[0]))
        return float(np.linalg.norm(a - b, axis=1).mean()) / iod, abs(math.log(crop_scale(m) / crop_scale(expect)))

    def _nearest(self, faces: list[Detection], m: np.ndarray) -> Detection | None:
        """The detection whose crop centre is nearest the tracked crop's (within one IOD)."""
        size = self.model.input_size
        c = five_points_for_transform(m, size)
        best, best_d = None, float(np.linalg.norm(c[1] - c[0]))
        for f in faces:
            d = float(np.linalg.norm(five_points_for_transform(f.alignment(size), size).mean(0) - c.mean(0)))
            if d < best_d:
                best, best_d = f, d
        return best

    # -- frames -------------------------------------------------------------------------------
    def _anchor(self, image: np.ndarray, det: Detection, timings: dict[str, float]) -> FrameResult:
        """IMAGE mode's two passes from ``det``; the result becomes the new anchor."""
        size = self.model.input_size
        d = det.alignment(size)
        result = _image_result(image, self.model, det, d, self.config.refine_passes, timings)
        self._template = np.asarray(transform_points(result.raw_landmarks, result.transform))
        self._offset = compose(result.transform, invert_affine(d))
        self._m = self._anchor_m = result.transform
        self._since_check, self._stale = 0, False
        return result

    def _detect(self, image: np.ndarray, timings: dict[str, float]) -> list[Detection]:
        t0 = time.perf_counter()
        faces = self.detector.detect(image)
        timings["detector"] = timings.get("detector", 0.0) + _ms(t0)
        self.detector_runs += 1
        return faces

    def _track(self, image: np.ndarray, grey: np.ndarray, timings: dict[str, float]
               ) -> tuple[FrameResult, list[Detection] | None]:
        """One tracked frame (``landmarks`` None when a check failed: the caller re-detects), and
        the detector's faces when it ran on this frame (so a re-detection does not run it twice)."""
        cfg, size = self.config, self.model.input_size
        health: dict = {}
        t0 = time.perf_counter()
        a, inliers = estimate_motion(self._grey, grey, self._m, size)
        health["flow_inliers"] = inliers
        if a is None or inliers < cfg.min_flow_points:
            timings["tracking"] = _ms(t0)
            return FrameResult(None, health={**health, "redetect": "flow"}), None
        centre = to_image(np.full((1, 2), size / 2.0), self._m)[0]
        a, health["scale_step"], health["rotation_deg"] = clamp_motion(a, centre, cfg.max_scale_step,
                                                                       cfg.max_rotation_step_deg)
        clamped = health["scale_step"] > cfg.max_scale_step or health["rotation_deg"] > cfg.max_rotation_step_deg
        m = compose(self._m, invert_affine(a))
        old, new = five_points_for_transform(self._m, size), five_points_for_transform(m, size)
        health["speed"] = float(np.linalg.norm(new - old, axis=1).mean() / np.linalg.norm(old[1] - old[0]))
        health["anchor_zoom"] = crop_scale(self._anchor_m) / crop_scale(m)  # face size / anchor's
        zoomed = abs(math.log(health["anchor_zoom"])) > math.log(cfg.max_anchor_zoom)
        self._since_check += 1
        check = (clamped or zoomed or self._stale or health["speed"] > cfg.max_speed
                 or (cfg.check_every and self._since_check >= cfg.check_every))
        timings["tracking"] = _ms(t0)
        det, faces = None, None
        if check:
            faces = self._detect(image, timings)
            det = self._nearest(faces, m)
            if det is not None:
                self._since_check = 0
                health["disagreement"], health["det_scale"] = self._disagreement(det, m)
                far = (health["disagreement"] > cfg.max_disagreement
                       or health["det_scale"] > math.log1p(cfg.max_disagreement))
                if clamped or far or zoomed:
                    self.reanchors += 1
                    result = self._anchor(image, det, timings)
                    why = "clamped" if clamped else "disagreement" if far else "zoom"
                    result.health = {**health, "redetect": why}
                    return result, faces
        out = self.model(image, m)
        _add(timings, out.timings)
        t0 = time.perf_counter()
        lm = to_image(out.crop, m)
        health["shape_residual"], health["fit_scale"] = self._shape(out.crop)
        health["score"], health["inside"] = float(np.mean(out.scores)), self._inside(lm, image.shape)
        timings["tracking"] += _ms(t0)
        failed = next((name for name, bad in (
            ("score", health["score"] < cfg.min_score),
            ("inside", health["inside"] < cfg.min_inside),
            ("shape_residual", health["shape_residual"] > cfg.max_shape_residual),
            ("fit_scale", abs(math.log(health["fit_scale"])) > math.log(cfg.max_fit_scale)),
        ) if bad), None)
        if failed:
            return FrameResult(None, health={**health, "redetect": failed}), faces
        if det is not None and health["shape_residual"] > cfg.refresh_residual:
            self.reanchors += 1
            result = self._anchor(image, det, timings)
            result.health = {**health, "redetect": "refresh"}
            return result, faces
        self._m, self._stale = m, health["shape_residual"] > cfg.refresh_residual
        return FrameResult(landmarks=lm, raw_landmarks=lm, scores=out.scores, transform=m, source="tracking",
                           health=health), faces

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
        from facelm.detect.base import check_rgb

        image = check_rgb(image)
        self._last_ts = ts
        timings: dict[str, float] = {}
        grey = _grey(image)
        result, health, faces = None, {}, None
        if self._m is not None and self._grey is not None and self._grey.shape != grey.shape:
            # a new frame size (a folder of photos, a resized stream): no motion to follow
            self.reset()
            health = {"redetect": "frame_size"}
        if self._m is not None:
            result, faces = self._track(image, grey, timings)
            if result.landmarks is None:
                health, result = result.health, None
        if result is None:
            if faces is None:
                faces = self._detect(image, timings)
            if not faces:
                self.reset()
                self._grey = grey
                return FrameResult(landmarks=None, timings=_finish(timings), timestamp_ms=ts, health=health)
            result = self._anchor(image, faces[0], timings)
            result.health = health
        self._grey = grey
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
