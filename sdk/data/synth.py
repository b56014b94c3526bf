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

:meth:`SynthConfig.realistic` turns on what the default distribution (kept bit-identical for
existing data sets) leaves out: yaw to 60 and pitch to 30 degrees with the contour on the visible
silhouette (:func:`outline_points_3d`), frown, brow raise, tongue and a wider mouth, eyeglasses,
hands, hair, masks and objects over the face, backgrounds and skin texture from real images that
ship in scikit-image (:data:`REAL_IMAGES`), hard shadows, motion blur, low contrast, grayscale and
JPEG. See docs/model_zoo.md ("Training faces").
"""
from __future__ import annotations

import dataclasses
import importlib.util
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

    Realistic features (all off by default, so the default distribution stays what it was;
    :meth:`realistic` turns them on):
        silhouette_contour: the contour (and forehead outline) follows the visible silhouette of
            the face surface under yaw and pitch (JD-106: on the far side the contour is the
            outline as seen, not hidden 3-D points); see :func:`outline_points_3d`.
        mouth_open_max: upper end of the mouth opening (face units; the default is the old 0.28).
        p_frown, p_brow_raise, p_tongue: probabilities of a frown (brows in and down, mouth
            corners down), a strong brow raise (surprise) and a tongue out of an open mouth.
        p_eyeglasses: glasses with lenses (clear or tinted, semi-transparent), bridge and temples.
        p_hand, p_side_hair, p_mask, p_object: a hand, a curtain of hair over one side of the
            face, a cloth mask over nose and mouth, a phone or microphone. All are drawn over the
            face; landmarks keep their true positions (the JD convention for occluded points).
        p_real_background: background cropped from a real photo or texture (:data:`REAL_IMAGES`).
        p_skin_texture, skin_texture_amp: real-texture detail on the skin, and its (min, max)
            relative amplitude.
        p_gray, p_low_contrast, p_shadow, p_motion_blur, p_jpeg, jpeg_quality: grayscale, reduced
            contrast, a hard-edged cast shadow, motion blur, JPEG round trip at a quality drawn
            from ``jpeg_quality`` (min, max).
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
    silhouette_contour: bool = False
    mouth_open_max: float = 0.28
    p_frown: float = 0.0
    p_brow_raise: float = 0.0
    p_tongue: float = 0.0
    p_eyeglasses: float = 0.0
    p_hand: float = 0.0
    p_side_hair: float = 0.0
    p_mask: float = 0.0
    p_object: float = 0.0
    p_real_background: float = 0.0
    p_skin_texture: float = 0.0
    skin_texture_amp: tuple[float, float] = (0.01, 0.035)
    p_gray: float = 0.0
    p_low_contrast: float = 0.0
    p_shadow: float = 0.0
    p_motion_blur: float = 0.0
    p_jpeg: float = 0.0
    jpeg_quality: tuple[int, int] = (15, 70)

    @classmethod
    def realistic(cls, **overrides) -> "SynthConfig":
        """The preset that covers what real faces do (issue 20): yaw up to 60 degrees and pitch
        up to 30 with the silhouette contour, wide mouth opening, frown, brow raise, tongue,
        eyeglasses, hands, side hair, masks, objects, real-photo backgrounds and skin texture,
        grayscale, low contrast, hard shadows, motion blur and JPEG. ``overrides`` replace fields."""
        base = dict(
            yaw=60.0, pitch=30.0, roll=30.0, silhouette_contour=True, mouth_open_max=0.45,
            p_mouth_open=0.4, p_smile=0.35, p_frown=0.15, p_brow_raise=0.15, p_tongue=0.08,
            p_glasses=0.0, p_eyeglasses=0.25, p_occlusion=0.1, p_hand=0.12, p_side_hair=0.15,
            p_mask=0.05, p_object=0.06, p_real_background=0.7, p_skin_texture=0.6,
            p_gray=0.12, p_low_contrast=0.2, p_shadow=0.2, p_motion_blur=0.1, p_jpeg=0.4,
        )
        return cls(**{**base, **overrides})

    @classmethod
    def preset(cls, name: str, **overrides) -> "SynthConfig":
        """A named preset (:data:`PRESETS`): ``default`` or ``realistic``; ``overrides`` replace fields."""
        if name not in PRESETS:
            raise InputError(f"unknown synthetic preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls.realistic(**overrides) if name == "realistic" else cls(**overrides)

    def __post_init__(self) -> None:
        if int(self.size) < 32:
            raise InputError(f"synthetic image size must be at least 32 px, got {self.size}")
        lo, hi = self.face_width
        if not 0.05 < lo <= hi <= 0.95:
            raise InputError(f"face_width must satisfy 0.05 < lo <= hi <= 0.95, got {self.face_width}")
        probs = {k: v for k, v in asdict(self).items() if k.startswith("p_")}
        bad = {k: v for k, v in probs.items() if not 0.0 <= float(v) <= 1.0}
        if bad:
            raise InputError(f"probabilities must lie in [0, 1], got {bad}")
        if not 0.03 < self.mouth_open_max <= 0.6:
            raise InputError(f"mouth_open_max must lie in (0.03, 0.6], got {self.mouth_open_max}")
        q0, q1 = self.jpeg_quality
        if not 1 <= q0 <= q1 <= 100:
            raise InputError(f"jpeg_quality must satisfy 1 <= min <= max <= 100, got {self.jpeg_quality}")

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------- face model


#: Names accepted by :meth:`SynthConfig.preset` and ``facelm synth --preset``.
PRESETS = ("default", "realistic")


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
    frown: float = 0.0
    tongue: float = 0.0


def sample_params(rng: np.random.Generator, cfg: SynthConfig) -> FaceParams:
    """Draw identity and expression parameters.

    The realistic expressions (``cfg.p_frown``, ``p_brow_raise``, ``p_tongue``) draw from ``rng``
    only when their probability is above zero, so the default distribution is unchanged.
    """
    u = rng.uniform
    open_ = u(0.03, cfg.mouth_open_max) if rng.random() < cfg.p_mouth_open else 0.0
    smile = u(0.2, 1.0) if rng.random() < cfg.p_smile else 0.0
    blink = rng.random() < cfg.p_blink
    both = rng.random() < 0.7
    b_l = u(0.6, 1.0) if blink else u(0.0, 0.15)
    b_r = (b_l if both else u(0.0, 0.15)) if blink else u(0.0, 0.15)
    p = FaceParams(
        face_w=u(0.92, 1.08), jaw_len=u(1.30, 1.60), jaw_square=u(2.0, 3.2),
        eye_x=u(0.38, 0.47), eye_y=u(-0.19, -0.10), eye_w=u(0.14, 0.19), eye_open=u(0.055, 0.095),
        brow_gap=u(0.20, 0.30), brow_arch=u(0.02, 0.08), brow_thick=u(0.04, 0.08),
        nose_y=u(0.26, 0.38), nose_w=u(0.14, 0.21), nose_depth=u(0.30, 0.50),
        mouth_y=u(0.66, 0.80), mouth_w=u(0.27, 0.38), lip_upper=u(0.05, 0.10), lip_lower=u(0.06, 0.12),
        mouth_open=open_, smile=smile, blink_left=b_l, blink_right=b_r,
        gaze=(u(-0.35, 0.35), u(-0.25, 0.25)), brow_raise=u(-0.03, 0.06), asym=u(-0.03, 0.03),
    )
    return _sample_expressions(rng, cfg, p)


def _sample_expressions(rng: np.random.Generator, cfg: SynthConfig, p: FaceParams) -> FaceParams:
    """Frown (replaces a smile), strong brow raise, tongue (only with the mouth open)."""
    over: dict = {}
    if cfg.p_frown > 0 and rng.random() < cfg.p_frown:
        over.update(frown=float(rng.uniform(0.3, 1.0)), smile=0.0)
    if cfg.p_brow_raise > 0 and rng.random() < cfg.p_brow_raise:
        over.update(brow_raise=float(rng.uniform(0.08, 0.17)), brow_arch=p.brow_arch + float(rng.uniform(0.0, 0.03)))
    if cfg.p_tongue > 0 and p.mouth_open > 0.1 and rng.random() < cfg.p_tongue:
        over.update(tongue=float(rng.uniform(0.3, 1.0)))
    return dataclasses.replace(p, **over) if over else p


def _surface_z(x: np.ndarray | float) -> np.ndarray:
    """Depth of a cylinder-like face surface at horizontal position x."""
    x = np.asarray(x, dtype=np.float64)
    return 0.75 * np.sqrt(np.clip(1.0 - (x / 1.1) ** 2, 0.0, None))


def face_points_3d(p: FaceParams) -> np.ndarray:
    """The 106 landmarks of the face model.

    Returns:
        (106, 3) float64 in face-model units.
    """
    P = _neutral_face(p)
    _apply_expression(P, p)
    P[104], P[105] = P[74], P[83]
    return P


def _neutral_face(p: FaceParams) -> np.ndarray:
    """The identity's landmarks before any expression: the image-left half drawn, mirrored, made
    slightly asymmetric. Returns (106, 3) float64 face-model units (104/105 not yet set)."""
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
    return P


def _apply_expression(P: np.ndarray, p: FaceParams) -> None:
    """Move the (106, 3) neutral landmarks ``P`` in place by the expression of ``p`` (after the
    mirroring, so it may be asymmetric): open mouth, smile, frown, blinks, gaze."""
    my, mw = p.mouth_y, p.mouth_w
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
    if p.frown > 0:
        _apply_frown(P, p.frown)
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


#: Frown displacements (face units per unit of ``FaceParams.frown``): mouth points pulled down;
#: brow points (image-left index, its image-right twin, weight) pulled down and toward the midline.
_FROWN_MOUTH_DOWN = ((84, 0.05), (96, 0.05), (90, 0.05), (100, 0.05), (85, 0.02), (95, 0.02), (89, 0.02), (91, 0.02))
_FROWN_BROW = ((37, 42, 1.0), (38, 50, 1.0), (36, 43, 0.6), (39, 49, 0.6), (35, 44, 0.25), (40, 48, 0.25))
_FROWN_BROW_DOWN, _FROWN_BROW_IN = 0.07, 0.035


def _apply_frown(P: np.ndarray, f: float) -> None:
    """Move the (106, 3) model points ``P`` in place by a frown of strength ``f`` (0..1)."""
    for i, dy in _FROWN_MOUTH_DOWN:
        P[i, 1] += dy * f
    for a, b, w in _FROWN_BROW:
        P[[a, b], 1] += _FROWN_BROW_DOWN * f * w
        P[a, 0] += _FROWN_BROW_IN * f * w  # image-left brow (x < 0) moves right, toward x = 0
        P[b, 0] -= _FROWN_BROW_IN * f * w


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


# ---------------------------------------------------------------------------- visible outline
#
# The face surface behind the contour is a family of horizontal "ribs" (face units):
#     X(phi, t) = (xo(phi) sin t, y(phi), zb(phi) + d(phi) sqrt(cos t)),   t in [-pi/2, pi/2],
# one rib per height: t = 0 is the face's front midline, t = -pi/2 / +pi/2 the image-left /
# image-right rib end, which is the frontal contour point of face_points_3d exactly. ``phi`` is
# the contour's own parameter (jaw: |phi| of face_points_3d; forehead: the arc angle from the top).
# Under a pose, the contour point on each rib is where the camera ray grazes the surface (the
# normal dX/dphi x dX/dt is orthogonal to the ray): the silhouette. When the rib's half faces the
# camera all the way to its end, the end (the face's boundary) is the outline and stays the point.

#: Depth of the jaw ribs' front over their ends at ear level (d = _CHEEK_DEPTH sin(phi)^2) and of
#: the forehead ribs' (d = _FOREHEAD_DEPTH sin(psi)^2). Both vanish at the chin and the crown.
_CHEEK_DEPTH = 0.6
_FOREHEAD_DEPTH = 0.6
# The square root makes the ribs fuller than an ellipse (flat front, round sides), so that the
# eyes and brows of face_points_3d lie on or inside the surface.
_FOREHEAD_ANGLES = np.linspace(0.08, math.pi - 0.08, 9)


@dataclass(frozen=True)
class Ribs:
    """Rib curves of the face surface (arrays of R ribs, face units; derivatives per radian of phi).

    Attributes:
        xo, y, zb, d: half-width, height, end depth and front bulge of each rib, (R,).
        dxo, dy, dzb, dd: their derivatives along the rib family parameter, (R,).
        side: (R,) -1 for the image-left half (t <= 0), +1 for the image-right half.
        orient: +1 where dX/dphi x dX/dt points out of the face, -1 where it points in.
    """

    xo: np.ndarray
    y: np.ndarray
    zb: np.ndarray
    d: np.ndarray
    dxo: np.ndarray
    dy: np.ndarray
    dzb: np.ndarray
    dd: np.ndarray
    side: np.ndarray
    orient: np.ndarray

    def take(self, rows: np.ndarray) -> "Ribs":
        """The ribs ``rows`` (an index array)."""
        return Ribs(*(getattr(self, k.name)[rows] for k in dataclasses.fields(Ribs)))

    @staticmethod
    def concat(*parts: "Ribs") -> "Ribs":
        """All ribs of ``parts`` in order."""
        return Ribs(*(np.concatenate([getattr(r, k.name) for r in parts]) for k in dataclasses.fields(Ribs)))

    def points(self, t: np.ndarray) -> np.ndarray:
        """Surface points at rib angles ``t`` ((R,) or (R, M)) -> (R, 3) or (R, M, 3)."""
        t = np.asarray(t, dtype=np.float64)
        ex = (slice(None),) + (None,) * (t.ndim - 1)
        g = np.sqrt(np.clip(np.cos(t), 0.0, None))
        return np.stack([self.xo[ex] * np.sin(t), np.broadcast_to(self.y[ex], t.shape),
                         self.zb[ex] + self.d[ex] * g], axis=-1)

    def grazing_w(self, w: np.ndarray, cam: np.ndarray) -> np.ndarray:
        """``w * orient * n . (X - cam)`` at t = side (pi/2 - w^2), n = dX/dphi x dX/dt: negative
        where the surface faces the camera, zero on the silhouette, smooth in w (0 < w <= sqrt(pi/2)).

        Args:
            w: (R,) or (R, M).
        """
        w = np.asarray(w, dtype=np.float64)
        ex = (slice(None),) + (None,) * (w.ndim - 1)
        w2 = w * w
        ct, st = np.sin(w2), np.cos(w2) * self.side[ex]  # cos t, sin t
        g = np.sqrt(ct)
        wdg = -0.5 * st * w / g  # w dg/dt, finite as w -> 0 (g ~ w)
        xo, d, dy = self.xo[ex], self.d[ex], self.dy[ex]
        dyc = self.y[ex] - cam[1]
        f = (dy * d * wdg * (xo * st - cam[0])
             + dyc * (xo * ct * (self.dzb[ex] + self.dd[ex] * g) * w - self.dxo[ex] * d * st * wdg)
             - dy * xo * ct * (self.zb[ex] - cam[2] + d * g) * w)
        return self.orient[ex] * f


def jaw_ribs(p: FaceParams, phi: np.ndarray, side: np.ndarray) -> Ribs:
    """Ribs behind contour points at jaw parameter ``phi`` ((R,), 0 < phi <= pi/2; the chin is 0)
    on ``side`` ((R,) of -1 / +1), with the identity asymmetry and the mouth opening of
    :func:`face_points_3d` applied (their ends are its contour points 0..15 and 17..32)."""
    phi = np.asarray(phi, dtype=np.float64)
    side = np.asarray(side, dtype=np.float64)
    e = 2.0 / p.jaw_square
    s, c = np.sin(phi), np.cos(phi)
    ear_y = p.eye_y - 0.05
    xo, dxo = p.face_w * s**e, p.face_w * e * s ** (e - 1.0) * c
    y = ear_y + p.jaw_len * c**e + np.where(side > 0, p.asym * 0.3, 0.0)
    dy = -p.jaw_len * e * c ** (e - 1.0) * s
    if p.mouth_open > 0:
        chin_y, my = ear_y + p.jaw_len, p.mouth_y
        w = (y - my) / (chin_y - my)
        dy = dy * np.where((w > 0) & (w < 1), 1.0 + 0.8 * p.mouth_open / (chin_y - my), 1.0)
        y = y + 0.8 * p.mouth_open * np.clip(w, 0.0, 1.0)
    zb, dzb = 0.05 + 0.55 * c**1.5, -0.825 * np.sqrt(c) * s
    d, dd = _CHEEK_DEPTH * s**2, 2.0 * _CHEEK_DEPTH * s * c
    return Ribs(xo, y, zb, d, dxo, dy, dzb, dd, side, np.ones_like(phi))


def forehead_ribs(p: FaceParams, psi: np.ndarray, side: np.ndarray) -> Ribs:
    """Ribs behind forehead-arc points at ``psi`` = |pi/2 - arc angle| ((R,), 0 < psi < pi/2) on
    ``side``; their ends are :func:`forehead_points_3d`'s points."""
    psi = np.asarray(psi, dtype=np.float64)
    side = np.asarray(side, dtype=np.float64)
    s, c = np.sin(psi), np.cos(psi)
    ear_y = p.eye_y - 0.05
    y, dy = ear_y - 0.95 * c**0.8, 0.95 * 0.8 * c ** (-0.2) * s
    return Ribs(p.face_w * s, y, 0.05 + 0.45 * c, _FOREHEAD_DEPTH * s**2, p.face_w * c, dy, -0.45 * s,
                2.0 * _FOREHEAD_DEPTH * s * c, side, -np.ones_like(psi))


