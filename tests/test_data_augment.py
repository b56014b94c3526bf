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
