"""Augmentations: dots drawn at landmarks are found again where the transformed landmarks say."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from facelm.alignment import estimate_alignment, invert_affine, transform_points
from facelm.data.augment import AugmentConfig, augment_face, compose, geometric_transform, photometric, random_erasing
from facelm.errors import ConfigError
from facelm.layouts import JD106

SIZE = 192  # crop side
SIGMA = 1.0  # dot radius (Gaussian sigma, px)


def _dot_layout(rng: np.random.Generator) -> np.ndarray:
    """106 well separated points on a jittered 11x10 grid in the central part of a crop."""
    gx, gy = np.meshgrid(np.linspace(42, 150, 11), np.linspace(42, 150, 10))
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)[:106]
    return grid + rng.uniform(-1.0, 1.0, grid.shape)


def _draw_dots(shape, pts: np.ndarray, amplitudes: np.ndarray) -> np.ndarray:
    """Gaussian dots; ``amplitudes`` is (K, 3): per-point RGB peak values."""
    h, w = shape
    ys, xs = np.mgrid[:h, :w].astype(np.float64)
    img = np.zeros((h, w, 3))
    for p, a in zip(pts, amplitudes):
        x0, y0 = int(p[0]) - 6, int(p[1]) - 6
        sx, sy = slice(max(y0, 0), y0 + 14), slice(max(x0, 0), x0 + 14)
        g = np.exp(-((xs[sx, sy] - p[0]) ** 2 + (ys[sx, sy] - p[1]) ** 2) / (2 * SIGMA**2))
        img[sx, sy] += g[..., None] * a
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _find(img: np.ndarray, p: np.ndarray, r: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Background-subtracted centroid and per-channel mass in a window around p."""
    x0, y0 = int(round(p[0])), int(round(p[1]))
    win = img[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1].astype(np.float64)
    bg = np.median(np.concatenate([win[0], win[-1], win[:, 0], win[:, -1]]), axis=0)
    win = np.clip(win - bg, 0, None)
    w = win.sum(axis=2)
    ys, xs = np.mgrid[y0 - r:y0 + r + 1, x0 - r:x0 + r + 1]
    return np.array([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()]), win.sum(axis=(0, 1))


