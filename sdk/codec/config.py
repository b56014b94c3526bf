"""Codec parameters and coordinate conventions: the single source of truth.

Everything a decoder needs to reproduce a prediction lives here, so an artifact's
``manifest.json`` can carry it (:meth:`DecodeConfig.to_dict`) and the phone-side C
core (``csrc/facelm_dark.h``) uses the same numbers.

Coordinate convention (used by every function in ``facelm.codec``):
    pixel (row i, col j) of a heatmap is the point (x=j, y=i); pixel centres sit on
    integers and pixel j covers [j - 0.5, j + 0.5]. A heatmap of stride ``s`` covers an
    input image of ``s`` times its size, heatmap pixel j covering input pixels
    ``s*j .. s*j + s - 1``, whose centre is ``s*j + (s - 1)/2``. Under this convention a
    horizontal mirror is ``x -> W - 1 - x`` at both resolutions, so the flip test needs no
    one-pixel shift.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

import numpy as np

from facelm.errors import ConfigError, InputError

Method = Literal["argmax", "quarter", "dark"]
METHODS: tuple[str, ...] = ("argmax", "quarter", "dark")
LAYOUTS: tuple[str, ...] = ("nchw", "nhwc")

#: log(max(h, LOG_FLOOR)) is the DARK log transform (DarkPose uses the same floor).
LOG_FLOOR = 1e-10
#: A blur radius shrunk at the border to below this (and below the configured radius)
#: is dropped to 0 on that axis: a 3-tap kernel biases a clean sigma-1 Gaussian by >0.01 px.
MIN_SHRUNK_RADIUS = 2
#: The DARK offset is clamped to [-MAX_OFFSET, MAX_OFFSET] per axis, in heatmap
#: pixels. On a sigma-3 map with 0.1 noise the raw argmax can sit 2 px from the blurred
#: peak, and a 1.5 px clamp cost 7% mean error there (DarkPose does not clamp at all).
MAX_OFFSET = 3.0
#: The 2-D Newton step needs det(H) > DET_REL_EPS * dxx * dyy (with dxx < 0): a Hessian
#: that is singular up to rounding is skipped, as DarkPose skips det == 0. Relative, so that
#: a last-bit difference between two log implementations cannot flip the decision.
DET_REL_EPS = 1e-10
#: Near the border, DARK's second pass models the raw map as a Gaussian whose covariance
#: (first-pass blurred covariance minus the kernel's) must exceed this (px^2, smallest
#: eigenvalue) to be used; otherwise the first-pass (shrunk-kernel) result stands.
MODEL_MIN_VAR = 0.25
#: Score reported for a map with no usable peak (NaN/Inf anywhere, or a constant map);
#: its coordinates are the map centre ((W-1)/2, (H-1)/2).
INVALID_SCORE = 0.0


@dataclass(frozen=True)
class DecodeConfig:
    """How heatmaps are turned into coordinates. Written into every artifact manifest.

    Attributes:
        method: ``"argmax"`` (integer peak), ``"quarter"`` (0.25 px toward the larger
            neighbour, SimpleBaselines) or ``"dark"`` (Zhang et al. 2020).
        blur_kernel: odd Gaussian kernel size k used by ``dark`` (1 = no blur). The kernel
            is OpenCV's ``getGaussianKernel(k, 0)`` formula, sigma = 0.3*((k-1)/2 - 1) + 0.8
            (k=11 -> sigma 2.0, DarkPose's setting for sigma-2 targets).

    The heatmap tensor layout is not a decode setting: it belongs to each artifact's output
    :class:`facelm.runtime.TensorSpec`, and :func:`facelm.codec.decode` takes it per call.
    """

    method: Method = "dark"
    blur_kernel: int = 11

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"decode method must be one of {METHODS}, got {self.method!r}")
        if isinstance(self.blur_kernel, bool) or not isinstance(self.blur_kernel, (int, np.integer)):
            raise ConfigError(f"blur_kernel must be an odd int >= 1, got {self.blur_kernel!r}")
        if self.blur_kernel < 1 or self.blur_kernel % 2 == 0 or self.blur_kernel > 61:
            raise ConfigError(f"blur_kernel must be an odd int in [1, 61], got {self.blur_kernel}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for a manifest (round-trips through :meth:`from_dict`)."""
        d = asdict(self)
        d["blur_kernel"] = int(d["blur_kernel"])
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DecodeConfig":
        """Build from a manifest dict; unknown keys are a :class:`ConfigError`.

        A ``layout`` key (``"nchw"``/``"nhwc"``, written by facelm 0.2 training configs before
        the field was dropped) is accepted and ignored, so older checkpoints still load.
        """
        data = dict(data)
        if data.get("layout") in LAYOUTS:
            del data["layout"]
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ConfigError(f"unknown decode parameters {sorted(unknown)}; known: {sorted(names)}")
        return cls(**data)

    def as_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`facelm.codec.decode` (``decode(h, **cfg.as_kwargs())``)."""
        return self.to_dict()


@dataclass(frozen=True)
class EncodeConfig:
    """Training targets: unbiased Gaussians centred at the float coordinate (DARK).

    Attributes:
        sigma: Gaussian standard deviation in heatmap pixels (DarkPose uses 2 with k=11).
    """

    sigma: float = 2.0

    def __post_init__(self) -> None:
        if not (isinstance(self.sigma, (int, float, np.floating)) and np.isfinite(self.sigma) and self.sigma > 0):
            raise ConfigError(f"sigma must be a positive finite number, got {self.sigma!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"sigma": float(self.sigma)}


def _stride_pair(stride: float | tuple[float, float]) -> np.ndarray:
    try:
        s = np.asarray(stride, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"stride must be a positive number or a (sx, sy) pair, got {stride!r}") from None
    if s.ndim == 0:
        s = np.array([s, s])
    if s.shape != (2,) or not np.all(np.isfinite(s)) or np.any(s <= 0):
        raise InputError(f"stride must be a positive number or a (sx, sy) pair, got {stride!r}")
    return s


def heatmap_to_input(coords: np.ndarray, stride: float | tuple[float, float]) -> np.ndarray:
    """Heatmap pixels -> input-image pixels: ``x_in = s * x + (s - 1) / 2``.

    Args:
        coords: (..., 2) (x, y) in heatmap pixels.
        stride: input size / heatmap size, scalar or (sx, sy).
    Returns:
        (..., 2) float64 in input pixels (same pixel-centre convention).
    """
    s = _stride_pair(stride)
    c = np.asarray(coords, dtype=np.float64)
    if c.shape[-1:] != (2,):
        raise InputError(f"coords must have shape (..., 2), got {c.shape}")
    return c * s + (s - 1.0) / 2.0


def input_to_heatmap(coords: np.ndarray, stride: float | tuple[float, float]) -> np.ndarray:
    """Input-image pixels -> heatmap pixels, the inverse of :func:`heatmap_to_input`.

    Args:
        coords: (..., 2) (x, y) in input pixels.
        stride: input size / heatmap size, scalar or (sx, sy).
    Returns:
        (..., 2) float64 in heatmap pixels.
    """
    s = _stride_pair(stride)
    c = np.asarray(coords, dtype=np.float64)
    if c.shape[-1:] != (2,):
        raise InputError(f"coords must have shape (..., 2), got {c.shape}")
    return (c - (s - 1.0) / 2.0) / s


def stride_for(input_size: tuple[int, int], heatmap_size: tuple[int, int]) -> tuple[float, float]:
    """(sx, sy) for an input of ``(W_in, H_in)`` and heatmaps of ``(W, H)`` (e.g. 192 -> 48: 4)."""
    (wi, hi), (wh, hh) = input_size, heatmap_size
    if min(wi, hi, wh, hh) <= 0:
        raise InputError(f"sizes must be positive, got input {input_size} heatmap {heatmap_size}")
    return (wi / wh, hi / hh)
