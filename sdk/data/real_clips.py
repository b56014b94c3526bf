"""Video clips made from real photos with known per-frame similarity motion.

A real photo (:mod:`facelm.data.real_faces`) is warped into every frame by a known similarity
(photo pixels -> frame pixels): in-plane rotation about the face, scale, translation. Each frame
gets fresh Gaussian sensor noise. The photos carry no landmark labels, so the ground truth is
*consistency*: landmarks found once on a clean reference frame (:func:`reference_frame`), mapped
to photo pixels, then through each frame's transform (:meth:`RealClip.truth`). The true
inter-pupil distance of a frame is the reference one times the frame's scale.

Motions (:data:`MOTIONS`; 30 fps):

- ``static``: the same frame, fresh noise (sigma 3 grey levels) every frame;
- ``slow``: rotation +-10 deg, scale +-5 %, shift +-5 % of the frame's smaller side (4.0 s and 6.3 s sines);
- ``fast``: translation only, +-15 % of the smaller side, periods 0.9 s and 1.4 s;
- ``zoom``: a 2x zoom in and out, scale 0.75 -> 1.5 -> 0.75 (a cosine over the clip);
- ``leave``: still, slides right out of the frame, stays out, slides back, still.

Each frame is labelled by where the face's box (:func:`face_box`, from the photo's pinned eye
centres) lies: :data:`INSIDE` (wholly in the frame), :data:`ABSENT` (wholly out) or :data:`PARTIAL`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from facelm.alignment import invert_affine, transform_points
from facelm.errors import InputError
from facelm.fileio import atomic_dir

#: Face states per frame.
INSIDE, PARTIAL, ABSENT = 1, 0, -1

#: Eye centres (image-left eye first) of each photo's face in photo pixels: BlazeFace's eye
#: points on the full photo (2026-12-02), rounded to 0.1 px. They only place and scale the face
#: in the frame and label face-absent frames; the ground truth comes from a landmark pass.
EYES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "astronaut": ((202.8, 101.4), (246.9, 103.5)),
    "grace_hopper": ((225.5, 189.6), (309.6, 189.8)),
    "obama": ((433.0, 218.5), (547.4, 212.6)),
}


@dataclass(frozen=True)
class RealMotion:
    """A per-frame similarity trajectory.

    Attributes:
        kind: ``sine`` (sums of sines), ``zoom`` (scale 1 -> 1 + ``scale`` -> 1) or ``leave``.
        frames: default clip length.
        roll_deg: rotation amplitude, degrees (``sine``).
        shift: translation amplitude, fraction of the frame's smaller side (``sine``).
        scale: relative scale amplitude (``sine``: +-; ``zoom``: the peak's extra scale).
        scale0: scale at rest (``zoom`` starts and ends there).
        period_s: the two sine periods, seconds.
    """

    kind: str
    frames: int
    roll_deg: float = 0.0
    shift: float = 0.0
    scale: float = 0.0
    period_s: tuple[float, float] = (1.0, 1.0)
    scale0: float = 1.0


MOTIONS: dict[str, RealMotion] = {
    "static": RealMotion("sine", 60),
    "slow": RealMotion("sine", 90, roll_deg=10.0, shift=0.05, scale=0.05, period_s=(4.0, 6.3)),
    "fast": RealMotion("sine", 60, shift=0.15, period_s=(0.9, 1.4)),
    "zoom": RealMotion("zoom", 90, scale=1.0, scale0=0.75),
    "leave": RealMotion("leave", 75),
}


@dataclass(frozen=True)
class RealClipConfig:
    """Clip settings.

    Attributes:
        width, height: frame size in pixels.
        fps: frames per second (timestamps ``1000 * i / fps`` ms).
        iod: inter-pupil distance of the face at scale 1, frame pixels.
        eye_height: height of the eyes' midpoint at rest, fraction of ``height``.
        noise_sigma: fresh Gaussian noise per frame, grey levels (0..255).
    """

    width: int = 320
    height: int = 240
    fps: float = 30.0
    iod: float = 40.0
    eye_height: float = 0.42
    noise_sigma: float = 3.0

    def __post_init__(self) -> None:
        if int(self.width) < 64 or int(self.height) < 64:
            raise InputError(f"frames must be at least 64x64 px, got {self.width}x{self.height}")
        if not (self.fps > 0 and self.iod > 4 and self.noise_sigma >= 0):
            raise InputError(f"need fps > 0, iod > 4 px and noise_sigma >= 0, got {self}")


@dataclass
class RealClip:
    """A rendered clip.

    Attributes:
        frames: (N, H, W, 3) uint8 RGB.
        timestamps_ms: (N,) float64.
        transforms: (N, 2, 3) photo -> frame similarities.
        scales: (N,) frame pixels per photo pixel relative to :func:`base_transform` (the reference
            frame's); the true inter-pupil distance is the reference one times this.
        state: (N,) int8 :data:`INSIDE` / :data:`PARTIAL` / :data:`ABSENT`.
        photo, motion: names.
    """

    frames: np.ndarray
    timestamps_ms: np.ndarray
    transforms: np.ndarray
    scales: np.ndarray
    state: np.ndarray
    photo: str
    motion: str
    seed: int
    config: RealClipConfig

    def truth(self, photo_landmarks: np.ndarray) -> np.ndarray:
        """(N, K, 2) frame pixels: (K, 2) photo-pixel landmarks through every frame's transform."""
        return np.stack([transform_points(photo_landmarks, m) for m in self.transforms])


def _eyes(photo: str) -> np.ndarray:
    if photo not in EYES:
        raise InputError(f"no eye centres pinned for photo {photo!r}; clips exist for {', '.join(EYES)}")
    return np.array(EYES[photo], np.float64)


def face_box(photo: str) -> np.ndarray:
    """(4,) ``x1 y1 x2 y2`` photo pixels that hold the face: 1.1 IOD either side of the eyes'
    midpoint, 0.9 IOD above it and 1.9 IOD below (chin included on the pinned photos)."""
    e = _eyes(photo)
    c, d = e.mean(0), float(np.linalg.norm(e[1] - e[0]))
    return np.array([c[0] - 1.1 * d, c[1] - 0.9 * d, c[0] + 1.1 * d, c[1] + 1.9 * d])


def trajectory(motion: str, frames: int | None = None, seed: int = 0, fps: float = 30.0) -> dict[str, np.ndarray]:
    """Per-frame ``roll`` (deg), ``scale`` (factor) and ``shift`` ((N, 2), fraction of the smaller side)."""
    if motion not in MOTIONS:
        raise InputError(f"unknown motion {motion!r}; choose one of {', '.join(MOTIONS)}")
    m = MOTIONS[motion]
    n = int(frames or m.frames)
    if n < 1:
        raise InputError(f"a clip needs at least 1 frame, got {n}")
    t = np.arange(n) / float(fps)
    roll, scale, shift = np.zeros(n), np.ones(n), np.zeros((n, 2))
    if m.kind == "sine":
        ph = np.random.default_rng([int(seed) & 0xFFFFFFFF, 8001]).uniform(0, 2 * math.pi, (4, 2))

        def wave(p: np.ndarray) -> np.ndarray:
            return sum(np.sin(2 * math.pi * t / q + f) for q, f in zip(m.period_s, p)) / 2.0

        roll, scale = m.roll_deg * wave(ph[0]), 1.0 + m.scale * wave(ph[1])
        shift = m.shift * np.stack([wave(ph[2]), wave(ph[3])], axis=1)
    elif m.kind == "zoom":
        scale = m.scale0 * (1.0 + m.scale * 0.5 * (1.0 - np.cos(2 * math.pi * np.arange(n) / max(n - 1, 1))))
    else:  # leave: 20 % still, 20 % out, 20 % away, 20 % back, 20 % still
        u = np.arange(n) / max(n - 1, 1)
        ramp = lambda a, b: 0.5 * (1.0 - np.cos(math.pi * np.clip((u - a) / (b - a), 0.0, 1.0)))  # noqa: E731
        shift[:, 0] = 1.1 * (ramp(0.2, 0.4) - ramp(0.6, 0.8))  # 1.1 x the smaller side: fully out
    return {"roll": roll, "scale": scale, "shift": shift}


def base_transform(photo: str, config: RealClipConfig | None = None) -> np.ndarray:
    """(2, 3) photo -> frame similarity at rest: eyes level-scaled to ``config.iod``, their midpoint
    at the frame's horizontal centre and ``eye_height``."""
    cfg = config or RealClipConfig()
    e = _eyes(photo)
    d = e[1] - e[0]
    s = cfg.iod / float(np.linalg.norm(d))
    a = -math.atan2(d[1], d[0])  # level the eyes
    r = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    dst = np.array([(cfg.width - 1) / 2.0, cfg.eye_height * (cfg.height - 1)])
    return np.concatenate([r, (dst - r @ e.mean(0))[:, None]], axis=1)


def _frame_transform(base: np.ndarray, centre: np.ndarray, roll_deg: float, scale: float,
                     shift_px: np.ndarray) -> np.ndarray:
    """``base`` followed by rotation/scale about the frame point ``centre`` and a shift (frame px)."""
    a = math.radians(roll_deg)
    r = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    extra = np.concatenate([r, (centre + shift_px - r @ centre)[:, None]], axis=1)
    return np.concatenate([extra[:, :2] @ base[:, :2], (extra[:, :2] @ base[:, 2] + extra[:, 2])[:, None]], axis=1)


def _render(photo_img: np.ndarray, m: np.ndarray, cfg: RealClipConfig, fill: tuple) -> np.ndarray:
    """Warp with an anti-alias blur when ``m`` shrinks the photo (float32 RGB)."""
    s = math.sqrt(abs(np.linalg.det(m[:, :2])))
    src = photo_img
    if s < 1.0:
        src = cv2.GaussianBlur(photo_img, (0, 0), 0.5 * math.sqrt(1.0 / s ** 2 - 1.0))
    return cv2.warpAffine(src, m, (cfg.width, cfg.height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=fill).astype(np.float32)


def _state(box: np.ndarray, m: np.ndarray, cfg: RealClipConfig) -> int:
    corners = transform_points(np.array([[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]]]), m)
    x, y = corners[:, 0], corners[:, 1]
    inside = (x >= 0) & (x <= cfg.width - 1) & (y >= 0) & (y <= cfg.height - 1)
    if inside.all():
        return INSIDE
    lo, hi = corners.min(0), corners.max(0)
    if hi[0] < 0 or lo[0] > cfg.width - 1 or hi[1] < 0 or lo[1] > cfg.height - 1:
        return ABSENT
    return PARTIAL


def render_clip(photo: str = "astronaut", motion: str = "static", frames: int | None = None, seed: int = 0,
                config: RealClipConfig | None = None) -> RealClip:
    """Render a clip in memory (see the module docstring).

    Args:
        photo: a name in :data:`EYES` (loaded with :func:`facelm.data.real_faces.load`).
        motion: a key of :data:`MOTIONS`.
        frames: number of frames (default: the motion's).
        seed: trajectory phases and noise.
    """
    from facelm.data import real_faces

    cfg = config or RealClipConfig()
    traj = trajectory(motion, frames, seed, cfg.fps)
    img = real_faces.load(photo)
    fill = tuple(float(v) for v in img.reshape(-1, 3).mean(0))
    base = base_transform(photo, cfg)
    centre = transform_points(_eyes(photo).mean(0, keepdims=True), base)[0]
    side = min(cfg.width, cfg.height)
    box = face_box(photo)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 8002])
    n = len(traj["roll"])
    out = np.empty((n, cfg.height, cfg.width, 3), np.uint8)
    ms, state = np.empty((n, 2, 3)), np.empty(n, np.int8)
    cache: dict[bytes, np.ndarray] = {}
    for i in range(n):
        m = _frame_transform(base, centre, float(traj["roll"][i]), float(traj["scale"][i]), traj["shift"][i] * side)
        ms[i], state[i] = m, _state(box, m, cfg)
        key = np.round(m, 9).tobytes()
        if key not in cache:  # a static clip warps once
            cache = {key: _render(img, m, cfg, fill)}
        f = cache[key] + rng.standard_normal((cfg.height, cfg.width, 3), dtype=np.float32) * np.float32(cfg.noise_sigma)
        out[i] = np.clip(np.rint(f), 0, 255).astype(np.uint8)
    return RealClip(frames=out, timestamps_ms=1000.0 * np.arange(n) / cfg.fps, transforms=ms,
                    scales=np.asarray(traj["scale"], np.float64), state=state, photo=photo, motion=motion,
                    seed=int(seed), config=cfg)