def camera_in_model(rot: np.ndarray, distance: float) -> np.ndarray:
    """(3,) camera position in face-model coordinates for :func:`project`'s rotation and distance."""
    centre = np.array([0.0, 0.25, -0.4])
    return rot.T @ (np.array([0.0, 0.0, float(distance)]) - centre) + centre


def silhouette_angles(r: Ribs, cam: np.ndarray, grid: int = 17, steps: int = 40) -> np.ndarray:
    """Rib angle of the outline on each rib: the first grazing angle from the front (t = 0) toward
    the rib's end, or the end (side * pi/2) when the whole half faces the camera.

    The search runs in w = sqrt(pi/2 - |t|), in which the rib (g ~ w near the end) and the
    grazing function (:meth:`Ribs.grazing_w`) are smooth: a sign change is bracketed on a
    ``grid`` from the front to w = 1e-6 (1e-12 rad, about 1e-6 face units short of the end) and
    refined by at most ``steps`` Illinois (regula falsi) steps, until no w moves by 1e-12.

    Returns:
        (R,) angles in radians.
    """
    w = np.linspace(math.sqrt(math.pi / 2), 1e-6, grid)
    f = r.grazing_w(np.broadcast_to(w, (len(r.side), grid)), cam)
    away = f >= 0.0
    first = np.where(away.any(axis=1), away.argmax(axis=1), grid)
    out = r.side * (math.pi / 2)
    # Where even the rib's front faces away, its midline is kept. In 3000 preset faces that
    # happened only to forehead ribs near the crown (43 faces, yaw and pitch both large), which
    # shape the skin polygon, not landmarks; no jaw rib.
    out[first == 0] = 0.0
    rows = np.nonzero((first > 0) & (first < grid))[0]
    if rows.size == 0:
        return out
    sub = r.take(rows)
    k = first[rows]
    a, b = w[k - 1], w[k]
    fa, fb = f[rows, k - 1], f[rows, k]
    for _ in range(steps):
        x = b - fb * (b - a) / np.where(fb != fa, fb - fa, 1.0)
        fx = sub.grazing_w(x, cam)
        same = np.sign(fx) == np.sign(fb)
        fa = np.where(same, fa * 0.5, fb)  # Illinois: halve the stale end's value
        a = np.where(same, a, b)
        done = np.all(np.abs(x - b) < 1e-12)
        b, fb = x, fx
        if done:
            break
    out[rows] = sub.side * (math.pi / 2 - b**2)
    return out


