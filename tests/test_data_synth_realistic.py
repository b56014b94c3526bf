"""The realistic renderer features (SynthConfig.realistic): silhouette contour under yaw and pitch,
expressions, occluders and degradations keep the ground truth exact."""
from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest

from facelm.data import synth
from facelm.errors import InputError
from facelm.layouts import JD106

CLEAN = synth.SynthConfig(p_blink=0.0, p_occlusion=0.0, p_glasses=0.0, p_blur=0.0, p_noise=0.0, p_hair_fringe=0.0)
#: Pixels per face unit used to express geometric errors in pixels (a face about 200 px wide).
PX = 100.0
#: Sub-pixel tolerance for analytic geometry, in pixels.
TOL_PX = 0.01


def _params(seed: int = 0, **over) -> synth.FaceParams:
    p = synth.sample_params(np.random.default_rng(seed), CLEAN)
    return dataclasses.replace(p, **over)


def _jaw(p: synth.FaceParams, dphi: float = 0.0) -> synth.Ribs:
    """The 32 jaw ribs behind contour 0..15 and 32..17, with phi shifted by ``dphi``."""
    phi = synth._JAW_PHI + dphi
    return synth.jaw_ribs(p, np.r_[phi, phi], np.r_[-np.ones(16), np.ones(16)])


def _px(points: np.ndarray, rot: np.ndarray, distance: float) -> np.ndarray:
    """Project (..., 3) face-model points to (..., 2) at PX pixels per face unit."""
    flat = synth.project(points.reshape(-1, 3), rot, distance) * PX
    return flat.reshape(points.shape[:-1] + (2,))


POSES = [(0.0, 0.0, 0.0), (60.0, 0.0, 0.0), (-60.0, 10.0, 5.0), (35.0, 30.0, -20.0), (-45.0, -30.0, 15.0),
         (15.0, -25.0, 0.0)]


@pytest.mark.parametrize("yaw,pitch,roll", POSES)
@pytest.mark.parametrize("seed", [0, 5])
def test_contour_lies_on_the_visible_silhouette(yaw, pitch, roll, seed):
    """Each contour point is a surface point that no nearby surface point projects beyond.

    Independent of the solver: the face surface is sampled densely (its own rib, 4001 angles, and
    the ribs 1e-3 rad either side) and projected; along the outline's outward normal at the
    contour point (perpendicular to the projected rib family's tangent there) nothing may lie
    further out than 0.01 px. Where the point is not a rib end, the projection must also fold
    there (its Jacobian is singular), and a rib end is only kept where the rib faces the camera.
    """
    p = _params(seed, mouth_open=0.15, asym=0.02)
    distance = 7.0
    rot = synth.rotation_matrix(yaw, pitch, roll)
    contour, _ = synth.outline_points_3d(p, rot, distance)
    ribs = _jaw(p)
    pts = _px(contour[synth._CONTOUR_SIDES], rot, distance)
    t = synth.silhouette_angles(ribs, synth.camera_in_model(rot, distance))
    np.testing.assert_allclose(_px(ribs.points(t), rot, distance), pts, atol=1e-9)  # on the surface
    h = 1e-6
    tau = (_px(_jaw(p, h).points(t), rot, distance) - _px(_jaw(p, -h).points(t), rot, distance)) / (2 * h)
    normal = np.stack([-tau[:, 1], tau[:, 0]], axis=1) / np.linalg.norm(tau, axis=1, keepdims=True)
    normal *= np.sign(np.sum((pts - pts.mean(axis=0)) * normal, axis=1))[:, None]  # outward
    grid = ribs.side[:, None] * np.linspace(0.0, math.pi / 2, 4001)[None, :]
    beyond = np.max([np.max(np.sum((_px(_jaw(p, dp).points(grid), rot, distance) - pts[:, None]) * normal[:, None],
                                   axis=2), axis=1) for dp in (-1e-3, 0.0, 1e-3)], axis=0)
    assert beyond.max() < TOL_PX, beyond
    # Grazing points are folds of the projection: d/dphi and d/dt of the projected surface are parallel.
    inner = np.abs(np.abs(t) - math.pi / 2) > 1e-9
    dt = (_px(ribs.points(t + 1e-7), rot, distance) - _px(ribs.points(t - 1e-7), rot, distance)) / 2e-7
    cross = (tau[:, 0] * dt[:, 1] - tau[:, 1] * dt[:, 0]) / (np.linalg.norm(tau, axis=1) * np.linalg.norm(dt, axis=1))
    assert np.all(np.abs(cross[inner]) < 1e-4), cross[inner]  # sin of the angle; a non-fold is O(0.1)
    if abs(yaw) >= 45:  # the far side is a silhouette, short of the rib ends
        far = ribs.side == np.sign(yaw)  # yaw > 0 turns the image-right half away
        assert inner[far].mean() > 0.8
        if abs(pitch) < 15:  # seen level, the near side's outline is the face's boundary: the rib ends
            assert inner[~far].mean() < 0.2


