"""Alignment-noise gain: how far the landmarks move when the five alignment points are noisy.

A face detector's five points are never exact, and a tracker's are the model's own. A model that
reads landmarks from the face keeps them in place when its crop moves (gain 0); a model that
leans on where the alignment puts the face moves them with the crop (gain about 1) or further.

:func:`alignment_gain` perturbs each coordinate of each of the five points by ``N(0, (s·IOD)²)``
(the same perturbation as training's ``augment.five_point_noise``,
:func:`facelm.data.augment.perturb_five_points`), refits the similarity, runs the crop model and
measures, in the original image:

- landmark movement: mean over landmarks of ``|L(noisy) - L(clean)|``, in % of the IOD;
- five-point movement: mean over the five points of ``|noisy - clean|``, in % of the IOD;
- gain = landmark movement / five-point movement (means over faces and repeats).

IOD = distance between the two eye points of the clean five points. It needs no labels: on
synthetic faces the clean five points come from the ground truth, on real photos from the model's
own IMAGE-mode pass (:func:`model_five_points`).

A crop model is anything with ``input_size``, ``layout`` and ``__call__(image, transform) ->
CropLandmarks`` (:class:`facelm.runtime.tracking.CropModel`: a :class:`facelm.Landmarker` or
:class:`TorchCropModel`); one that also has ``batch(images, transforms) -> (N, K, 2)`` is run in
batches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from facelm.alignment import estimate_alignment, warp_face
from facelm.codec import DecodeConfig
from facelm.data.augment import inter_pupil_distance
from facelm.errors import InputError
from facelm.layouts import Layout, get_layout
from facelm.postprocess import crop_to_image
from facelm.preprocess import DEFAULT_NORMALIZATION, Normalization, normalize
from facelm.runtime.tracking import CropLandmarks

#: The noise levels of the gain curve, fractions of the IOD (0.5% to 5%).
DEFAULT_SIGMAS = (0.005, 0.01, 0.02, 0.03, 0.05)


class TorchCropModel:
    """A torch heatmap model as a crop model (:class:`facelm.runtime.tracking.CropModel`).

    Args:
        model: heatmap model (put in eval mode here).
        input_size: crop side, pixels.
        heatmap_size: heatmap side, cells.
        layout: the model's landmark layout.
        flip: average with the mirrored crop's prediction (the paper's flip test; two passes).
        decode: heatmap decoding.
        norm: input normalisation.
    """

    def __init__(self, model: nn.Module, input_size: int, heatmap_size: int, layout: Layout | str,
                 flip: bool = False, decode: DecodeConfig = DecodeConfig(),
                 norm: Normalization = DEFAULT_NORMALIZATION) -> None:
        self.model = model.eval()
        self.input_size = int(input_size)
        self.heatmap_size = int(heatmap_size)
        self.layout = get_layout(layout)
        self.flip = bool(flip)
        self.decode = decode
        self.norm = norm

    @classmethod
    def from_checkpoint(cls, path, flip: bool = False) -> "TorchCropModel":
        """From a facelm checkpoint (``facelm.model.load_checkpoint``)."""
        from facelm.model import load_checkpoint

        model, cfg, _ = load_checkpoint(path)
        return cls(model, cfg.input_size, cfg.heatmap_size, cfg.layout, flip=flip)

    def batch(self, images: Sequence[np.ndarray], transforms: np.ndarray) -> np.ndarray:
        """Landmarks in the crops of N (image, transform) pairs.

        Args:
            images: N (H, W, 3) uint8 RGB images (may repeat the same array).
            transforms: (N, 2, 3) image -> crop similarities.
        Returns:
            (N, K, 2) float64 crop pixels.
        """
        from facelm.training.evaluate import predict_input_points

        crops = np.stack([warp_face(im, m, self.input_size) for im, m in zip(images, transforms)])
        x = torch.from_numpy(np.ascontiguousarray(normalize(crops, self.norm).transpose(0, 3, 1, 2)))
        return predict_input_points(self.model, x, self.layout.flip_permutation, self.heatmap_size,
                                    flip=self.flip, decode=self.decode)

    def __call__(self, image: np.ndarray, transform: np.ndarray) -> CropLandmarks:
        pts = self.batch([image], np.asarray(transform, np.float64)[None])[0]
        return CropLandmarks(crop=pts, scores=np.ones(len(pts), np.float32))


@dataclass(frozen=True)
class GainCurve:
    """Landmark movement against five-point noise.

    Attributes:
        sigmas: (S,) noise sigma per coordinate, fraction of the IOD.
        five_move: (S,) mean five-point movement, % IOD.
        landmark_move: (S,) mean landmark movement, % IOD.
        per_face: (S, F) landmark movement per face (mean over repeats), % IOD.
        faces: F, number of faces.
        repeats: noise draws per face and sigma.
    """

    sigmas: np.ndarray
    five_move: np.ndarray
    landmark_move: np.ndarray
    per_face: np.ndarray
    faces: int
    repeats: int

    @property
    def gain(self) -> np.ndarray:
        """(S,) landmark movement / five-point movement."""
        return self.landmark_move / self.five_move

    def gain_at(self, sigma: float) -> float:
        """The gain at noise ``sigma`` (must be one of :attr:`sigmas`)."""
        hit = np.flatnonzero(np.isclose(self.sigmas, sigma))
        if not len(hit):
            raise InputError(f"sigma {sigma} was not measured; measured {self.sigmas.tolist()}")
        return float(self.gain[hit[0]])

    def table(self) -> str:
        """Markdown table: sigma, five-point and landmark movement, gain."""
        rows = ["| noise σ (% IOD) | five points move (% IOD) | landmarks move (% IOD) | gain |",
                "|---:|---:|---:|---:|"]
        for s, f, l, g in zip(self.sigmas, self.five_move, self.landmark_move, self.gain):
            rows.append(f"| {100 * s:.1f} | {f:.3f} | {l:.3f} | {g:.3f} |")
        return "\n".join(rows)

    def to_dict(self) -> dict:
        return {"sigmas": self.sigmas.tolist(), "five_move_pct_iod": self.five_move.tolist(),
                "landmark_move_pct_iod": self.landmark_move.tolist(), "gain": self.gain.tolist(),
                "faces": self.faces, "repeats": self.repeats}


def _run(crop_model, images: Sequence[np.ndarray], transforms: np.ndarray, batch_size: int) -> np.ndarray:
    """(N, K, 2) image-pixel landmarks of N (image, transform) pairs, batched when the model can."""
    if hasattr(crop_model, "batch"):
        crops = np.concatenate([crop_model.batch(images[i:i + batch_size], transforms[i:i + batch_size])
                                for i in range(0, len(images), batch_size)])
    else:
        crops = np.stack([crop_model(im, m).crop for im, m in zip(images, transforms)])
    return crop_to_image(crops, transforms)


def alignment_gain(crop_model, images: Sequence[np.ndarray], five_points: np.ndarray,
                   sigmas: Sequence[float] = DEFAULT_SIGMAS, seed: int = 0, repeats: int = 8,
                   batch_size: int = 16) -> GainCurve:
    """The alignment-noise gain curve of a crop model.

    The unit-noise draws are made once (``numpy.random.default_rng(seed)``, shape
    (F, repeats, 5, 2)) and scaled by each sigma, so two models measured with the same seed see
    the same perturbations.

    Args:
        crop_model: see the module docstring.
        images: F (H, W, 3) uint8 RGB images, one face each.
        five_points: (F, 5, 2) clean five points in image pixels (ArcFace order).
        sigmas: noise levels, fractions of each face's IOD.
        seed: seed of the noise.
        repeats: noise draws per face and sigma.
        batch_size: crops per model call (batched models).
    Returns:
        :class:`GainCurve`.
    """
    five = np.asarray(five_points, dtype=np.float64)
    if five.ndim != 3 or five.shape[1:] != (5, 2) or len(five) != len(images):
        raise InputError(f"five_points must be (F, 5, 2) for F={len(images)} images, got {five.shape}")
    if not len(images) or int(repeats) < 1 or not len(sigmas) or min(sigmas) <= 0:
        raise InputError("alignment_gain needs at least one image, repeats >= 1 and positive sigmas")
    size = int(crop_model.input_size)
    iod = np.array([inter_pupil_distance(f) for f in five])
    if not np.all(iod > 0):
        raise InputError("five points with coincident eyes (IOD 0)")
    clean = _run(crop_model, list(images), np.stack([estimate_alignment(f, size) for f in five]), batch_size)
    unit = np.random.default_rng(seed).standard_normal((len(five), int(repeats), 5, 2))
    jobs_img = [im for im in images for _ in range(int(repeats))]
    five_move, lm_move, per_face = [], [], []
    for s in sigmas:
        noisy = five[:, None] + unit * (float(s) * iod)[:, None, None, None]  # (F, R, 5, 2)
        ms = np.stack([estimate_alignment(f, size) for f in noisy.reshape(-1, 5, 2)])
        moved = _run(crop_model, jobs_img, ms, batch_size).reshape(len(five), int(repeats), -1, 2)
        lm = np.linalg.norm(moved - clean[:, None], axis=-1).mean(axis=-1) / iod[:, None]  # (F, R)
        fp = np.linalg.norm(noisy - five[:, None], axis=-1).mean(axis=-1) / iod[:, None]
        five_move.append(100 * fp.mean())
        lm_move.append(100 * lm.mean())
        per_face.append(100 * lm.mean(axis=1))
    return GainCurve(np.asarray(sigmas, np.float64), np.array(five_move), np.array(lm_move),
                     np.array(per_face), len(five), int(repeats))


def model_five_points(crop_model, images: Sequence[np.ndarray], detector=None, refine_passes: int = 1,
                      max_faces: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    """Five points of real photos from the model itself, as IMAGE mode finds them: the detector's
    crop, then ``refine_passes`` passes re-aligned from the model's own five points
    (:func:`facelm.runtime.tracking.refine`), for up to ``max_faces`` faces per photo (best first).

    Returns:
        ``(face_images, five)``: one entry per face found (a photo with several faces repeats its
        image) and their (F, 5, 2) five points in image pixels.
    """
    from facelm.detect import create_detector
    from facelm.runtime.tracking import refine, to_image

    det = detector or create_detector()
    kept, fives = [], []
    for im in images:
        for face in det.detect(im)[: int(max_faces)]:
            out, m = refine(im, crop_model, face.alignment(crop_model.input_size), refine_passes, {})
            kept.append(im)
            fives.append(crop_model.layout.five_points(to_image(out.crop, m)))
    return kept, np.array(fives, dtype=np.float64).reshape(-1, 5, 2)


def synthetic_five_points(landmarks: np.ndarray, layout: Layout | str = "jd106") -> np.ndarray:
    """(F, K, 2) ground truth -> (F, 5, 2) exact five points."""
    lay = get_layout(layout)
    return np.stack([lay.five_points(l) for l in np.asarray(landmarks, np.float64)])