#: Jaw parameter |phi| of contour points 0..15 (32 - i is each one's image-right twin).
_JAW_PHI = (16 - np.arange(16)) / 16.0 * (math.pi / 2) * 0.97
_CONTOUR_SIDES = np.r_[0:16, 32:16:-1]  # contour indices of the 32 jaw ribs, in rib order
_FOREHEAD_SIDES = np.r_[0:4, 5:9]  # forehead indices of the 8 forehead ribs


def _outline_ribs(p: FaceParams) -> Ribs:
    """The 32 jaw ribs (contour order :data:`_CONTOUR_SIDES`) then the 8 forehead ribs."""
    ang = _FOREHEAD_ANGLES[_FOREHEAD_SIDES]
    return Ribs.concat(jaw_ribs(p, np.r_[_JAW_PHI, _JAW_PHI], np.r_[-np.ones(16), np.ones(16)]),
                       forehead_ribs(p, np.abs(math.pi / 2 - ang), np.sign(np.cos(ang))))


def _apply_outline(p: FaceParams, rot: np.ndarray, distance: float, model: np.ndarray, forehead: np.ndarray) -> None:
    """Replace contour 0..15, 17..32 of ``model`` (106, 3) and forehead 0..3, 5..8 of ``forehead``
    (9, 3) in place by the visible outline."""
    ribs = _outline_ribs(p)
    pts = ribs.points(silhouette_angles(ribs, camera_in_model(rot, distance)))
    model[_CONTOUR_SIDES] = pts[:32]
    forehead[_FOREHEAD_SIDES] = pts[32:]


