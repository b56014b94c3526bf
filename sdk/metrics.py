"""Benchmark metrics: NME, CED, AUC and failure rate, plus CED plots.

Definitions (paper section 3.2, and the community code PIPNet ``compute_fr_and_auc``):

- NME of one image = mean over landmarks of ``||pred - gt||`` divided by the layout's
  normaliser (JD-106: sqrt(w*h) of the ground-truth box; WFLW/300W: inter-ocular).
- CED(x) = share of images with ``NME <= x``, sampled on ``0, step, 2*step, ..., threshold``.
- AUC@t = integral of the CED over [0, t], divided by t. The default integration rule is
  composite Simpson with step 1e-4 (the community rule); ``rule="trapezoid"`` is available.
- Failure rate @t = share of images with ``NME > t``.
"""
from __future__ import annotations

import os
from typing import Literal, Mapping

import numpy as np

from facelm.errors import InputError
from facelm.fileio import atomic_path
from facelm.layouts import Layout, get_layout

AUC_THRESHOLD = 0.08
AUC_STEP = 1e-4


def landmark_errors(pred: np.ndarray, gt: np.ndarray, layout: Layout | str, bbox: np.ndarray | None = None) -> np.ndarray:
    """Normalised error of every landmark.

    Args:
        pred, gt: (N, K, 2) pixels (same frame).
        layout: the markup (decides the normaliser).
        bbox: (N, 4) ``x1 y1 x2 y2`` GT boxes for bbox-normalised layouts (default: tight box of ``gt``).
    Returns:
        (N, K) float64.
    """
    lay = get_layout(layout)
    p = np.asarray(pred, dtype=np.float64)
    g = np.asarray(gt, dtype=np.float64)
    if p.ndim == 2:
        p, g = p[None], g[None]
    if p.shape != g.shape or p.ndim != 3 or p.shape[1:] != (lay.num_points, 2):
        raise InputError(
            f"pred {np.shape(pred)} and gt {np.shape(gt)} must both be (N, {lay.num_points}, 2) for layout {lay.name}"
        )
    norm = lay.normalizer(g, bbox)
    if np.any(~np.isfinite(norm)) or np.any(norm <= 0):
        raise InputError("ground truth gives a zero or non-finite normalisation distance")
    return np.linalg.norm(p - g, axis=-1) / norm[:, None]


def nme(pred: np.ndarray, gt: np.ndarray, layout: Layout | str, bbox: np.ndarray | None = None) -> np.ndarray:
    """NME per image: (N, K, 2) pairs -> (N,) float64. See :func:`landmark_errors`."""
    return landmark_errors(pred, gt, layout, bbox).mean(axis=1)


def _grid(threshold: float, step: float) -> np.ndarray:
    if not (threshold > 0 and step > 0 and step <= threshold):
        raise InputError(f"need 0 < step <= threshold, got step={step}, threshold={threshold}")
    n = int(round(threshold / step))
    return np.linspace(0.0, threshold, n + 1)


def ced(nmes: np.ndarray, threshold: float = AUC_THRESHOLD, step: float = AUC_STEP) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution.

    Args:
        nmes: (N,) per-image NME.
    Returns:
        ``(xs, ys)``: thresholds ``0..threshold`` and the share of images with ``NME <= x``.
    """
    e = np.asarray(nmes, dtype=np.float64).ravel()
    if e.size == 0:
        raise InputError("no NME values given")
    e = np.where(np.isfinite(e), e, np.inf)  # a NaN prediction counts as a failure
    xs = _grid(threshold, step)
    ys = np.searchsorted(np.sort(e), xs, side="right") / e.size
    return xs, ys


def _simpson(ys: np.ndarray, dx: float) -> float:
    """Composite Simpson on equally spaced samples; an odd last interval uses the trapezoid."""
    n = len(ys) - 1
    if n < 2:
        return float(0.5 * dx * (ys[0] + ys[-1])) if n == 1 else 0.0
    m = n - (n % 2)
    s = ys[0] + ys[m] + 4.0 * ys[1:m:2].sum() + 2.0 * ys[2:m - 1:2].sum()
    total = s * dx / 3.0
    if n % 2:
        total += 0.5 * dx * (ys[-2] + ys[-1])
    return float(total)


def auc(
    nmes: np.ndarray,
    threshold: float = AUC_THRESHOLD,
    step: float = AUC_STEP,
    rule: Literal["simpson", "trapezoid"] = "simpson",
) -> float:
    """Area under the CED on [0, threshold], divided by threshold (in [0, 1])."""
    xs, ys = ced(nmes, threshold, step)
    dx = xs[1] - xs[0]
    if rule == "simpson":
        area = _simpson(ys, dx)
    elif rule == "trapezoid":
        area = float(dx * (ys.sum() - 0.5 * (ys[0] + ys[-1])))
    else:
        raise InputError(f"unknown integration rule {rule!r}; use 'simpson' or 'trapezoid'")
    return area / threshold


def failure_rate(nmes: np.ndarray, threshold: float = AUC_THRESHOLD) -> float:
    """Share of images whose NME exceeds ``threshold`` (NaN counts as a failure)."""
    e = np.asarray(nmes, dtype=np.float64).ravel()
    if e.size == 0:
        raise InputError("no NME values given")
    return float(np.mean(~(e <= threshold)))


def summarize(nmes: np.ndarray, threshold: float = AUC_THRESHOLD) -> dict[str, float]:
    """``{"nme", "auc", "fr", "count"}`` for one run (NME as a fraction, not %)."""
    e = np.asarray(nmes, dtype=np.float64).ravel()
    return {
        "nme": float(np.mean(e)),
        "auc": auc(e, threshold),
        "fr": failure_rate(e, threshold),
        "count": int(e.size),
    }


def plot_ced(
    runs: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    threshold: float = AUC_THRESHOLD,
    title: str = "Cumulative error distribution",
) -> str:
    """Draw the CED curves of several runs to a PNG (written atomically).

    Args:
        runs: run name -> (N,) per-image NME.
        path: output ``.png``.
    Returns:
        The path written.
    """
    if not runs:
        raise InputError("plot_ced needs at least one run")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    try:
        for name, e in runs.items():
            xs, ys = ced(e, threshold)
            ax.plot(xs, ys, label=f"{name} (AUC {100 * auc(e, threshold):.2f}, FR {100 * failure_rate(e, threshold):.2f}%)")
        ax.set_xlim(0, threshold)
        ax.set_ylim(0, 1.0)
        ax.set_xlabel("NME")
        ax.set_ylabel("share of images")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)
    return os.fspath(path)
