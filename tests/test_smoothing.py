"""One Euro filter: exact first-order maths, timestamp handling, jitter vs lag."""
import math

import numpy as np
import pytest

from facelm.errors import InputError
from facelm.smoothing import OneEuroConfig, OneEuroFilter, smoothing_factor


def test_first_sample_passes_and_constant_stays_constant():
    f = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.3))
    x = np.array([[3.25, -1.5], [7.0, 2.0]])
    for i in range(10):
        np.testing.assert_array_equal(f(x, 33.0 * i), x)


def test_step_with_beta_zero_is_an_exponential_low_pass():
    fc, dt = 2.0, 0.040
    f = OneEuroFilter(OneEuroConfig(min_cutoff=fc, beta=0.0))
    f(np.zeros(3), 0.0)
    a = 1.0 / (1.0 + 1.0 / (2 * math.pi * fc * dt))  # tau / dt with tau = 1 / (2 pi fc)
    y1 = f(np.ones(3), 40.0)
    y2 = f(np.ones(3), 80.0)
    np.testing.assert_allclose(y1, a, atol=1e-12)
    np.testing.assert_allclose(y2, a + (1 - a) * a, atol=1e-12)
    assert smoothing_factor(fc, dt) == pytest.approx(a, abs=1e-15)


def test_irregular_timestamps_use_the_real_interval():
    f1, f2 = OneEuroFilter(OneEuroConfig(beta=0.0)), OneEuroFilter(OneEuroConfig(beta=0.0))
    f1(np.zeros(1), 0.0)
    f2(np.zeros(1), 0.0)
    short, long_ = f1(np.ones(1), 10.0), f2(np.ones(1), 100.0)
    assert long_[0] > short[0] + 0.1  # a longer gap lets more of the new value through


def test_beta_cuts_lag_on_a_ramp_and_filter_halves_jitter_on_noise():
    t = np.arange(120) * (1000 / 30)
    ramp = 0.5 * np.arange(120)  # 0.5 units per frame
    lags = {}
    for beta in (0.0, 1.0):
        f = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=beta))
        y = np.array([f(np.array([v]), ts)[0] for v, ts in zip(ramp, t)])
        lags[beta] = float(np.mean(ramp[60:] - y[60:]) / 0.5)  # frames behind
    assert lags[1.0] < 0.5 * lags[0.0]
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1.0, (120, 10))
    f = OneEuroFilter(OneEuroConfig(min_cutoff=1.0, beta=0.05))
    y = np.array([f(n, ts) for n, ts in zip(noise, t)])
    assert np.diff(y[10:], axis=0).std() < 0.5 * np.diff(noise[10:], axis=0).std()


def test_value_scale_makes_speeds_scale_free():
    t = np.arange(40) * 33.0
    out = []
    for s in (1.0, 4.0):
        f = OneEuroFilter(OneEuroConfig(min_cutoff=0.5, beta=0.5))
        out.append(np.array([f(np.array([s * v]), ts, value_scale=s)[0] for v, ts in zip(np.arange(40.0), t)]) / s)
    np.testing.assert_allclose(out[0], out[1], atol=1e-9)


def test_errors():
    f = OneEuroFilter()
    f(np.zeros(2), 10.0)
    with pytest.raises(InputError, match="increase"):
        f(np.zeros(2), 10.0)
    with pytest.raises(InputError, match="shape"):
        f(np.zeros(3), 20.0)
    with pytest.raises(InputError):
        OneEuroConfig(min_cutoff=0.0)
    with pytest.raises(InputError):
        f(np.zeros(2), float("nan"))
    f.reset()
    np.testing.assert_array_equal(f(np.ones(3), 0.0), np.ones(3))
