"""The numpy reference decoder. The C twin (``csrc/facelm_dark.c``) implements the same rules.

Rules, for one map h of H rows and W columns (``DecodeConfig`` gives method and k):

1. Validity. A map holding any NaN or +-Inf, or a constant map (max == min, e.g. all
   zero), has no usable peak: its coordinates are the centre ((W-1)/2, (H-1)/2) and
   its score is ``INVALID_SCORE`` (0). Otherwise:
2. Peak. (px, py) is the first maximum in raster order (numpy ``argmax``); the score is
   h[py, px] (dequantized: ``scale * (q - zero_point)`` for int8/uint8).
3. Axes. The x axis is refinable when 1 <= px <= W-2 (both neighbours exist), y likewise.
4. ``quarter``: per refinable axis, offset 0.25 * sign(h[p+1] - h[p-1]) on the raw map.
5. ``dark``:
   a. Blur radius per axis: rx = min(r, px-2, W-3-px) with r = (k-1)/2, i.e. the kernel
      shrinks so that no blurred value read below reaches outside the map; when it
      had to shrink to below min(r, MIN_SHRUNK_RADIUS) (or below 0) it is 0 (no blur on
      that axis). Same for ry. Interior peaks therefore get exactly DarkPose's
      whole-map blur (its zero padding is never reached), computed on a window only.
      Why not zero padding at the border: on a clean sigma-3 Gaussian 3 px from the
      border, a zero-padded k=11 blur biases DARK by 0.2-0.3 px. The shrunk kernel is only a
      first pass, though (rule f): alone it smooths less, 10-55% worse than DarkPose
      under noise near borders.
   b. The kernel of radius q is the normalised Gaussian exp(-t^2 / (2 s^2)),
      s = 0.3*(q-1) + 0.8 (OpenCV's ``getGaussianKernel(2q+1, 0)`` for 2q+1 >= 9).
   c. Only the 13 stencil values B(py+dy, px+dx) are blurred, separably and in float32:
      first along x, w[0] v[0] + sum_{b=1..rx} w[b] (v[-b] + v[b]) (the kernel is
      symmetric; taps in increasing order, float32 weights), then the same along y over
      those row values. For integer maps v = q - zero_point and B is multiplied by the
      scale afterwards, in float64 (the blur is linear).
   d. With B' = max(B, LOG_FLOOR) (float64), the log-derivatives are logs of ratios (5
      logs, not 13): dx = log(B'[x+1]/B'[x-1])/2; dxx = log(B'[x+2]B'[x-2]/B'[x]^2)/4 when
      2 <= px <= W-3 (DarkPose's wide stencil), else log(B'[x+1]B'[x-1]/B'[x]^2);
      dxy = log(B'[+1,+1]B'[-1,-1] / (B'[-1,+1]B'[+1,-1]))/4 ([dy, dx]). Same for y.
   e. Both axes refinable: step -H^-1 g only when H is negative definite and not singular
      up to rounding (dxx < 0 and det > DET_REL_EPS * dxx * dyy; DarkPose skips det == 0,
      the sign test also skips saddles). One axis: -dx/dxx when dxx < 0. A non-finite step
      is skipped.
   f. Border peaks (2 <= px <= W-3, 2 <= py <= H-3, and rx < r or ry < r): a second pass
      with the full radius r on both axes, where pixels outside the map read a Gaussian
      model of the raw map instead of zeros. The model: covariance = -H^-1 of the first
      pass minus diag(kernel variances of rx, ry) (sum_t w[t] t^2), required to have both
      eigenvalues > MODEL_MIN_VAR; centre = peak + first-pass offset clamped to
      +-MAX_OFFSET; amplitude = least-squares fit to the 3x3 values around the peak. On
      clean Gaussians the padding is then the map's own continuation (unbiased); under
      noise the full kernel smooths as much as DarkPose's. Without a 2-D first-pass step
      or a usable model the padding is zeros (DarkPose's). The second pass's step
      replaces the first's when it is taken (rule e).
6. DARK offsets are clamped to [-MAX_OFFSET, MAX_OFFSET] per axis (3 px: a noisy raw
   argmax can sit 2 px from the blurred peak of a wide map).

The DarkPose blur rescales the blurred map to the original max; that constant drops out
of log-derivatives, so it is not done (the score is the raw peak anyway).
"""
from __future__ import annotations

import math

import numpy as np

from facelm.codec.config import DET_REL_EPS, INVALID_SCORE, LOG_FLOOR, MAX_OFFSET, MIN_SHRUNK_RADIUS, MODEL_MIN_VAR

