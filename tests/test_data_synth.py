"""Synthetic faces: determinism, exact JD-106 semantics, sub-pixel drawing, JD folder output."""
from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from facelm.cli import main as cli_main
from facelm.data import synth
from facelm.errors import InputError
from facelm.layouts import JD106, flip_landmarks

CLEAN = synth.SynthConfig(p_blink=0.0, p_occlusion=0.0, p_glasses=0.0, p_blur=0.0, p_noise=0.0, p_hair_fringe=0.0)


def test_deterministic_by_seed_and_index():
    a_img, a_lm = synth.generate(4, seed=11, size=96)
    b_img, b_lm = synth.generate(2, seed=11, size=96, start=2)
    assert np.array_equal(a_img[2:], b_img) and np.array_equal(a_lm[2:], b_lm)
    c_img, c_lm = synth.generate(2, seed=12, size=96)
    assert not np.array_equal(a_img[:2], c_img)
    assert a_img.dtype == np.uint8 and a_img.shape == (4, 96, 96, 3)
    assert a_lm.dtype == np.float32 and a_lm.shape == (4, 106, 2)


#: sha256 over the images and landmarks of ``sample(0, i, SynthConfig(size=96))`` for i < 180, taken
#: before the realistic features (issue 20) were added: they are off by default, so the default
#: distribution (and every data set already written with it) stays bit-identical. Depends on the
#: pinned numpy and OpenCV.
DEFAULT_180_SHA256 = "091948312c3f116089769632ee8b8b86cec8cf7d0123e7a41009a2481839d1fe"


def test_default_distribution_is_unchanged():
    import hashlib

    h = hashlib.sha256()
    for i in range(180):
        img, lm = synth.sample(0, i, synth.SynthConfig(size=96))
        h.update(img.tobytes())
        h.update(lm.tobytes())
    assert h.hexdigest() == DEFAULT_180_SHA256


def test_landmarks_inside_image_and_varied():
    imgs, lms = synth.generate(40, seed=3, size=128)
    assert lms.min() >= 1.5 and lms.max() <= 128 - 2.5
    widths = np.ptp(lms[:, :33, 0], axis=1)
    assert widths.std() > 3.0  # scale and pose vary
    # Roll varies: the eye line angle spreads over tens of degrees.
    d = lms[:, 105] - lms[:, 104]
    ang = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    assert ang.std() > 5.0


def _symmetric_params(**over) -> synth.FaceParams:
    p = synth.sample_params(np.random.default_rng(0), CLEAN)
    base = dict(asym=0.0, smile=0.0, mouth_open=0.0, blink_left=0.0, blink_right=0.0, gaze=(0.0, 0.1))
    return dataclasses.replace(p, **{**base, **over})


@pytest.mark.parametrize("over", [{}, {"mouth_open": 0.2}, {"smile": 0.8}, {"blink_left": 0.9, "blink_right": 0.9}])
def test_model_mirror_matches_layout_flip_permutation(over):
    """A symmetric face mirrored through x=0 and relabelled with the layout's permutation is itself."""
    pts = synth.face_points_3d(_symmetric_params(**over))
    mirrored = pts[JD106.flip_permutation] * np.array([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(mirrored, pts, atol=1e-12)


def test_frontal_face_has_jd106_semantics():
    cfg = dataclasses.replace(CLEAN, yaw=0.0, pitch=0.0, roll=0.0)
    _, lm = synth.sample(5, 0, cfg)
    x, y = lm[:, 0], lm[:, 1]
    assert np.argmax(y[:33]) == 16  # chin is the lowest contour point
    assert np.all(np.diff(x[:17]) > 0) and np.all(np.diff(x[16:33]) > 0)  # contour runs left to right
    assert x[74] < x[54] < x[83]  # image-left pupil, nose tip, image-right pupil
    np.testing.assert_array_equal(lm[104], lm[74])
    np.testing.assert_array_equal(lm[105], lm[83])
    assert y[33:51].max() < min(y[66:84].min(), y[104])  # brows above the eyes
    assert y[74] < y[54] < y[87] < y[93]  # eyes, nose tip, upper lip, lower lip
    assert x[84] < x[87] < x[90]  # mouth corners
    assert x[66] < x[70] < x[75] < x[79]  # outer/inner eye corners
    assert y[51] < y[52] < y[53] < y[54]  # nose bridge runs down to the tip


def _render_pose(p: synth.FaceParams, pose: synth.Pose, seed: int, cfg: synth.SynthConfig):
    """Image (S, S, 3) uint8 (before lighting, blur and noise) and (106, 2) landmarks of ``p`` in ``pose``."""
    lm, fh, unit = synth.place_face(p, pose, cfg.size)
    return synth.draw_face(np.random.default_rng(seed), cfg, p, pose, lm, fh, unit), lm


#: Points away from the face outline and the nose bridge (whose shading follows the light, which
#: the twin does not mirror) and from the background (not mirrored either).
_INTERIOR = np.r_[33:51, 56:106]


def _patches(img: np.ndarray, pts: np.ndarray, half: int = 4) -> np.ndarray:
    """(N, 2h+1, 2h+1, 3) float64 patches of ``img`` centred on the pixels nearest to ``pts`` (N, 2)."""
    q = np.round(pts).astype(int)
    return np.stack([img[y - half:y + half + 1, x - half:x + half + 1].astype(np.float64) for x, y in q])


@pytest.mark.parametrize("seed", [0, 3])
def test_mirrored_image_matches_flip_landmarks(seed):
    """Mirror a rendered face and relabel its landmarks with flip_landmarks; compare both with the
    face's twin rendered in the mirrored pose (yaw and roll negated, offset mirrored).

    The twin's landmarks come from the face model's own left/right twin table, independent of the
    layout, so a wrong flip pair or a wrong mirror offset (x -> W - x) fails the landmark check;
    the mirrored pixels around the relabelled landmarks must look like the twin's.
    """
    cfg = dataclasses.replace(CLEAN, size=256, clutter=(0, 0))
    p = _symmetric_params(gaze=(0.0, 0.0), mouth_open=0.12)
    pose = synth.Pose(yaw=20.0, pitch=8.0, roll=12.0, distance=8.0, width=0.6, offset=(5.0, -3.0))
    twin_pose = dataclasses.replace(pose, yaw=-pose.yaw, roll=-pose.roll, offset=(-5.0, -3.0))
    img, lm = _render_pose(p, pose, seed, cfg)
    twin_img, twin_lm = _render_pose(p, twin_pose, seed, cfg)
    mirrored = np.ascontiguousarray(img[:, ::-1])
    flipped = flip_landmarks(lm, cfg.size, JD106)

    np.testing.assert_allclose(flipped, twin_lm, atol=1e-6)
    assert flipped[104, 0] < flipped[105, 0] and flipped[84, 0] < flipped[90, 0]  # image-left stays left
    # Pixels: the mirrored image around each relabelled point matches the twin around its point.
    # Eye patches differ by a little anti-aliasing; a 1 px shift gives several times the error.
    ref = _patches(twin_img, twin_lm[_INTERIOR])
    diff = np.abs(_patches(mirrored, flipped[_INTERIOR]) - ref).mean(axis=(1, 2, 3))
    shifted = np.abs(_patches(mirrored, flipped[_INTERIOR] + [1.0, 0.0]) - ref).mean(axis=(1, 2, 3))
    assert np.median(diff) < 0.5 and diff.mean() < 2.0, (np.median(diff), diff.mean())
    assert shifted.mean() > 2 * 2.0  # the pixel check can tell a one-pixel offset


def _centroid(img: np.ndarray) -> np.ndarray:
    ys, xs = np.mgrid[: img.shape[0], : img.shape[1]]
    w = img.astype(np.float64)
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])


