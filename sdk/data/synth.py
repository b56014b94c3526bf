"""Synthetic faces with exact 106-point ground truth (JD-106 semantics).

A small 3D point model of a face is built from identity parameters (face shape,
eye/brow/nose/mouth geometry) and expression parameters (mouth open, smile, blink,
gaze, brow raise), rotated by yaw/pitch/roll, projected with a pinhole camera and
rendered with OpenCV polygons at sub-pixel precision (``shift`` + anti-aliasing).
Skin tone, lighting, background clutter, hair, glasses, occluders, blur and noise vary.

The ground truth is the projected model points themselves, so it is exact for the
model; OpenCV's anti-aliased polygon fill places drawn edges within about 0.3 px of
it (discs within 0.05 px; see tests/test_data_synth.py). The
image-right half of the face is the mirror of the image-left half (before asymmetric
expression) through the model's own twin table, written independently of the layout's flip
pairs; tests check that a mirrored synthetic face is labelled exactly as
:func:`facelm.layouts.flip_landmarks` says.

Every face is a pure function of ``(seed, index, config)``: ``render_face`` draws from
``numpy.random.default_rng([seed, index])``, so a data set is deterministic and any
subset can be regenerated in any order or in parallel.

Face model units: x to the image right, y down, z toward the camera; the face's
half-width is about 1.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from facelm.fileio import atomic_dir
from facelm.errors import InputError
from facelm.layouts import JD106

K = JD106.num_points
_SHIFT = 4  # OpenCV fractional bits: coordinates are drawn at 1/16 px.
_ONE = float(1 << _SHIFT)


def _twins(first: int, last: int, mirror_sum: int) -> list[tuple[int, int]]:
    """Image-left points ``first..last`` and their image-right twins ``mirror_sum - i``."""
    return [(i, mirror_sum - i) for i in range(first, last + 1)]


# The face model's own image-left -> image-right twin table, written from the JD-106 drawing
# order: the contour and both brows run left to right across the image, the left eye starts at
# its outer corner and the right eye at its inner corner, the lips run clockwise from the left
# corner. The model defines the image-left half (and the points on the axis: chin 16, nose
# 51..54 and 60, lip centres 87, 93, 98, 102) and mirrors it through this table. It is
# deliberately not derived from ``JD106.flip_pairs``: tests render faces from it to check the
# layout's pairs (tests/test_layouts.py), which a copy of the pairs could not do.
_MIRROR_TWINS = np.array(
    _twins(0, 15, 32)  # contour
    + _twins(33, 37, 79) + _twins(38, 41, 88)  # upper and lower brow edges
    + _twins(55, 59, 120)  # lower nose
    + _twins(66, 70, 145) + _twins(71, 73, 153) + [(74, 83)]  # eye corners and lids, pupil
    + _twins(84, 86, 174) + _twins(94, 95, 186)  # outer lips
    + _twins(96, 97, 196) + [(103, 101)],  # inner lips
    dtype=np.int64)
_LEFT, _RIGHT = _MIRROR_TWINS[:, 0], _MIRROR_TWINS[:, 1]


@dataclass(frozen=True)
class SynthConfig:
    """Ranges of the synthetic face distribution. Angles in degrees, sizes as image fractions.

    Attributes:
        size: image side in pixels (square images).
        yaw, pitch, roll: maximum absolute head angle; drawn from a clipped normal of std max/2.
        face_width: range of the face's width (contour extent) as a fraction of ``size``.
        center_jitter: maximum offset of the face centre from the image centre, fraction of ``size``.
        p_mouth_open, p_smile, p_blink: probabilities of each expression.
        p_occlusion: probability of an occluder over part of the face (landmarks stay labelled).
        p_glasses, p_hair_fringe: probabilities of glasses and of hair over the forehead.
        p_blur, max_blur_sigma: probability and strength of Gaussian blur.
        p_noise, max_noise_sigma: probability and strength of Gaussian pixel noise (in 0..255).
        clutter: (min, max) number of background shapes.
    """

    size: int = 256
    yaw: float = 45.0
    pitch: float = 25.0
    roll: float = 30.0
    face_width: tuple[float, float] = (0.42, 0.72)
    center_jitter: float = 0.08
    p_mouth_open: float = 0.35
    p_smile: float = 0.4
    p_blink: float = 0.12
    p_occlusion: float = 0.25
    p_glasses: float = 0.1
    p_hair_fringe: float = 0.3
    p_blur: float = 0.5
    max_blur_sigma: float = 1.6
    p_noise: float = 0.7
    max_noise_sigma: float = 10.0
    clutter: tuple[int, int] = (2, 10)

    def __post_init__(self) -> None:
        if int(self.size) < 32:
            raise InputError(f"synthetic image size must be at least 32 px, got {self.size}")
        lo, hi = self.face_width
        if not 0.05 < lo <= hi <= 0.95:
            raise InputError(f"face_width must satisfy 0.05 < lo <= hi <= 0.95, got {self.face_width}")

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- face model


@dataclass(frozen=True)
class FaceParams:
    """Identity and expression of one face (face-model units, see module docstring)."""

    face_w: float
    jaw_len: float
    jaw_square: float
    eye_x: float
    eye_y: float
    eye_w: float
    eye_open: float
    brow_gap: float
    brow_arch: float
    brow_thick: float
    nose_y: float
    nose_w: float
    nose_depth: float
    mouth_y: float
    mouth_w: float
    lip_upper: float
    lip_lower: float
    mouth_open: float
    smile: float
    blink_left: float
    blink_right: float
    gaze: tuple[float, float]
    brow_raise: float
    asym: float


def sample_params(rng: np.random.Generator, cfg: SynthConfig) -> FaceParams:
    """Draw identity and expression parameters."""
    u = rng.uniform
    open_ = u(0.03, 0.28) if rng.random() < cfg.p_mouth_open else 0.0
    smile = u(0.2, 1.0) if rng.random() < cfg.p_smile else 0.0
    blink = rng.random() < cfg.p_blink
    both = rng.random() < 0.7
    b_l = u(0.6, 1.0) if blink else u(0.0, 0.15)
    b_r = (b_l if both else u(0.0, 0.15)) if blink else u(0.0, 0.15)
    return FaceParams(
        face_w=u(0.92, 1.08), jaw_len=u(1.30, 1.60), jaw_square=u(2.0, 3.2),
        eye_x=u(0.38, 0.47), eye_y=u(-0.19, -0.10), eye_w=u(0.14, 0.19), eye_open=u(0.055, 0.095),
        brow_gap=u(0.20, 0.30), brow_arch=u(0.02, 0.08), brow_thick=u(0.04, 0.08),
        nose_y=u(0.26, 0.38), nose_w=u(0.14, 0.21), nose_depth=u(0.30, 0.50),
        mouth_y=u(0.66, 0.80), mouth_w=u(0.27, 0.38), lip_upper=u(0.05, 0.10), lip_lower=u(0.06, 0.12),
        mouth_open=open_, smile=smile, blink_left=b_l, blink_right=b_r,
        gaze=(u(-0.35, 0.35), u(-0.25, 0.25)), brow_raise=u(-0.03, 0.06), asym=u(-0.03, 0.03),
    )


def _surface_z(x: np.ndarray | float) -> np.ndarray:
    """Depth of a cylinder-like face surface at horizontal position x."""
    x = np.asarray(x, dtype=np.float64)
    return 0.75 * np.sqrt(np.clip(1.0 - (x / 1.1) ** 2, 0.0, None))


def face_points_3d(p: FaceParams) -> np.ndarray:
    """The 106 landmarks of the face model.

    Returns:
        (106, 3) float64 in face-model units.
    """
    P = np.zeros((K, 3), dtype=np.float64)
    # Contour 0..16 (image-left jaw to chin): a superellipse from ear level to the chin.
    ear_y = p.eye_y - 0.05
    for i in range(17):
        phi = (i - 16) / 16.0 * (math.pi / 2) * 0.97
        s, c = math.sin(phi), math.cos(phi)
        e = 2.0 / p.jaw_square
        x = p.face_w * math.copysign(abs(s) ** e, s)
        y = ear_y + p.jaw_len * (c**e)
        z = 0.05 + 0.55 * c**1.5
        P[i] = (x, y, z)
    # Brows, left: upper 33..37 outer -> inner; lower 38..41 inner -> outer.
    bo, bi = -(p.eye_x + p.eye_w * 1.35), -(p.eye_x - p.eye_w * 1.2)
    by = p.eye_y - p.brow_gap - p.brow_raise
    for n, t in enumerate(np.linspace(0.0, 1.0, 5)):
        x = bo + (bi - bo) * t
        P[33 + n] = (x, by - p.brow_arch * math.sin(math.pi * (0.15 + 0.75 * t)), 0.0)
    for n, t in enumerate((0.9, 0.65, 0.4, 0.15)):
        x = bo + (bi - bo) * t
        th = p.brow_thick * (0.55 + 0.6 * t)
        P[38 + n] = (x, by - p.brow_arch * math.sin(math.pi * (0.15 + 0.75 * t)) + th, 0.0)
    P[33:42, 2] = _surface_z(P[33:42, 0]) - 0.02
    # Nose bridge 51..54 (54 = tip) and lower nose 55..60.
    top_y = p.eye_y - 0.02
    for n in range(4):
        t = n / 3.0
        P[51 + n] = (0.0, top_y + (p.nose_y - top_y) * t, 0.72 + p.nose_depth * t**1.3)
    ny, nw, tipz = p.nose_y, p.nose_w, 0.72 + p.nose_depth
    P[55] = (-nw * 0.70, ny - 0.07, 0.78)
    P[56] = (-nw, ny + 0.02, 0.74)
    P[57] = (-nw * 0.82, ny + 0.09, 0.78)
    P[58] = (-nw * 0.48, ny + 0.11, 0.84)
    P[59] = (-nw * 0.22, ny + 0.12, tipz - 0.18)
    P[60] = (0.0, ny + 0.115, tipz - 0.16)
    # Left eye 66..73 (66 outer corner, 67..69 upper lid, 70 inner corner, 71..73 lower lid) + pupil 74.
    ex, ey, ew = -p.eye_x, p.eye_y, p.eye_w
    P[66] = (ex - ew, ey + 0.005, 0.0)
    P[70] = (ex + ew, ey + 0.01, 0.0)
    for n, t in enumerate((0.25, 0.5, 0.75)):
        P[67 + n] = (ex - ew + 2 * ew * t, ey - p.eye_open * math.sin(math.pi * t) ** 0.8, 0.0)
    for n, t in enumerate((0.75, 0.5, 0.25)):
        P[71 + n] = (ex - ew + 2 * ew * t, ey + 0.7 * p.eye_open * math.sin(math.pi * t) ** 0.9, 0.0)
    P[74] = (ex, ey, 0.0)
    P[66:75, 2] = _surface_z(P[66:75, 0]) - 0.12
    # Mouth: 84 left corner, 85..86 upper outer, 87 top centre; 93 bottom centre, 94..95 lower outer;
    # inner 96 left corner, 97 upper, 98 upper centre, 102 lower centre, 103 lower.
    my, mw = p.mouth_y, p.mouth_w
    P[84] = (-mw, my, 0.0)
    P[85] = (-mw * 0.68, my - p.lip_upper * 0.65, 0.0)
    P[86] = (-mw * 0.30, my - p.lip_upper * 1.05, 0.0)
    P[87] = (0.0, my - p.lip_upper * 0.90, 0.0)
    P[95] = (-mw * 0.68, my + p.lip_lower * 0.70, 0.0)
    P[94] = (-mw * 0.32, my + p.lip_lower * 0.96, 0.0)
    P[93] = (0.0, my + p.lip_lower, 0.0)
    P[96] = (-mw * 0.86, my + 0.002, 0.0)
    P[97] = (-mw * 0.42, my - 0.008, 0.0)
    P[98] = (0.0, my - 0.006, 0.0)
    P[103] = (-mw * 0.42, my + 0.008, 0.0)
    P[102] = (0.0, my + 0.006, 0.0)
    P[84:104, 2] = 0.50 + 0.30 * (1.0 - (P[84:104, 0] / (mw * 1.4)) ** 2)

    # Mirror the image-left half onto the image-right half.
    right = _RIGHT
    P[right] = P[_LEFT] * np.array([-1.0, 1.0, 1.0])
    # A little identity asymmetry: the image-right side sits slightly higher or lower.
    P[right, 1] += p.asym * 0.3

    # Expressions (after mirroring: they may be asymmetric).
    if p.mouth_open > 0:
        o = p.mouth_open
        lower = np.array([91, 92, 93, 94, 95, 101, 102, 103])
        P[lower, 1] += o * (1.0 - 0.6 * (P[lower, 0] / mw) ** 2)
        P[[96, 100], 1] += 0.35 * o
        P[[97, 98, 99], 1] -= 0.08 * o
        jaw = np.arange(0, 33)
        w = np.clip((P[jaw, 1] - my) / (P[16, 1] - my), 0.0, 1.0)
        P[jaw, 1] += 0.8 * o * w
    if p.smile > 0:
        s = p.smile
        for idx, side in (([84, 96], -1.0), ([90, 100], 1.0)):
            P[idx, 0] += side * 0.05 * s
            P[idx, 1] -= 0.06 * s
        for idx in ([85, 95, 89, 91]):
            P[idx, 1] -= 0.025 * s
            P[idx, 0] += np.sign(P[idx, 0]) * 0.02 * s
    for upper, lower, corners, b in (
        ([67, 68, 69], [73, 72, 71], (66, 70), p.blink_left),
        ([78, 77, 76], [80, 81, 82], (79, 75), p.blink_right),
    ):
        if b > 0:
            line = 0.5 * (P[corners[0], 1] + P[corners[1], 1])
            P[upper, 1] = P[upper, 1] * (1.0 - b) + (P[lower, 1] * 0.8 + line * 0.2) * b
    gx, gy = p.gaze
    for pupil, (a, b) in ((74, (66, 70)), (83, (79, 75))):
        half = 0.5 * abs(P[b, 0] - P[a, 0])
        centre = 0.5 * (P[a] + P[b])
        P[pupil, 0] = centre[0] + gx * half * 0.5
        P[pupil, 1] = centre[1] + gy * p.eye_open * 0.6
    P[104], P[105] = P[74], P[83]
    return P


def forehead_points_3d(p: FaceParams, n: int = 9) -> np.ndarray:
    """Forehead arc from the image-right ear over the top to the image-left ear (polygon only).

    Returns:
        (n, 3) float64.
    """
    ear_y = p.eye_y - 0.05
    t = np.linspace(0.08, math.pi - 0.08, n)
    x = p.face_w * np.cos(t)
    y = ear_y - 0.95 * np.sin(t) ** 0.8
    z = 0.05 + 0.45 * np.sin(t)
    return np.stack([x, y, z], axis=1)


def rotation_matrix(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """(3, 3) rotation: yaw about y, then pitch about x, then roll about z (degrees)."""
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


def project(points: np.ndarray, rot: np.ndarray, distance: float) -> np.ndarray:
    """Rotate about the head centre and project with a pinhole camera at ``distance`` (face units).

    Returns:
        (N, 2) projected points in face units (scale 1 at depth 0).
    """
    centre = np.array([0.0, 0.25, -0.4])
    q = (points - centre) @ rot.T + centre
    return q[:, :2] * (distance / (distance - q[:, 2:3]))


# ---------------------------------------------------------------------------- rendering

_NOISE_BANKS: dict[int, np.ndarray] = {}


def _noise_bank(size: int) -> np.ndarray:
    """A fixed (2*size, 2*size, 3) float32 unit-sigma noise texture, cropped at a random offset per image."""
    if size not in _NOISE_BANKS:
        _NOISE_BANKS[size] = np.random.default_rng(12345).standard_normal((2 * size, 2 * size, 3)).astype(np.float32)
    return _NOISE_BANKS[size]


def _fx(pts: np.ndarray) -> np.ndarray:
    """Pixel points -> OpenCV fixed-point int32 (x 16)."""
    return np.round(np.asarray(pts) * _ONE).astype(np.int32)


def _poly(img: np.ndarray, pts: np.ndarray, color) -> None:
    cv2.fillPoly(img, [_fx(pts)], color, cv2.LINE_AA, _SHIFT)


def _line(img: np.ndarray, pts: np.ndarray, color, thick: int = 1, closed: bool = False) -> None:
    cv2.polylines(img, [_fx(pts)], closed, color, max(1, int(thick)), cv2.LINE_AA, _SHIFT)


def _ellipse(img, centre, axes, angle, color, thick=-1) -> None:
    c = tuple(int(v) for v in np.round(np.asarray(centre) * _ONE))
    a = tuple(max(0, int(v)) for v in np.round(np.asarray(axes) * _ONE))
    cv2.ellipse(img, c, a, float(angle), 0.0, 360.0, color, thick, cv2.LINE_AA, _SHIFT)


def _col(c) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(np.asarray(c), 0, 255))


def _background(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    s = cfg.size
    small = rng.integers(0, 256, size=(3, 3, 3), dtype=np.uint8)
    img = cv2.resize(small, (s, s), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(cfg.clutter[0], cfg.clutter[1] + 1))):
        col = _col(rng.integers(0, 256, 3))
        kind = rng.integers(0, 4)
        a, b = rng.uniform(-0.2, 1.2, 2) * s, rng.uniform(-0.2, 1.2, 2) * s
        if kind == 0:
            cv2.rectangle(img, (int(a[0]), int(a[1])), (int(b[0]), int(b[1])), col, -1)
        elif kind == 1:
            _ellipse(img, a, rng.uniform(0.03, 0.25, 2) * s, rng.uniform(0, 180), col)
        elif kind == 2:
            _line(img, np.stack([a, b]), col, int(rng.integers(1, 8)))
        else:
            _poly(img, a + rng.uniform(-0.2, 0.2, (int(rng.integers(3, 6)), 2)) * s, col)
    return img


def _skin(rng: np.random.Generator) -> np.ndarray:
    """An RGB skin tone, from dark to light."""
    t = rng.random()
    dark, light = np.array([70.0, 45.0, 30.0]), np.array([245.0, 205.0, 180.0])
    return (dark + (light - dark) * t) * rng.uniform(0.92, 1.08, 3)


@dataclass(frozen=True)
class Pose:
    """Head pose and placement of one face.

    Attributes:
        yaw, pitch, roll: head angles in degrees (:func:`rotation_matrix`).
        distance: camera distance in face units (:func:`project`).
        width: the face's extent as a fraction of the image side (``SynthConfig.face_width``).
        offset: (2,) offset of the face centre from the image centre, in pixels (x, y).
    """

    yaw: float
    pitch: float
    roll: float
    distance: float
    width: float
    offset: tuple[float, float]


def sample_pose(rng: np.random.Generator, cfg: SynthConfig) -> Pose:
    """Draw the head angles (clipped normals of std max/2), camera distance, size and offset."""
    ang = [float(np.clip(rng.normal(0.0, m / 2.0), -m, m)) for m in (cfg.yaw, cfg.pitch, cfg.roll)]
    dist = float(rng.uniform(5.0, 12.0))
    width = float(rng.uniform(*cfg.face_width))
    off = rng.uniform(-cfg.center_jitter, cfg.center_jitter, 2) * cfg.size
    return Pose(*ang, distance=dist, width=width, offset=(float(off[0]), float(off[1])))


def place_face(p: FaceParams, pose: Pose, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotate, project and place the face model in a ``size`` x ``size`` image.

    The contour's width (or, when rolled, the landmarks' largest extent) spans ``pose.width *
    size``; the landmarks' box centre sits at the image centre plus ``pose.offset``; then the face
    is shifted so that every landmark keeps a 2 px margin.

    Returns:
        ``(landmarks, forehead, unit)``: (106, 2) and (9, 2) float64 pixel coordinates (pixel
        centres at integers) and the scale in pixels per face unit.
    """
    proj = project(np.concatenate([face_points_3d(p), forehead_points_3d(p)]),
                   rotation_matrix(pose.yaw, pose.pitch, pose.roll), pose.distance)
    width = np.ptp(proj[:33, 0]) if abs(pose.roll) < 1e-9 else np.ptp(proj[:K, 0])
    span = np.ptp(proj[:K], axis=0)
    scale = pose.width * size / max(span.max(), width, 1e-6)
    centre = 0.5 * (proj[:K].min(axis=0) + proj[:K].max(axis=0))
    pts = (proj - centre) * scale + (size - 1) / 2.0 + np.asarray(pose.offset)
    lo, hi = pts[:K].min(axis=0), pts[:K].max(axis=0)
    pts += np.clip(2.0 - lo, 0.0, None) - np.clip(hi - (size - 3.0), 0.0, None)
    return pts[:K], pts[K:], float(scale)