#: (dy, dx) of the 13 stencil points, in the order shared with the C core.
STENCIL = (
    (0, 0), (0, -1), (0, 1), (0, -2), (0, 2),
    (-1, 0), (1, 0), (-2, 0), (2, 0),
    (-1, -1), (-1, 1), (1, -1), (1, 1),
)


def gaussian_kernel(radius: int) -> np.ndarray:
    """(2*radius+1,) float64 normalised Gaussian, s = 0.3*(radius-1) + 0.8.

    Computed with ``math.exp`` and a left-to-right sum, exactly as the C core does.
    """
    if radius <= 0:
        return np.ones(1)
    s = 0.3 * (radius - 1) + 0.8
    w = [math.exp(-(t * t) / (2.0 * s * s)) for t in range(-radius, radius + 1)]
    total = 0.0
    for v in w:
        total += v
    return np.array([v / total for v in w])


def kernel_table(radius: int) -> np.ndarray:
    """(radius+1, 2*radius+1): row q holds the radius-q kernel, zero-padded and centred."""
    table = np.zeros((radius + 1, 2 * radius + 1))
    for q in range(radius + 1):
        table[q, radius - q: radius + q + 1] = gaussian_kernel(q)
    return table


def effective_radius(p: np.ndarray, size: int, radius: int) -> np.ndarray:
    """Per-keypoint blur radius along one axis (rule 5a). p: (M,) int peak positions."""
    q = np.minimum(np.minimum(p - 2, size - 3 - p), radius)
    drop = (q < 0) | ((q < radius) & (q < MIN_SHRUNK_RADIUS))
    return np.where(drop, 0, q).astype(np.int64)


