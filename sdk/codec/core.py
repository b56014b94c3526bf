"""Public codec API: encode, decode, flip test, backend selection.

Shapes: N images, K keypoints; heatmaps (N, K, H, W) unless ``layout="nhwc"`` (N, H, W, K);
coordinates (N, K, 2) as (x, y) in heatmap pixels, pixel (row i, col j) = point (x=j, y=i).
"""
from __future__ import annotations

import functools
import logging
import math
import os
from typing import Any

import numpy as np

from facelm.codec import _numpy
from facelm.codec.config import LAYOUTS, DecodeConfig, EncodeConfig
from facelm.errors import ConfigError, InputError
from facelm.layouts import check_flip_permutation, flip_landmarks

log = logging.getLogger("facelm.codec")

try:  # the optional C twin, built by `pip install` (setup.py)
    from facelm.codec import _cdark  # type: ignore[attr-defined]
except ImportError as _exc:  # pragma: no cover - depends on the build
    _cdark = None
    _IMPORT_ERROR: str | None = str(_exc)
else:
    _IMPORT_ERROR = None

_BACKENDS = ("c", "numpy")
_warned = False
_DECODE_PARAMS = ("blur_kernel", "layout", "scale", "zero_point", "backend")
_DECODE_PARAM_SET = frozenset(_DECODE_PARAMS)
_METHOD_CODES = {"argmax": 0, "quarter": 1, "dark": 2}  # FACELM_METHOD_* in csrc/facelm_dark.h


def _choose(requested: str | None) -> str:
    """Resolve the backend: explicit argument, else $FACELM_CODEC, else C when built."""
    global _warned
    if requested is None:
        env = os.environ.get("FACELM_CODEC")
        if not env and _cdark is not None:  # the per-frame common case
            return "c"
        requested = (env or "").strip().lower() or None
    choice = requested
    if choice is not None and choice not in _BACKENDS:
        raise ConfigError(f"codec backend must be one of {_BACKENDS}, got {choice!r}")
    if choice == "c" and _cdark is None:
        raise ConfigError("the C codec extension facelm.codec._cdark is not built; reinstall with a C compiler "
                          "(pip install -e .) or use backend='numpy'")
    if choice is None:
        if _cdark is None:
            if not _warned:
                _warned = True
                log.warning("facelm C codec extension facelm.codec._cdark is not built; using the numpy decoder "
                            "(reinstall with a C compiler: pip install -e .)")
                log.debug("import error: %s", _IMPORT_ERROR)
            return "numpy"
        return "c"
    return choice


@functools.lru_cache(maxsize=64)
def _cached_config(method, blur_kernel) -> DecodeConfig:
    return DecodeConfig(method=method, blur_kernel=blur_kernel)


def _config(method, blur_kernel) -> DecodeConfig:
    """Validated DecodeConfig; cached because decode runs per frame on a phone-sized budget."""
    try:
        return _cached_config(method, blur_kernel)
    except TypeError:  # unhashable argument: let the dataclass produce the ConfigError
        return DecodeConfig(method=method, blur_kernel=blur_kernel)


def backend() -> str:
    """``"c"`` when the C extension decodes, ``"numpy"`` otherwise (``$FACELM_CODEC`` forces one)."""
    return _choose(None)


_QUANT_RANGES = {"b": (-128, 127), "B": (0, 255)}  # dtype.char of int8 / uint8
#: Accepted ``scale`` of int8/uint8 heatmaps: ``scale * (q - zero_point)`` with |q - zero_point| <= 255
#: stays a normal, finite float32 (float32 spans about 1.2e-38 .. 3.4e38). Real TFLite output scales
#: are near 1/255; a scale outside this range (1e308, 1e-320) is a broken model or manifest.
SCALE_RANGE = (1e-30, 1e30)


def _check_heatmaps(heatmaps: Any, nhwc: bool, scale, zero_point) -> tuple[np.ndarray, float | None, int | None]:
    """Validate and return a C-contiguous float32/int8/uint8 4-D array (no copy when already so)."""
    fast = _check_fast(heatmaps, scale, zero_point)
    if fast is not None:
        return fast
    return _check_full(heatmaps, nhwc, scale, zero_point)


