"""Model input preprocessing: align, then normalise.

This module holds the only copy of the input normalisation. Training, the
calibration set, the runtime and the artifact manifest all read it from here.

The model input is RGB, ``(x / 255 - mean) / std`` per channel, NCHW for PyTorch
and ONNX, NHWC for TFLite (onnx2tf transposes the input). Calibration data for
onnx2tf is NHWC float32 in [0, 1] (``x / 255``) with the same mean/std passed on
its command line.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from facelm.alignment import DEFAULT_TEMPLATE, TemplateSpec, estimate_alignment, warp_face
from facelm.errors import InputError


#: uint8 pixel -> [0, 1]: ``x01 = pixel * PIXEL_SCALE``.
PIXEL_SCALE = 1.0 / 255.0
COLOR_ORDERS = ("RGB", "BGR")


@dataclass(frozen=True)
class Normalization:
    """Input normalisation of the network: ``x = (pixel / 255 - mean) / std`` per channel.

    Attributes:
        mean: per-channel mean of ``x / 255``, in the network's channel order.
        std: per-channel std of ``x / 255``, in the network's channel order (all > 0).
        color: channel order the network expects, ``"RGB"`` or ``"BGR"``. Images given to
            facelm are always RGB; a ``"BGR"`` network gets its channels reversed here.
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    color: str = "RGB"

    def __post_init__(self) -> None:
        from facelm.errors import ConfigError

        mean = tuple(float(v) for v in self.mean)
        std = tuple(float(v) for v in self.std)
        if len(mean) != 3 or len(std) != 3:
            raise ConfigError(f"mean and std need 3 values each, got {list(mean)} and {list(std)}")
        if not all(np.isfinite(mean)) or not all(np.isfinite(std)) or min(std) <= 0:
            raise ConfigError(f"mean must be finite and std finite and > 0, got mean {list(mean)} std {list(std)}")
        if self.color not in COLOR_ORDERS:
            raise ConfigError(f"color must be one of {COLOR_ORDERS}, got {self.color!r}")
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "std", std)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["pixel_scale"] = PIXEL_SCALE
        return d


DEFAULT_NORMALIZATION = Normalization()


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as an (H, W, 3) uint8 RGB array, or :class:`InputError` naming what it is instead."""
    try:
        img = np.asarray(image)
    except (TypeError, ValueError):
        raise InputError(f"image must be an (H, W, 3) uint8 array, got {type(image).__name__}") from None
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"image must be (H, W, 3) RGB, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise InputError(f"image must be uint8, got {img.dtype}")
    return img


def normalize(aligned: np.ndarray, norm: Normalization = DEFAULT_NORMALIZATION) -> np.ndarray:
    """uint8 RGB (..., H, W, 3) -> float32 (..., H, W, 3) normalised, in ``norm.color`` order (channels last)."""
    x = np.asarray(aligned)
    if x.shape[-1] != 3:
        raise InputError(f"expected channels-last RGB with 3 channels, got shape {x.shape}")
    if norm.color == "BGR":
        x = x[..., ::-1]
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    return ((x.astype(np.float32) / 255.0) - mean) / std


def denormalize(x: np.ndarray, norm: Normalization = DEFAULT_NORMALIZATION) -> np.ndarray:
    """Inverse of :func:`normalize`: float32 (..., H, W, 3) -> uint8 RGB."""
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    out = np.clip(np.rint((np.asarray(x) * std + mean) * 255.0), 0, 255).astype(np.uint8)
    return out[..., ::-1] if norm.color == "BGR" else out


def align_face(
    image: np.ndarray, five_points: np.ndarray, size: int, spec: TemplateSpec = DEFAULT_TEMPLATE
) -> tuple[np.ndarray, np.ndarray]:
    """Align a face to the reference template.

    Args:
        image: (H, W, 3) uint8 RGB.
        five_points: (5, 2) pixels in ``image``, ArcFace order.
        size: crop side in pixels (the model's input size).
    Returns:
        ``(crop, M)``: (size, size, 3) uint8 and the (2, 3) image -> crop transform.
    """
    img = check_image(image)
    m = estimate_alignment(five_points, size, spec)
    return warp_face(img, m, size), m


def preprocess_face(
    image: np.ndarray,
    five_points: np.ndarray,
    size: int,
    norm: Normalization = DEFAULT_NORMALIZATION,
    spec: TemplateSpec = DEFAULT_TEMPLATE,
) -> tuple[np.ndarray, np.ndarray]:
    """Align and normalise one face into the network input.

    Args:
        image: (H, W, 3) uint8 RGB.
        five_points: (5, 2) pixels, ArcFace order.
        size: model input side in pixels.
    Returns:
        ``(x, M)``: x is (3, size, size) float32 (CHW), M the (2, 3) image -> crop transform.
        Landmarks predicted in the crop map back with ``transform_points(p, invert_affine(M))``.
    """
    crop, m = align_face(image, five_points, size, spec)
    return np.ascontiguousarray(normalize(crop, norm).transpose(2, 0, 1)), m


def to_unit_nhwc(crops: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, 3) aligned crops -> float32 (N, H, W, 3) in [0, 1] (onnx2tf calibration format)."""
    x = np.asarray(crops)
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise InputError(f"expected uint8 crops of shape (N, H, W, 3), got {x.dtype} {x.shape}")
    return x.astype(np.float32) / 255.0