def outline_points_3d(p: FaceParams, rot: np.ndarray, distance: float) -> tuple[np.ndarray, np.ndarray]:
    """The contour 0..32 and the forehead arc as seen from the camera (the visible outline).

    Args:
        rot, distance: the head rotation (:func:`rotation_matrix`) and camera distance of :func:`project`.
    Returns:
        ``(contour (33, 3), forehead (9, 3))`` face-model points on the face surface; the chin
        (contour 16) and the crown (forehead 4), where the ribs shrink to a point, are the model's.
    """
    model, forehead = face_points_3d(p), forehead_points_3d(p)
    _apply_outline(p, rot, distance, model, forehead)
    return model[:33], forehead


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


def place_face(p: FaceParams, pose: Pose, size: int,
               silhouette: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotate, project and place the face model in a ``size`` x ``size`` image.

    With ``silhouette`` the contour and the forehead arc are the visible outline
    (:func:`outline_points_3d`); otherwise the model's fixed 3-D points.

    The contour's width (or, when rolled, the landmarks' largest extent) spans ``pose.width *
    size``; the landmarks' box centre sits at the image centre plus ``pose.offset``; then the face
    is shifted so that every landmark keeps a 2 px margin.

    Returns:
        ``(landmarks, forehead, unit)``: (106, 2) and (9, 2) float64 pixel coordinates (pixel
        centres at integers) and the scale in pixels per face unit.
    """
    rot = rotation_matrix(pose.yaw, pose.pitch, pose.roll)
    model, forehead = face_points_3d(p), forehead_points_3d(p)
    if silhouette:
        _apply_outline(p, rot, pose.distance, model, forehead)
    proj = project(np.concatenate([model, forehead]), rot, pose.distance)
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


# ---------------------------------------------------------------------------- realistic layers
#
# Every layer below draws from ``rng`` only when its probability in SynthConfig is above zero, so
# the default configuration renders exactly what it did before they existed.

#: Real images that ship inside scikit-image (``skimage/data``), used as backgrounds and, in
#: grayscale, as skin texture: name -> (file, source and licence as the package states them).
#: No photo with a human face is used (astronaut and camera are left out).
REAL_IMAGES: dict[str, tuple[str, str]] = {
    "coffee": ("coffee.png", "Pikolo Espresso Bar, photo Rachel Michetti, CC0"),
    "rocket": ("rocket.jpg", "SpaceX, DSCOVR launch on Falcon 9, public domain"),
    "chelsea": ("chelsea.png", "Chelsea the cat, photo Stefan van der Walt, CC0"),
    "hubble_deep_field": ("hubble_deep_field.jpg", "NASA / HubbleSite, Hubble eXtreme Deep Field, public domain"),
    "immunohistochemistry": ("ihc.png", "Center for Microscopy And Molecular Imaging (CMMI), no known copyright restrictions"),
    "brick": ("brick.png", "CC0Textures Bricks25, CC0"),
    "grass": ("grass.png", "DeviantArt linolafett Grass-01, CC0"),
    "gravel": ("gravel.png", "CC0Textures Gravel04, CC0"),
    "coins": ("coins.png", "Brooklyn Museum Collection, Greek coins from Pompeii, no known copyright restrictions"),
    "page": ("page.png", "scikit-image scanned page sample"),
    "text": ("text.png", "Wikipedia File:Corner.png, public domain"),
    "moon": ("moon.png", "scikit-image moon surface sample"),
}
#: Grayscale textures whose fine, roughly isotropic detail modulates the skin (brick and grass
#: were tried and left out: their stripes show on the face).
SKIN_TEXTURES = ("gravel", "moon")

_REAL_BANK: dict[str, np.ndarray] = {}
_SKIN_BANK: dict[str, np.ndarray] = {}


def _skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("real backgrounds and skin textures (SynthConfig.p_real_background, p_skin_texture) "
                         "read images shipped in scikit-image; install it (pip install 'facelm[dev]') or set them to 0")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def real_image(name: str) -> np.ndarray:
    """One of :data:`REAL_IMAGES` as (H, W, 3) uint8 RGB, longest side at most 512 px (cached)."""
    if name not in _REAL_BANK:
        if name not in REAL_IMAGES:
            raise InputError(f"unknown real image {name!r}; known: {sorted(REAL_IMAGES)}")
        from PIL import Image  # a matplotlib dependency; reads these PNGs without libpng's iCCP warnings

        path = _skimage_data_dir() / REAL_IMAGES[name][0]
        try:
            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"))
        except OSError as e:
            raise InputError(f"could not read {path} (scikit-image data file): {e}") from e
        k = 512.0 / max(img.shape[:2])
        if k < 1.0:
            img = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        _REAL_BANK[name] = np.ascontiguousarray(img)
    return _REAL_BANK[name]


def _skin_detail(name: str) -> np.ndarray:
    """(H, W) float32 high-pass detail of a grayscale texture, unit std, clipped at 2.5 (cached)."""
    if name not in _SKIN_BANK:
        g = cv2.cvtColor(real_image(name), cv2.COLOR_RGB2GRAY).astype(np.float32)
        hp = g - cv2.GaussianBlur(g, (0, 0), 2.0)
        _SKIN_BANK[name] = np.clip(hp / max(float(hp.std()), 1e-6), -2.5, 2.5)  # no deep cracks
    return _SKIN_BANK[name]


def _real_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop of a random :data:`REAL_IMAGES` photo, resized, maybe mirrored, colour-cast."""
    names = sorted(REAL_IMAGES)
    src = real_image(names[int(rng.integers(0, len(names)))])
    h, w = src.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 1.0))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    img = cv2.resize(src[y0:y0 + side, x0:x0 + side], (size, size), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.5:
        img = cv2.flip(img, 1)
    cast = rng.uniform(0.6, 1.15, 3)
    return cv2.multiply(img, (float(cast[0]), float(cast[1]), float(cast[2]), 0.0))  # per-channel, saturating


def _skin_texture(img: np.ndarray, rng: np.random.Generator, f: _Sketch, cfg: SynthConfig) -> None:
    """Modulate the skin (contour + forehead polygon) in place by a real texture's fine detail."""
    poly = np.concatenate([f.lm[0:33], f.fh])
    s = img.shape[0]
    x0, y0 = np.clip(np.floor(poly.min(axis=0)).astype(int) - 1, 0, s)
    x1, y1 = np.clip(np.ceil(poly.max(axis=0)).astype(int) + 2, 0, s)
    if x1 - x0 < 4 or y1 - y0 < 4:
        return
    tex = _skin_detail(SKIN_TEXTURES[int(rng.integers(0, len(SKIN_TEXTURES)))])
    th, tw = tex.shape
    zoom = rng.uniform(0.4, 1.5)  # texture pixels per image pixel
    cw, ch = min(tw, max(4, int((x1 - x0) * zoom))), min(th, max(4, int((y1 - y0) * zoom)))
    ty, tx = int(rng.integers(0, th - ch + 1)), int(rng.integers(0, tw - cw + 1))
    detail = cv2.resize(tex[ty:ty + ch, tx:tx + cw], (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
    mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
    _poly(mask, poly - [x0, y0], 255)
    gain = 1.0 + float(rng.uniform(*cfg.skin_texture_amp)) * detail * (mask.astype(np.float32) / 255.0)
    roi = img[y0:y1, x0:x1]
    roi[...] = cv2.multiply(roi, cv2.merge([gain, gain, gain]), dtype=cv2.CV_8U)


def _draw_clipped_to_face(img: np.ndarray, f: _Sketch, draw) -> None:
    """Run ``draw()`` (which paints into ``img``) and undo what it painted outside the face's
    outline (contour + forehead): a far eye or brow behind a turned cheek stays hidden."""
    before = img.copy()
    draw()
    outside = np.full(img.shape[:2], 255, np.uint8)
    cv2.fillPoly(outside, [_fx(np.concatenate([f.lm[0:33], f.fh]))], 0, cv2.LINE_8, _SHIFT)
    cv2.copyTo(before, outside, img)


def _draw_nose_fill(img: np.ndarray, f: _Sketch) -> None:
    """The nose as a filled skin shape (hull of 51..65), so that it stands out of a turned face."""
    hull = cv2.convexHull(_fx(f.lm[51:66]))
    cv2.fillPoly(img, [hull.reshape(-1, 2)], _col(f.skin * 1.03), cv2.LINE_AA, _SHIFT)


def _draw_tongue(img: np.ndarray, f: _Sketch) -> None:
    """A tongue out of the open mouth, over the lower lip (the lip points keep their positions)."""
    lm, t = f.lm, f.params.tongue
    top, bottom = 0.5 * (lm[97] + lm[99]), lm[93]
    down = bottom - top
    width = 0.36 * np.linalg.norm(lm[100] - lm[96])
    centre = top + down * (0.55 + 0.35 * t)
    length = 0.5 * np.linalg.norm(down) * (0.8 + 0.7 * t)
    ang = math.degrees(math.atan2(down[1], down[0]))
    col = np.array([200.0, 80.0, 90.0]) * (0.6 + 0.4 * f.skin.mean() / 245.0)
    _ellipse(img, centre, (length, width), ang, _col(col))
    _line(img, np.stack([centre - down * 0.25, centre + down * 0.2]), _col(col * 0.7), 1)


def _lens_outline(centre: np.ndarray, u: np.ndarray, half_w: float, half_h: float, sq: float) -> np.ndarray:
    """(40, 2) superellipse (exponent ``sq``) around ``centre`` with axes along ``u`` and its normal."""
    t = np.linspace(0.0, 2 * math.pi, 40, endpoint=False)
    cx, sx = np.cos(t), np.sin(t)
    a = half_w * np.sign(cx) * np.abs(cx) ** (2.0 / sq)
    b = half_h * np.sign(sx) * np.abs(sx) ** (2.0 / sq)
    v = np.array([-u[1], u[0]])
    return centre + a[:, None] * u + b[:, None] * v


def _draw_eyeglasses(img: np.ndarray, rng: np.random.Generator, f: _Sketch) -> None:
    """Two lenses (clear or tinted, alpha-blended, with a reflection), frame, bridge and temples."""
    lm, unit = f.lm, f.unit
    frame = _col(rng.integers(0, 90, 3) if rng.random() < 0.7 else rng.uniform(150, 220) * np.ones(3))
    thick = max(1, int(round(rng.uniform(0.015, 0.045) * unit)))
    tinted = rng.random() < 0.3
    alpha = rng.uniform(0.7, 0.9) if tinted else rng.uniform(0.06, 0.2)
    lens_col = _col(rng.uniform(10, 60, 3)) if tinted else _col(rng.uniform(200, 250, 3))
    sq, kw, kh = rng.uniform(2.0, 5.0), rng.uniform(1.25, 1.55), rng.uniform(0.12, 0.18)
    lenses, ends = [], []
    for outer, inner, ring in ((66, 70, np.r_[66:74]), (79, 75, np.r_[75:83])):
        axis = lm[inner] - lm[outer] if outer == 66 else lm[outer] - lm[inner]  # image left -> right
        half = 0.5 * np.linalg.norm(axis)
        u = axis / max(np.linalg.norm(axis), 1e-6)
        c = lm[ring].mean(axis=0) + np.array([-u[1], u[0]]) * 0.02 * unit
        lens = _lens_outline(c, u, half * kw, kh * unit, sq)
        lenses.append(lens)
        ends.append((c - u * half * kw, c + u * half * kw))
    over = img.copy()
    for lens in lenses:
        _poly(over, lens, lens_col)
    cv2.addWeighted(over, alpha, img, 1.0 - alpha, 0.0, dst=img)
    for lens in lenses:
        if rng.random() < 0.5:  # a reflection streak
            a, b = lens[int(rng.integers(0, 10))], lens[20 + int(rng.integers(0, 10))]
            _line(img, np.stack([a * 0.7 + b * 0.3, a * 0.4 + b * 0.6]), (245, 245, 245), max(1, thick))
        _line(img, lens, frame, thick, closed=True)
    _line(img, np.stack([ends[0][1], ends[1][0]]), frame, thick)  # bridge
    for (end, ear) in ((ends[0][0], lm[1]), (ends[1][1], lm[31])):
        _line(img, np.stack([end, ear]), frame, thick)  # temples toward the ears


def _draw_hand(img: np.ndarray, rng: np.random.Generator, f: _Sketch) -> None:
    """A hand (palm, four fingers, thumb, forearm) reaching over a random part of the face."""
    lm, unit = f.lm, f.unit
    target = lm[int(rng.choice([16, 8, 24, 87, 93, 54, 74, 83, 4, 28, 60]))] + rng.normal(0, 0.1, 2) * unit
    ang = math.radians(rng.uniform(-160.0, -20.0))  # fingers point up-ish (image y is down)
    d = np.array([math.cos(ang), math.sin(ang)])
    n = np.array([-d[1], d[0]])
    k = rng.uniform(0.8, 1.25) * unit
    skin = f.skin * rng.uniform(0.88, 1.1, 3)
    palm = target - d * 0.45 * k
    arm_col = _col(skin * 0.95) if rng.random() < 0.5 else _col(rng.integers(0, 256, 3))
    arm = np.array([palm + n * 0.3 * k, palm - n * 0.3 * k, palm - n * 0.36 * k - d * 3.0 * k,
                    palm + n * 0.36 * k - d * 3.0 * k])
    _poly(img, arm, arm_col)
    _ellipse(img, palm, (0.38 * k, 0.34 * k), math.degrees(ang), _col(skin))
    width = max(2, int(0.13 * k))
    for off, length in ((-0.22, 0.55), (-0.075, 0.64), (0.075, 0.6), (0.22, 0.48)):
        base = palm + d * 0.2 * k + n * off * k
        tip = base + (d + n * off * 0.3) / np.linalg.norm(d + n * off * 0.3) * length * k
        _line(img, np.stack([base, tip]), _col(skin * 0.72), width + 2)
        _line(img, np.stack([base, tip]), _col(skin), width)
    side = 1.0 if rng.random() < 0.5 else -1.0
    thumb = palm + n * side * 0.3 * k
    _line(img, np.stack([thumb, thumb + (n * side * 0.9 + d * 0.6) * 0.45 * k]), _col(skin * 0.72), width + 3)
    _line(img, np.stack([thumb, thumb + (n * side * 0.9 + d * 0.6) * 0.45 * k]), _col(skin), width + 1)


def _draw_side_hair(img: np.ndarray, rng: np.random.Generator, f: _Sketch) -> None:
    """A curtain of hair over one side of the face, from the forehead down past the cheek."""
    lm, fh, unit = f.lm, f.fh, f.unit
    left = rng.random() < 0.5
    down = int(rng.integers(4, 13))
    edge = lm[0:down + 1] if left else lm[32:31 - down:-1]
    top = fh[6:9] if left else fh[2::-1]
    centre = lm[0:33].mean(axis=0)
    inward = (centre - edge) / np.maximum(np.linalg.norm(centre - edge, axis=1, keepdims=True), 1e-6)
    depth = rng.uniform(0.1, 0.5) * unit * np.sin(np.linspace(0.4, 1.0, len(edge)) * math.pi / 2)
    inner = edge + inward * depth[:, None]
    outer = edge - inward * 0.25 * unit
    poly = np.concatenate([top, outer, inner[::-1]])
    _poly(img, poly, f.hair)
    for _ in range(int(rng.integers(2, 6))):  # a few strands
        t = rng.uniform(0.0, 1.0)
        a = top[0] * (1 - t) + top[-1] * t
        _line(img, np.stack([a, inner[int(rng.integers(0, len(inner)))]]), _col(np.asarray(f.hair) * 0.7), 1)


def _draw_mask(img: np.ndarray, rng: np.random.Generator, f: _Sketch) -> None:
    """A cloth face mask over the nose, mouth and chin, with ear loops and folds."""
    lm = f.lm
    col = np.array(_col(rng.choice([[225, 235, 245], [120, 170, 220], [30, 30, 35], [235, 235, 235]])), float)
    col = col * rng.uniform(0.9, 1.05)
    top = 0.5 * (lm[52] + lm[53])
    poly = np.concatenate([lm[3:30], top[None]])
    _poly(img, poly, _col(col))
    for k in (0.35, 0.55, 0.75):  # folds
        a, b = lm[5] * (1 - k) + top * k, lm[27] * (1 - k) + top * k
        _line(img, np.stack([a, 0.5 * (a + b) + [0, 0.02 * f.unit], b]), _col(col * 0.8), 1)
    for a, b in ((3, 1), (29, 31)):
        _line(img, lm[[a, b]], _col(col * 0.9), max(1, int(0.02 * f.unit)))


def _draw_object(img: np.ndarray, rng: np.random.Generator, f: _Sketch) -> None:
    """A phone held at one ear or a microphone in front of the mouth."""
    lm, unit = f.lm, f.unit
    if rng.random() < 0.5:
        ear = lm[int(rng.choice([2, 30]))]
        ang = math.radians(rng.uniform(-30, 30) + 90.0)
        u = np.array([math.cos(ang), math.sin(ang)])
        v = np.array([-u[1], u[0]])
        hl, hw = 0.55 * unit, 0.27 * unit
        c = ear + u * 0.2 * unit
        _poly(img, np.array([c - u * hl - v * hw, c + u * hl - v * hw, c + u * hl + v * hw, c - u * hl + v * hw]),
              _col(rng.uniform(10, 80, 3)))
    else:
        head = lm[93] + np.array([rng.uniform(-0.2, 0.2), rng.uniform(0.15, 0.45)]) * unit
        r = rng.uniform(0.14, 0.22) * unit
        _line(img, np.stack([head, head + [rng.uniform(-0.3, 0.3) * unit, 2.5 * unit]]), (30, 30, 30), max(2, int(0.12 * unit)))
        _ellipse(img, head, (r, r * 1.15), 0, _col(rng.uniform(40, 90) * np.ones(3)))
        for k in np.linspace(-0.7, 0.7, 4):
            _line(img, np.stack([head + [-r * 0.9, k * r], head + [r * 0.9, k * r]]), (25, 25, 25), 1)


def _draw_extras(img: np.ndarray, rng: np.random.Generator, f: _Sketch, cfg: SynthConfig) -> None:
    """The realistic occluders, in depth order: side hair, eyeglasses, mask, object, hand."""
    for p, layer in ((cfg.p_side_hair, _draw_side_hair), (cfg.p_eyeglasses, _draw_eyeglasses),
                     (cfg.p_mask, _draw_mask), (cfg.p_object, _draw_object), (cfg.p_hand, _draw_hand)):
        if p > 0 and rng.random() < p:
            layer(img, rng, f)


def _hard_shadow(rng: np.random.Generator, imgf: np.ndarray) -> np.ndarray:
    """Darken one side of a random line near the image centre (a cast shadow with a sharp edge)."""
    s = imgf.shape[0]
    ang = rng.uniform(0, 2 * math.pi)
    u = np.array([math.cos(ang), math.sin(ang)])
    v = np.array([-u[1], u[0]])
    c = (rng.uniform(0.3, 0.7, 2) * s)
    wob = c + v * rng.uniform(-0.15, 0.15) * s
    poly = np.array([c - u * 2 * s, wob, c + u * 2 * s, c + u * 2 * s + v * 3 * s, c - u * 2 * s + v * 3 * s])
    mask = np.zeros((s, s), np.float32)
    _poly(mask, poly, 1.0)
    edge = rng.uniform(0.0, 1.5)
    if edge > 0.3:
        mask = cv2.GaussianBlur(mask, (0, 0), edge)
    gain = 1.0 - float(rng.uniform(0.3, 0.65)) * mask
    return cv2.multiply(imgf, cv2.merge([gain, gain, gain]))


def _motion_kernel(rng: np.random.Generator) -> np.ndarray:
    """A centred, point-symmetric line kernel (so the blur moves no landmark), 3..9 px long."""
    length = rng.uniform(3.0, 9.0)
    ang = rng.uniform(0, math.pi)
    r = int(math.ceil(length / 2))
    ys, xs = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float32)
    u = np.array([math.cos(ang), math.sin(ang)], np.float32)
    along = xs * u[0] + ys * u[1]
    across = np.abs(-xs * u[1] + ys * u[0])
    k = np.clip(1.0 - across, 0.0, None) * np.clip(length / 2 + 0.5 - np.abs(along), 0.0, 1.0)
    return k / k.sum()


def _degrade_extra(rng: np.random.Generator, cfg: SynthConfig, img: np.ndarray) -> np.ndarray:
    """Grayscale, then a JPEG round trip ((S, S, 3) uint8 RGB in and out)."""
    if cfg.p_gray > 0 and rng.random() < cfg.p_gray:
        img = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
    if cfg.p_jpeg > 0 and rng.random() < cfg.p_jpeg:
        q = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q])
        if ok:
            img = cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return img


