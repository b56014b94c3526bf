"""``facelm detect INPUT --model ARTIFACTS [--artifact int8] [--mode image|video] [--smooth] --out OUT``.

INPUT is an image, a folder of images or a video file (OpenCV's reader). OUT gets
``landmarks.jsonl`` (one line per image or frame: landmarks, scores, box, timings; ``"face":
null`` when no face was found) and overlays (``overlays/NAME.png`` per image, or
``overlay.mp4`` for a video). Light install only: LiteRT, OpenCV, numpy.

:func:`detect_path` is the Python API behind it.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import cv2
import numpy as np

from facelm.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: Path) -> tuple[np.ndarray, str | None]:
    """(H, W, 3) uint8 RGB and a note when the file was grayscale or had alpha (converted)."""
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


def draw_overlay(image: np.ndarray, result) -> np.ndarray:
    """BGR copy of an RGB image with the landmarks (sub-pixel dots) and their box drawn."""
    out = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if result.landmarks is None:
        cv2.putText(out, "no face", (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (0, 0, 255), 2)
        return out
    lm = np.asarray(result.landmarks)
    r = max(1.0, 0.004 * max(image.shape[:2]))
    lo, hi = np.floor(lm.min(0)).astype(int), np.ceil(lm.max(0)).astype(int)
    cv2.rectangle(out, tuple(int(v) for v in lo), tuple(int(v) for v in hi), (255, 160, 0), 1)
    for x, y in lm:
        cv2.circle(out, (int(round(x * 16)), int(round(y * 16))), int(round(r * 16)), (0, 255, 0), -1, cv2.LINE_AA, 4)
    return out


def _pipeline(model: str | os.PathLike, artifact: str, mode: str, smooth: bool, detector: str, detector_model):
    """(Landmarker, stream runner): VIDEO mode tracks; IMAGE mode detects every image."""
    from facelm.runtime.landmarker import Landmarker, LandmarkerOptions
    from facelm.runtime.tracking import ImageSmoother, TrackingConfig, VideoTracker
    from facelm.smoothing import OneEuroConfig

    lm = Landmarker.create_from_options(LandmarkerOptions(model_path=model, artifact=artifact, detector=detector,
                                                          detector_model_path=detector_model))
    det = lm.detector
    smoothing = OneEuroConfig() if smooth else None
    if mode == "video":
        return lm, VideoTracker(lm, det, TrackingConfig(smoothing=smoothing))
    return lm, ImageSmoother(lm, det, smoothing)


def detect_path(input: str | os.PathLike, model: str | os.PathLike, out: str | os.PathLike, artifact: str = "int8",
                mode: str | None = None, smooth: bool = False, detector: str = "auto",
                detector_model: str | None = None, progress: bool = True) -> dict:
    """Landmarks for an image, a folder of images or a video; writes JSONL and overlays into ``out``.

    Args:
        mode: ``image`` or ``video`` (default: video for a video file, image otherwise).
        smooth: One Euro smoothing with :class:`facelm.smoothing.OneEuroConfig` defaults (streams only).
        detector: ``auto``, ``haar`` or ``blazeface`` (:func:`facelm.detect.create_detector`).
    Returns:
        summary dict: ``frames``, ``faces``, ``notes``, ``jsonl``, ``overlay`` paths, ``mode``.
    """
    from facelm.fileio import atomic_open, atomic_path

    src, out = Path(input), Path(out)
    if not src.exists():
        raise InputError(f"no such input: {src}")
    if mode not in (None, "image", "video"):
        raise InputError(f"mode must be image or video, got {mode!r}")
    is_video = src.is_file() and src.suffix.lower() not in IMAGE_SUFFIXES
    images = sorted(p for p in src.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if src.is_dir() else \
        ([] if is_video else [src])
    if src.is_dir() and not images:
        raise InputError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {src}")
    mode = mode or ("video" if is_video else "image")
    cap = None
    if is_video:
        # FFmpeg would print its own lines ("moov atom not found") before our one-line error.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        cap = cv2.VideoCapture(str(src))
        if not cap.isOpened():
            raise InputError(f"cannot read {src}: not an image and OpenCV cannot open it as a video")
    out.mkdir(parents=True, exist_ok=True)
    landmarker, runner = _pipeline(model, artifact, mode, smooth, detector, detector_model)
    notes: list[str] = []
    frames = faces = 0
    summary = {"mode": mode, "jsonl": str(out / "landmarks.jsonl")}
    try:
        with atomic_open(out / "landmarks.jsonl") as jf:
            if cap is not None:
                from tqdm import tqdm

                fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
                total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
                writer, overlay = None, out / "overlay.mp4"
                with atomic_path(overlay, suffix=".tmp.mp4") as tmp, tqdm(total=total, unit="frame", disable=not progress,
                                                                      desc="detect") as bar:
                    while True:
                        ok, bgr = cap.read()
                        if not ok:
                            break
                        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                        ts = 1000.0 * frames / fps
                        r = runner.process(rgb, ts)
                        rec = {"frame": frames, **r.to_dict()}
                        jf.write(json.dumps(rec) + "\n")
                        if writer is None:
                            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, rgb.shape[1::-1])
                        writer.write(draw_overlay(rgb, r))
                        frames += 1
                        faces += r.landmarks is not None
                        bar.update(1)
                    if writer is not None:
                        writer.release()
                    if frames == 0:
                        raise InputError(f"cannot read any frame from {src}")
                summary["overlay"] = str(overlay)
            else:
                (out / "overlays").mkdir(exist_ok=True)
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
                    r = runner.process(rgb, float(i))  # a folder is a stream: 1 ms per image
                    rec = {"image": path.name, **({"note": note} if note else {}), **r.to_dict()}
                    jf.write(json.dumps(rec) + "\n")
                    with atomic_path(out / "overlays" / f"{path.stem}.png", suffix=".tmp.png") as tmp:
                        if not cv2.imwrite(str(tmp), draw_overlay(rgb, r)):
                            raise InputError(f"cannot write {tmp}")
                    frames += 1
                    faces += r.landmarks is not None
                summary["overlay"] = str(out / "overlays")
    finally:
        if cap is not None:
            cap.release()
        landmarker.close()
    summary.update(frames=frames, faces=faces, notes=notes)
    return summary


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    from facelm.detect import DETECTORS

    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1])
    p.add_argument("input", help="an image, a folder of images or a video file")
    p.add_argument("--model", required=True, help="artifact folder or .tflite file")
    p.add_argument("--artifact", default="int8", help="artifact name in the folder")
    p.add_argument("--mode", choices=("image", "video"), default=None,
                   help="IMAGE: detect every frame; VIDEO: track (default: video for a video, image otherwise)")
    p.add_argument("--smooth", action="store_true", help="One Euro smoothing of the landmarks (streams)")
    p.add_argument("--detector", choices=DETECTORS, default="auto",
                   help="auto: BlazeFace when its model file is found, else OpenCV's Haar cascade")
    p.add_argument("--detector-model", default=None, help="BlazeFace short-range .tflite")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    s = detect_path(args.input, args.model, args.out, artifact=args.artifact, mode=args.mode, smooth=args.smooth,
                    detector=args.detector, detector_model=args.detector_model, progress=not args.no_progress)
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"{s['faces']}/{s['frames']} with a face ({s['mode']} mode); wrote {s['jsonl']} and {s['overlay']}")
    return 0