@dataclass(frozen=True)
class _Sketch:
    """What the drawing layers share: landmarks (106, 2) and forehead (9, 2) in pixels, pixels per
    face unit, head roll (degrees), the face parameters, skin and hair colours (RGB 0..255)."""

    lm: np.ndarray
    fh: np.ndarray
    unit: float
    roll: float
    params: FaceParams
    skin: np.ndarray
    hair: tuple[int, int, int]


def _draw_head(img: np.ndarray, rng: np.random.Generator, f: _Sketch) -> float:
    """Clothes, neck, hair behind the head, ears, the face's skin and jaw shading.

    Returns:
        the light direction in [-1, 1] (sign: which jaw side is shaded), reused by the nose layer.
    """
    lm, fh, unit, skin = f.lm, f.fh, f.unit, f.skin
    chin = lm[16]
    neck_w = 0.45 * unit
    cloth = _col(rng.integers(0, 256, 3))
    _ellipse(img, chin + np.array([0.0, 1.3 * unit]), (1.6 * unit, 0.9 * unit), f.roll * 0.5, cloth)
    neck = np.array([lm[8] + [neck_w * 0.2, 0], lm[24] - [neck_w * 0.2, 0],
                     lm[24] + [0.1 * unit, 1.2 * unit], lm[8] + [-0.1 * unit, 1.2 * unit]])
    _poly(img, neck, _col(skin * 0.75))
    head_c = 0.5 * (fh[len(fh) // 2] + chin)
    if rng.random() < 0.85:
        hair_poly = np.concatenate([fh, lm[[0, 32]][::-1]])
        grow = rng.uniform(1.05, 1.25)
        hp = (hair_poly - head_c) * grow + head_c
        _poly(img, np.concatenate([hp, lm[[2, 30]] + (lm[[2, 30]] - head_c) * (grow - 1.0)]), f.hair)
    for a in (1, 31):
        d = lm[a] - head_c
        _ellipse(img, lm[a] + d * 0.06, (0.12 * unit, 0.22 * unit),
                 math.degrees(math.atan2(d[1], d[0])) + 90, _col(skin * 0.85))
    _poly(img, np.concatenate([lm[0:33], fh]), _col(skin))
    # Side shading from the light direction: a darker band along one jaw side.
    light = rng.uniform(-1.0, 1.0)
    side = lm[0:17] if light > 0 else lm[16:33]
    _line(img, side, _col(skin * (1.0 - 0.25 * abs(light))), max(1, int(0.15 * unit * abs(light))))
    _line(img, lm[0:33], _col(skin * 0.7), 1)
    return light


def _draw_brows_and_eyes(img: np.ndarray, rng: np.random.Generator, f: _Sketch) -> None:
    """Brows, then per eye: sclera, iris and pupil clipped by the lids, lid lines."""
    lm, unit, s = f.lm, f.unit, img.shape[0]
    brow_col = _col(np.asarray(f.hair) * rng.uniform(0.6, 1.1))
    for upper, lower in (([33, 34, 35, 36, 37], [38, 39, 40, 41]), ([42, 43, 44, 45, 46], [47, 48, 49, 50])):
        _poly(img, lm[upper + lower], brow_col)
    iris_col = _col(rng.uniform(20, 140, 3))
    for ring, pupil in (([66, 67, 68, 69, 70, 71, 72, 73], 74), ([75, 76, 77, 78, 79, 80, 81, 82], 83)):
        eye = lm[ring]
        x0, y0 = np.floor(eye.min(axis=0)).astype(int) - 2
        x1, y1 = np.ceil(eye.max(axis=0)).astype(int) + 3
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, s), min(y1, s)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        roi = img[y0:y1, x0:x1]
        off_ = np.array([x0, y0], dtype=np.float64)
        mask = np.zeros(roi.shape[:2], np.uint8)
        _poly(mask, eye - off_, 255)
        layer = roi.copy()
        _poly(layer, eye - off_, _col(rng.uniform(200, 245) * np.array([1.0, 0.97, 0.95])))
        r_iris = 0.42 * np.linalg.norm(lm[ring[0]] - lm[ring[4]]) / 2.0 * 1.2
        _ellipse(layer, lm[pupil] - off_, (r_iris, r_iris), 0, iris_col)
        _ellipse(layer, lm[pupil] - off_, (r_iris * 0.45, r_iris * 0.45), 0, (10, 10, 10))
        a = (mask.astype(np.float32) / 255.0)[..., None]
        roi[...] = (layer * a + roi * (1.0 - a)).astype(np.uint8)
        _line(img, lm[ring[:5]], _col(np.asarray(f.hair) * 0.5), max(1, int(0.025 * unit)))
        _line(img, lm[ring[4:] + ring[:1]], _col(f.skin * 0.6), 1)


def _draw_nose_and_mouth(img: np.ndarray, rng: np.random.Generator, f: _Sketch, light: float) -> None:
    """Nose bridge shading (on the lit side), lower-nose curve, nostrils; mouth interior, teeth, lips."""
    lm, unit, skin = f.lm, f.unit, f.skin
    _line(img, lm[51:55] + np.array([0.04 * unit * np.sign(light), 0.0]), _col(skin * 0.85), max(1, int(0.04 * unit)))
    _line(img, lm[55:66], _col(skin * 0.55), max(1, int(0.025 * unit)))
    for a, b in ((57, 59), (61, 63)):
        c = 0.5 * (lm[a] + lm[b]) + np.array([0.0, -0.01 * unit])
        _ellipse(img, c, (0.045 * unit, 0.022 * unit), 0, _col(skin * 0.35))
    lip = _col(skin * np.array([1.0, 0.62, 0.62]) * rng.uniform(0.7, 1.0))
    _poly(img, lm[96:104], (60, 15, 20))
    if f.params.mouth_open > 0.05 and rng.random() < 0.6:
        teeth = np.concatenate([lm[96:101], (lm[[100, 99, 98, 97, 96]] * 0.6 + lm[[101, 101, 102, 103, 103]] * 0.4)])
        _poly(img, teeth, (235, 230, 220))
    _poly(img, lm[[84, 85, 86, 87, 88, 89, 90, 100, 99, 98, 97, 96]], lip)
    _poly(img, lm[[90, 91, 92, 93, 94, 95, 84, 96, 103, 102, 101, 100]], _col(np.asarray(lip) * 1.08))
    _line(img, lm[[96, 97, 98, 99, 100]], _col(np.asarray(lip) * 0.5), 1)


def _draw_covers(img: np.ndarray, rng: np.random.Generator, f: _Sketch, cfg: SynthConfig) -> None:
    """What may hide landmarks (which stay labelled): hair fringe, glasses, an occluder."""
    lm, fh, unit = f.lm, f.fh, f.unit
    if rng.random() < cfg.p_hair_fringe:
        k = rng.uniform(0.0, 0.45)
        low = fh * (1 - k) + lm[[42, 43, 44, 45, 46, 46, 33, 34, 35]][: len(fh)] * k
        _poly(img, np.concatenate([fh, low[::-1]]), f.hair)
    if rng.random() < cfg.p_glasses:
        frame = _col(rng.integers(0, 120, 3))
        dark = rng.random() < 0.3
        for ring in ([66, 67, 68, 69, 70, 71, 72, 73], [75, 76, 77, 78, 79, 80, 81, 82]):
            c = lm[ring].mean(axis=0)
            ax = (0.26 * unit, 0.18 * unit)
            _ellipse(img, c, ax, f.roll, (25, 25, 30) if dark else frame, -1 if dark else max(1, int(0.03 * unit)))
        _line(img, lm[[70, 75]], frame, max(1, int(0.03 * unit)))
    if rng.random() < cfg.p_occlusion:
        c = lm[int(rng.integers(0, K))]
        col = _col(f.skin * 0.95) if rng.random() < 0.3 else _col(rng.integers(0, 256, 3))
        if rng.random() < 0.5:
            _ellipse(img, c, rng.uniform(0.15, 0.45, 2) * unit, rng.uniform(0, 180), col)
        else:
            hw = rng.uniform(0.15, 0.5, 2) * unit
            _poly(img, np.array([c - hw, c + [hw[0], -hw[1]], c + hw, c + [-hw[0], hw[1]]]), col)


def draw_face(rng: np.random.Generator, cfg: SynthConfig, p: FaceParams, pose: Pose,
              lm: np.ndarray, fh: np.ndarray, unit: float) -> np.ndarray:
    """Draw the background and the face layers (head, brows and eyes, nose and mouth, covers).

    Args:
        lm, fh, unit: from :func:`place_face`.
    Returns:
        (size, size, 3) uint8 RGB before lighting, blur and noise (:func:`degrade`).
    """
    img = _background(rng, cfg)
    skin = _skin(rng)
    hair = _col(rng.uniform(10, 120, 3) * rng.uniform(0.3, 1.6))
    sketch = _Sketch(lm, fh, unit, pose.roll, p, skin, hair)
    light = _draw_head(img, rng, sketch)
    _draw_brows_and_eyes(img, rng, sketch)
    _draw_nose_and_mouth(img, rng, sketch, light)
    _draw_covers(img, rng, sketch, cfg)
    return img


def degrade(rng: np.random.Generator, cfg: SynthConfig, img: np.ndarray) -> np.ndarray:
    """Lighting (a smooth multiplicative field times a colour cast), then maybe blur and noise.

    Args:
        img: (S, S, 3) uint8 RGB.
    Returns:
        (S, S, 3) uint8 RGB (a new array).
    """
    s = img.shape[0]
    light_small = (rng.uniform(0.55, 1.25, (2, 2, 1)) * rng.uniform(0.85, 1.15, 3)).astype(np.float32)
    field = cv2.resize(light_small, (s, s), interpolation=cv2.INTER_LINEAR)
    imgf = cv2.multiply(img, field, dtype=cv2.CV_32F)
    if rng.random() < cfg.p_blur:
        imgf = cv2.GaussianBlur(imgf, (0, 0), rng.uniform(0.3, cfg.max_blur_sigma))
    if rng.random() < cfg.p_noise:
        bank = _noise_bank(s)
        oy, ox = rng.integers(0, s, 2)
        sigma = rng.uniform(1.0, cfg.max_noise_sigma)
        imgf = cv2.scaleAdd(bank[oy:oy + s, ox:ox + s], float(sigma), imgf)
    return cv2.add(imgf, 0.0, dtype=cv2.CV_8U)  # saturating round to uint8


def render_face(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic face: :func:`sample_params`, :func:`sample_pose`, :func:`place_face`,
    :func:`draw_face`, :func:`degrade`, all drawing from ``rng`` in that order.

    Returns:
        ``(image, landmarks)``: (size, size, 3) uint8 RGB and (106, 2) float64 pixel coordinates
        (pixel centres at integers).
    """
    p = sample_params(rng, cfg)
    pose = sample_pose(rng, cfg)
    lm, fh, unit = place_face(p, pose, cfg.size)
    img = draw_face(rng, cfg, p, pose, lm, fh, unit)
    return degrade(rng, cfg, img), lm.copy()


def sample(seed: int, index: int, cfg: SynthConfig | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Face ``index`` of the data set ``seed``: ``(image (S,S,3) uint8 RGB, landmarks (106,2) float64)``."""
    cfg = cfg or SynthConfig()
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index)])
    return render_face(rng, cfg)


