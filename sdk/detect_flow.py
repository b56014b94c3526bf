"""Landmarks for an image, a folder of images or a video file: the flow behind ``facelm detect``.

::

    import facelm
    summary = facelm.detect_path("clip.mp4", "artifacts", "out", mode="video", smooth=True)
    summary["faces"], summary["frames"]      # out/landmarks.jsonl, out/overlay.mp4

    # the same per frame, on frames you already have (RGB uint8, increasing timestamps in ms)
    with facelm.LandmarkStream("artifacts", mode="image", smoothing=facelm.OneEuroConfig()) as stream:
        for t_ms, frame in frames:
            rec = stream.process(frame, t_ms).to_dict()   # one landmarks.jsonl record

There is one route per running mode, both on :class:`facelm.runtime.Landmarker`'s public API:
``video`` is :meth:`~facelm.runtime.Landmarker.detect_for_video` (tracking, the Landmarker's own
One Euro smoothing); ``image`` is :meth:`~facelm.runtime.Landmarker.detect` on every frame, with
One Euro smoothing (:class:`facelm.smoothing.OneEuroFilter`) applied here when asked for.

Output of :func:`detect_path` in ``out``: ``landmarks.jsonl`` (one line per image or frame:
landmarks, scores, box, timings; ``"face": null`` when no face was found) and overlays
(``overlays/NAME.png`` per image, or ``overlay.mp4`` for a video). Light install only:
LiteRT, OpenCV, numpy.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from facelm.artifacts import DEFAULT_RUNTIME_ARTIFACT
from facelm.errors import InputError
from facelm.runtime.landmarker import LandmarkerOptions, LandmarkerResult

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
#: ``mode`` values: ``image`` detects every frame, ``video`` tracks.
MODES = ("image", "video")
JSONL_NAME = "landmarks.jsonl"
VIDEO_OVERLAY_NAME = "overlay.mp4"
IMAGE_OVERLAY_DIR = "overlays"
#: the timestamp step between the images of a folder read as a stream (ms)
FOLDER_STEP_MS = 1.0


def read_image(path: str | os.PathLike) -> tuple[np.ndarray, str | None]:
    """(H, W, 3) uint8 RGB and a note when the file was grayscale or had alpha (converted).

    Raises:
        InputError: OpenCV cannot read the file as an image.
    """
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise InputError(f"cannot read image {path}")
    if raw.dtype != np.uint8:
        raw = cv2.convertScaleAbs(raw, alpha=255.0 / max(float(raw.max()), 1.0))
    if raw.ndim == 2 or raw.shape[2] == 1:
        return cv2.cvtColor(raw, cv2.COLOR_GRAY2RGB), "grayscale image converted to RGB"
    if raw.shape[2] == 4:
        return cv2.cvtColor(raw, cv2.COLOR_BGRA2RGB), "RGBA image: alpha dropped"
    return cv2.cvtColor(raw, cv2.COLOR_BGR2RGB), None


def draw_overlay(image: np.ndarray, landmarks: np.ndarray | None) -> np.ndarray:
    """BGR copy of an (H, W, 3) RGB image with (K, 2) pixel landmarks (sub-pixel dots) and their box
    drawn, or "no face" when ``landmarks`` is None."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if landmarks is None:
        cv2.putText(out, "no face", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2)
        return out
    lm = np.asarray(landmarks)
    r = max(1.0, 0.004 * max(image.shape[:2]))
    lo, hi = np.floor(lm.min(0)).astype(int), np.ceil(lm.max(0)).astype(int)
    cv2.rectangle(out, tuple(int(v) for v in lo), tuple(int(v) for v in hi), (255, 160, 0), 1)
    for x, y in lm:
        cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), int(round(r * 16)), (0, 255, 0), -1, cv2.LINE_AA, 4)
    return out


def crop_scale(transform: np.ndarray) -> float:
    """Crop pixels per image pixel of a (2, 3) image -> crop similarity."""
    m = np.asarray(transform, np.float64)
    return float(math.sqrt(abs(m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0])))