def _peaks(h: np.ndarray, nhwc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First-max index (N, K) into H*W, max (N, K) in the raw dtype, valid mask (N, K)."""
    if nhwc:
        n, hh, ww, k = h.shape
        flat = h.reshape(n, hh * ww, k)
        mx, mn = flat.max(axis=1), flat.min(axis=1)
        # per image, so the transposed temporary numpy makes is one image, not the tensor
        idx = np.stack([np.argmax(flat[i], axis=0) for i in range(n)])
    else:
        n, k, hh, ww = h.shape
        flat = h.reshape(n, k, hh * ww)
        mx, mn = flat.max(axis=-1), flat.min(axis=-1)
        idx = np.argmax(flat, axis=-1)
    valid = mx > mn
    if h.dtype.kind == "f":
        valid &= np.isfinite(mx) & np.isfinite(mn)
    return idx.astype(np.int64), mx, valid


class _Gather:
    """Reads single heatmap values without copying the tensor.

    Integer maps give ``q - zero_point`` (the scale is applied by the caller: the blur is
    linear, and the sign tests of ``quarter`` do not need it); float maps give the value.
    """

    def __init__(self, h: np.ndarray, nhwc: bool, zero_point: int | None, dtype=np.float64):
        self.flat = h.reshape(-1)
        self.nhwc = nhwc
        if nhwc:
            _, self.H, self.W, self.K = h.shape
        else:
            _, self.K, self.H, self.W = h.shape
        self.zp = zero_point
        self.dtype = dtype

    def __call__(self, n, k, y, x) -> np.ndarray:
        y = np.clip(y, 0, self.H - 1)
        x = np.clip(x, 0, self.W - 1)
        if self.nhwc:
            i = ((n * self.H + y) * self.W + x) * self.K + k
        else:
            i = ((n * self.K + k) * self.H + y) * self.W + x
        v = self.flat[i]
        if self.zp is None:
            return v.astype(self.dtype)
        return (v.astype(np.int64) - self.zp).astype(self.dtype)


def _blur_stencil(g: _Gather, n, k, px, py, radius: int, rx: np.ndarray, ry: np.ndarray,
                  model: tuple | None = None) -> np.ndarray:
    """(M, 13) float32 blurred values at the stencil (rules 5c, 5f), unscaled for integer maps.

    Per value: row pass w[0] v[0] + sum_{b=1..rx} w[b] (v[-b] + v[b]), then the same along
    y over the row-pass values, float32, taps in increasing order; taps beyond a shrunk
    radius are skipped (not multiplied by 0, which would turn an overflowed sum into NaN).
    rx, ry: (M,) kernel radii. model: (S, amp) from :func:`_border_model`; pixels outside
    the map then read the model Gaussian (rule 5f) instead of the clipped map.
    """
    half = kernel_table(radius)[:, radius:].astype(np.float32)  # (R+1, R+1): tap b of radius q
    wx, wy = half[rx], half[ry]  # (M, R+1)
    taps = np.arange(-radius, radius + 1)
    dys = np.array([d[0] for d in STENCIL])
    dxs = np.array([d[1] for d in STENCIL])
    rows = py[:, None, None] + dys[None, :, None] + taps[None, None, :]  # (M, S, A)
    nn, kk = n[:, None, None], k[:, None, None]

    def column(off: int) -> np.ndarray:
        cols = (px[:, None] + dxs[None, :] + off)[:, :, None]
        v = g(nn, kk, rows, cols)
        if model is None:
            return v
        outside = (rows < 0) | (rows >= g.H) | (cols < 0) | (cols >= g.W)
        return np.where(outside, _model_values(model, px, py, radius, rows, cols), v)

    with np.errstate(over="ignore", invalid="ignore"):
        hx = wx[:, 0, None, None] * column(0)  # (M, S, A) float32
        for b in range(1, radius + 1):
            on = (b <= rx)[:, None, None]
            hx = np.where(on, hx + wx[:, b, None, None] * (column(-b) + column(b)), hx)
        out = wy[:, 0, None] * hx[:, :, radius]
        for a in range(1, radius + 1):
            on = (a <= ry)[:, None]
            out = np.where(on, out + wy[:, a, None] * (hx[:, :, radius - a] + hx[:, :, radius + a]), out)
    return out


def _model_values(model: tuple, px, py, radius: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float32 amp * S at (rows, cols) (M, ...), 0 where amp is 0 (no usable model)."""
    S, amp = model
    c = 2 + radius
    shape = (-1,) + (1,) * (rows.ndim - 1)
    ri = np.clip(rows - (py - c).reshape(shape), 0, S.shape[1] - 1)
    ci = np.clip(cols - (px - c).reshape(shape), 0, S.shape[2] - 1)
    m = np.arange(S.shape[0]).reshape(shape)
    a = amp.reshape(shape)
    return np.where(a > 0, (a * S[m, ri, ci]).astype(np.float32), np.float32(0))


def _newton(B: np.ndarray, px, py, W: int, H: int, scale: float | None):
    """Rules 5d-5e on blurred values B (M, 13) float32 -> (ox, oy, stepped, dxx, dyy, dxy)."""
    m = px.shape[0]
    Bf = np.maximum(B.astype(np.float64) * (1.0 if scale is None else scale), LOG_FLOOR)
    wide_x = (px >= 2) & (px <= W - 3)
    wide_y = (py >= 2) & (py <= H - 3)
    ax = (px >= 1) & (px <= W - 2)
    ay = (py >= 1) & (py <= H - 2)
    ox = np.zeros(m)
    oy = np.zeros(m)
    with np.errstate(all="ignore"):
        cc = Bf[:, 0] * Bf[:, 0]
        dx = 0.5 * np.log(Bf[:, 2] / Bf[:, 1])
        dy = 0.5 * np.log(Bf[:, 6] / Bf[:, 5])
        dxx = np.where(wide_x, 0.25 * np.log((Bf[:, 4] * Bf[:, 3]) / cc), np.log((Bf[:, 2] * Bf[:, 1]) / cc))
        dyy = np.where(wide_y, 0.25 * np.log((Bf[:, 8] * Bf[:, 7]) / cc), np.log((Bf[:, 6] * Bf[:, 5]) / cc))
        dxy = 0.25 * np.log((Bf[:, 12] * Bf[:, 9]) / (Bf[:, 10] * Bf[:, 11]))
        det = dxx * dyy - dxy * dxy
        both = ax & ay & (dxx < 0) & (det > DET_REL_EPS * (dxx * dyy))
        bx = -(dyy * dx - dxy * dy) / det
        by = -(dxx * dy - dxy * dx) / det
        ok = both & np.isfinite(bx) & np.isfinite(by)
        ox = np.where(ok, bx, ox)
        oy = np.where(ok, by, oy)
        only_x = ax & ~ay & (dxx < 0)
        sx = -dx / dxx
        ox = np.where(only_x & np.isfinite(sx), sx, ox)
        only_y = ay & ~ax & (dyy < 0)
        sy = -dy / dyy
        oy = np.where(only_y & np.isfinite(sy), sy, oy)
    return ox, oy, ok, dxx, dyy, dxy


def kernel_variance(radius: int) -> float:
    """sum_t w[t] t^2 of the float32 radius-q kernel, in float64 (b = 1..q, both sides)."""
    w = gaussian_kernel(radius)[radius:].astype(np.float32)
    v = 0.0
    for b in range(1, radius + 1):
        v += 2.0 * float(w[b]) * float(b * b)
    return v


def _border_model(g: _Gather, n, k, px, py, ox, oy, dxx, dyy, dxy, vx, vy, radius: int):
    """Rule 5f: the raw-map Gaussian around each peak (M,) -> (S, amp), usable.

    S (M, n, n), n = 5 + 2 radius: the shape exp(-q/2) at pixel (px - 2 - radius + i,
    py - 2 - radius + j) = S[:, j, i], built as the C core builds it, from 7 exps and
    sequential products (q grows by 2 p00 per step along x; down y the step factor is
    exp(-p01 u_i) exp(-p11 (2 v_j + 1) / 2)). amp: least-squares fit of S to the 3x3
    values around the peak, raster order.
    """
    c, nn, m = 2 + radius, 5 + 2 * radius, px.shape[0]
    with np.errstate(all="ignore"):
        det = dxx * dyy - dxy * dxy
        s00 = -dyy / det - vx
        s11 = -dxx / det - vy
        s01 = dxy / det
        a = s00 - MODEL_MIN_VAR
        ok = (a > 0) & (a * (s11 - MODEL_MIN_VAR) - s01 * s01 > 0)
        ds = s00 * s11 - s01 * s01
        p00, p01, p11 = s11 / ds, -s01 / ds, s00 / ds
        ok &= np.isfinite(p00) & np.isfinite(p01) & np.isfinite(p11)
        u0 = (px - c).astype(np.float64) - (px + np.clip(ox, -MAX_OFFSET, MAX_OFFSET))
        v0 = (py - c).astype(np.float64) - (py + np.clip(oy, -MAX_OFFSET, MAX_OFFSET))
        q0 = u0 * (p00 * u0 + p01 * v0) + v0 * (p01 * u0 + p11 * v0)
        S = np.empty((m, nn, nn))
        A = np.empty((m, nn))
        S[:, 0, 0] = np.exp(-0.5 * q0)
        r = np.exp(-0.5 * (p00 * (2.0 * u0 + 1.0) + 2.0 * p01 * v0))
        sx = np.exp(-p00)
        A[:, 0] = np.exp(-p01 * u0)
        ea = np.exp(-p01)
        b = np.exp(-0.5 * p11 * (2.0 * v0 + 1.0))
        eb = np.exp(-p11)
        for i in range(1, nn):
            S[:, 0, i] = S[:, 0, i - 1] * r
            r = r * sx
            A[:, i] = A[:, i - 1] * ea
        for j in range(1, nn):
            S[:, j, :] = (S[:, j - 1, :] * A) * b[:, None]
            b = b * eb
        num = np.zeros(m)
        den = np.zeros(m)
        for j in (-1, 0, 1):
            for i in (-1, 0, 1):
                gq = S[:, c + j, c + i]
                num = num + gq * g(n, k, py + j, px + i).astype(np.float64)
                den = den + gq * gq
        amp = num / den
        ok &= np.isfinite(amp) & (amp > 0)
    return (S, np.where(ok, amp, 0.0)), ok


def _dark_offsets(g: _Gather, n, k, px, py, radius: int, scale: float | None) -> tuple[np.ndarray, np.ndarray]:
    """DARK offsets (M,), (M,) for valid peaks (rules 3 and 5)."""
    H, W = g.H, g.W
    rx = effective_radius(px, W, radius)
    ry = effective_radius(py, H, radius)
    B = _blur_stencil(g, n, k, px, py, radius, rx, ry)
    ox, oy, stepped, dxx, dyy, dxy = _newton(B, px, py, W, H, scale)
    near = (px >= 2) & (px <= W - 3) & (py >= 2) & (py <= H - 3) & ((rx < radius) | (ry < radius))
    if not near.any():
        return ox, oy
    sel = np.nonzero(near)[0]
    var = np.array([kernel_variance(q) for q in range(radius + 1)])
    (S, amp), usable = _border_model(g, n[sel], k[sel], px[sel], py[sel], ox[sel], oy[sel], dxx[sel], dyy[sel],
                                     dxy[sel], var[rx[sel]], var[ry[sel]], radius)
    # no 2-D first-pass step or no usable model: zeros outside the map (DarkPose's padding)
    model = (S, np.where(usable & stepped[sel], amp, 0.0))
    full = np.full(sel.shape, radius)
    B2 = _blur_stencil(g, n[sel], k[sel], px[sel], py[sel], radius, full, full, model)
    ox2, oy2, ok2, *_ = _newton(B2, px[sel], py[sel], W, H, scale)
    ox[sel] = np.where(ok2, ox2, ox[sel])
    oy[sel] = np.where(ok2, oy2, oy[sel])
    return ox, oy


def _quarter_offsets(g: _Gather, n, k, px, py) -> tuple[np.ndarray, np.ndarray]:
    """0.25 px toward the larger neighbour, per refinable axis (rule 4)."""
    ax = (px >= 1) & (px <= g.W - 2)
    ay = (py >= 1) & (py <= g.H - 2)
    ddx = g(n, k, py, px + 1) - g(n, k, py, px - 1)
    ddy = g(n, k, py + 1, px) - g(n, k, py - 1, px)
    return np.where(ax, 0.25 * np.sign(ddx), 0.0), np.where(ay, 0.25 * np.sign(ddy), 0.0)


def decode(h: np.ndarray, method: str, blur_kernel: int, nhwc: bool,
           scale: float | None = None, zero_point: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Reference decode of validated input.

    Args:
        h: (N, K, H, W) or, with ``nhwc``, (N, H, W, K); C-contiguous float32, int8 or uint8.
        method: ``argmax`` | ``quarter`` | ``dark``.
        blur_kernel: odd k >= 1 (dark only).
        scale, zero_point: quantization of integer maps (None for float).
    Returns:
        coords (N, K, 2) float32 (x, y) heatmap pixels; scores (N, K) float32.
    """
    if nhwc:
        N, H, W, K = h.shape
    else:
        N, K, H, W = h.shape
    idx, mx, valid = _peaks(h, nhwc)
    py_all, px_all = np.divmod(idx, W)
    coords = np.empty((N, K, 2), dtype=np.float64)
    coords[..., 0] = (W - 1) / 2.0
    coords[..., 1] = (H - 1) / 2.0
    if scale is None:
        peak = mx.astype(np.float64)
    else:
        peak = (mx.astype(np.int64) - zero_point).astype(np.float64) * scale
    scores = np.where(valid, peak, INVALID_SCORE)
    n, k = np.nonzero(valid)
    px, py = px_all[n, k], py_all[n, k]
    if method == "dark":
        g = _Gather(h, nhwc, zero_point, np.float32)
        ox, oy = _dark_offsets(g, n, k, px, py, (blur_kernel - 1) // 2, scale)
    elif method == "quarter":
        ox, oy = _quarter_offsets(_Gather(h, nhwc, zero_point), n, k, px, py)
    else:
        ox = oy = np.zeros(px.shape)
    coords[n, k, 0] = px + np.clip(ox, -MAX_OFFSET, MAX_OFFSET)
    coords[n, k, 1] = py + np.clip(oy, -MAX_OFFSET, MAX_OFFSET)
    return coords.astype(np.float32), scores.astype(np.float32)


def encode(coords: np.ndarray, height: int, width: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased Gaussian targets.

    Args:
        coords: (N, K, 2) float (x, y) heatmap pixels.
        height, width: heatmap size.
        sigma: standard deviation in heatmap pixels.
    Returns:
        heatmaps (N, K, H, W) float32, peak 1 at the (float) centre, not truncated;
        weights (N, K) float32: 1 inside the map's extent [-0.5, W-0.5) x [-0.5, H-0.5),
        0 (and an all-zero map) outside or for non-finite coordinates.
    """
    c = np.asarray(coords, dtype=np.float64)
    x, y = c[..., 0], c[..., 1]
    with np.errstate(invalid="ignore"):
        inside = (np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x < width - 0.5)
                  & (y >= -0.5) & (y < height - 0.5))
    xs = np.arange(width, dtype=np.float64)
    ys = np.arange(height, dtype=np.float64)
    xc = np.where(inside, x, 0.0)[..., None]
    yc = np.where(inside, y, 0.0)[..., None]
    gx = np.exp(-((xs - xc) ** 2) / (2.0 * sigma * sigma)) * inside[..., None]
    gy = np.exp(-((ys - yc) ** 2) / (2.0 * sigma * sigma))
    heatmaps = (gy[..., :, None] * gx[..., None, :]).astype(np.float32)
    return heatmaps, inside.astype(np.float32)