def _scene(seed: int):
    """A 256x256 image with dots at landmarks that an arbitrary similarity maps into the crop."""
    rng = np.random.default_rng(seed)
    crop_pts = _dot_layout(rng)
    # An arbitrary alignment: image -> crop similarity (scale ~0.8, some rotation).
    t = np.radians(rng.uniform(-30, 30))
    s = rng.uniform(0.75, 0.9)
    lin = s * np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    centre_img = np.array([127.5, 127.5]) + rng.uniform(-20, 20, 2)
    align = np.concatenate([lin, ((SIZE - 1) / 2.0 - lin @ centre_img)[:, None]], axis=1)
    img_pts = transform_points(crop_pts, invert_affine(align))
    # Channel code: R = 40 + 20 * (k // 11), G = 40 + 20 * (k % 11), B = 200 (reference).
    k = np.arange(106)
    amp = np.stack([40 + 20 * (k // 11), 40 + 20 * (k % 11), np.full(106, 200)], axis=1).astype(float)
    # Dots in the image have sigma / s so that they are ~SIGMA px wide in the crop.
    global SIGMA
    old, SIGMA = SIGMA, SIGMA / s
    image = _draw_dots((256, 256), img_pts, amp)
    SIGMA = old
    return image, img_pts, align


@pytest.mark.parametrize("seed", range(6))
def test_dots_follow_geometric_augmentation_and_flip_labels(seed):
    image, pts, align = _scene(seed)
    cfg = dataclasses.replace(AugmentConfig.off(), flip=0.5, rotation=15.0, scale=0.1, shift=6.0)
    crop, out_pts, m, flipped = augment_face(image, pts, align, SIZE, JD106, cfg, np.random.default_rng(seed))
    errs = []
    for k in range(106):
        c, mass = _find(crop, out_pts[k])
        errs.append(np.linalg.norm(c - out_pts[k]))
        # Identity: the dot found at point k is the dot drawn for point perm[k] (flip) or k.
        src = JD106.flip_permutation[k] if flipped else k
        code = np.rint((mass[:2] / mass[2] * 200 - 40) / 20).astype(int)
        assert tuple(code) == (src // 11, src % 11), f"point {k}: found dot of {code}, expected {src}"
    assert max(errs) < 0.1, f"max dot offset {max(errs):.3f} px"
    # The returned transform maps the image landmarks to the crop (up to the relabelling).
    mapped = transform_points(pts, m)
    if flipped:
        mapped = mapped[JD106.flip_permutation]
    np.testing.assert_allclose(mapped, out_pts, atol=1e-9)


def test_both_flip_branches_are_exercised():
    cfg = dataclasses.replace(AugmentConfig.off(), flip=0.5)
    image, pts, align = _scene(0)
    seen = {augment_face(image, pts, align, SIZE, JD106, cfg, np.random.default_rng(s))[3] for s in range(20)}
    assert seen == {True, False}


def test_dots_survive_full_recipe_positions():
    """With every augmentation but erasing on, dots stay where the landmarks say."""
    image, pts, align = _scene(3)
    cfg = dataclasses.replace(AugmentConfig(), erasing=0.0, flip=1.0, scale=0.1, shift=5.0)
    crop, out_pts, _, flipped = augment_face(image, pts, align, SIZE, JD106, cfg, np.random.default_rng(1))
    assert flipped
    errs = [np.linalg.norm(_find(crop, p)[0] - p) for p in out_pts]
    assert max(errs) < 0.15


def test_geometric_transform_is_identity_when_off_and_rotates_about_centre():
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(geometric_transform(rng, AugmentConfig.off(), 96), np.eye(2, 3))
    a = geometric_transform(rng, dataclasses.replace(AugmentConfig.off(), rotation=15.0), 96)
    np.testing.assert_allclose(transform_points(np.array([[47.5, 47.5]]), a), [[47.5, 47.5]], atol=1e-12)
    angle = np.degrees(np.arctan2(a[1, 0], a[0, 0]))
    assert 0 < abs(angle) <= 15.0


def test_photometric_keeps_shape_changes_colour_and_is_seeded():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    cfg = AugmentConfig()
    a = photometric(crop, np.random.default_rng(5), cfg)
    b = photometric(crop, np.random.default_rng(5), cfg)
    assert a.dtype == np.uint8 and a.shape == crop.shape
    assert np.array_equal(a, b) and not np.array_equal(a, crop)
    assert photometric(crop, rng, AugmentConfig.off()) is crop


def test_pca_noise_moves_along_imagenet_principal_axis():
    from facelm.data.augment import PCA_EIGVAL, PCA_EIGVEC, pca_noise

    img = np.full((2, 2, 3), 100.0, np.float32)
    out = pca_noise(img, np.random.default_rng(1), 0.05)
    alpha = np.random.default_rng(1).normal(0.0, 0.05, 3)
    np.testing.assert_allclose(out[0, 0] - 100.0, PCA_EIGVEC @ (alpha * PCA_EIGVAL), rtol=1e-5)


def test_random_erasing_changes_a_rectangle_only():
    crop = np.zeros((64, 64, 3), np.uint8)
    out = random_erasing(crop, np.random.default_rng(2), AugmentConfig())
    changed = np.argwhere(np.any(out != crop, axis=2))
    assert len(changed) > 0
    (y0, x0), (y1, x1) = changed.min(axis=0), changed.max(axis=0)
    area = (y1 - y0 + 1) * (x1 - x0 + 1)
    assert 0.02 * 64 * 64 * 0.8 <= area <= 0.2 * 64 * 64 * 1.2
    assert crop.max() == 0  # input untouched


def test_config_validation_and_yaml_round_trip():
    with pytest.raises(ConfigError):
        AugmentConfig(flip=1.5)
    with pytest.raises(ConfigError):
        AugmentConfig(rotation=-1)
    with pytest.raises(ConfigError):
        AugmentConfig.from_dict({"rotate": 10})
    cfg = AugmentConfig(scale=0.1, erasing_area=(0.05, 0.1))
    assert AugmentConfig.from_dict(cfg.to_dict()) == cfg


def test_compose_order():
    a = np.array([[2.0, 0, 1], [0, 2.0, 0]])
    b = np.array([[1.0, 0, 5], [0, 1.0, 0]])
    p = np.array([[1.0, 1.0]])
    np.testing.assert_allclose(transform_points(p, compose(a, b)), transform_points(transform_points(p, b), a))


def test_perturb_five_points_moves_each_point_by_sigma_iod():
    from facelm.data.augment import inter_pupil_distance, perturb_five_points

    five = np.array([[80.0, 100.0], [120.0, 100.0], [100.0, 125.0], [85.0, 145.0], [115.0, 145.0]])
    assert inter_pupil_distance(five) == pytest.approx(40.0)
    rng = np.random.default_rng(0)
    d = np.stack([perturb_five_points(five, 0.05, rng) - five for _ in range(4000)])  # (N, 5, 2)
    # Independent per point and coordinate, N(0, (0.05 * 40 px)^2) = N(0, 2 px^2).
    np.testing.assert_allclose(d.std(axis=0), 2.0, rtol=0.06)
    np.testing.assert_allclose(d.mean(axis=0), 0.0, atol=0.15)
    assert abs(np.corrcoef(d[:, 0, 0], d[:, 1, 0])[0, 1]) < 0.06  # the eyes move independently
    # sigma 0: an unchanged copy and no draw from the generator.
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    same = perturb_five_points(five, 0.0, rng_a)
    assert same is not five and np.array_equal(same, five)
    assert rng_a.random() == rng_b.random()
    with pytest.raises(ConfigError):
        AugmentConfig(five_point_noise=-0.01)


def _dot_dataset(tmp_path, cfg: AugmentConfig, seed: int = 4):
    """A one-face LandmarkDataset on the dot scene, whose five points align it exactly to ``align``."""
    import cv2

    from facelm.alignment import reference_template
    from facelm.data.dataset import LandmarkDataset, TargetSpec
    from facelm.data.records import FaceRecord

    image, pts, align = _scene(seed)
    path = tmp_path / "dots.png"
    cv2.imwrite(str(path), image[..., ::-1])
    five = transform_points(reference_template(SIZE), invert_affine(align))
    rec = FaceRecord(image=path, landmarks=pts, name="dots.png", five_points=five)
    return LandmarkDataset([rec], JD106, TargetSpec(SIZE, SIZE // 4), cfg, seed=seed), pts, align


def test_alignment_noise_moves_the_crop_and_the_ground_truth_follows_it(tmp_path):
    """With five-point noise the crop moves off the clean alignment by about the noise, and the
    training targets are exactly where the dots drawn at the ground truth land in the crop."""
    from facelm.alignment import reference_template, warp_face
    from facelm.data.records import read_image
    from facelm.preprocess import denormalize

    cfg = dataclasses.replace(AugmentConfig.off(), five_point_noise=0.05)
    ds, pts, align = _dot_dataset(tmp_path, cfg)
    iod_crop = float(np.linalg.norm(np.diff(reference_template(SIZE)[:2], axis=0)))
    moves = []
    for epoch in range(4):
        ds.set_epoch(epoch)
        s = ds.sample(0)
        centre = transform_points(pts.mean(axis=0, keepdims=True), s["transform"])
        moves.append(float(np.linalg.norm(centre - transform_points(pts.mean(axis=0, keepdims=True), align))))
        np.testing.assert_allclose(s["points"], transform_points(pts, s["transform"]), atol=1e-9)
        crop = denormalize(s["image"].transpose(1, 2, 0))
        # The crop is the image warped by exactly the returned transform (so the targets, that
        # transform applied to the ground truth, follow it to 1e-9 px) ...
        warped = warp_face(read_image(ds.records[0].image), s["transform"], SIZE)
        assert np.abs(crop.astype(int) - warped).max() <= 1
        # ... and, measured on the pixels, the dots drawn at the ground truth are at the targets.
        errs = [np.linalg.norm(_find(crop, p)[0] - p) for p in s["points"]]
        assert max(errs) < 0.1, f"epoch {epoch}: ground truth {max(errs):.3f} px off the drawn dot"
    # 5% IOD per coordinate on each point: the fitted crop moves by a pixel or more, epoch to epoch.
    assert 0.005 * iod_crop < np.mean(moves) < 0.2 * iod_crop and len(set(np.round(moves, 6))) == 4
    # Same (seed, epoch, index): the same draw.
    ds.set_epoch(2)
    np.testing.assert_array_equal(ds.sample(0)["transform"], ds.sample(0)["transform"])


def test_no_alignment_noise_keeps_the_clean_alignment(tmp_path):
    cfg = dataclasses.replace(AugmentConfig.off(), five_point_noise=0.0, pca_noise=0.05)
    ds, pts, align = _dot_dataset(tmp_path, cfg)
    np.testing.assert_allclose(ds.sample(0)["transform"], align, atol=1e-9)
