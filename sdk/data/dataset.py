"""The training/evaluation Dataset: align -> augment -> normalise -> encode targets.

Each item is a dict of tensors (see :meth:`LandmarkDataset.__getitem__`). Randomness is a
pure function of ``(seed, epoch, index)``, so an epoch's samples are identical whatever the
number of DataLoader workers or processes, and a resumed run sees the same data as an
uninterrupted one. Call :meth:`LandmarkDataset.set_epoch` before iterating an epoch.

Alignment uses the record's five points (detector points when given, else derived from the
ground truth); when augmenting with ``five_point_noise`` each of those points is first moved
at random (:func:`facelm.data.augment.perturb_five_points`), so the model learns to place
landmarks from the face, not from where the alignment put it. Without augmentation the crop comes from :func:`facelm.preprocess.preprocess_face`,
the function the runtime uses; with augmentation the same alignment is composed with the
random geometric transform and the same normalisation (:func:`facelm.preprocess.normalize`) is
applied.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset

from facelm.alignment import estimate_alignment, transform_points
from facelm.codec import encode, input_to_heatmap, stride_for
from facelm.data.augment import AugmentConfig, augment_face, perturb_five_points
from facelm.data.records import FaceRecord, read_image
from facelm.errors import InputError
from facelm.layouts import Layout
from facelm.preprocess import DEFAULT_NORMALIZATION, Normalization, normalize, preprocess_face


@dataclass(frozen=True)
class TargetSpec:
    """Model input and heatmap geometry.

    Attributes:
        input_size: model input side in pixels.
        heatmap_size: heatmap side in pixels (input_size / stride).
        sigma: Gaussian sigma of the targets, heatmap pixels.
    """

    input_size: int
    heatmap_size: int
    sigma: float = 2.0

    @property
    def stride(self) -> tuple[float, float]:
        return stride_for((self.input_size, self.input_size), (self.heatmap_size, self.heatmap_size))


class LandmarkDataset(Dataset):
    """Faces -> (normalised input, target heatmaps, keypoint weights, geometry for evaluation).

    Args:
        records: faces (see :mod:`facelm.data.sources`).
        layout: their landmark layout.
        spec: input/heatmap geometry.
        augment: augmentation config (``AugmentConfig.off()`` for evaluation).
        seed: base seed of the augmentation randomness.
        norm: input normalisation (the one in :mod:`facelm.preprocess`).
    """

    def __init__(self, records: list[FaceRecord], layout: Layout, spec: TargetSpec,
                 augment: AugmentConfig | None = None, seed: int = 0,
                 norm: Normalization = DEFAULT_NORMALIZATION) -> None:
        if not records:
            raise InputError("the data set is empty")
        for r in records[:1]:
            if r.landmarks.shape != (layout.num_points, 2):
                raise InputError(f"records hold {r.landmarks.shape[0]} points but the layout {layout.name} has "
                                 f"{layout.num_points}")
        self.records = list(records)
        self.layout = layout
        self.spec = spec
        self.augment = augment or AugmentConfig.off()
        self.seed = int(seed)
        self.norm = norm
        self.epoch = 0
        self._augmenting = self.augment != AugmentConfig.off()

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws ``__getitem__`` makes."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def sample(self, index: int) -> dict[str, np.ndarray]:
        """One item as numpy arrays.

        Returns:
            ``image`` (3, S, S) float32 normalised; ``heatmaps`` (K, h, h) float32; ``weights`` (K,)
            float32; ``points`` (K, 2) float64 targets in input pixels; ``transform`` (2, 3)
            image -> input crop (including a mirror when flipped); ``gt`` (K, 2) ground truth in
            image pixels (original labels); ``bbox`` (4,) ground-truth box; ``flipped`` bool; ``index``.
        """
        r = self.records[index]
        image = read_image(r.image)
        size = self.spec.input_size
        five = r.alignment_points(self.layout)
        if self._augmenting:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
            five = perturb_five_points(five, self.augment.five_point_noise, rng)
            crop, pts, m, flipped = augment_face(image, r.landmarks, estimate_alignment(five, size), size,
                                                 self.layout, self.augment, rng)
            x = np.ascontiguousarray(normalize(crop, self.norm).transpose(2, 0, 1))
        else:
            x, m = preprocess_face(image, five, size, self.norm)
            pts, flipped = transform_points(r.landmarks, m), False
        hm_pts = input_to_heatmap(pts, self.spec.stride)
        heatmaps, weights = encode(hm_pts, (self.spec.heatmap_size, self.spec.heatmap_size), self.spec.sigma)
        return {
            "image": x.astype(np.float32, copy=False), "heatmaps": heatmaps, "weights": weights,
            "points": pts, "transform": m, "gt": np.asarray(r.landmarks, dtype=np.float64),
            "bbox": r.gt_box(), "flipped": np.bool_(flipped), "index": np.int64(index),
        }

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {k: torch.as_tensor(v) for k, v in self.sample(index).items()}
