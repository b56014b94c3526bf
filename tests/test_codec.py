"""facelm.codec: accuracy of the numpy reference, encode, flip test, errors (backend-neutral).

C-vs-numpy agreement and the portable C core are in tests/test_codec_c.py.
"""
from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest

import facelm.codec as codec
from facelm.codec import DecodeConfig, EncodeConfig
from facelm.errors import ConfigError, InputError
from facelm.layouts import JD106, flip_landmarks

SUBPIXEL_TOL = 0.01  # px, the accuracy bar
#: "No worse than DarkPose" with noise, allowing for sampling noise between two estimators
#: of equal mean (mean error over 6x106 maps; README "Heatmap codec" gives pooled figures).
NOISE_TIE_ALLOWANCE = 1.005  # all centres >= 3 px from the border
NEAR_BORDER_TIE_ALLOWANCE = 1.02  # the ~30% of them whose peak is within 7 px of a border
ROOT = Path(__file__).resolve().parents[1]


def _baseline():
    spec = importlib.util.spec_from_file_location("darkpose_baseline", ROOT / "benchmarks" / "darkpose_baseline.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def gaussian_maps(centres: np.ndarray, h: int, w: int, sigma: float) -> np.ndarray:
    """Independent of codec.encode: (N, K, 2) centres -> (N, K, H, W) float32 unbiased Gaussians."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    dx = xs[None, None] - centres[..., 0, None, None]
    dy = ys[None, None] - centres[..., 1, None, None]
    return np.exp(-(dx**2 + dy**2) / (2 * sigma**2)).astype(np.float32)


def _backends() -> list:
    from facelm.codec import core

    c = pytest.param("c", marks=pytest.mark.skipif(core._cdark is None, reason="C extension not built"))
    return ["numpy", c]


@pytest.fixture(autouse=True, params=_backends())
def backend_name(request, monkeypatch) -> str:
    """Every test here runs once per backend (FACELM_CODEC selects it)."""
    monkeypatch.setenv("FACELM_CODEC", request.param)
    return request.param


@pytest.mark.parametrize("size", [48, 96])
@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 2.5, 3.0])
def test_dark_is_subpixel_exact_on_clean_gaussians(size, sigma):
    rng = np.random.default_rng(int(sigma * 10) + size)
    centres = rng.uniform(3.0, size - 4.0, (3, 40, 2))
    centres[0, :4] = [[3.0, 3.0], [size - 4.0, 3.2], [3.4, size - 4.0], [size - 4.0, size - 4.0]]  # 3 px from border
    coords, scores = codec.decode(gaussian_maps(centres, size, size, sigma), "dark")
    err = np.linalg.norm(coords - centres, axis=-1)
    assert err.max() <= SUBPIXEL_TOL, f"max error {err.max():.4f} px"
    assert coords.dtype == np.float32 and coords.shape == (3, 40, 2) and scores.shape == (3, 40)
    assert np.all(scores > 0.7)


def test_methods_argmax_and_quarter_follow_their_definitions():
    centres = np.array([[[10.3, 20.0], [5.0, 7.8], [30.6, 12.4]]])
    maps = gaussian_maps(centres, 48, 48, 2.0)
    am, _ = codec.decode(maps, "argmax")
    np.testing.assert_array_equal(am, np.round(centres))
    qt, _ = codec.decode(maps, "quarter")
    expect = np.round(centres) + 0.25 * np.sign(centres - np.round(centres))
    np.testing.assert_allclose(qt, expect, atol=1e-6)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.0])
def test_encode_decode_round_trip(sigma):
    rng = np.random.default_rng(7)
    pts = rng.uniform(3.0, 44.0, (4, 106, 2))
    maps, weights = codec.encode(pts, (48, 48), sigma=sigma)
    assert maps.shape == (4, 106, 48, 48) and maps.dtype == np.float32
    np.testing.assert_array_equal(weights, 1.0)
    coords, _ = codec.decode(maps)
    assert np.abs(coords - pts).max() <= SUBPIXEL_TOL


def test_encode_matches_formula_and_zeroes_outside_points():
    pts = np.array([[[10.25, 7.5], [-0.6, 5.0], [47.6, 3.0], [5.0, np.nan], [0.0, -0.5]]])
    maps, weights = codec.encode(pts, (48, 32), sigma=1.5)
    assert maps.shape == (1, 5, 32, 48)
    np.testing.assert_array_equal(weights, [[1, 0, 0, 0, 1]])
    np.testing.assert_allclose(maps[0, 0], gaussian_maps(pts[:, :1], 32, 48, 1.5)[0, 0], atol=1e-7)
    assert np.all(maps[0, 1:4] == 0)
    single, w1 = codec.encode(pts[0, :1], (48, 32), sigma=1.5, visible=np.array([False]))
    assert single.shape == (1, 32, 48) and w1[0] == 0 and not single.any()


def test_window_blur_equals_whole_map_darkpose_blur_in_the_interior():
    """Interior peaks: the windowed blur gives DarkPose's whole-map answer (float32 storage there)."""
    ref = _baseline()
    rng = np.random.default_rng(3)
    centres = rng.uniform(8.0, 39.0, (2, 106, 2))
    maps = gaussian_maps(centres, 48, 48, 2.0) + rng.normal(0, 0.03, (2, 106, 48, 48)).astype(np.float32)
    ours, _ = codec.decode(maps.astype(np.float32), "dark", blur_kernel=11)
    theirs, _ = ref.decode_darkpose(maps.astype(np.float32), 11)
    assert np.abs(ours - theirs).max() < 1e-4


@pytest.mark.parametrize("sigma,noise", [(1.5, 0.03), (2.0, 0.03), (3.0, 0.02), (2.0, 0.08), (1.0, 0.1), (3.0, 0.1)])
def test_noisy_maps_dark_no_worse_than_darkpose(sigma, noise):
    """Mean error over centres >= 3 px from the border, vs the DarkPose-style baseline."""
    ref = _baseline()
    rng = np.random.default_rng(int(100 * sigma + 1000 * noise))
    centres = rng.uniform(3.0, 44.0, (6, 106, 2))
    maps = (gaussian_maps(centres, 48, 48, sigma) + rng.normal(0, noise, (6, 106, 48, 48))).astype(np.float32)
    ours, _ = codec.decode(maps, "dark")
    theirs, _ = ref.decode_darkpose(maps, 11)
    e_ours = np.linalg.norm(ours - centres, axis=-1)
    e_ref = np.linalg.norm(theirs - centres, axis=-1)
    peaks, _ = codec.decode(maps, "argmax")
    interior = np.all((peaks >= 7) & (peaks <= 40), axis=-1)  # the full k=11 window fits
    # Interior: the same algorithm, so the same error. Within 7 px of a border the reference
    # blurs across zero padding (biased: 0.2 px on clean sigma-3 maps); ours pads with the
    # Gaussian fitted to a first pass (rule 5f), unbiased and as smooth.
    assert e_ours[interior].mean() <= e_ref[interior].mean() + 1e-4
    assert e_ours.mean() <= e_ref.mean() * NOISE_TIE_ALLOWANCE, (e_ours.mean(), e_ref.mean())
    assert e_ours[~interior].mean() <= e_ref[~interior].mean() * NEAR_BORDER_TIE_ALLOWANCE
    assert e_ours.mean() < 0.5 * np.linalg.norm(codec.decode(maps, "argmax")[0] - centres, axis=-1).mean()


@pytest.mark.parametrize("sigma", [1.0, 1.5, 2.0, 2.5, 3.0])
def test_dark_is_subpixel_exact_near_borders_where_zero_padding_is_biased(sigma):
    """Clean Gaussians 3-7 px from one or two borders: <= 0.01 px (DarkPose: up to 0.2 px)."""
    rng = np.random.default_rng(int(10 * sigma))
    centres = rng.uniform(8.0, 39.0, (2, 60, 2))
    dist = rng.uniform(3.0, 7.0, centres.shape)
    near = rng.random(centres.shape) < 0.6
    far_side = rng.random(centres.shape) < 0.5
    centres = np.where(near, np.where(far_side, 47.0 - dist, dist), centres)
    coords, _ = codec.decode(gaussian_maps(centres, 48, 48, sigma), "dark")
    err = np.linalg.norm(coords - centres, axis=-1)
    assert err.max() <= SUBPIXEL_TOL, f"max error {err.max():.4f} px"
    if sigma >= 2.5:  # the case the border rule exists for: zero padding is visibly biased here
        theirs, _ = _baseline().decode_darkpose(gaussian_maps(centres, 48, 48, sigma), 11)
        assert np.linalg.norm(theirs - centres, axis=-1).max() > 5 * SUBPIXEL_TOL


def test_nhwc_and_int8_decode_like_nchw_float():
    rng = np.random.default_rng(11)
    centres = rng.uniform(2.0, 45.0, (2, 106, 2))
    maps = gaussian_maps(centres, 48, 48, 2.0) + rng.normal(0, 0.02, (2, 106, 48, 48)).astype(np.float32)
    scale, zp = 1.0 / 200, -100
    q = np.clip(np.round(maps / scale) + zp, -128, 127).astype(np.int8)
    deq = ((q.astype(np.float32) - zp) * scale).astype(np.float32)
    for method in codec.METHODS:
        ref_c, ref_s = codec.decode(deq, method)
        nhwc_c, nhwc_s = codec.decode(np.ascontiguousarray(maps.transpose(0, 2, 3, 1)), method, layout="nhwc")
        np.testing.assert_array_equal(nhwc_c, codec.decode(maps, method)[0])
        np.testing.assert_array_equal(nhwc_s, codec.decode(maps, method)[1])
        q_c, q_s = codec.decode(q, method, scale=scale, zero_point=zp)
        np.testing.assert_allclose(q_c, ref_c, atol=1e-4)
        np.testing.assert_allclose(q_s, ref_s, rtol=1e-6)
        qn_c, _ = codec.decode(np.ascontiguousarray(q.transpose(0, 2, 3, 1)), method, layout="nhwc",
                               scale=scale, zero_point=zp)
        np.testing.assert_allclose(qn_c, q_c, atol=1e-6)
        u = (q.astype(np.int16) + 128).astype(np.uint8)
        u_c, u_s = codec.decode(u, method, scale=scale, zero_point=zp + 128)
        np.testing.assert_allclose(u_c, q_c, atol=1e-6)
        np.testing.assert_allclose(u_s, q_s, rtol=1e-6)


def bad_maps() -> tuple[np.ndarray, list[str]]:
    """(1, 7, 24, 32) maps without a usable peak."""
    m = np.zeros((1, 7, 24, 32), np.float32)
    names = ["zero", "constant", "negative_constant", "nan", "inf", "neg_inf", "one_nan_far_from_peak"]
    m[0, 1] = 5.0
    m[0, 2] = -3.0
    m[0, 3] = np.nan
    m[0, 4, 3, 4] = np.inf
    m[0, 5] = 1.0
    m[0, 5, 10, 10] = -np.inf
    m[0, 6] = gaussian_maps(np.array([[[16.2, 12.7]]]), 24, 32, 2.0)[0, 0]
    m[0, 6, 0, 0] = np.nan
    return m, names


@pytest.mark.parametrize("method", codec.METHODS)
def test_bad_maps_give_centre_and_zero_score(method):
    maps, names = bad_maps()
    coords, scores = codec.decode(maps, method)
    assert np.all(np.isfinite(coords)) and np.all(np.isfinite(scores))
    np.testing.assert_array_equal(coords[0], np.tile([15.5, 11.5], (len(names), 1)))
    np.testing.assert_array_equal(scores, 0.0)


@pytest.mark.parametrize("method", codec.METHODS)
def test_border_peaks_and_tiny_maps_stay_finite_and_in_range(method):
    rng = np.random.default_rng(5)
    maps = rng.normal(0, 1, (2, 6, 9, 7)).astype(np.float32)
    corners = [(0, 0), (0, 6), (8, 0), (8, 6), (1, 1), (7, 5)]
    for k, (y, x) in enumerate(corners):
        maps[:, k, y, x] = 50.0
    coords, scores = codec.decode(maps, method)
    assert np.all(np.abs(coords[..., 0] - np.array([c[1] for c in corners])) <= 1.0)
    assert np.all(np.abs(coords[..., 1] - np.array([c[0] for c in corners])) <= 1.0)
    np.testing.assert_array_equal(scores, 50.0)
    for shape in [(1, 2, 1, 1), (1, 2, 1, 5), (1, 2, 2, 2), (1, 1, 3, 40)]:
        m = rng.random(shape).astype(np.float32)
        c, s = codec.decode(m, method)
        assert np.all(np.isfinite(c)) and np.all((c >= 0) & (c <= np.array(shape[:1:-1]) - 1))


def test_singular_hessian_skips_the_step_and_border_axis_uses_1d_step():
    # all values below the log floor: L is flat, H = 0 -> no step, integer peak
    m = np.full((1, 1, 20, 20), -1.0, np.float32)
    m[0, 0, 9, 6] = -0.5
    coords, score = codec.decode(m, "dark")
    np.testing.assert_array_equal(coords[0, 0], [6.0, 9.0])
    assert score[0, 0] == -0.5
    # a ridge constant along y: the first max is in row 0, so only x is refined (1-D step)
    m = np.zeros((1, 1, 20, 20), np.float32)
    m[0, 0] = np.exp(-((np.arange(20) - 9.3) ** 2) / 8.0)[None, :]
    coords, _ = codec.decode(m, "dark")
    assert coords[0, 0, 1] == 0.0 and abs(coords[0, 0, 0] - 9.3) < SUBPIXEL_TOL


@pytest.mark.parametrize(
    "kwargs,arr,err",
    [
        ({}, np.zeros((2, 3, 4), np.float32), InputError),
        ({}, np.zeros((1, 2, 4, 4), np.int16), InputError),
        ({}, np.zeros((1, 2, 4, 4), np.int8), InputError),
        ({"scale": 0.0, "zero_point": 0}, np.zeros((1, 2, 4, 4), np.int8), InputError),
        ({"scale": 0.1, "zero_point": 300}, np.zeros((1, 2, 4, 4), np.int8), InputError),
        ({"scale": 0.1, "zero_point": 1.5}, np.zeros((1, 2, 4, 4), np.uint8), InputError),
        ({"scale": 0.1, "zero_point": 0}, np.zeros((1, 2, 4, 4), np.float32), InputError),
        ({}, np.zeros((1, 0, 4, 4), np.float32), InputError),
        ({"blur_kernel": 4}, np.zeros((1, 2, 4, 4), np.float32), ConfigError),
        ({"layout": "chw"}, np.zeros((1, 2, 4, 4), np.float32), ConfigError),
        ({"bogus": 1}, np.zeros((1, 2, 4, 4), np.float32), ConfigError),
        ({"backend": "cuda"}, np.zeros((1, 2, 4, 4), np.float32), ConfigError),
        ({}, [[1, 2], [3]], InputError),
    ],
)
def test_decode_errors(kwargs, arr, err):
    with pytest.raises(err):
        codec.decode(arr, **kwargs)


def test_unknown_method_and_encode_errors():
    with pytest.raises(ConfigError):
        codec.decode(np.zeros((1, 1, 4, 4), np.float32), "soft-argmax")
    with pytest.raises(ConfigError):
        codec.encode(np.zeros((1, 2, 2)), (8, 8), sigma=0.0)
    with pytest.raises(InputError):
        codec.encode(np.zeros((1, 2, 3)), (8, 8))
    with pytest.raises(InputError):
        codec.encode(np.zeros((2, 2)), (8, 0))


def test_float64_input_is_accepted_as_float32():
    m = gaussian_maps(np.array([[[5.3, 6.6]]]), 16, 16, 1.5)
    np.testing.assert_array_equal(codec.decode(m.astype(np.float64))[0], codec.decode(m)[0])


def test_flip_heatmaps_twice_is_identity_and_matches_flipped_targets():
    perm = JD106.flip_permutation
    rng = np.random.default_rng(2)
    pts = rng.uniform(3, 44, (2, 106, 2))
    maps, _ = codec.encode(pts, (48, 48), sigma=2.0)
    np.testing.assert_array_equal(codec.flip_heatmaps(codec.flip_heatmaps(maps, perm), perm), maps)
    mirrored, _ = codec.encode(flip_landmarks(pts, 48, JD106), (48, 48), sigma=2.0)
    np.testing.assert_allclose(codec.flip_heatmaps(mirrored, perm), maps, atol=1e-6)
    nhwc = np.ascontiguousarray(maps.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(codec.flip_heatmaps(nhwc, perm, layout="nhwc").transpose(0, 3, 1, 2),
                                  codec.flip_heatmaps(maps, perm))
    c, _ = codec.decode(maps)
    # decoded from the mirrored maps, flip_landmarks maps the points back (the one mirror of the project)
    mirrored_c, _ = codec.decode(codec.flip_heatmaps(maps, perm))
    np.testing.assert_allclose(flip_landmarks(mirrored_c, 48, perm), c, atol=1e-4)
    with pytest.raises(InputError):
        codec.flip_heatmaps(maps, perm[:-1])
    with pytest.raises(InputError):
        codec.flip_heatmaps(maps, np.zeros(106, int))


@pytest.mark.parametrize("mode", ["coords", "heatmaps"])
def test_average_flip_recovers_points_from_a_mirrored_pair(mode):
    perm = JD106.flip_permutation
    rng = np.random.default_rng(4)
    pts = rng.uniform(4, 43, (2, 106, 2))
    maps, _ = codec.encode(pts, (48, 48), sigma=2.0)
    mirrored, _ = codec.encode(flip_landmarks(pts, 48, JD106), (48, 48), sigma=2.0)
    coords, scores = codec.average_flip(maps, mirrored, perm, mode=mode)
    assert np.abs(coords - pts).max() <= SUBPIXEL_TOL and scores.shape == (2, 106)
    # noise on each half averages out: the flip test halves the variance of independent errors
    noisy = (maps + rng.normal(0, 0.03, maps.shape)).astype(np.float32)
    noisy_m = (mirrored + rng.normal(0, 0.03, maps.shape)).astype(np.float32)
    single = np.linalg.norm(codec.decode(noisy)[0] - pts, axis=-1).mean()
    both = np.linalg.norm(codec.average_flip(noisy, noisy_m, perm, mode=mode)[0] - pts, axis=-1).mean()
    assert both < 0.85 * single
    with pytest.raises(ConfigError):
        codec.average_flip(maps, mirrored, perm, mode="median")


def test_average_flip_int8_heatmaps_mode():
    perm = JD106.flip_permutation
    pts = np.random.default_rng(6).uniform(4, 43, (1, 106, 2))
    maps, _ = codec.encode(pts, (48, 48), sigma=2.0)
    mirrored, _ = codec.encode(flip_landmarks(pts, 48, JD106), (48, 48), sigma=2.0)
    q = lambda m: np.clip(np.round(m * 250) - 120, -128, 127).astype(np.int8)  # noqa: E731
    for mode in ("coords", "heatmaps"):
        c, _ = codec.average_flip(q(maps), q(mirrored), perm, mode=mode, scale=1 / 250, zero_point=-120)
        assert np.abs(c - pts).max() < 0.05


def test_stride_mapping_round_trip_and_flip_consistency():
    pts = np.array([[0.0, 0.0], [47.0, 12.25], [-0.5, 47.5]])
    up = codec.heatmap_to_input(pts, 4)
    np.testing.assert_allclose(up[0], [1.5, 1.5])  # heatmap pixel 0 covers input pixels 0..3
    np.testing.assert_allclose(codec.input_to_heatmap(up, 4), pts)
    np.testing.assert_allclose(codec.heatmap_to_input(47.0 - pts, 4)[:, 0], 191.0 - up[:, 0])
    np.testing.assert_allclose(codec.heatmap_to_input(pts, (4, 2))[:, 1], pts[:, 1] * 2 + 0.5)
    assert codec.stride_for((192, 192), (48, 48)) == (4.0, 4.0)
    with pytest.raises(InputError):
        codec.heatmap_to_input(pts, 0)
    with pytest.raises(InputError):
        codec.heatmap_to_input(pts[:, :1], 4)


def test_configs_round_trip_and_validate():
    cfg = DecodeConfig(method="quarter", blur_kernel=7)
    assert DecodeConfig.from_dict(cfg.to_dict()) == cfg
    assert DecodeConfig().to_dict() == {"method": "dark", "blur_kernel": 11}
    # the heatmap layout is the artifact's, not a decode setting: older files' key is dropped
    assert DecodeConfig.from_dict({"method": "quarter", "blur_kernel": 7, "layout": "nhwc"}) == cfg
    with pytest.raises(ConfigError, match="unknown decode parameters"):
        DecodeConfig.from_dict({"method": "dark", "layout": "nhcw"})
    with pytest.raises(TypeError):
        DecodeConfig(layout="nchw")  # type: ignore[call-arg]
    with pytest.raises(ConfigError, match="layout must be one of"):
        codec.decode(np.zeros((1, 1, 4, 4), np.float32), layout="NCHW")
    with pytest.raises(ConfigError):
        DecodeConfig.from_dict({"method": "dark", "sigma": 2})
    with pytest.raises(ConfigError):
        DecodeConfig(blur_kernel=True)
    assert EncodeConfig().sigma == 2.0
    m = gaussian_maps(np.array([[[9.4, 6.2]]]), 16, 16, 2.0)
    np.testing.assert_array_equal(codec.decode(np.ascontiguousarray(m.transpose(0, 2, 3, 1)), layout="nhwc",
                                               **cfg.as_kwargs())[0],
                                  codec.decode(m, "quarter")[0])


def test_backend_env_var(monkeypatch, backend_name):
    assert codec.backend() == backend_name
    monkeypatch.setenv("FACELM_CODEC", "gpu")
    with pytest.raises(ConfigError):
        codec.backend()


def test_missing_extension_warns_once(monkeypatch, caplog):
    from facelm.codec import core

    monkeypatch.delenv("FACELM_CODEC")
    monkeypatch.setattr(core, "_cdark", None)
    monkeypatch.setattr(core, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="facelm.codec"):
        assert codec.backend() == "numpy"
        codec.decode(np.ones((1, 1, 3, 3), np.float32))
        codec.backend()
    assert len([r for r in caplog.records if "C codec" in r.getMessage()]) == 1
    with pytest.raises(ConfigError):
        codec.decode(np.ones((1, 1, 3, 3), np.float32), backend="c")