def reference_frame(photo: str = "astronaut", config: RealClipConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(image, transform)``: the photo at rest (:func:`base_transform`) without noise, and its
    photo -> frame transform. Landmarks found on it, mapped to the photo with
    :func:`to_photo`, are the ground truth that :meth:`RealClip.truth` moves."""
    from facelm.data import real_faces

    cfg = config or RealClipConfig()
    img = real_faces.load(photo)
    m = base_transform(photo, cfg)
    fill = tuple(float(v) for v in img.reshape(-1, 3).mean(0))
    return np.clip(np.rint(_render(img, m, cfg, fill)), 0, 255).astype(np.uint8), m


def to_photo(frame_points: np.ndarray, transform: np.ndarray) -> np.ndarray:
    """(K, 2) frame pixels -> photo pixels through the inverse of a photo -> frame ``transform``."""
    return transform_points(np.asarray(frame_points, np.float64), invert_affine(transform))


def write_clip(out: str | os.PathLike, photo: str = "astronaut", motion: str = "static", frames: int | None = None,
               seed: int = 0, config: RealClipConfig | None = None, mp4: bool = True) -> Path:
    """Render a clip into a folder, built under a temporary name and renamed when complete.

    Layout: ``OUT/frames/000000.png`` ..., ``OUT/transforms.npy`` ((N, 2, 3) photo -> frame),
    ``OUT/clip.json`` (photo, motion, seed, config, and per frame: ``timestamp_ms``, ``scale``,
    ``state``), ``OUT/video.mp4``.

    Raises:
        InputError: ``out`` exists and is not an empty directory, or bad arguments.
    """
    from facelm.data.synth_video import write_video

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output {out} already exists and is not an empty directory")
    clip = render_clip(photo, motion, frames, seed, config)
    with atomic_dir(out, force=True, what="output") as tmp:
        (tmp / "frames").mkdir()
        for i, f in enumerate(clip.frames):
            if not cv2.imwrite(str(tmp / "frames" / f"{i:06d}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR)):
                raise InputError(f"could not write frame {i}")
        np.save(tmp / "transforms.npy", clip.transforms)
        per_frame = [{"frame": i, "timestamp_ms": round(float(t), 6), "scale": round(float(s), 9), "state": int(st)}
                     for i, (t, s, st) in enumerate(zip(clip.timestamps_ms, clip.scales, clip.state))]
        meta = {"generator": "facelm.data.real_clips", "photo": photo, "motion": motion,
                "motion_spec": asdict(MOTIONS[motion]), "seed": int(seed), "config": asdict(clip.config),
                "states": {"inside": INSIDE, "partial": PARTIAL, "absent": ABSENT}, "frames": per_frame}
        (tmp / "clip.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if mp4:
            write_video(tmp / "video.mp4", clip.frames, clip.config.fps)
    return out


def read_clip(folder: str | os.PathLike) -> RealClip:
    """A clip written by :func:`write_clip` (frames from the PNGs)."""
    folder = Path(folder)
    meta_path, tr_path = folder / "clip.json", folder / "transforms.npy"
    if not meta_path.is_file() or not tr_path.is_file():
        raise InputError(f"{folder} is not a real-face clip folder (no clip.json / transforms.npy)")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    rows = meta["frames"]
    frames = []
    for r in rows:
        f = cv2.imread(str(folder / "frames" / f"{r['frame']:06d}.png"), cv2.IMREAD_COLOR)
        if f is None:
            raise InputError(f"cannot read frame {r['frame']} of {folder}")
        frames.append(cv2.cvtColor(f, cv2.COLOR_BGR2RGB))
    cfg = meta["config"]
    return RealClip(frames=np.stack(frames), timestamps_ms=np.array([r["timestamp_ms"] for r in rows]),
                    transforms=np.load(tr_path, allow_pickle=False), scales=np.array([r["scale"] for r in rows]),
                    state=np.array([r["state"] for r in rows], np.int8), photo=meta["photo"], motion=meta["motion"],
                    seed=int(meta["seed"]), config=RealClipConfig(**cfg))
