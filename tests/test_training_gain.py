"""Alignment-noise gain (facelm.training.gain): exact on models whose answer is known, runs on a tiny model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from facelm.alignment import estimate_alignment, invert_affine, transform_points
from facelm.data import synth
from facelm.errors import InputError
from facelm.layouts import JD106
from facelm.model import build_model, load_config
from facelm.runtime.tracking import CropLandmarks
from facelm.training.gain import TorchCropModel, alignment_gain, synthetic_five_points

SIZE = 96


@pytest.fixture(scope="module")
def faces():
    images, lms = synth.generate(3, seed=77, size=128)
    return list(images), lms.astype(np.float64)


class _Equivariant:
    """Reads every landmark from the face itself: the true points in whatever crop it is given."""

    input_size, layout = SIZE, JD106

    def __init__(self, images, landmarks):
        self.truth = {id(im): lm for im, lm in zip(images, landmarks)}

    def __call__(self, image, transform):
        return CropLandmarks(crop=transform_points(self.truth[id(image)], transform), scores=np.ones(106))


class _Prior:
    """Ignores the face: the same crop points whatever the crop (follows the alignment fully)."""

    input_size, layout = SIZE, JD106

    def __init__(self, crop_points):
        self.crop_points = crop_points

    def __call__(self, image, transform):
        return CropLandmarks(crop=self.crop_points.copy(), scores=np.ones(106))


def test_a_model_that_reads_the_face_has_gain_zero(faces):
    images, lms = faces
    curve = alignment_gain(_Equivariant(images, lms), images, synthetic_five_points(lms), sigmas=[0.01, 0.05],
                           repeats=3)
    np.testing.assert_allclose(curve.landmark_move, 0.0, atol=1e-9)
    assert np.all(curve.five_move > 0) and np.all(curve.gain < 1e-9)


def test_a_prior_only_model_moves_with_the_fitted_crop(faces):
    """Landmark movement = where the noisy similarity's inverse sends fixed crop points, computed here
    independently from the same draws (numpy default_rng(seed), (F, R, 5, 2) unit normals)."""
    images, lms = faces
    five = synthetic_five_points(lms)
    crop_pts = transform_points(lms[0], estimate_alignment(five[0], SIZE))
    sigma, reps, seed = 0.02, 4, 5
    curve = alignment_gain(_Prior(crop_pts), images, five, sigmas=[sigma], repeats=reps, seed=seed)
    unit = np.random.default_rng(seed).standard_normal((len(five), reps, 5, 2))
    lm_moves, five_moves = [], []
    for f in range(len(five)):
        iod = np.linalg.norm(five[f, 1] - five[f, 0])
        clean = transform_points(crop_pts, invert_affine(estimate_alignment(five[f], SIZE)))
        for r in range(reps):
            noisy = five[f] + unit[f, r] * sigma * iod
            moved = transform_points(crop_pts, invert_affine(estimate_alignment(noisy, SIZE)))
            lm_moves.append(np.linalg.norm(moved - clean, axis=1).mean() / iod)
            five_moves.append(np.linalg.norm(noisy - five[f], axis=1).mean() / iod)
    assert curve.landmark_move[0] == pytest.approx(100 * np.mean(lm_moves), rel=1e-9)
    assert curve.five_move[0] == pytest.approx(100 * np.mean(five_moves), rel=1e-9)
    # 2% IOD per coordinate: each point moves 2% * sqrt(pi/2) = 2.5% IOD on average.
    assert curve.five_move[0] == pytest.approx(2.5, rel=0.3)
    # A least-squares similarity averages the five points' noise, so the fitted crop moves less.
    assert 0.2 < curve.gain_at(sigma) < 1.0


def test_tiny_torch_model_batched_and_single_calls_agree(faces):
    images, lms = faces
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = TorchCropModel(build_model(cfg), cfg.input_size, cfg.heatmap_size, cfg.layout)
    five = synthetic_five_points(lms)
    a = alignment_gain(model, images, five, sigmas=[0.01, 0.03], repeats=2, seed=1)

    class Single:  # the same model without ``batch``: one call per crop
        input_size, layout = model.input_size, model.layout
        __call__ = model.__call__

    b = alignment_gain(Single(), images, five, sigmas=[0.01, 0.03], repeats=2, seed=1)
    np.testing.assert_allclose(a.landmark_move, b.landmark_move, rtol=1e-5)
    assert np.all(np.isfinite(a.gain)) and a.per_face.shape == (2, 3) and a.faces == 3
    assert a.five_move[1] > a.five_move[0]
    c = alignment_gain(model, images, five, sigmas=[0.01, 0.03], repeats=2, seed=2)
    assert not np.allclose(c.five_move, a.five_move)  # another seed, other draws
    assert "| 1.0 |" in a.table() and set(a.to_dict()) >= {"gain", "sigmas"}


def test_bad_inputs_are_clear_errors(faces):
    images, lms = faces
    five = synthetic_five_points(lms)
    prior = _Prior(np.zeros((106, 2)))
    with pytest.raises(InputError, match="five_points"):
        alignment_gain(prior, images, five[:2])
    with pytest.raises(InputError, match="positive sigmas"):
        alignment_gain(prior, images, five, sigmas=[0.0])
    with pytest.raises(InputError, match="IOD 0"):
        alignment_gain(prior, images[:1], np.zeros((1, 5, 2)))
    curve = alignment_gain(prior, images, five, sigmas=[0.01], repeats=1)
    with pytest.raises(InputError, match="not measured"):
        curve.gain_at(0.02)