def draw_face(rng: np.random.Generator, cfg: SynthConfig, p: FaceParams, pose: Pose,
              lm: np.ndarray, fh: np.ndarray, unit: float) -> np.ndarray:
    """Draw the background and the face layers (head, brows and eyes, nose and mouth, covers).

    Args:
        lm, fh, unit: from :func:`place_face`.
    Returns:
        (size, size, 3) uint8 RGB before lighting, blur and noise (:func:`degrade`).
    """
    if cfg.p_real_background > 0 and rng.random() < cfg.p_real_background:
        img = _real_background(rng, cfg.size)
    else:
        img = _background(rng, cfg)
    skin = _skin(rng)
    hair = _col(rng.uniform(10, 120, 3) * rng.uniform(0.3, 1.6))
    sketch = _Sketch(lm, fh, unit, pose.roll, p, skin, hair)
    light = _draw_head(img, rng, sketch)
    if cfg.p_skin_texture > 0 and rng.random() < cfg.p_skin_texture:
        _skin_texture(img, rng, sketch, cfg)
    if cfg.silhouette_contour:
        _draw_clipped_to_face(img, sketch, lambda: _draw_brows_and_eyes(img, rng, sketch))
        _draw_nose_fill(img, sketch)
    else:
        _draw_brows_and_eyes(img, rng, sketch)
    _draw_nose_and_mouth(img, rng, sketch, light)
    if p.tongue > 0:
        _draw_tongue(img, sketch)
    _draw_covers(img, rng, sketch, cfg)
    _draw_extras(img, rng, sketch, cfg)
    return img


