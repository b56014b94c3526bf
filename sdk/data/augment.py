"""The paper's training augmentations, each switchable (sections 3.3 and 5.1).

Alignment noise (:func:`perturb_five_points`) moves each of the five alignment points
independently before the similarity is fitted, as a face detector's or a tracker's points
would be off. Geometric augmentations (rotation, optional scale and shift) are then composed
into the alignment transform, so the face is warped once from the original image and the
ground truth follows the crop exactly. The horizontal
flip mirrors the aligned crop and relabels the landmarks with the layout's permutation
(:func:`facelm.layouts.flip_landmarks`). Photometric augmentations (colour jitter, PCA
colour noise) and random erasing then act on the aligned uint8 crop. Landmarks are never
dropped: erased or rotated-out points keep their labels.

All randomness comes from the ``numpy.random.Generator`` passed in.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import cv2
import numpy as np

from facelm.alignment import transform_points, warp_face
from facelm.errors import ConfigError
from facelm.layouts import Layout, flip_landmarks

#: AlexNet PCA lighting: eigenvalues / eigenvectors (columns) of ImageNet RGB pixels on the 0..255 scale.
PCA_EIGVAL = np.array([55.46, 4.794, 1.148], dtype=np.float64)
PCA_EIGVEC = np.array(
    [[-0.5675, 0.7192, 0.4009],
     [-0.5808, -0.0045, -0.8140],
     [-0.5836, -0.6948, 0.4203]],
    dtype=np.float64,
)
#: ITU-R BT.601 luma weights (RGB) used for saturation and contrast.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class AugmentConfig:
    """Which augmentations run, and how strongly. Defaults are the paper's final recipe.

    Attributes:
        flip: probability of a horizontal flip with the layout's permutation (0 = off).
        pca_noise: sigma of AlexNet PCA colour noise (0 = off).
        color_jitter: brightness, contrast and saturation range ``1 ± value`` (0 = off).
        erasing: probability of random erasing (0 = off).
        erasing_area: (min, max) erased area as a fraction of the crop.
        erasing_aspect: (min, max) aspect ratio of the erased rectangle.
        rotation: maximum rotation in degrees, uniform in ``[-rotation, rotation]`` (0 = off).
        scale: maximum relative scale change, uniform in ``[1 - scale, 1 + scale]`` (0 = off;
            the paper found it costs ~1 AUC point).
        shift: maximum shift in crop pixels per axis (0 = off; costs ~1 AUC point in the paper).
        five_point_noise: sigma of Gaussian noise added to each coordinate of each of the five
            alignment points before the similarity is fitted, as a fraction of the inter-pupil
            distance of those points (0 = off; 0.03 = 3% IOD).
    """

    flip: float = 0.5
    pca_noise: float = 0.05
    color_jitter: float = 0.4
    erasing: float = 0.5
    erasing_area: tuple[float, float] = (0.02, 0.2)
    erasing_aspect: tuple[float, float] = (0.3, 3.3)
    rotation: float = 15.0
    scale: float = 0.0
    shift: float = 0.0
    five_point_noise: float = 0.0

    def __post_init__(self) -> None:
        for name in ("flip", "erasing"):
            v = getattr(self, name)
            if not 0.0 <= float(v) <= 1.0:
                raise ConfigError(f"augment.{name} is a probability in [0, 1], got {v}")
        for name in ("pca_noise", "color_jitter", "rotation", "scale", "shift", "five_point_noise"):
            if float(getattr(self, name)) < 0:
                raise ConfigError(f"augment.{name} must be >= 0, got {getattr(self, name)}")
        if self.color_jitter >= 1.0 or self.scale >= 1.0:
            raise ConfigError("augment.color_jitter and augment.scale must be < 1")
        lo, hi = self.erasing_area
        if not 0 < lo <= hi < 1:
            raise ConfigError(f"augment.erasing_area must satisfy 0 < min <= max < 1, got {self.erasing_area}")
        a, b = self.erasing_aspect
        if not 0 < a <= b:
            raise ConfigError(f"augment.erasing_aspect must satisfy 0 < min <= max, got {self.erasing_aspect}")

    @classmethod
    def off(cls) -> "AugmentConfig":
        """No augmentation at all (evaluation)."""
        return cls(flip=0.0, pca_noise=0.0, color_jitter=0.0, erasing=0.0, rotation=0.0, scale=0.0, shift=0.0,
                   five_point_noise=0.0)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "AugmentConfig":
        """From a YAML mapping; unknown keys are a ConfigError; lists become tuples."""
        data = dict(data or {})
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown augment options {sorted(unknown)}; known: {sorted(names)}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def inter_pupil_distance(five: np.ndarray) -> float:
    """Distance between the two eye points (rows 0 and 1) of (5, 2) five points, in their pixels."""
    five = np.asarray(five, dtype=np.float64)
    return float(np.hypot(*(five[1] - five[0])))


def perturb_five_points(five: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Alignment noise: each coordinate of each point moved by ``N(0, (sigma * IOD)^2)``.

    Args:
        five: (5, 2) five points in image pixels (ArcFace order: eyes, nose tip, mouth corners).
        sigma: noise as a fraction of the inter-pupil distance (:func:`inter_pupil_distance`).
    Returns:
        (5, 2) float64 perturbed copy (an unchanged copy when ``sigma`` is 0; no draw is made then).
    """
    five = np.array(five, dtype=np.float64)
    if sigma <= 0:
        return five
    return five + rng.normal(0.0, float(sigma) * inter_pupil_distance(five), five.shape)


