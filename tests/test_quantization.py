"""Calibration sets (one preprocessing path, disjoint splits, sources) and drift maths/gates."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from facelm.quantization.calibration import build_sets, read_points
from facelm.quantization.drift import GateConfig, check_gates, drift_report, most_drifting, psnr
from facelm.errors import InputError
from facelm.layouts import JD106


# ------------------------------------------------------------------------------- PSNR
def test_psnr_matches_ai_hub_formula_exactly():
    ref = np.zeros((1, 2, 4, 4))
    ref[0, 0, 1, 1] = 2.0  # max|ref| = 2
    test = ref.copy()
    test[0, 1, 2, 2] = 0.5  # one error of 0.5 among 32 values: RMSE = 0.5/sqrt(32)
    assert psnr(ref, test) == pytest.approx(20 * math.log10(2.0 / (0.5 / math.sqrt(32))), abs=1e-12)


def test_psnr_identical_is_inf_and_shape_mismatch_raises():
    a = np.ones((2, 3))
    assert psnr(a, a) == float("inf")
    with pytest.raises(InputError):
        psnr(a, np.ones((3, 2)))


# ------------------------------------------------------------------------------ drift
def _gt(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(20, 80, size=(n, 106, 2))


def _contract(size=96, layout="jd106"):
    from facelm.runtime.manifest import ModelContract

    return ModelContract.build("t", layout, size, size // 4)


def test_drift_scale_is_the_template_inter_pupil_distance():
    from facelm.alignment import reference_template
    from facelm.quantization.drift import drift_scale

    for size in (96, 256):
        t = reference_template(size)
        assert drift_scale(_contract(size)) == pytest.approx(float(np.hypot(*(t[1] - t[0]))), abs=1e-9)
    # ArcFace's 112 px eyes are 35.24 px apart; the template shrinks them by 0.70 about the centre
    assert drift_scale(_contract(112)) == pytest.approx(0.70 * math.hypot(73.5318 - 38.2946, 51.5014 - 51.6963), abs=1e-3)


def test_drift_scale_refuses_a_template_without_eye_distance():
    from dataclasses import replace

    from facelm.quantization.drift import drift_scale

    c = _contract()
    flat = replace(c, preprocess=replace(c.preprocess, five_point_template=((5.0, 5.0),) * 5))
    with pytest.raises(InputError, match="inter-pupil"):
        drift_scale(flat)


def test_drift_report_known_shift():
    from facelm.quantization.drift import drift_scale

    c = _contract()
    ipd = drift_scale(c)
    ref = _gt()
    test = ref.copy()
    test[:, 17, 0] += 2.0  # only landmark 17 moves, by 2 px
    hm = np.random.default_rng(1).random((4, 106, 8, 8))
    rep, own = drift_report(hm, hm, ref, test, c, gt_landmarks=ref)
    assert rep.mean == pytest.approx(2.0 / 106 / ipd, rel=1e-12) and rep.max == rep.p95 == pytest.approx(rep.mean)
    assert rep.mean_px == pytest.approx(2.0 / 106, rel=1e-12) and rep.max_px == pytest.approx(2.0 / 106, rel=1e-12)
    assert rep.scale_px == ipd and rep.normaliser == "template_inter_pupil"
    assert rep.top_landmarks[0]["index"] == 17 and rep.top_landmarks[0]["region"] == "contour"
    assert rep.top_landmarks[0]["drift_px"] == pytest.approx(2.0, abs=0.01)
    assert rep.top_landmarks[1]["drift"] == 0.0
    assert rep.psnr_db == float("inf") and rep.to_dict()["psnr_db"] is None
    # own accuracy stays the layout's NME against ground truth (face-box normaliser for JD-106)
    np.testing.assert_allclose(own, 2.0 / JD106.normalizer(ref) / 106, rtol=1e-12)
    assert rep.auc is not None and rep.fr == 0.0


def test_drift_of_collapsed_landmarks_is_finite():
    """An untrained model's landmarks collapse onto one point: the old normaliser (the reference's
    own eye/face-box distance) is 0 there; the template's is not."""
    from facelm.metrics import landmark_errors
    from facelm.quantization.drift import drift_scale, landmark_drift

    for layout, k in (("jd106", 106), ("ibug68", 68)):
        c = _contract(96, layout)
        ref = np.full((3, k, 2), 47.5)  # every landmark on the crop centre
        test = ref.copy()
        test[:, :, 1] += 3.0  # everything 3 px lower
        with pytest.raises(InputError, match="zero or non-finite"):
            landmark_errors(test, ref, layout)  # what drift was divided by before (issue 21)
        per_img, per_lm = landmark_drift(ref, test, drift_scale(c))
        np.testing.assert_allclose(per_img, 3.0 / drift_scale(c), rtol=1e-12)
        np.testing.assert_allclose(per_lm, 3.0 / drift_scale(c), rtol=1e-12)
        rep, _ = drift_report(np.zeros((3, k, 4, 4)), np.zeros((3, k, 4, 4)), ref, test, c)
        assert rep.mean_px == pytest.approx(3.0, abs=1e-9) and np.isfinite(rep.mean)
        # and the other way round: a collapsed test against a spread reference
        rep, _ = drift_report(np.zeros((3, k, 4, 4)), np.zeros((3, k, 4, 4)), test + np.arange(k)[None, :, None],
                              test, c)
        assert rep.mean_px == pytest.approx(np.hypot(np.arange(k), np.arange(k)).mean(), abs=1e-9)


