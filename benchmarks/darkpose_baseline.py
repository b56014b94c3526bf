"""BASELINE ONLY, not used by the SDK: a DarkPose-style DARK decoder.

Written for this project after the algorithm described in DarkPose
``lib/core/inference.py`` and mmpose ``refine_keypoints_dark`` (Zhang et al. 2020): it blurs
every whole map with ``cv2.GaussianBlur`` (zero padding of (k-1)/2 pixels, the blurred map
rescaled to the original max), takes log(max(h, 1e-10)) of the whole tensor and then loops
in Python over every keypoint for the Taylor (Newton) step, skipping it when det(H) == 0 or
the peak is within 2 px of the border. Maps whose max is <= 0 decode to (0, 0), as there.

``benchmarks/bench_codec.py`` times it as the slow reference and ``tests/test_codec.py``
compares accuracy against it. The SDK's decoder is ``facelm.codec.decode``.
"""
from __future__ import annotations

import cv2
import numpy as np


def argmax_preds(heatmaps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) -> integer-peak coords (N, K, 2) float32, maxvals (N, K)."""
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    idx = np.argmax(flat, axis=2)
    maxvals = np.amax(flat, axis=2)
    preds = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    preds *= (maxvals > 0)[..., None]
    return preds, maxvals


def blur_maps(heatmaps: np.ndarray, kernel: int) -> np.ndarray:
    """Whole-map Gaussian blur with zero padding, rescaled to each map's original max."""
    border = (kernel - 1) // 2
    out = heatmaps.copy()
    n, k, h, w = heatmaps.shape
    for i in range(n):
        for j in range(k):
            origin_max = np.max(out[i, j])
            padded = np.zeros((h + 2 * border, w + 2 * border))
            padded[border:border + h, border:border + w] = out[i, j]
            padded = cv2.GaussianBlur(padded, (kernel, kernel), 0)
            out[i, j] = padded[border:border + h, border:border + w]
            out[i, j] *= origin_max / np.max(out[i, j])
    return out


def taylor_step(hm: np.ndarray, coord: np.ndarray) -> np.ndarray:
    """One Newton step on a log-map at an integer peak; returns the refined (x, y)."""
    h, w = hm.shape
    px, py = int(coord[0]), int(coord[1])
    if 1 < px < w - 2 and 1 < py < h - 2:
        dx = 0.5 * (hm[py][px + 1] - hm[py][px - 1])
        dy = 0.5 * (hm[py + 1][px] - hm[py - 1][px])
        dxx = 0.25 * (hm[py][px + 2] - 2 * hm[py][px] + hm[py][px - 2])
        dxy = 0.25 * (hm[py + 1][px + 1] - hm[py - 1][px + 1] - hm[py + 1][px - 1] + hm[py - 1][px - 1])
        dyy = 0.25 * (hm[py + 2][px] - 2 * hm[py][px] + hm[py - 2][px])
        hessian = np.array([[dxx, dxy], [dxy, dyy]])
        if dxx * dyy - dxy ** 2 != 0:
            offset = -np.linalg.inv(hessian) @ np.array([dx, dy])
            coord = coord + offset
    return coord


def decode_darkpose(heatmaps: np.ndarray, kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) float32 -> coords (N, K, 2) float64, maxvals (N, K)."""
    coords, maxvals = argmax_preds(heatmaps)
    coords = coords.astype(np.float64)
    hm = blur_maps(heatmaps, kernel)
    hm = np.maximum(hm, 1e-10)
    hm = np.log(hm)
    for n in range(coords.shape[0]):
        for p in range(coords.shape[1]):
            coords[n, p] = taylor_step(hm[n][p], coords[n][p])
    return coords, maxvals
