"""Landmark layouts: the single source of truth for point semantics.

Every fact about a markup lives here and nowhere else: the number of points,
region names, the horizontal-flip permutation, which points give the five
alignment points (ArcFace order: image-left eye centre, image-right eye centre,
nose tip, image-left mouth corner, image-right mouth corner) and how NME is
normalised. Indices are 0-based.

Sources: JD-106 (same markup as LaPa) and WFLW-98 / iBUG-68 flip pairs follow
mmpose ``configs/_base_/datasets/{lapa,wflw,300w}.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from facelm.errors import ConfigError, InputError

NormKind = Literal["bbox", "inter_ocular"]


@dataclass(frozen=True)
class Layout:
    """A landmark markup.

    Attributes:
        name: short identifier (``"jd106"``, ``"wflw98"``, ``"ibug68"``).
        num_points: K.
        regions: region name -> tuple of point indices.
        flip_pairs: pairs (i, j) swapped by a horizontal mirror; unlisted points map to themselves.
        five_point_groups: five tuples of indices; each alignment point is the mean of its group.
        norm: ``"bbox"`` (sqrt(w*h) of the ground-truth box) or ``"inter_ocular"``.
        ocular_indices: (i, j) whose distance normalises NME when ``norm == "inter_ocular"``.
    """

    name: str
    num_points: int
    regions: dict[str, tuple[int, ...]]
    flip_pairs: tuple[tuple[int, int], ...]
    five_point_groups: tuple[tuple[int, ...], ...]
    norm: NormKind
    ocular_indices: tuple[int, int] | None = None
    description: str = field(default="", compare=False)

    @property
    def flip_permutation(self) -> np.ndarray:
        """(K,) int64: ``mirrored[k] = flipped_points[perm[k]]``. An involution."""
        perm = np.arange(self.num_points, dtype=np.int64)
        for i, j in self.flip_pairs:
            perm[i], perm[j] = j, i
        return perm

    def five_points(self, landmarks: np.ndarray) -> np.ndarray:
        """Five alignment points from full landmarks.

        Args:
            landmarks: (K, 2) or (N, K, 2) in pixels.
        Returns:
            (5, 2) or (N, 5, 2) float64, ArcFace order.
        """
        pts = np.asarray(landmarks, dtype=np.float64)
        if pts.shape[-2:] != (self.num_points, 2):
            raise InputError(
                f"{self.name} expects landmarks of shape (..., {self.num_points}, 2), got {pts.shape}"
            )
        return np.stack([pts[..., list(g), :].mean(axis=-2) for g in self.five_point_groups], axis=-2)

    def normalizer(self, landmarks: np.ndarray, bbox: np.ndarray | None = None) -> np.ndarray:
        """NME normalisation distance per image, in pixels.

        Args:
            landmarks: (N, K, 2) ground truth.
            bbox: (N, 4) ``x1 y1 x2 y2`` ground-truth boxes; for ``"bbox"`` layouts, the
                tight box of the landmarks is used when omitted.
        Returns:
            (N,) float64.
        """
        gt = np.asarray(landmarks, dtype=np.float64)
        if self.norm == "inter_ocular":
            i, j = self.ocular_indices  # type: ignore[misc]
            return np.linalg.norm(gt[:, i] - gt[:, j], axis=-1)
        if bbox is None:
            lo, hi = gt.min(axis=1), gt.max(axis=1)
            wh = hi - lo
        else:
            b = np.asarray(bbox, dtype=np.float64)
            if b.shape != (gt.shape[0], 4):
                raise InputError(f"bbox must have shape ({gt.shape[0]}, 4), got {b.shape}")
            wh = b[:, 2:] - b[:, :2]
        return np.sqrt(np.abs(wh[:, 0] * wh[:, 1]))


def _sym(pairs: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    return tuple(pairs)


def _range(a: int, b: int) -> tuple[int, ...]:
    """Inclusive index range."""
    return tuple(range(a, b + 1))


JD106 = Layout(
    name="jd106",
    num_points=106,
    regions={
        "contour": _range(0, 32),
        "eyebrows": _range(33, 50),
        "nose_bridge": _range(51, 54),
        "nose_lower": _range(55, 65),
        "left_eye": _range(66, 74),
        "right_eye": _range(75, 83),
        "outer_mouth": _range(84, 95),
        "inner_mouth": _range(96, 103),
        "pupils": (104, 105),
    },
    flip_pairs=_sym(
        [(i, 32 - i) for i in range(16)]
        + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47)]
        + [(55, 65), (56, 64), (57, 63), (58, 62), (59, 61)]
        + [(66, 79), (67, 78), (68, 77), (69, 76), (70, 75), (71, 82), (72, 81), (73, 80), (74, 83)]
        + [(84, 90), (85, 89), (86, 88), (91, 95), (92, 94), (96, 100), (97, 99), (101, 103), (104, 105)]
    ),
    five_point_groups=((104,), (105,), (54,), (84,), (90,)),
    norm="bbox",
    description="JD-landmark 106 points (same markup as LaPa); NME by sqrt(w*h) of the GT box.",
)

WFLW98 = Layout(
    name="wflw98",
    num_points=98,
    regions={
        "contour": _range(0, 32),
        "eyebrows": _range(33, 50),
        "nose_bridge": _range(51, 54),
        "nose_lower": _range(55, 59),
        "left_eye": _range(60, 67),
        "right_eye": _range(68, 75),
        "outer_mouth": _range(76, 87),
        "inner_mouth": _range(88, 95),
        "pupils": (96, 97),
    },
    flip_pairs=_sym(
        [(i, 32 - i) for i in range(16)]
        + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47)]
        + [(55, 59), (56, 58)]
        + [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]
        + [(76, 82), (77, 81), (78, 80), (83, 87), (84, 86), (88, 92), (89, 91), (93, 95), (96, 97)]
    ),
    five_point_groups=((96,), (97,), (54,), (76,), (82,)),
    norm="inter_ocular",
    ocular_indices=(60, 72),
    description="WFLW 98 points; NME by the outer-eye-corner distance |p60 - p72|.",
)

IBUG68 = Layout(
    name="ibug68",
    num_points=68,
    regions={
        "contour": _range(0, 16),
        "eyebrows": _range(17, 26),
        "nose_bridge": _range(27, 30),
        "nose_lower": _range(31, 35),
        "left_eye": _range(36, 41),
        "right_eye": _range(42, 47),
        "outer_mouth": _range(48, 59),
        "inner_mouth": _range(60, 67),
    },
    flip_pairs=_sym(
        [(i, 16 - i) for i in range(8)]
        + [(17, 26), (18, 25), (19, 24), (20, 23), (21, 22)]
        + [(31, 35), (32, 34)]
        + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
        + [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]
    ),
    five_point_groups=(_range(36, 41), _range(42, 47), (30,), (48,), (54,)),
    norm="inter_ocular",
    ocular_indices=(36, 45),
    description="iBUG/300W 68 points; NME by the outer-eye-corner distance |p36 - p45|.",
)

LAYOUTS: dict[str, Layout] = {l.name: l for l in (JD106, WFLW98, IBUG68)}


def get_layout(name: str | Layout) -> Layout:
    """Return a layout by name (``jd106``, ``wflw98``, ``ibug68``); a Layout passes through."""
    if isinstance(name, Layout):
        return name
    key = str(name).lower().replace("-", "").replace("_", "")
    aliases = {"jd106": "jd106", "lapa": "jd106", "jd": "jd106", "wflw98": "wflw98", "wflw": "wflw98",
               "ibug68": "ibug68", "300w": "ibug68", "68": "ibug68", "106": "jd106", "98": "wflw98"}
    if key not in aliases:
        raise ConfigError(f"unknown landmark layout {name!r}; known: {', '.join(LAYOUTS)}")
    return LAYOUTS[aliases[key]]


def layout_for_points(num_points: int) -> Layout:
    """The layout with ``num_points`` points."""
    for layout in LAYOUTS.values():
        if layout.num_points == num_points:
            return layout
    raise InputError(f"no known layout has {num_points} points (known: 106, 98, 68)")


def check_flip_permutation(permutation: np.ndarray, k: int) -> np.ndarray:
    """(K,) int64 copy of ``permutation`` after checking it is a permutation of ``range(k)``.

    Raises:
        InputError: wrong shape, not integers, or not a permutation.
    """
    perm = np.asarray(permutation)
    if perm.shape != (k,) or perm.dtype.kind not in "iu" or not np.array_equal(np.sort(perm), np.arange(k)):
        raise InputError(f"permutation must be a permutation of range({k}), got shape {perm.shape}")
    return perm.astype(np.int64)


def flip_landmarks(landmarks: np.ndarray, width: float, layout: Layout | str | np.ndarray) -> np.ndarray:
    """Mirror landmarks horizontally in an image of ``width`` pixels and relabel them.

    The one mirror-and-relabel of the project (augmentation, the flip test, the codec's
    :func:`facelm.codec.average_flip`). Pixel-centre convention: pixel column j covers
    [j-0.5, j+0.5], so x -> (width - 1) - x; then ``out[..., k, :] = mirrored[..., perm[k], :]``.

    Args:
        landmarks: (..., K, 2) (x, y) in pixels of an image (or heatmap) ``width`` columns wide.
        layout: a layout (its :attr:`Layout.flip_permutation`) or its (K,) flip permutation.
    Returns:
        New float64 array of the same shape; the input is not modified.
    Raises:
        InputError: landmarks not (..., K, 2), or a permutation that does not fit them.
    """
    pts = np.array(landmarks, dtype=np.float64, copy=True)
    if pts.ndim < 2 or pts.shape[-1] != 2:
        raise InputError(f"landmarks must have shape (..., K, 2), got {pts.shape}")
    if isinstance(layout, (Layout, str)):
        perm = get_layout(layout).flip_permutation
        if perm.shape[0] != pts.shape[-2]:
            raise InputError(f"layout {get_layout(layout).name} has {perm.shape[0]} points, landmarks have "
                             f"{pts.shape[-2]}")
    else:
        perm = check_flip_permutation(layout, pts.shape[-2])
    pts[..., 0] = (width - 1) - pts[..., 0]
    return pts[..., perm, :]