def generate(
    count: int, seed: int = 0, size: int = 256, cfg: SynthConfig | None = None, start: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Generate ``count`` synthetic faces in memory.

    Args:
        count: number of faces N.
        seed: data-set seed; face i is ``sample(seed, start + i)``.
        size: image side in pixels (overrides ``cfg.size``).
    Returns:
        ``(images, landmarks)``: (N, size, size, 3) uint8 RGB and (N, 106, 2) float32 pixels.
    """
    if int(count) < 0:
        raise InputError(f"count must be >= 0, got {count}")
    base = cfg or SynthConfig()
    cfg = SynthConfig(**{**base.to_dict(), "size": int(size)})
    images = np.empty((count, cfg.size, cfg.size, 3), np.uint8)
    lms = np.empty((count, K, 2), np.float32)
    for i in range(count):
        images[i], lms[i] = sample(seed, start + i, cfg)
    return images, lms


def generate_aligned(
    count: int, seed: int, input_size: int, size: int = 256, cfg: SynthConfig | None = None
) -> dict[str, np.ndarray]:
    """Synthetic faces aligned to the reference template, for calibration and evaluation sets.

    Alignment uses the five points derived from the ground truth (``JD106.five_points``) and
    :func:`facelm.preprocess.align_face`, exactly as training and the runtime do.

    Returns:
        dict with ``crops`` (N, input_size, input_size, 3) uint8 RGB, ``landmarks`` (N, 106, 2)
        float32 in crop pixels, ``images`` (N, size, size, 3) uint8 originals, ``landmarks_image``
        (N, 106, 2) float32 in original pixels, ``transforms`` (N, 2, 3) float64 image -> crop.
    """
    from facelm.alignment import transform_points
    from facelm.preprocess import align_face

    images, lms = generate(count, seed, size, cfg)
    crops = np.empty((count, input_size, input_size, 3), np.uint8)
    ms = np.empty((count, 2, 3), np.float64)
    for i in range(count):
        crops[i], ms[i] = align_face(images[i], JD106.five_points(lms[i]), input_size)
    crop_lms = transform_points(lms.astype(np.float64), ms).astype(np.float32) if count else lms.copy()
    return {"crops": crops, "landmarks": crop_lms, "images": images, "landmarks_image": lms, "transforms": ms}


# ---------------------------------------------------------------------------- JD folder writer


def bbox_of(landmarks: np.ndarray) -> np.ndarray:
    """Tight ``x1 y1 x2 y2`` box of (K, 2) landmarks (the synthetic ground-truth box)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def _write_one(root: Path, name: str, image: np.ndarray, lm: np.ndarray, quality: int) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV failure
        raise InputError(f"could not encode {name}")
    (root / "picture" / name).write_bytes(buf.tobytes())
    lines = [str(K)] + [f"{x:.4f} {y:.4f}" for x, y in lm]
    (root / "landmark" / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="ascii")
    b = bbox_of(lm)
    (root / "bbox" / f"{name}.rect").write_text(" ".join(f"{v:.4f}" for v in b) + "\n", encoding="ascii")


def _write_range(args: tuple) -> int:
    root, seed, start, stop, cfg, quality = args
    for i in range(start, stop):
        img, lm = sample(seed, i, cfg)
        _write_one(Path(root), f"synth_{seed}_{i:07d}.jpg", img, lm, quality)
    return stop - start


def write_jd_folder(
    out: str | os.PathLike,
    count: int,
    seed: int = 0,
    size: int = 256,
    cfg: SynthConfig | None = None,
    workers: int = 1,
    quality: int = 95,
    progress: bool = True,
) -> Path:
    """Write ``count`` synthetic faces in the JD-landmark folder format.

    Layout: ``OUT/picture/NAME.jpg``, ``OUT/landmark/NAME.jpg.txt`` (``106`` then 106 lines
    ``x y``), ``OUT/bbox/NAME.jpg.rect`` (``x1 y1 x2 y2``), ``OUT/synth.json`` (the config).
    The folder is built under a temporary name and renamed when complete.

    Raises:
        InputError: ``out`` exists and is not an empty directory, or count < 1.
    """
    import json

    from tqdm import tqdm

    out = Path(out)
    if int(count) < 1:
        raise InputError(f"--count must be at least 1, got {count}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"output {out} already exists and is not an empty directory")
    base = cfg or SynthConfig()
    cfg = SynthConfig(**{**base.to_dict(), "size": int(size)})
    with atomic_dir(out, force=True, what="output") as tmp:  # out is absent or an empty folder (checked above)
        for sub in ("picture", "landmark", "bbox"):
            (tmp / sub).mkdir()
        chunk = 64
        jobs = [(str(tmp), seed, a, min(a + chunk, count), cfg, quality) for a in range(0, count, chunk)]
        bar = tqdm(total=count, desc="synth", unit="img", disable=not progress)
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(max_workers=workers) as pool:
                for n in pool.map(_write_range, jobs):
                    bar.update(n)
        else:
            for job in jobs:
                bar.update(_write_range(job))
        bar.close()
        meta = {"generator": "facelm.data.synth", "layout": JD106.name, "count": int(count), "seed": int(seed),
                "config": cfg.to_dict(), "note": "synthetic faces with exact 106-point ground truth"}
        (tmp / "synth.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out