def test_subpixel_drawing_primitives():
    """Shapes are drawn at 1/16 px. Discs land within 0.06 px of the asked centre; OpenCV's
    anti-aliased polygon fill is coarser (documented: within about 0.3 px on average)."""
    rng = np.random.default_rng(0)
    disc_err, poly_err = [], []
    for _ in range(60):
        c = rng.uniform([20, 18], [40, 30])
        img = np.zeros((50, 60), np.uint8)
        synth._ellipse(img, c, (6.0, 6.0), 0, 255)
        disc_err.append(np.abs(_centroid(img) - c).max())
        img[:] = 0
        synth._poly(img, c + np.array([[-5, -5], [5, -5], [5, 5], [-5, 5]]), 255)
        poly_err.append(np.abs(_centroid(img) - c).max())
    assert max(disc_err) < 0.06
    assert np.mean(poly_err) < 0.3 and max(poly_err) < 0.6


def test_generate_aligned_maps_five_points_to_template():
    from facelm.alignment import reference_template

    out = synth.generate_aligned(3, seed=4, input_size=64, size=128)
    assert out["crops"].shape == (3, 64, 64, 3) and out["landmarks"].shape == (3, 106, 2)
    five = JD106.five_points(out["landmarks"].astype(np.float64))
    # A similarity fit of 5 points cannot hit all of them; it stays close for faces.
    assert np.abs(five - reference_template(64)).max() < 64 * 0.12


def test_write_jd_folder_and_cli(tmp_path):
    out = tmp_path / "faces"
    assert cli_main(["synth", str(out), "--count", "3", "--seed", "7", "--size", "96"]) == 0
    names = sorted(p.name for p in (out / "picture").iterdir())
    assert names == [f"synth_7_{i:07d}.jpg" for i in range(3)]
    _, lm = synth.sample(7, 2, dataclasses.replace(synth.SynthConfig(), size=96))
    lines = (out / "landmark" / f"{names[2]}.txt").read_text().split("\n")
    assert lines[0] == "106" and len([l for l in lines if l]) == 107
    got = np.array([[float(v) for v in l.split()] for l in lines[1:107]])
    np.testing.assert_allclose(got, lm, atol=1e-4)
    rect = np.array((out / "bbox" / f"{names[2]}.rect").read_text().split(), dtype=float)
    np.testing.assert_allclose(rect, synth.bbox_of(lm), atol=1e-4)
    img = cv2.imread(str(out / "picture" / names[2]))
    assert img.shape == (96, 96, 3)
    assert json.loads((out / "synth.json").read_text())["count"] == 3
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left
    # A non-empty output folder is refused with a one-line error.
    assert cli_main(["synth", str(out), "--count", "1"]) == 2


def test_bad_arguments_raise_input_error(tmp_path):
    with pytest.raises(InputError):
        synth.write_jd_folder(tmp_path / "x", 0)
    with pytest.raises(InputError):
        synth.SynthConfig(size=8)
    with pytest.raises(InputError):
        synth.generate(-1)