def _check_fast(heatmaps: Any, scale, zero_point):
    """The per-frame common case (a C-contiguous 4-D float32 or int8/uint8 array with int
    zero_point and finite positive scale), checked cheaply; None means: run the full check."""
    if type(heatmaps) is not np.ndarray or heatmaps.ndim != 4 or not heatmaps.flags.c_contiguous \
            or heatmaps.size == 0:
        return None
    s = heatmaps.shape
    if s[1] * s[2] * s[3] >= 2**31:
        return None
    char = heatmaps.dtype.char
    if char == "f":  # the C twin reads native byte order only; the full check converts the rest
        return (heatmaps, None, None) if scale is None and zero_point is None and heatmaps.dtype.isnative else None
    rng = _QUANT_RANGES.get(char)
    if rng is None or type(zero_point) is not int or type(scale) not in (float, int):
        return None
    # exact comparisons (no float() of a huge int); NaN fails them and goes to the full check
    if not (SCALE_RANGE[0] <= scale <= SCALE_RANGE[1] and rng[0] <= zero_point <= rng[1]):
        return None
    return heatmaps, float(scale), zero_point


def _check_scale(scale: Any) -> float:
    """A real number in :data:`SCALE_RANGE`, or InputError naming ``scale``."""
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise InputError(f"scale must be a number, got {type(scale).__name__} {_short(scale)}")
    if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:  # also False for NaN; exact for huge ints
        raise InputError(f"scale must be a finite number in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}] "
                         f"(int8/uint8 output quantization), got {_short(scale)}")
    return float(scale)


def _check_zero_point(zero_point: Any, lo: int, hi: int, kind: Any) -> int:
    """An integer in [lo, hi] (an integral float is accepted), or InputError naming ``zero_point``."""
    if isinstance(zero_point, (bool, np.bool_)) or not isinstance(
            zero_point, (int, float, np.integer, np.floating)):
        raise InputError(f"zero_point must be an integer, got {type(zero_point).__name__} {_short(zero_point)}")
    if isinstance(zero_point, (float, np.floating)) and not (math.isfinite(zero_point)
                                                             and float(zero_point).is_integer()):
        raise InputError(f"zero_point must be an integer, got {_short(zero_point)}")
    if not lo <= zero_point <= hi:
        raise InputError(f"zero_point {_short(zero_point)} outside the {kind} range [{lo}, {hi}]")
    return int(zero_point)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_full(heatmaps: Any, nhwc: bool, scale, zero_point) -> tuple[np.ndarray, float | None, int | None]:
    """Validate and return a C-contiguous float32/int8/uint8 4-D array, or raise InputError."""
    if not isinstance(heatmaps, np.ndarray):
        try:
            heatmaps = np.asarray(heatmaps)
        except Exception as exc:  # ragged lists and the like
            raise InputError(f"heatmaps must be a numeric array, got {type(heatmaps).__name__}: {exc}") from None
    if heatmaps.ndim != 4:
        want = "(N, H, W, K)" if nhwc else "(N, K, H, W)"
        raise InputError(f"heatmaps must be 4-D {want}, got shape {heatmaps.shape}")
    if min(heatmaps.shape) < 1:
        raise InputError(f"heatmaps must not be empty, got shape {heatmaps.shape}")
    if heatmaps.shape[1] * heatmaps.shape[2] * heatmaps.shape[3] >= 2**31:
        raise InputError(f"heatmaps too large per image: {heatmaps.shape}")
    kind = heatmaps.dtype
    if kind in (np.int8, np.uint8):
        if scale is None or zero_point is None:
            raise InputError(f"{kind} heatmaps need scale and zero_point (TFLite output quantization)")
        scale = _check_scale(scale)
        lo, hi = _QUANT_RANGES[kind.char]
        zero_point = _check_zero_point(zero_point, lo, hi, kind)
    elif kind.kind == "f":
        if scale is not None or zero_point is not None:
            raise InputError(f"scale/zero_point apply to int8/uint8 heatmaps, not {kind}")
        if kind != np.float32:
            heatmaps = heatmaps.astype(np.float32)
    else:
        raise InputError(f"heatmaps must be float32, int8 or uint8, got {kind}")
    return np.ascontiguousarray(heatmaps), scale, zero_point