@dataclass
class StreamFrame:
    """One processed image or frame.

    Attributes:
        timestamp_ms: the frame's timestamp (ms).
        result: the Landmarker's result, or None when no face was found.
        timings: stage -> milliseconds, ``total`` their sum (for a frame without a face only
            ``total``: the Landmarker returns no split then).
    """

    timestamp_ms: float
    result: LandmarkerResult | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def landmarks(self) -> np.ndarray | None:
        """(K, 2) image pixels, or None."""
        return None if self.result is None else self.result.landmarks

    @property
    def source(self) -> str:
        """``detector`` or ``tracking`` (a frame without a face ran the detector)."""
        return "detector" if self.result is None else self.result.source

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready ``landmarks.jsonl`` record (``"face": null`` when no face)."""
        d: dict[str, Any] = {"timestamp_ms": self.timestamp_ms, "source": self.source,
                             "timings_ms": {k: round(v, 4) for k, v in self.timings.items()}}
        if self.result is None:
            d["face"] = None
            return d
        lm = np.asarray(self.result.landmarks)
        det = self.result.detection
        d["face"] = {
            "landmarks": np.round(lm, 3).tolist(),
            "scores": np.round(np.asarray(self.result.scores, np.float64), 4).tolist(),
            "score": round(float(np.mean(self.result.scores)), 4),
            "box": [round(float(v), 2) for v in np.concatenate([lm.min(0), lm.max(0)])],
            "detection": det.to_dict() if det is not None else None,
        }
        return d


class LandmarkStream:
    """A :class:`~facelm.runtime.Landmarker` in one running mode, fed frames with timestamps.

    Args:
        model: artifact folder or ``.tflite`` file.
        mode: ``video`` (:meth:`Landmarker.detect_for_video`: tracking) or ``image``
            (:meth:`Landmarker.detect` on every frame).
        artifact: artifact name in the folder.
        smoothing: a :class:`facelm.smoothing.OneEuroConfig`, or None for no smoothing.
        detector, detector_model: the face detector (:func:`facelm.detect.create_detector`).
    Raises:
        InputError: an unknown mode, or what the Landmarker raises for the model.
    """

    def __init__(self, model: str | os.PathLike, mode: str = "video", *, artifact: str = DEFAULT_RUNTIME_ARTIFACT,
                 smoothing: Any = None, detector: str = LandmarkerOptions.detector,
                 detector_model: str | os.PathLike | None = None) -> None:
        from facelm.runtime.landmarker import Landmarker
        from facelm.smoothing import OneEuroFilter

        if mode not in MODES:
            raise InputError(f"mode must be image or video, got {mode!r}")
        self.mode = mode
        video = mode == "video"
        self.landmarker = Landmarker.create_from_options(LandmarkerOptions(
            model_path=model, artifact=artifact, detector=detector, detector_model_path=detector_model,
            running_mode="VIDEO" if video else "IMAGE", smoothing=smoothing if video else None))
        self._filter = OneEuroFilter(smoothing) if smoothing is not None and not video else None
        self._last_ts: float | None = None

    def process(self, image: np.ndarray, timestamp_ms: float) -> StreamFrame:
        """Landmarks of one (H, W, 3) uint8 RGB frame; ``timestamp_ms`` must increase.

        Raises:
            InputError: a timestamp that does not increase, a bad image.
        """
        ts = float(timestamp_ms)
        if self._last_ts is not None and not ts > self._last_ts:
            raise InputError(f"video timestamps must increase: got {ts:g} ms after {self._last_ts:g} ms")
        self._last_ts = ts
        t0 = time.perf_counter()
        if self.mode == "video":
            res = self.landmarker.detect_for_video(image, ts)
        else:
            res = self.landmarker.detect(image)
        if res is None:
            if self._filter is not None:
                self._filter.reset()
            return StreamFrame(ts, None, {"total": (time.perf_counter() - t0) * 1000.0})
        timings = dict(res.timings)
        if self._filter is not None:
            t1 = time.perf_counter()
            res.landmarks = self._filter(res.landmarks, ts, value_scale=1.0 / crop_scale(res.transform))
            timings.pop("total", None)
            timings["smoothing"] = (time.perf_counter() - t1) * 1000.0
            timings["total"] = sum(timings.values())
        res.timestamp_ms = ts
        return StreamFrame(ts, res, timings)

    def close(self) -> None:
        self.landmarker.close()

    def __enter__(self) -> "LandmarkStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _inputs(src: Path) -> tuple[bool, list[Path]]:
    """(is a video, the images): one image, a folder's images (sorted), or a video file."""
    if not src.exists():
        raise InputError(f"no such input: {src}")
    if src.is_dir():
        images = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not images:
            raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {src}")
        return False, images
    is_video = src.suffix.lower() not in IMAGE_SUFFIXES
    return is_video, [] if is_video else [src]


def _open_video(src: Path) -> "cv2.VideoCapture":
    # FFmpeg would print its own lines ("moov atom not found") before our one-line error.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise InputError(f"cannot read {src}: not an image and OpenCV cannot open it as a video")
    return cap