def degrade(rng: np.random.Generator, cfg: SynthConfig, img: np.ndarray) -> np.ndarray:
    """Lighting (a smooth multiplicative field times a colour cast), then maybe a hard shadow, blur,
    motion blur, low contrast, noise, grayscale and JPEG (the ones after blur only where enabled).

    Args:
        img: (S, S, 3) uint8 RGB.
    Returns:
        (S, S, 3) uint8 RGB (a new array).
    """
    s = img.shape[0]
    light_small = (rng.uniform(0.55, 1.25, (2, 2, 1)) * rng.uniform(0.85, 1.15, 3)).astype(np.float32)
    field = cv2.resize(light_small, (s, s), interpolation=cv2.INTER_LINEAR)
    imgf = cv2.multiply(img, field, dtype=cv2.CV_32F)
    if cfg.p_shadow > 0 and rng.random() < cfg.p_shadow:
        imgf = _hard_shadow(rng, imgf)
    if rng.random() < cfg.p_blur:
        imgf = cv2.GaussianBlur(imgf, (0, 0), rng.uniform(0.3, cfg.max_blur_sigma))
    if cfg.p_motion_blur > 0 and rng.random() < cfg.p_motion_blur:
        imgf = cv2.filter2D(imgf, -1, _motion_kernel(rng), borderType=cv2.BORDER_REFLECT)
    if cfg.p_low_contrast > 0 and rng.random() < cfg.p_low_contrast:
        c, mean = float(rng.uniform(0.3, 0.6)), float(imgf.mean())
        imgf = cv2.addWeighted(imgf, c, imgf, 0.0, mean * (1.0 - c) * float(rng.uniform(0.7, 1.3)))
    if rng.random() < cfg.p_noise:
        bank = _noise_bank(s)
        oy, ox = rng.integers(0, s, 2)
        sigma = rng.uniform(1.0, cfg.max_noise_sigma)
        imgf = cv2.scaleAdd(bank[oy:oy + s, ox:ox + s], float(sigma), imgf)
    out = cv2.add(imgf, 0.0, dtype=cv2.CV_8U)  # saturating round to uint8
    return _degrade_extra(rng, cfg, out) if cfg.p_gray > 0 or cfg.p_jpeg > 0 else out


def render_face(rng: np.random.Generator, cfg: SynthConfig) -> tuple[np.ndarray, np.ndarray]:
    """Render one synthetic face: :func:`sample_params`, :func:`sample_pose`, :func:`place_face`,
    :func:`draw_face`, :func:`degrade`, all drawing from ``rng`` in that order.

    Returns:
        ``(image, landmarks)``: (size, size, 3) uint8 RGB and (106, 2) float64 pixel coordinates
        (pixel centres at integers).
    """
    p = sample_params(rng, cfg)
    pose = sample_pose(rng, cfg)
    lm, fh, unit = place_face(p, pose, cfg.size, silhouette=cfg.silhouette_contour)
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