def decode(heatmaps: np.ndarray, method: str = "dark", **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps -> landmark coordinates and peak scores.

    Args:
        heatmaps: (N, K, H, W) float32, or int8/uint8 with ``scale`` and ``zero_point``
            (decoded directly: only the values read are dequantized, no float copy).
        method: ``"argmax"``, ``"quarter"`` or ``"dark"`` (see :class:`DecodeConfig`).
        **params: ``blur_kernel`` (odd int, default 11), ``layout`` (``"nchw"`` or
            ``"nhwc"``: (N, H, W, K) read in place, no transposed copy), ``scale`` and
            ``zero_point`` (int8/uint8 only: value = scale * (q - zero_point); ``scale`` a
            finite number in :data:`SCALE_RANGE` = [1e-30, 1e30], ``zero_point`` an integer
            in the dtype's range; big-endian or non-float32 float maps are converted),
            ``backend`` (``"c"`` / ``"numpy"``; default: C when built, or $FACELM_CODEC).
    Returns:
        coords: (N, K, 2) float32 (x, y) in heatmap pixels.
        scores: (N, K) float32 peak values (dequantized); 0 for maps without a usable
            peak (NaN/Inf anywhere, or constant), whose coords are the map centre.
    Raises:
        InputError: wrong shape, dtype or quantization parameters.
        ConfigError: unknown method, parameter or backend.
    """
    if not isinstance(method, str):
        raise ConfigError(f"decode method must be a string, got {type(method).__name__}")
    if not params.keys() <= _DECODE_PARAM_SET:
        unknown = set(params) - _DECODE_PARAM_SET
        raise ConfigError(f"unknown decode parameters {sorted(unknown)}; known: {list(_DECODE_PARAMS)}")
    for key in ("layout", "backend"):
        if params.get(key) is not None and not isinstance(params[key], str):
            raise ConfigError(f"decode parameter {key} must be a string, got {type(params[key]).__name__}")
    cfg = _config(method, params.get("blur_kernel", DecodeConfig.blur_kernel))
    layout = params.get("layout", "nchw")
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    nhwc = layout == "nhwc"
    h, scale, zp = _check_heatmaps(heatmaps, nhwc, params.get("scale"), params.get("zero_point"))
    which = _choose(params.get("backend"))
    if which == "c":
        n, k = (h.shape[0], h.shape[3]) if nhwc else h.shape[:2]
        coords = np.empty((n, k, 2), np.float32)
        scores = np.empty((n, k), np.float32)
        _cdark.decode(h, coords, scores, _METHOD_CODES[cfg.method], int(cfg.blur_kernel), nhwc,
                      1.0 if scale is None else scale, 0 if zp is None else zp)
        return coords, scores
    return _numpy.decode(h, cfg.method, int(cfg.blur_kernel), nhwc, scale, zp)


def encode(coords: np.ndarray, heatmap_size: tuple[int, int], sigma: float = EncodeConfig.sigma,
           visible: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks -> unbiased Gaussian target heatmaps (DARK), the inverse of :func:`decode`.

    Args:
        coords: (N, K, 2) or (K, 2) float (x, y) in heatmap pixels (see
            :func:`facelm.codec.input_to_heatmap` for input-image pixels).
        heatmap_size: (W, H) of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels (:class:`EncodeConfig`).
        visible: optional (N, K) / (K,) bool; invisible points get weight 0.
    Returns:
        heatmaps: (N, K, H, W) (or (K, H, W)) float32, exp(-d^2 / (2 sigma^2)), peak 1 at
            the float centre, never rounded or truncated.
        weights: (N, K) (or (K,)) float32: 1, or 0 for points outside the map's extent
            [-0.5, W-0.5) x [-0.5, H-0.5), non-finite or invisible (their map is all zero).
    """
    EncodeConfig(sigma=sigma)
    c = np.asarray(coords, dtype=np.float64)
    if c.ndim not in (2, 3) or c.shape[-1] != 2:
        raise InputError(f"coords must have shape (N, K, 2) or (K, 2), got {c.shape}")
    try:
        w, h = (int(v) for v in heatmap_size)
    except (TypeError, ValueError):
        raise InputError(f"heatmap_size must be (W, H), got {heatmap_size!r}") from None
    if w < 1 or h < 1:
        raise InputError(f"heatmap_size must be positive, got {heatmap_size!r}")
    if visible is not None:
        vis = np.asarray(visible, dtype=bool)
        if vis.shape != c.shape[:-1]:
            raise InputError(f"visible must have shape {c.shape[:-1]}, got {vis.shape}")
        c = np.where(vis[..., None], c, np.nan)
    single = c.ndim == 2
    maps, weights = _numpy.encode(c[None] if single else c, h, w, float(sigma))
    return (maps[0], weights[0]) if single else (maps, weights)


def flip_heatmaps(heatmaps: np.ndarray, permutation: np.ndarray, layout: str = "nchw") -> np.ndarray:
    """Heatmaps of a mirrored image -> heatmaps in the original frame and labels.

    Mirrors x -> W-1-x and relabels: ``out[:, k] = heatmaps[:, permutation[k], :, ::-1]``.
    Applying it twice is the identity (the permutation is an involution).

    Args:
        heatmaps: (N, K, H, W) (or (N, H, W, K) with ``layout="nhwc"``), any dtype.
        permutation: (K,) ints, e.g. ``facelm.layouts.JD106.flip_permutation``.
    Returns:
        A new array of the same shape and dtype.
    """
    h = np.asarray(heatmaps)
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if h.ndim != 4:
        raise InputError(f"heatmaps must be 4-D, got shape {h.shape}")
    kaxis, waxis = (1, 3) if layout == "nchw" else (3, 2)
    perm = check_flip_permutation(permutation, h.shape[kaxis])
    return np.ascontiguousarray(np.flip(np.take(h, perm, axis=kaxis), axis=waxis))


def average_flip(heatmaps: np.ndarray, flipped_heatmaps: np.ndarray, permutation: np.ndarray,
                 mode: str = "coords", method: str = "dark", **params: Any) -> tuple[np.ndarray, np.ndarray]:
    """Flip test: combine the predictions for an image and for its mirror.

    ``mode="coords"`` (what the paper does: "average these two predictions"; it found
    averaging the heatmaps no better): decode both, map the mirrored result back with
    :func:`facelm.layouts.flip_landmarks`, average coordinates and scores. ``mode="heatmaps"``: average the
    heatmaps with the flipped-back mirror heatmaps, then decode once (int8/uint8 maps are
    dequantized for this).

    Args:
        heatmaps, flipped_heatmaps: model outputs for the image and its mirror, same
            shape/layout/quantization, as accepted by :func:`decode`.
        permutation: (K,) flip permutation of the layout.
        method, **params: as for :func:`decode`.
    Returns:
        coords (N, K, 2) float32 and scores (N, K) float32, in the original frame.
    """
    layout = params.get("layout", "nchw")
    if mode == "coords":
        c0, s0 = decode(heatmaps, method, **params)
        c1, s1 = decode(flipped_heatmaps, method, **params)
        width = np.shape(heatmaps)[2 if layout == "nhwc" else 3]
        perm = check_flip_permutation(permutation, c0.shape[1])
        c1 = flip_landmarks(c1, width, perm)
        return (0.5 * (c0 + c1)).astype(np.float32), (0.5 * (s0 + s1[:, perm])).astype(np.float32)
    if mode == "heatmaps":
        a, b = np.asarray(heatmaps), np.asarray(flipped_heatmaps)
        if a.shape != b.shape:
            raise InputError(f"heatmaps {a.shape} and flipped_heatmaps {b.shape} differ in shape")
        rest = dict(params)
        scale, zp = rest.pop("scale", None), rest.pop("zero_point", None)
        if a.dtype in (np.int8, np.uint8):
            _check_heatmaps(a, layout == "nhwc", scale, zp)
            a = (a.astype(np.float32) - zp) * np.float32(scale)
            b = (b.astype(np.float32) - zp) * np.float32(scale)
        else:
            a, b = a.astype(np.float32, copy=False), b.astype(np.float32, copy=False)
        avg = 0.5 * (a + flip_heatmaps(b, permutation, layout))
        return decode(avg, method, **rest)
    raise ConfigError(f"flip averaging mode must be 'coords' or 'heatmaps', got {mode!r}")