def _run_video(cap: "cv2.VideoCapture", src: Path, stream: LandmarkStream, jf: TextIO, out: Path,
               progress: bool) -> tuple[int, int]:
    """Every frame of an open video -> JSONL records and ``overlay.mp4``. Returns (frames, faces)."""
    from tqdm import tqdm

    from facelm.fileio import atomic_path

    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    frames = faces = 0
    writer = None
    with atomic_path(out / VIDEO_OVERLAY_NAME, suffix=".tmp.mp4") as tmp, \
            tqdm(total=total, unit="frame", disable=not progress, desc="detect") as bar:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            r = stream.process(rgb, 1000.0 * frames / fps)
            jf.write(json.dumps({"frame": frames, **r.to_dict()}) + "\n")
            if writer is None:
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, rgb.shape[1::-1])
            writer.write(draw_overlay(rgb, r.landmarks))
            frames += 1
            faces += r.landmarks is not None
            bar.update(1)
        if writer is not None:
            writer.release()
        if frames == 0:
            raise InputError(f"cannot read any frame from {src}")
    return frames, faces


def _run_images(images: list[Path], stream: LandmarkStream, jf: TextIO, out: Path,
                notes: list[str]) -> tuple[int, int]:
    """Images (a stream, :data:`FOLDER_STEP_MS` apart) -> JSONL records and ``overlays/NAME.png``.
    An unreadable image among several is a note and an ``error`` record. Returns (frames, faces)."""
    from facelm.fileio import atomic_path

    (out / IMAGE_OVERLAY_DIR).mkdir(exist_ok=True)
    frames = faces = 0
    for i, path in enumerate(images):
        try:
            rgb, note = read_image(path)
        except InputError as exc:
            if len(images) == 1:
                raise
            notes.append(str(exc))
            jf.write(json.dumps({"image": path.name, "error": str(exc), "face": None}) + "\n")
            continue
        if note:
            notes.append(f"{path.name}: {note}")
        r = stream.process(rgb, FOLDER_STEP_MS * i)
        jf.write(json.dumps({"image": path.name, **({"note": note} if note else {}), **r.to_dict()}) + "\n")
        with atomic_path(out / IMAGE_OVERLAY_DIR / f"{path.stem}.png", suffix=".tmp.png") as tmp:
            if not cv2.imwrite(str(tmp), draw_overlay(rgb, r.landmarks)):
                raise InputError(f"cannot write {tmp}")
        frames += 1
        faces += r.landmarks is not None
    return frames, faces


def detect_path(input: str | os.PathLike, model: str | os.PathLike, out: str | os.PathLike,
                artifact: str = DEFAULT_RUNTIME_ARTIFACT, mode: str | None = None, smooth: bool = False,
                detector: str = LandmarkerOptions.detector, detector_model: str | os.PathLike | None = None,
                progress: bool = True) -> dict[str, Any]:
    """Landmarks for an image, a folder of images or a video; writes JSONL and overlays into ``out``.

    Example::

        s = facelm.detect_path("photos/", "artifacts", "out")          # out/landmarks.jsonl, out/overlays/
        s = facelm.detect_path("clip.mp4", "artifacts", "out", smooth=True)   # VIDEO mode, out/overlay.mp4

    Args:
        input: an image, a folder of images or a video file (OpenCV's reader).
        model: artifact folder or ``.tflite`` file; ``artifact`` names the file in a folder.
        mode: ``image`` or ``video`` (default: video for a video file, image otherwise).
        smooth: One Euro smoothing with :class:`facelm.smoothing.OneEuroConfig` defaults (streams only).
        detector: a :data:`facelm.detect.DETECTORS` kind (:func:`facelm.detect.create_detector`).
        progress: a progress bar for a video.
    Returns:
        summary dict: ``frames``, ``faces``, ``notes`` (grayscale/RGBA conversions, unreadable
        images), ``jsonl`` and ``overlay`` paths, ``mode``.
    Raises:
        InputError: a missing or unreadable input, a folder without images, an unknown mode.
    """
    from facelm.fileio import atomic_open
    from facelm.smoothing import OneEuroConfig

    src, out = Path(input), Path(out)
    if mode not in (None, *MODES):
        raise InputError(f"mode must be image or video, got {mode!r}")
    is_video, images = _inputs(src)
    mode = mode or ("video" if is_video else "image")
    cap = _open_video(src) if is_video else None
    notes: list[str] = []
    try:
        out.mkdir(parents=True, exist_ok=True)
        with LandmarkStream(model, mode, artifact=artifact, smoothing=OneEuroConfig() if smooth else None,
                            detector=detector, detector_model=detector_model) as stream, \
                atomic_open(out / JSONL_NAME) as jf:
            if cap is not None:
                frames, faces = _run_video(cap, src, stream, jf, out, progress)
                overlay = out / VIDEO_OVERLAY_NAME
            else:
                frames, faces = _run_images(images, stream, jf, out, notes)
                overlay = out / IMAGE_OVERLAY_DIR
    finally:
        if cap is not None:
            cap.release()
    return {"mode": mode, "jsonl": str(out / JSONL_NAME), "overlay": str(overlay), "frames": frames,
            "faces": faces, "notes": notes}