def geometric_transform(rng: np.random.Generator, cfg: AugmentConfig, size: int) -> np.ndarray:
    """Random rotation / scale / shift about the crop centre.

    Returns:
        (2, 3) float64 crop -> augmented-crop transform (identity when all three are off).
    """
    angle = rng.uniform(-cfg.rotation, cfg.rotation) if cfg.rotation > 0 else 0.0
    scale = rng.uniform(1.0 - cfg.scale, 1.0 + cfg.scale) if cfg.scale > 0 else 1.0
    shift = rng.uniform(-cfg.shift, cfg.shift, 2) if cfg.shift > 0 else np.zeros(2)
    c = (size - 1) / 2.0
    t = math.radians(angle)
    lin = scale * np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    a = np.empty((2, 3), dtype=np.float64)
    a[:, :2] = lin
    a[:, 2] = np.array([c, c]) - lin @ np.array([c, c]) + shift
    return a


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(2, 3) transform ``a ∘ b``: apply ``b`` first, then ``a``."""
    out = np.empty((2, 3), dtype=np.float64)
    out[:, :2] = a[:, :2] @ b[:, :2]
    out[:, 2] = a[:, :2] @ b[:, 2] + a[:, 2]
    return out


def mirror_transform(size: int) -> np.ndarray:
    """(2, 3) horizontal mirror of a ``size``-wide crop: x -> size - 1 - x."""
    return np.array([[-1.0, 0.0, size - 1.0], [0.0, 1.0, 0.0]])


def color_jitter(img: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation each scaled by ``U(1-s, 1+s)``, in random order.

    Args:
        img: (H, W, 3) float32 RGB on the 0..255 scale.
    Returns:
        new float32 array (not clipped).
    """
    out = img
    for op in rng.permutation(3):
        alpha = np.float32(1.0 + rng.uniform(-strength, strength))
        if op == 0:  # brightness
            out = out * alpha
        elif op == 1:  # contrast: blend with the mean grey level
            grey = np.float32((out @ LUMA).mean())
            out = out * alpha + grey * (1.0 - alpha)
        else:  # saturation: blend with the per-pixel grey
            grey = (out @ LUMA)[..., None]
            out = out * alpha + grey * (1.0 - alpha)
    return out


def pca_noise(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """AlexNet PCA colour noise: add ``eigvec @ (alpha * eigval)``, alpha ~ N(0, sigma).

    Args:
        img: (H, W, 3) float32 RGB, 0..255 scale.
    """
    alpha = rng.normal(0.0, sigma, 3)
    rgb = PCA_EIGVEC @ (alpha * PCA_EIGVAL)
    return img + rgb.astype(np.float32)


def random_erasing(img: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Replace a random rectangle with uniform noise (Zhong et al.); at most 10 tries to fit.

    Args:
        img: (H, W, 3) uint8; modified copy returned.
    """
    h, w = img.shape[:2]
    out = img.copy()
    for _ in range(10):
        area = rng.uniform(*cfg.erasing_area) * h * w
        aspect = math.exp(rng.uniform(math.log(cfg.erasing_aspect[0]), math.log(cfg.erasing_aspect[1])))
        eh, ew = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
        if 0 < eh < h and 0 < ew < w:
            y, x = int(rng.integers(0, h - eh + 1)), int(rng.integers(0, w - ew + 1))
            out[y:y + eh, x:x + ew] = rng.integers(0, 256, (eh, ew, img.shape[2]), dtype=np.uint8)
            return out
    return out


def photometric(crop: np.ndarray, rng: np.random.Generator, cfg: AugmentConfig) -> np.ndarray:
    """Colour jitter then PCA noise on a uint8 crop; returns uint8 (saturated)."""
    if cfg.color_jitter <= 0 and cfg.pca_noise <= 0:
        return crop
    x = crop.astype(np.float32)
    if cfg.color_jitter > 0:
        x = color_jitter(x, rng, cfg.color_jitter)
    if cfg.pca_noise > 0:
        x = pca_noise(x, rng, cfg.pca_noise)
    return cv2.add(x, 0.0, dtype=cv2.CV_8U)  # saturating round


def augment_face(
    image: np.ndarray,
    landmarks: np.ndarray,
    align: np.ndarray,
    size: int,
    layout: Layout,
    cfg: AugmentConfig,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Warp a face into the aligned crop with random augmentation.

    Args:
        image: (H, W, 3) uint8 RGB original image.
        landmarks: (K, 2) ground truth in image pixels.
        align: (2, 3) image -> crop alignment (``facelm.alignment.estimate_alignment``).
        size: crop side in pixels.
    Returns:
        ``(crop, points, transform, flipped)``: (size, size, 3) uint8 crop; (K, 2) float64 landmarks
        in the crop, relabelled when flipped; the (2, 3) image -> crop transform including the
        mirror; whether the crop was mirrored. Point k of ``points`` is
        ``transform_points(landmarks, transform)[perm[k]]`` when flipped (perm = the layout's).
    """
    m = compose(geometric_transform(rng, cfg, size), np.asarray(align, dtype=np.float64))
    flipped = bool(cfg.flip > 0 and rng.random() < cfg.flip)
    crop = warp_face(image, m, size)
    pts = transform_points(landmarks, m)
    if flipped:
        crop = np.ascontiguousarray(crop[:, ::-1])
        pts = flip_landmarks(pts, size, layout)
        m = compose(mirror_transform(size), m)
    crop = photometric(crop, rng, cfg)
    if cfg.erasing > 0 and rng.random() < cfg.erasing:
        crop = random_erasing(crop, rng, cfg)
    return crop, pts, m, flipped
