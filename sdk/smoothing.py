"""One Euro filter (Casiez, Roussel and Vogel, CHI 2012) for landmark streams.

An adaptive low-pass filter: its cutoff frequency rises with the signal's speed, so a still
face is smoothed hard (little jitter) while a moving one is followed closely (little lag)::

    alpha(fc, dt) = 1 / (1 + 1 / (2 pi fc dt))
    dx_hat  = lowpass(dx / dt, alpha(d_cutoff, dt))          # smoothed speed
    fc      = min_cutoff + beta * |dx_hat|
    x_hat   = lowpass(x, alpha(fc, dt))

Every element of the array is filtered on its own. ``dt`` comes from the frames' timestamps
(milliseconds), so dropped or irregular frames are handled. Speeds are measured in the units of
``x / value_scale`` per second: the runtime passes landmarks in image pixels with ``value_scale``
= image pixels per pixel of the model's crop, so the defaults mean the same thing for a small or a
large face.

The defaults were tuned on ``benchmarks/bench_video.py`` (static jitter vs lag on the slow clip);
see docs/video.md.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from facelm.errors import InputError


@dataclass(frozen=True)
class OneEuroConfig:
    """One Euro parameters.

    Attributes:
        min_cutoff: cutoff (Hz) of a still signal; lower = less jitter, more lag when slow.
        beta: cutoff increase per unit of speed (1 / (crop px)); higher = less lag when moving.
        d_cutoff: cutoff (Hz) of the speed estimate.
    """

    min_cutoff: float = 1.0
    beta: float = 0.5
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        if not (self.min_cutoff > 0 and self.d_cutoff > 0 and self.beta >= 0):
            raise InputError(f"One Euro needs min_cutoff > 0, d_cutoff > 0 and beta >= 0, got {self}")


def smoothing_factor(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    """Exponential-smoothing weight of a new sample for a first-order low-pass at ``cutoff`` Hz, ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, dtype=np.float64))
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Stateful One Euro filter over arrays of a fixed shape.

    Args:
        config: filter parameters.
    """

    def __init__(self, config: OneEuroConfig | None = None) -> None:
        self.config = config or OneEuroConfig()
        self.reset()

    def reset(self) -> None:
        """Forget the past (the next sample passes unchanged)."""
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    def __call__(self, x: np.ndarray, timestamp_ms: float, value_scale: float = 1.0) -> np.ndarray:
        """Filter one sample.

        Args:
            x: array of any shape (the same on every call until :meth:`reset`).
            timestamp_ms: capture time in milliseconds; must increase from call to call.
            value_scale: units of ``x`` per unit in which speeds are measured (> 0).
        Returns:
            float64 array shaped like ``x``.
        """
        x = np.asarray(x, dtype=np.float64)
        t = float(timestamp_ms)
        if not math.isfinite(t):
            raise InputError(f"timestamp must be finite, got {timestamp_ms}")
        if not value_scale > 0:
            raise InputError(f"value_scale must be > 0, got {value_scale}")
        if self._x is None:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        if x.shape != self._x.shape:
            raise InputError(f"One Euro filter got shape {x.shape} after {self._x.shape}; reset() between faces")
        if t <= self._t:
            raise InputError(f"timestamps must increase: {t} ms after {self._t} ms")
        c = self.config
        dt = (t - self._t) / 1000.0
        dx = (x - self._x) / (dt * value_scale)
        self._dx = self._dx + smoothing_factor(c.d_cutoff, dt) * (dx - self._dx)
        a = smoothing_factor(c.min_cutoff + c.beta * np.abs(self._dx), dt)
        self._x = self._x + a * (x - self._x)
        self._t = t
        return self._x.copy()