def test_turned_face_contour_moves_to_the_silhouette_and_frontal_stays_symmetric():
    p = _params(1, asym=0.0, smile=0.0, mouth_open=0.0, blink_left=0.0, blink_right=0.0, gaze=(0.0, 0.0))
    pose = synth.Pose(yaw=50.0, pitch=10.0, roll=0.0, distance=8.0, width=0.6, offset=(0.0, 0.0))
    legacy, _, _ = synth.place_face(p, pose, 256)
    sil, _, _ = synth.place_face(p, pose, 256, silhouette=True)
    # Yaw 50 turns the image-right half away: the model's contour points there are hidden behind
    # the cheek and project inside the outline; the silhouette contour lies pixels further out
    # (x relative to the nose tip, which sticks out beyond both).
    gap = lambda lm: lm[18:31, 0] - lm[54, 0]  # noqa: E731
    assert np.all(gap(sil) > gap(legacy)) and np.mean(gap(sil) - gap(legacy)) > 3.0
    # Frontal and symmetric: the outline mirrors exactly as the layout's flip pairs say.
    lm, _, _ = synth.place_face(p, dataclasses.replace(pose, yaw=0.0), 256, silhouette=True)
    centre = 0.5 * (lm[:, 0].min() + lm[:, 0].max())
    np.testing.assert_allclose(lm[JD106.flip_permutation, 0] - centre, -(lm[:, 0] - centre), atol=1e-9)
    np.testing.assert_allclose(lm[JD106.flip_permutation, 1], lm[:, 1], atol=1e-9)


def test_rib_ends_are_the_model_points():
    """Seen head-on from far away every rib's end is on the outline: the contour is the model's."""
    p = _params(2, mouth_open=0.2, asym=0.03)
    ribs = _jaw(p)
    ends = ribs.points(ribs.side * (math.pi / 2))
    np.testing.assert_allclose(ends, synth.face_points_3d(p)[synth._CONTOUR_SIDES], atol=1e-12)
    ang = synth._FOREHEAD_ANGLES[synth._FOREHEAD_SIDES]
    head = synth.forehead_ribs(p, np.abs(math.pi / 2 - ang), np.sign(np.cos(ang)))
    np.testing.assert_allclose(head.points(head.side * (math.pi / 2)),
                               synth.forehead_points_3d(p)[synth._FOREHEAD_SIDES], atol=1e-12)