def test_landmark_drift_refuses_bad_shapes_and_scales():
    from facelm.quantization.drift import landmark_drift

    a = np.zeros((2, 5, 2))
    with pytest.raises(InputError):
        landmark_drift(a, np.zeros((2, 4, 2)), 10.0)
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError):
            landmark_drift(a, a, bad)


def test_most_drifting_order():
    per = np.zeros(106)
    per[[5, 90, 3]] = [0.3, 0.2, 0.1]
    top = most_drifting(per, JD106, k=3)
    assert [t["index"] for t in top] == [5, 90, 3]
    assert top[1]["region"] == "outer_mouth"


def test_gates():
    g = GateConfig()
    assert check_gates({"onnx": 5e-5, "fp32": 1e-7, "tvm_host": 0.0}, {"int8": 0.0044, "int8_io": 0.001}, g) == []
    fails = check_gates({"onnx": 2e-4, "fp16": 1.0}, {"int8": 0.0046, "fp16": 0.5, "int8_io": float("nan")}, g)
    assert len(fails) == 3  # onnx parity, int8 drift, NaN int8_io drift; fp16 is not gated
    assert fails[0].startswith("onnx:") and "int8:" in fails[1] and fails[2].startswith("int8_io")
    assert check_gates({}, {"int8": 0.003}, GateConfig(int8_drift_mean=0.01)) == []
    assert "inter-pupil" in check_gates({}, {"int8": 0.005}, g)[0]
    # every artifact with int8 weights is gated, not just the fully integer ones
    fails = check_gates({}, {"dynamic_int8": 0.887, "int16x8": 0.0001, "fp16": 0.9}, g)
    assert len(fails) == 1 and fails[0].startswith("dynamic_int8:")


# ------------------------------------------------------------------------ calibration
def test_synthetic_sets_are_disjoint_and_in_onnx2tf_format():
    from facelm.preprocess import normalize

    calib, ev = build_sets("synthetic", 64, "jd106", num_calib=6, num_eval=5)
    assert len(calib) == 6 and len(ev) == 5
    x = calib.unit_nhwc()
    assert x.shape == (6, 64, 64, 3) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert ev.landmarks.shape == (5, 106, 2)
    assert not set(calib.names) & set(ev.names)
    assert not any(np.array_equal(a, b) for a in calib.crops for b in ev.crops)
    np.testing.assert_array_equal(calib.inputs(), normalize(calib.crops).transpose(0, 3, 1, 2))


def test_inputs_equal_preprocess_face(tmp_path):
    """The calibration path and the runtime path give bit-identical network inputs."""
    from facelm.data.synth import sample
    from facelm.preprocess import preprocess_face

    for i in range(2):
        img, lms = sample(11, i)
        cv2.imwrite(str(tmp_path / f"f{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        np.savetxt(tmp_path / f"f{i}.txt", lms)
    calib, ev = build_sets(tmp_path, 64, "jd106", num_calib=5, num_eval=5)
    assert len(calib) == 1 and len(ev) == 1  # two images: split in half, disjoint
    name = calib.names[0]
    img, lms = sample(11, int(name[1]))
    x, m = preprocess_face(img, JD106.five_points(lms), 64)
    np.testing.assert_array_equal(calib.inputs()[0], x)
    from facelm.alignment import transform_points

    np.testing.assert_allclose(calib.landmarks[0], transform_points(lms.astype(np.float64), m), atol=1e-4)


def test_five_point_sidecars_give_no_ground_truth(tmp_path):
    from facelm.data.synth import sample

    for i in range(4):
        img, lms = sample(12, i)
        cv2.imwrite(str(tmp_path / f"f{i}.jpg"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        (tmp_path / f"f{i}.txt").write_text("\n".join(f"{x} {y}" for x, y in JD106.five_points(lms)))
    calib, ev = build_sets(tmp_path, 64, "jd106", num_calib=200, num_eval=200)
    assert (len(calib), len(ev)) == (2, 2) and calib.landmarks is None


def test_jd_folder_source(tmp_path):
    from facelm.data.synth import write_jd_folder

    write_jd_folder(tmp_path / "jd", 5, seed=4, size=96, progress=False)
    calib, ev = build_sets(tmp_path / "jd", 64, "jd106", num_calib=3, num_eval=2)
    assert (len(calib), len(ev)) == (3, 2) and ev.landmarks.shape == (2, 106, 2)
    assert not set(calib.names) & set(ev.names)


def test_calibration_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        build_sets(tmp_path / "missing", 64)
    with pytest.raises(InputError, match="no annotated image"):
        build_sets(tmp_path, 64)
    cv2.imwrite(str(tmp_path / "a.png"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "a.txt").write_text("1 2\n3 4\n5 6\n")
    with pytest.raises(InputError, match="3 points"):
        build_sets(tmp_path, 64)
    with pytest.raises(InputError, match="synthetic faces are JD-106"):
        build_sets("synthetic", 64, "wflw98")
    (tmp_path / "b.txt").write_text("1 2\nfoo bar\n")
    with pytest.raises(InputError, match="line 2"):
        read_points(tmp_path / "b.txt")


def test_read_points_skips_jd_count_line(tmp_path):
    p = tmp_path / "x.txt"
    p.write_text("3\n1 2\n3.5 4\n5 6\n")
    np.testing.assert_array_equal(read_points(p), [[1, 2], [3.5, 4], [5, 6]])
