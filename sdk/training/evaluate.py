"""Evaluation: predict landmarks (optionally with the flip test) and score NME / AUC@0.08 / FR.

Predictions are decoded with :func:`facelm.postprocess.output_to_landmarks` (the flip test
averages the coordinates of the image and of its mirror, mapped back by
:func:`facelm.layouts.flip_landmarks`, as the paper does; two forward passes per batch) and
mapped back to the original image with :func:`facelm.postprocess.crop_to_image`, then scored
with :mod:`facelm.metrics` against the original ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from facelm.codec import DecodeConfig, stride_for
from facelm.data.dataset import LandmarkDataset
from facelm.layouts import flip_landmarks
from facelm.metrics import nme, summarize
from facelm.postprocess import crop_to_image, output_to_landmarks
from facelm.runtime.manifest import ModelSpec, TensorSpec


def torch_model_spec(num_keypoints: int, input_size: int, heatmap_size: int) -> tuple[ModelSpec, TensorSpec]:
    """The :class:`ModelSpec` and NCHW float output spec of a zoo model (for :func:`output_to_landmarks`)."""
    spec = ModelSpec(name="torch", num_keypoints=int(num_keypoints), input_size=(input_size, input_size),
                     heatmap_size=(heatmap_size, heatmap_size),
                     stride=stride_for((input_size, input_size), (heatmap_size, heatmap_size)))
    return spec, TensorSpec("heatmaps", (1, int(num_keypoints), heatmap_size, heatmap_size), "NCHW", "float32")


def _crop_points(model: nn.Module, images: torch.Tensor, num_keypoints: int, heatmap_size: int,
                 decode: DecodeConfig) -> np.ndarray:
    """One forward pass: (N, 3, S, S) inputs -> (N, K, 2) float64 (x, y) in input pixels."""
    spec, out = torch_model_spec(num_keypoints, int(images.shape[-1]), heatmap_size)
    return output_to_landmarks(model(images).float().cpu().numpy(), out, spec, decode).crop


@torch.no_grad()
def predict_pair(model: nn.Module, images: torch.Tensor, permutation: np.ndarray, heatmap_size: int,
                 decode: DecodeConfig = DecodeConfig()) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks in input-crop pixels without and with the flip test, from two forward passes.

    Args:
        model: heatmap model in eval mode.
        images: (N, 3, S, S) normalised inputs on the model's device.
        permutation: (K,) the layout's flip permutation.
        heatmap_size: side of the model's square heatmaps, cells.
        decode: how heatmaps become coordinates (:func:`facelm.postprocess.output_to_landmarks`).
    Returns:
        ``(plain, flip)``, each (N, K, 2) float64 (x, y) in input pixels: the image's own
        prediction, and the paper's flip test (its average with the mirror image's prediction
        mapped back by :func:`facelm.layouts.flip_landmarks`).
    """
    perm = np.asarray(permutation)
    plain = _crop_points(model, images, len(perm), heatmap_size, decode)
    mirrored = _crop_points(model, torch.flip(images, dims=[3]), len(perm), heatmap_size, decode)
    return plain, 0.5 * (plain + flip_landmarks(mirrored, int(images.shape[-1]), perm))


@torch.no_grad()
def predict_input_points(model: nn.Module, images: torch.Tensor, permutation: np.ndarray, heatmap_size: int,
                         flip: bool = False, decode: DecodeConfig = DecodeConfig()) -> np.ndarray:
    """Landmarks in input-crop pixels: (N, K, 2) float64, with the flip test when ``flip``.

    One forward pass without ``flip``, two with it (see :func:`predict_pair` for the arguments).
    """
    if flip:
        return predict_pair(model, images, permutation, heatmap_size, decode)[1]
    return _crop_points(model, images, len(permutation), heatmap_size, decode)


@dataclass
class EvalResult:
    """Per-image NME (fractions) and summaries, without and with the flip test."""

    nme_plain: np.ndarray
    nme_flip: np.ndarray

    def summary(self) -> dict[str, dict[str, float]]:
        return {"plain": summarize(self.nme_plain), "flip": summarize(self.nme_flip)}


@torch.no_grad()
def evaluate(model: nn.Module, dataset: LandmarkDataset, device: torch.device | str = "cpu",
             batch_size: int = 32, workers: int = 0, decode: DecodeConfig = DecodeConfig(),
             progress: bool = False) -> EvalResult:
    """NME of every face of ``dataset`` (which must not augment), without and with the flip test."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    perm = dataset.layout.flip_permutation
    plain, flipped = [], []
    for batch in tqdm(loader, desc="eval", unit="batch", disable=not progress, leave=False):
        x = batch["image"].to(device, non_blocking=True)
        transforms = batch["transform"].numpy()
        gt, box = batch["gt"].numpy(), batch["bbox"].numpy()
        pair = predict_pair(model, x, perm, dataset.spec.heatmap_size, decode=decode)
        for pts, out in zip(pair, (plain, flipped)):
            out.append(nme(crop_to_image(pts, transforms), gt, dataset.layout, box))
    model.train(was_training)
    return EvalResult(np.concatenate(plain), np.concatenate(flipped))


def mean_shape_nme(train: LandmarkDataset, test: LandmarkDataset) -> np.ndarray:
    """Baseline: NME of always predicting the mean aligned shape of ``train`` on ``test``.

    Returns:
        (N_test,) per-image NME.
    """
    mean = np.mean([train.sample(i)["points"] for i in range(len(train))], axis=0)
    errs = []
    for i in range(len(test)):
        s = test.sample(i)
        pred = crop_to_image(mean[None], s["transform"])
        errs.append(nme(pred, s["gt"][None], test.layout, s["bbox"][None])[0])
    return np.asarray(errs)


def evaluate_checkpoint(checkpoint, data, limit: int = 0, detector_points=None, data_format: str = "auto",
                        decode: DecodeConfig = DecodeConfig(), device: str = "cpu", batch_size: int = 32,
                        progress: bool = False) -> EvalResult:
    """Load a checkpoint and evaluate it on a data set (aligned with GT or detector five points).

    Raises:
        ConfigError: the checkpoint's layout does not match the data's.
    """
    from facelm.data.dataset import TargetSpec
    from facelm.data.sources import load_records
    from facelm.errors import ConfigError
    from facelm.model import load_checkpoint

    model, mcfg, _ = load_checkpoint(checkpoint, map_location=device)
    records, layout = load_records(data, data_format, detector_points=detector_points)
    if layout.num_points != mcfg.num_keypoints:
        raise ConfigError(f"{checkpoint} predicts {mcfg.num_keypoints} points but the data has {layout.num_points}")
    if limit:
        records = records[:limit]
    ds = LandmarkDataset(records, layout, TargetSpec(mcfg.input_size, mcfg.heatmap_size))
    return evaluate(model.to(device), ds, device, batch_size=batch_size, decode=decode, progress=progress)