def test_grazing_function_matches_the_surface_normal():
    """Ribs.grazing_w (closed form) against the normal from finite differences of the surface."""
    p = _params(3, mouth_open=0.1)
    cam = synth.camera_in_model(synth.rotation_matrix(40.0, 20.0, 10.0), 6.0)
    ribs, w = _jaw(p), np.full(32, 0.7)
    t = ribs.side * (math.pi / 2 - w**2)
    h = 1e-6
    d_phi = (_jaw(p, h).points(t) - _jaw(p, -h).points(t)) / (2 * h)
    d_t = (ribs.points(t + h) - ribs.points(t - h)) / (2 * h)
    want = np.sum(np.cross(d_phi, d_t) * (ribs.points(t) - cam), axis=1) * w
    np.testing.assert_allclose(ribs.grazing_w(w, cam), want, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------------------- expressions


def test_frown_moves_exactly_the_documented_points():
    p = _params(4, smile=0.0)
    f = 0.8
    base, frown = synth.face_points_3d(p), synth.face_points_3d(dataclasses.replace(p, frown=f))
    want = base.copy()
    for i, dy in synth._FROWN_MOUTH_DOWN:
        want[i, 1] += dy * f
    for a, b, w in synth._FROWN_BROW:
        want[[a, b], 1] += synth._FROWN_BROW_DOWN * f * w
        want[a, 0] += synth._FROWN_BROW_IN * f * w
        want[b, 0] -= synth._FROWN_BROW_IN * f * w
    np.testing.assert_allclose(frown, want, atol=1e-12)
    moved = np.nonzero(np.abs(frown - base).max(axis=1) > 0)[0]
    assert set(moved) == {i for i, _ in synth._FROWN_MOUTH_DOWN} | {i for a, b, _ in synth._FROWN_BROW for i in (a, b)}
    assert frown[84, 1] > base[84, 1] and frown[37, 0] > base[37, 0] and frown[42, 0] < base[42, 0]


def test_brow_raise_lifts_only_the_brows():
    p = _params(5)
    up = dataclasses.replace(p, brow_raise=p.brow_raise + 0.12)
    a, b = synth.face_points_3d(p), synth.face_points_3d(up)
    np.testing.assert_allclose(b[33:51, 1] - a[33:51, 1], -0.12, atol=1e-12)
    np.testing.assert_allclose(np.delete(b, np.r_[33:51], axis=0), np.delete(a, np.r_[33:51], axis=0), atol=0)


@pytest.mark.parametrize("over", [{"frown": 0.6}, {"frown": 1.0, "mouth_open": 0.3}, {"brow_raise": 0.15}])
def test_expressions_mirror_like_the_layout(over):
    p = _params(6, **{**dict(asym=0.0, smile=0.0, mouth_open=0.0, blink_left=0.0, blink_right=0.0, gaze=(0.0, 0.1)), **over})
    pts = synth.face_points_3d(p)
    np.testing.assert_allclose(pts[JD106.flip_permutation] * [-1.0, 1.0, 1.0], pts, atol=1e-12)


def test_tongue_is_drawn_in_the_mouth_and_moves_no_landmark():
    cfg = dataclasses.replace(CLEAN, size=160, clutter=(0, 0))
    p = _params(7, mouth_open=0.3)
    pose = synth.Pose(yaw=0.0, pitch=0.0, roll=0.0, distance=8.0, width=0.6, offset=(0.0, 0.0))
    lm, fh, unit = synth.place_face(p, pose, cfg.size, silhouette=True)
    lm_t, fh_t, unit_t = synth.place_face(dataclasses.replace(p, tongue=0.8), pose, cfg.size, silhouette=True)
    np.testing.assert_array_equal(lm, lm_t)
    a = synth.draw_face(np.random.default_rng(1), cfg, p, pose, lm, fh, unit).astype(int)
    b = synth.draw_face(np.random.default_rng(1), cfg, dataclasses.replace(p, tongue=0.8), pose, lm, fh, unit).astype(int)
    changed = np.argwhere(np.abs(a - b).max(axis=2) > 0)[:, ::-1]
    assert len(changed) > 30
    lo, hi = lm[84:104].min(axis=0) - 2, lm[84:104].max(axis=0) + 2
    hi[1] += hi[1] - lo[1]  # within the mouth's box, which a tongue out may pass by one mouth height
    assert np.all((changed >= lo) & (changed <= hi))


def test_preset_samples_the_new_expressions():
    cfg = synth.SynthConfig.realistic()
    ps = [synth.sample_params(np.random.default_rng([3, i]), cfg) for i in range(300)]
    assert 0.08 < np.mean([q.frown > 0 for q in ps]) < 0.25
    assert np.mean([q.brow_raise > 0.07 for q in ps]) > 0.08
    assert max(q.mouth_open for q in ps) > 0.35 and any(q.tongue > 0 for q in ps)
    assert not any(q.frown > 0 and q.smile > 0 for q in ps)


# ---------------------------------------------------------------------------- occluders and degradations

_BASE = synth.SynthConfig.realistic(
    size=128, p_real_background=0.0, p_skin_texture=0.0, p_eyeglasses=0.0, p_hand=0.0, p_side_hair=0.0,
    p_mask=0.0, p_object=0.0, p_occlusion=0.0, p_hair_fringe=0.0, p_gray=0.0, p_low_contrast=0.0,
    p_shadow=0.0, p_motion_blur=0.0, p_jpeg=0.0, p_blur=0.0, p_noise=0.0)
LAYERS = ["p_eyeglasses", "p_hand", "p_side_hair", "p_mask", "p_object", "p_real_background", "p_skin_texture",
          "p_gray", "p_low_contrast", "p_shadow", "p_motion_blur", "p_jpeg"]


@pytest.mark.parametrize("field", LAYERS)
def test_layers_change_pixels_but_not_landmarks(field):
    """Landmarks are drawn before any layer: switching a layer on keeps them bit-identical."""
    if field in ("p_real_background", "p_skin_texture"):
        pytest.importorskip("skimage")
    on = dataclasses.replace(_BASE, **{field: 1.0})
    for i in range(3):
        img0, lm0 = synth.sample(11, i, _BASE)
        img1, lm1 = synth.sample(11, i, on)
        np.testing.assert_array_equal(lm0, lm1)
        assert np.abs(img0.astype(int) - img1).mean() > 0.2, field


def test_gray_is_gray():
    img, _ = synth.sample(2, 0, dataclasses.replace(_BASE, p_gray=1.0))
    assert np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2])


