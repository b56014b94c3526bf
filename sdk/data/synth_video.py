"""Synthetic face video with exact per-frame 106-point ground truth.

One synthetic identity (:func:`facelm.data.synth.sample_params`) is drawn per frame with the
renderer's stages (:func:`~facelm.data.synth.place_face`, :func:`~facelm.data.synth.draw_face`,
clean, at about twice the video's resolution; the drawing generator is re-seeded identically every
frame, so colours and background stay put) at that frame's head yaw and pitch and mouth opening.
Each frame is then warped by that frame's similarity (in-plane head rotation, position, scale),
times a drifting lighting field, plus fresh sensor noise and a varying blur. Every trajectory is a
sum of slow sines with seeded phases (:data:`MOTIONS`). The ground truth is the rendered landmarks
mapped through the same similarity, so it is exact: on the ``static`` clip the true landmarks are
bit-identical on every frame while lighting, noise and blur change, which makes static jitter
measurable exactly.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from facelm.alignment import transform_points
from facelm.data.synth import Pose, SynthConfig, bbox_of, draw_face, place_face, sample_params
from facelm.fileio import atomic_dir
from facelm.errors import InputError
from facelm.layouts import JD106


@dataclass(frozen=True)
class Motion:
    """A smooth head trajectory: each quantity is ``amplitude * sum_k sin(2 pi t / period_k + phase_k) / n``.

    Attributes:
        roll_deg: in-plane rotation amplitude, degrees.
        shift: translation amplitude, fraction of the frame's smaller side.
        scale: relative scale amplitude (0.1 = +-10 %).
        period_s: periods of the sines, seconds (two per quantity, incommensurate).
        yaw_deg, pitch_deg: head yaw and pitch amplitudes, degrees (3-D, re-rendered).
        mouth: mouth-opening amplitude (face-model units; opens from 0 to ``mouth``).
    """

    roll_deg: float
    shift: float
    scale: float
    period_s: tuple[float, float]
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    mouth: float = 0.0


MOTIONS: dict[str, Motion] = {
    "static": Motion(0.0, 0.0, 0.0, (1.0, 1.0)),
    "slow": Motion(10.0, 0.06, 0.05, (4.0, 6.3), yaw_deg=12.0, pitch_deg=6.0, mouth=0.10),
    "fast": Motion(20.0, 0.15, 0.12, (0.9, 1.4), yaw_deg=25.0, pitch_deg=12.0, mouth=0.2),
}


@dataclass(frozen=True)
class VideoConfig:
    """Clip settings.

    Attributes:
        width, height: frame size in pixels.
        fps: frames per second (timestamps are ``1000 * i / fps`` ms).
        face_width: face (contour) width as a fraction of ``height``.
        noise_sigma: per-frame Gaussian pixel noise (0..255 units), fresh each frame.
        blur_sigma: (min, max) of a per-frame Gaussian blur; 0 disables.
        light_drift: amplitude of the multiplicative lighting field's drift.
    """

    width: int = 320
    height: int = 240
    fps: float = 30.0
    face_width: float = 0.45
    noise_sigma: float = 4.0
    blur_sigma: tuple[float, float] = (0.0, 0.6)
    light_drift: float = 0.15

    def __post_init__(self) -> None:
        if int(self.width) < 64 or int(self.height) < 64:
            raise InputError(f"frames must be at least 64x64 px, got {self.width}x{self.height}")
        if not self.fps > 0:
            raise InputError(f"fps must be > 0, got {self.fps}")


@dataclass
class Clip:
    """A rendered clip.

    Attributes:
        frames: (N, H, W, 3) uint8 RGB.
        landmarks: (N, 106, 2) float64 ground truth in frame pixels.
        timestamps_ms: (N,) float64.
        transforms: (N, 2, 3) base render -> frame similarities (the in-plane part of the motion).
        motion: the motion's name.
    """

    frames: np.ndarray
    landmarks: np.ndarray
    timestamps_ms: np.ndarray
    transforms: np.ndarray
    motion: str
    seed: int
    config: VideoConfig


def _wave(t: np.ndarray, periods: tuple[float, float], phases: np.ndarray) -> np.ndarray:
    return sum(np.sin(2 * math.pi * t / p + ph) for p, ph in zip(periods, phases)) / len(periods)


def trajectory(motion: str, frames: int, seed: int, fps: float = 30.0) -> dict[str, np.ndarray]:
    """Per-frame roll, yaw, pitch (deg), shift (fraction of the smaller side, (N, 2)), scale factor
    and mouth opening.

    Starts from the pose at t = 0 of a seeded phase, and is smooth (C-infinity) in time.
    """
    if motion not in MOTIONS:
        raise InputError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    if int(frames) < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    m = MOTIONS[motion]
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7001])
    ph = rng.uniform(0, 2 * math.pi, (7, 2))
    t = np.arange(int(frames)) / float(fps)
    shift = np.stack([_wave(t, m.period_s, ph[1]), _wave(t, m.period_s, ph[2])], axis=1) * m.shift
    return {"roll": m.roll_deg * _wave(t, m.period_s, ph[0]), "shift": shift,
            "scale": 1.0 + m.scale * _wave(t, m.period_s, ph[3]),
            "yaw": m.yaw_deg * _wave(t, m.period_s, ph[4]), "pitch": m.pitch_deg * _wave(t, m.period_s, ph[5]),
            "mouth": m.mouth * 0.5 * (1.0 + _wave(t, m.period_s, ph[6]))}


def _similarity(centre_src: np.ndarray, centre_dst: np.ndarray, scale: float, roll_deg: float) -> np.ndarray:
    a = math.radians(roll_deg)
    r = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return np.concatenate([r, (centre_dst - r @ centre_src)[:, None]], axis=1)


def render_clip(frames: int, motion: str = "static", seed: int = 0, config: VideoConfig | None = None) -> Clip:
    """Render a clip in memory (see the module docstring).

    Args:
        frames: number of frames N.
        motion: a key of :data:`MOTIONS`.
        seed: the face, the trajectory's phases and the per-frame noise.
    """
    cfg = config or VideoConfig()
    traj = trajectory(motion, frames, seed, cfg.fps)
    side = min(cfg.width, cfg.height)
    base_size = int(2 * math.ceil(math.hypot(cfg.width, cfg.height) * 0.75))
    # A clean face; per-frame lighting, noise and blur are added below.
    face_cfg = SynthConfig(size=base_size, p_occlusion=0.0, p_glasses=0.0, p_hair_fringe=0.0, p_blur=0.0, p_noise=0.0)
    ident_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7000])
    params = sample_params(ident_rng, face_cfg)
    params = dataclasses.replace(params, mouth_open=0.0, blink_left=min(params.blink_left, 0.15),
                                 blink_right=min(params.blink_right, 0.15))
    yaw0, pitch0 = ident_rng.uniform(-8.0, 8.0), ident_rng.uniform(-5.0, 5.0)
    distance = float(ident_rng.uniform(6.0, 10.0))
    frame_centre = np.array([(cfg.width - 1) / 2.0, (cfg.height - 1) / 2.0])
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7002])
    light_ph = rng.uniform(0, 2 * math.pi, (2, 2, 3))
    n = int(frames)
    out = np.empty((n, cfg.height, cfg.width, 3), np.uint8)
    ms = np.empty((n, 2, 3))
    lms = np.empty((n, JD106.num_points, 2))
    t = np.arange(n) / cfg.fps
    cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
    for i in range(n):
        key = (float(traj["yaw"][i]), float(traj["pitch"][i]), float(traj["mouth"][i]))
        if key not in cache:  # a static clip renders once
            pose = Pose(yaw=yaw0 + key[0], pitch=pitch0 + key[1], roll=0.0, distance=distance,
                        width=cfg.face_width * side * 2 / base_size, offset=(0.0, 0.0))
            p = dataclasses.replace(params, mouth_open=key[2])
            lm0, fh, unit = place_face(p, pose, base_size)
            draw_rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 7001])  # same colours every frame
            cache = {key: (draw_face(draw_rng, face_cfg, p, pose, lm0, fh, unit), lm0)}
        base, lm0 = cache[key]
        # The head's centre of rotation: the middle of the base image (where place_face centres the face).
        centre = np.array([(base_size - 1) / 2.0, (base_size - 1) / 2.0])
        m = _similarity(centre, frame_centre + traj["shift"][i] * side, 0.5 * traj["scale"][i], traj["roll"][i])
        ms[i] = m
        lms[i] = transform_points(lm0, m)
        img = cv2.warpAffine(base, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        light = (1.0 + cfg.light_drift * np.sin(2 * math.pi * t[i] / np.array([[[3.1]], [[4.7]]]) + light_ph))
        img *= cv2.resize(light.astype(np.float32), (cfg.width, cfg.height), interpolation=cv2.INTER_LINEAR)
        b = rng.uniform(*cfg.blur_sigma) if cfg.blur_sigma[1] > 0 else 0.0
        if b > 0.05:
            img = cv2.GaussianBlur(img, (0, 0), b)
        img += rng.standard_normal(img.shape, dtype=np.float32) * np.float32(cfg.noise_sigma)
        out[i] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return Clip(frames=out, landmarks=lms, timestamps_ms=1000.0 * t, transforms=ms, motion=motion,
                seed=int(seed), config=cfg)


def write_video(path: str | os.PathLike, frames: np.ndarray, fps: float) -> Path:
    """Write (N, H, W, 3) uint8 RGB frames as an MP4 (OpenCV ``mp4v``)."""
    path = Path(path)
    n, h, w = frames.shape[:3]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise InputError(f"OpenCV cannot write an MP4 to {path}")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def write_clip(out: str | os.PathLike, frames: int, motion: str = "static", seed: int = 0,
               config: VideoConfig | None = None, mp4: bool = True) -> Path:
    """Render a clip into a folder, built under a temporary name and renamed when complete.

    Layout: ``OUT/frames/000000.png`` ..., ``OUT/landmarks.jsonl`` (one line per frame: ``frame``,
    ``timestamp_ms``, ``landmarks`` (106 x [x, y] frame pixels), ``five_points``, ``box``),
    ``OUT/video.mp4`` and ``OUT/clip.json`` (motion, seed, config).

    Raises:
        InputError: ``out`` exists and is not an empty directory, or bad arguments.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output {out} already exists and is not an empty directory")
    clip = render_clip(frames, motion, seed, config)
    with atomic_dir(out, force=True, what="output") as tmp:  # out is absent or an empty folder (checked above)
        (tmp / "frames").mkdir()
        lines = []
        for i, (f, lm, ts) in enumerate(zip(clip.frames, clip.landmarks, clip.timestamps_ms)):
            if not cv2.imwrite(str(tmp / "frames" / f"{i:06d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR)):
                raise InputError(f"could not write frame {i}")
            lines.append(json.dumps({"frame": i, "timestamp_ms": round(float(ts), 6),
                                     "landmarks": np.round(lm, 6).tolist(),
                                     "five_points": np.round(JD106.five_points(lm), 6).tolist(),
                                     "box": np.round(bbox_of(lm), 6).tolist()}))
        (tmp / "landmarks.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if mp4:
            write_video(tmp / "video.mp4", clip.frames, clip.config.fps)
        meta = {"generator": "facelm.data.synth_video", "layout": JD106.name, "frames": int(frames),
                "motion": motion, "motion_spec": asdict(MOTIONS[motion]), "seed": int(seed),
                "config": asdict(clip.config)}
        (tmp / "clip.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def read_clip_landmarks(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``(landmarks (N, 106, 2), timestamps_ms (N,))`` from a folder written by :func:`write_clip`."""
    path = Path(folder) / "landmarks.jsonl"
    if not path.is_file():
        raise InputError(f"no landmarks.jsonl in {folder}")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return (np.array([r["landmarks"] for r in rows], np.float64), np.array([r["timestamp_ms"] for r in rows]))
