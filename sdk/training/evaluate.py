"""Evaluation: predict landmarks (optionally with the flip test) and score NME / AUC@0.08 / FR.

Predictions are decoded with :func:`sdk.codec.decode` (flip test: :func:`sdk.codec.average_flip`,
averaging the coordinates of the image and its mirror as the paper does), mapped from heatmap
to input pixels (:func:`sdk.codec.heatmap_to_input`) and back to the original image with the
inverse alignment, then scored with :mod:`sdk.metrics` against the original ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from sdk.alignment import invert_affine, transform_points
from sdk.codec import average_flip, decode, heatmap_to_input
from sdk.data.dataset import LandmarkDataset
from sdk.metrics import nme, summarize


@torch.no_grad()
def predict_input_points(model: nn.Module, images: torch.Tensor, permutation: np.ndarray, stride,
                         flip: bool = False, method: str = "dark") -> np.ndarray:
    """Landmarks in input-crop pixels.

    Args:
        model: heatmap model in eval mode.
        images: (N, 3, S, S) normalised inputs on the model's device.
        permutation: (K,) the layout's flip permutation (used when ``flip``).
        stride: input size / heatmap size.
    Returns:
        (N, K, 2) float64 (x, y) in input pixels.
    """
    h = model(images).float().cpu().numpy()
    if flip:
        hf = model(torch.flip(images, dims=[3])).float().cpu().numpy()
        coords, _ = average_flip(h, hf, permutation, mode="coords", method=method)
    else:
        coords, _ = decode(h, method)
    return heatmap_to_input(coords, stride)


@dataclass
class EvalResult:
    """Per-image NME (fractions) and summaries, without and with the flip test."""

    nme_plain: np.ndarray
    nme_flip: np.ndarray

    def summary(self) -> dict[str, dict[str, float]]:
        return {"plain": summarize(self.nme_plain), "flip": summarize(self.nme_flip)}


@torch.no_grad()
def evaluate(model: nn.Module, dataset: LandmarkDataset, device: torch.device | str = "cpu",
             batch_size: int = 32, workers: int = 0, method: str = "dark", progress: bool = False) -> EvalResult:
    """NME of every face of ``dataset`` (which must not augment), without and with the flip test."""
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers)
    perm = dataset.layout.flip_permutation
    plain, flipped = [], []
    for batch in tqdm(loader, desc="eval", unit="batch", disable=not progress, leave=False):
        x = batch["image"].to(device, non_blocking=True)
        inv = invert_affine(batch["transform"].numpy())
        gt, box = batch["gt"].numpy(), batch["bbox"].numpy()
        for flip, out in ((False, plain), (True, flipped)):
            pts = predict_input_points(model, x, perm, dataset.spec.stride, flip=flip, method=method)
            out.append(nme(transform_points(pts, inv), gt, dataset.layout, box))
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
        pred = transform_points(mean, invert_affine(s["transform"]))
        errs.append(nme(pred[None], s["gt"][None], test.layout, s["bbox"][None])[0])
    return np.asarray(errs)


def evaluate_checkpoint(checkpoint, data, limit: int = 0, detector_points=None, data_format: str = "auto",
                        method: str = "dark", device: str = "cpu", batch_size: int = 32,
                        progress: bool = False) -> EvalResult:
    """Load a checkpoint and evaluate it on a data set (aligned with GT or detector five points).

    Raises:
        ConfigError: the checkpoint's layout does not match the data's.
    """
    from sdk.data.dataset import TargetSpec
    from sdk.data.sources import load_records
    from sdk.errors import ConfigError
    from sdk.model import load_checkpoint

    model, mcfg, _ = load_checkpoint(checkpoint, map_location=device)
    records, layout = load_records(data, data_format, detector_points=detector_points)
    if layout.num_points != mcfg.num_keypoints:
        raise ConfigError(f"{checkpoint} predicts {mcfg.num_keypoints} points but the data has {layout.num_points}")
    if limit:
        records = records[:limit]
    ds = LandmarkDataset(records, layout, TargetSpec(mcfg.input_size, mcfg.heatmap_size))
    return evaluate(model.to(device), ds, device, batch_size=batch_size, method=method, progress=progress)