def test_motion_blur_moves_no_point():
    """The motion kernel is point-symmetric, so a blurred disc keeps its centroid (0.01 px)."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        k = synth._motion_kernel(rng)
        assert np.allclose(k, k[::-1, ::-1], atol=1e-7) and abs(k.sum() - 1.0) < 1e-5
        c = rng.uniform(28, 36, 2)
        img = np.zeros((64, 64), np.float32)
        synth._ellipse(img, c, (5.0, 5.0), 0, 1.0)
        ys, xs = np.mgrid[:64, :64]
        cen = lambda a: np.array([(a * xs).sum(), (a * ys).sum()]) / a.sum()  # noqa: E731
        assert np.abs(cen(cv2.filter2D(img, -1, k)) - cen(img)).max() < TOL_PX


def test_real_images_are_not_faces_and_load():
    pytest.importorskip("skimage")
    assert not {"astronaut", "camera"} & set(synth.REAL_IMAGES)
    for name in synth.REAL_IMAGES:
        img = synth.real_image(name)
        assert img.dtype == np.uint8 and img.ndim == 3 and max(img.shape[:2]) <= 512
    bg = synth._real_background(np.random.default_rng(0), 96)
    assert bg.shape == (96, 96, 3) and bg.dtype == np.uint8


def test_missing_scikit_image_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(synth.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(synth, "_REAL_BANK", {})
    with pytest.raises(InputError, match="scikit-image"):
        synth.sample(0, 0, synth.SynthConfig.realistic(size=64, p_real_background=1.0))


def test_realistic_preset_is_deterministic_and_keeps_points_inside():
    pytest.importorskip("skimage")  # the preset's real backgrounds and skin textures
    cfg = synth.SynthConfig.realistic(size=128)
    a_img, a_lm = synth.generate(12, seed=5, cfg=cfg, size=128)
    b_img, b_lm = synth.generate(6, seed=5, cfg=cfg, size=128, start=6)
    assert np.array_equal(a_img[6:], b_img) and np.array_equal(a_lm[6:], b_lm)
    assert a_lm.min() >= 1.5 and a_lm.max() <= 128 - 2.5


def test_preset_and_config_checks():
    cfg = synth.SynthConfig.realistic(p_hand=0.5)
    assert cfg.silhouette_contour and cfg.yaw == 60.0 and cfg.pitch == 30.0 and cfg.p_hand == 0.5
    default = synth.SynthConfig()
    assert not default.silhouette_contour and default.p_hand == 0.0 and default.mouth_open_max == 0.28
    with pytest.raises(InputError, match="probabilities"):
        synth.SynthConfig(p_hand=1.5)
    with pytest.raises(InputError, match="mouth_open_max"):
        synth.SynthConfig(mouth_open_max=0.9)
    with pytest.raises(InputError, match="jpeg_quality"):
        synth.SynthConfig(jpeg_quality=(80, 20))


def test_drawing_clipped_to_the_face_leaves_the_outside_alone():
    p = _params(8)
    pose = synth.Pose(yaw=60.0, pitch=10.0, roll=0.0, distance=8.0, width=0.6, offset=(0.0, 0.0))
    lm, fh, unit = synth.place_face(p, pose, 128, silhouette=True)
    sketch = synth._Sketch(lm, fh, unit, 0.0, p, np.array([200.0, 160.0, 140.0]), (40, 30, 20))
    img = np.zeros((128, 128, 3), np.uint8)
    synth._draw_clipped_to_face(img, sketch, lambda: img.fill(255))
    inside = np.zeros((128, 128), np.uint8)
    cv2.fillPoly(inside, [synth._fx(np.concatenate([lm[0:33], fh]))], 255, cv2.LINE_8, synth._SHIFT)
    assert np.all(img[inside == 0] == 0) and np.all(img[inside == 255] == 255)


def test_write_jd_folder_with_the_preset(tmp_path):
    import json

    cfg = synth.SynthConfig.realistic(p_real_background=0.0, p_skin_texture=0.0)
    out = synth.write_jd_folder(tmp_path / "faces", 2, seed=4, size=96, cfg=cfg, progress=False)
    meta = json.loads((out / "synth.json").read_text())
    assert meta["config"]["silhouette_contour"] is True and meta["config"]["yaw"] == 60.0
    _, lm = synth.sample(4, 1, dataclasses.replace(cfg, size=96))
    lines = (out / "landmark" / "synth_4_0000001.jpg.txt").read_text().split()
    np.testing.assert_allclose(np.array(lines[1:], float).reshape(106, 2), lm, atol=1e-4)


@pytest.mark.parametrize("yaw,pitch,roll", [(40.0, 10.0, 12.0), (60.0, -30.0, -5.0)])
def test_silhouette_contour_mirrors_through_the_layout_flip(yaw, pitch, roll):
    """A symmetric face in a pose and its mirror pose (yaw and roll negated, offset mirrored):
    flip_landmarks of the first is the second, silhouette contour included (1e-6 px)."""
    from facelm.layouts import flip_landmarks

    p = _params(9, asym=0.0, smile=0.0, blink_left=0.0, blink_right=0.0, gaze=(0.0, 0.0), mouth_open=0.2)
    pose = synth.Pose(yaw=yaw, pitch=pitch, roll=roll, distance=7.0, width=0.6, offset=(6.0, -2.0))
    twin = dataclasses.replace(pose, yaw=-yaw, roll=-roll, offset=(-6.0, -2.0))
    lm, _, _ = synth.place_face(p, pose, 200, silhouette=True)
    twin_lm, _, _ = synth.place_face(p, twin, 200, silhouette=True)
    np.testing.assert_allclose(flip_landmarks(lm, 200, JD106), twin_lm, atol=1e-6)


def test_presets_by_name_and_the_cli_flag(tmp_path):
    from facelm.cli import main
    from facelm.data.synth import PRESETS

    SynthConfig = synth.SynthConfig
    assert SynthConfig.preset("realistic", size=64) == SynthConfig.realistic(size=64)
    assert SynthConfig.preset("default") == SynthConfig()
    with pytest.raises(InputError, match="unknown synthetic preset 'nope'"):
        SynthConfig.preset("nope")
    assert main(["synth", str(tmp_path / "r"), "--count", "2", "--size", "64", "--preset", "realistic"]) == 0
    written = json.loads((tmp_path / "r" / "synth.json").read_text())["config"]
    assert written["yaw"] == 60.0 and written["silhouette_contour"] is True and written["size"] == 64
    assert set(PRESETS) == {"default", "realistic"}
