import numpy as np
import pytest

from facelm.errors import InputError
from facelm.layouts import JD106
from facelm.metrics import auc, ced, failure_rate, landmark_errors, nme, plot_ced, summarize


def test_nme_bbox_normalisation_by_hand():
    gt = np.zeros((1, 106, 2))
    gt[0, :, 0] = np.linspace(0, 100, 106)
    gt[0, :, 1] = np.linspace(0, 25, 106)  # tight box 100 x 25 -> sqrt = 50
    pred = gt.copy()
    pred[0, 0] += (3, 4)  # error 5 on one point
    per = landmark_errors(pred, gt, JD106)
    assert per[0, 0] == pytest.approx(0.1)
    assert nme(pred, gt, "jd106")[0] == pytest.approx(0.1 / 106)
    assert nme(pred, gt, JD106, bbox=np.array([[0, 0, 10, 10]]))[0] == pytest.approx(0.5 / 106)


def test_nme_inter_ocular_by_hand():
    gt = np.zeros((2, 68, 2))
    gt[:, 45] = (30, 40)  # |p36 - p45| = 50
    pred = gt + (0, 1)
    np.testing.assert_allclose(nme(pred, gt, "ibug68"), [0.02, 0.02])


def test_ced_auc_fr_by_hand():
    e = np.array([0.01, 0.03])
    xs, ys = ced(e, threshold=0.04, step=0.01)
    np.testing.assert_allclose(xs, [0, 0.01, 0.02, 0.03, 0.04])
    np.testing.assert_allclose(ys, [0, 0.5, 0.5, 1, 1])
    # Simpson: h/3 (0 + 4*.5 + 2*.5 + 4*1 + 1) = 0.01/3 * 8; divided by 0.04.
    assert auc(e, 0.04, 0.01) == pytest.approx(0.01 / 3 * 8 / 0.04)
    # Trapezoid: h (sum - (y0+y4)/2) = 0.01 * 2.5; divided by 0.04.
    assert auc(e, 0.04, 0.01, rule="trapezoid") == pytest.approx(0.625)
    assert failure_rate(np.array([0.01, 0.08, 0.0801, np.nan])) == pytest.approx(0.5)


def test_auc_limits_and_fine_grid():
    assert auc(np.zeros(10)) == pytest.approx(1.0)
    assert auc(np.full(10, 0.5)) == 0.0
    # Exact integral of a step CED: one third of images at 0, 0.04 and 0.1 -> (1/3 + 2/3)/2 = 0.5.
    assert auc(np.array([0.0, 0.04, 0.1])) == pytest.approx(0.5, abs=2e-4)


def test_simpson_matches_scipy_on_random_errors():
    scipy_integrate = pytest.importorskip("scipy.integrate")
    e = np.random.default_rng(0).gamma(2.0, 0.015, 500)
    xs, ys = ced(e)
    assert auc(e) == pytest.approx(scipy_integrate.simpson(ys, x=xs) / 0.08, abs=1e-12)


def test_summary_and_errors(tmp_path):
    s = summarize(np.array([0.01, 0.02, 0.2]))
    assert s["count"] == 3 and s["fr"] == pytest.approx(1 / 3)
    with pytest.raises(InputError):
        ced(np.array([]))
    with pytest.raises(InputError, match="rule"):
        auc(np.array([0.1]), rule="midpoint")
    with pytest.raises(InputError, match=r"\(N, 106, 2\)"):
        nme(np.zeros((1, 98, 2)), np.zeros((1, 98, 2)), JD106)
    with pytest.raises(InputError, match="normalisation"):
        nme(np.zeros((1, 106, 2)), np.zeros((1, 106, 2)), JD106)


def test_plot_ced_writes_png(tmp_path):
    out = plot_ced({"a": np.random.default_rng(0).uniform(0, 0.1, 50), "b": np.full(5, 0.02)}, tmp_path / "sub" / "ced.png")
    data = open(out, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert list((tmp_path / "sub").iterdir()) == [tmp_path / "sub" / "ced.png"]
