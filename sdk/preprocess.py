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

from sdk.alignment import DEFAULT_TEMPLATE, TemplateSpec, estimate_alignment, warp_face
from sdk.errors import InputError


@dataclass(frozen=True)
class Normalization:
    """Input normalisation of the network.

    Attributes:
        mean: per-channel mean of ``x / 255`` (RGB order).
        std: per-channel std of ``x / 255`` (RGB order).
        color: channel order the network expects.
    """

    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    color: str = "RGB"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["pixel_scale"] = 1.0 / 255.0
        return d


DEFAULT_NORMALIZATION = Normalization()


def _check_image(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise InputError(f"image must be (H, W, 3) RGB, got shape {img.shape}")
    if img.dtype != np.uint8:
        raise InputError(f"image must be uint8, got {img.dtype}")
    return img


def normalize(aligned: np.ndarray, norm: Normalization = DEFAULT_NORMALIZATION) -> np.ndarray:
    """uint8 RGB (..., H, W, 3) -> float32 (..., H, W, 3) normalised (channels last)."""
    x = np.asarray(aligned)
    if x.shape[-1] != 3:
        raise InputError(f"expected channels-last RGB with 3 channels, got shape {x.shape}")
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    return ((x.astype(np.float32) / 255.0) - mean) / std


def denormalize(x: np.ndarray, norm: Normalization = DEFAULT_NORMALIZATION) -> np.ndarray:
    """Inverse of :func:`normalize`: float32 (..., H, W, 3) -> uint8 RGB."""
    mean = np.asarray(norm.mean, dtype=np.float32)
    std = np.asarray(norm.std, dtype=np.float32)
    return np.clip(np.rint((np.asarray(x) * std + mean) * 255.0), 0, 255).astype(np.uint8)


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
    img = _check_image(image)
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
