"""Calibration and evaluation sets of aligned faces.

Every face goes through :func:`sdk.preprocess.align_face` (the alignment inside
``preprocess_face``) and :func:`sdk.preprocess.normalize` / :func:`sdk.preprocess.to_unit_nhwc`,
so calibration, drift evaluation, training and the runtime see identical inputs.

Sources (``source`` argument):

- ``"synthetic"``: :func:`sdk.data.synth.generate_aligned` faces (calibration and evaluation
  use different seeds, so they are disjoint).
- a JD-landmark folder: ``picture/NAME.jpg`` + ``landmark/NAME.jpg.txt`` (first line the count,
  then ``x y`` per line).
- an image folder: ``NAME.jpg|png|bmp`` with a sidecar ``NAME.txt`` / ``NAME.pts`` / ``NAME.jpg.txt``
  holding ``x y`` lines: either 5 points (ArcFace order) or all K landmarks of the layout
  (a leading count line and ``{ }`` of ``.pts`` files are skipped).

A folder is split deterministically: the evaluation faces are drawn first, calibration takes
the rest, so the two never overlap.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdk.errors import InputError
from sdk.layouts import Layout, get_layout

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
SIDECAR_EXTS = (".txt", ".pts")
DEFAULT_CALIB_SIZE = 200
DEFAULT_EVAL_SIZE = 200
CALIB_SEED = 1001  # synthetic data-set seeds, distinct from the training seeds (0, 1, ...)
EVAL_SEED = 2002


@dataclass
class FaceSet:
    """Aligned faces.

    Attributes:
        crops: (N, S, S, 3) uint8 RGB aligned crops.
        landmarks: (N, K, 2) float64 ground truth in crop pixels, or ``None`` (five points only).
        names: N identifiers (file names or ``synthetic:seed:i``).
        source: where the faces came from.
    """

    crops: np.ndarray
    landmarks: np.ndarray | None
    names: list[str]
    source: str

    def __len__(self) -> int:
        return int(self.crops.shape[0])

    def inputs(self) -> np.ndarray:
        """Normalised network inputs, (N, 3, S, S) float32."""
        from sdk.preprocess import normalize

        return np.ascontiguousarray(normalize(self.crops).transpose(0, 3, 1, 2), dtype=np.float32)

    def unit_nhwc(self) -> np.ndarray:
        """onnx2tf calibration format: (N, S, S, 3) float32 in [0, 1]."""
        from sdk.preprocess import to_unit_nhwc

        return to_unit_nhwc(self.crops)


# ------------------------------------------------------------------------ file parsing
def read_points(path: str | os.PathLike) -> np.ndarray:
    """Read ``x y`` lines from a sidecar file -> (P, 2) float64.

    A single leading integer line (JD's count) and ``version:``/``n_points:``/``{``/``}``
    lines of iBUG ``.pts`` files are skipped.
    """
    pts = []
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    for i, line in enumerate(lines):
        s = line.strip()
        if not s or s in "{}" or re.match(r"^(version|n_points)\s*:", s):
            continue
        parts = s.replace(",", " ").split()
        if i == 0 and len(parts) == 1:
            continue  # JD count line
        if len(parts) < 2:
            raise InputError(f"{path}: line {i + 1} is not 'x y': {line!r}")
        try:
            pts.append((float(parts[0]), float(parts[1])))
        except ValueError as exc:
            raise InputError(f"{path}: line {i + 1} is not 'x y': {line!r}") from exc
    if not pts:
        raise InputError(f"{path}: no points")
    return np.asarray(pts, dtype=np.float64)


def _read_rgb(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _sidecar(image: Path) -> Path | None:
    for cand in [image.with_suffix(e) for e in SIDECAR_EXTS] + [image.with_name(image.name + ".txt")]:
        if cand.is_file():
            return cand
    return None


def list_annotated(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(image, annotation) pairs of a JD folder or an annotated image folder, sorted by name.

    Raises:
        InputError: the folder is missing or holds no annotated image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"calibration folder {root} does not exist")
    pairs: list[tuple[Path, Path]] = []
    if (root / "picture").is_dir() and (root / "landmark").is_dir():  # JD-landmark layout
        for img in sorted((root / "picture").iterdir()):
            ann = root / "landmark" / f"{img.name}.txt"
            if img.suffix.lower() in IMAGE_EXTS and ann.is_file():
                pairs.append((img, ann))
    else:
        for img in sorted(root.iterdir()):
            if img.suffix.lower() in IMAGE_EXTS:
                ann = _sidecar(img)
                if ann is not None:
                    pairs.append((img, ann))
    if not pairs:
        raise InputError(
            f"{root} holds no annotated image: expected picture/ + landmark/ (JD format) or images with "
            f"a sidecar {'/'.join(SIDECAR_EXTS)} file of 5 or K 'x y' lines")
    return pairs


def load_annotated(pairs: list[tuple[Path, Path]], input_size: int, layout: Layout, source: str) -> FaceSet:
    """Align annotated images. Annotations hold 5 points or the layout's K landmarks."""
    from sdk.alignment import transform_points
    from sdk.preprocess import align_face

    crops, lms, names = [], [], []
    full = True
    for img_path, ann in pairs:
        pts = read_points(ann)
        if pts.shape[0] == layout.num_points:
            five = layout.five_points(pts)
        elif pts.shape[0] == 5:
            five, full = pts, False
        else:
            raise InputError(f"{ann}: {pts.shape[0]} points; expected 5 or {layout.num_points} ({layout.name})")
        crop, m = align_face(_read_rgb(img_path), five, input_size)
        crops.append(crop)
        lms.append(transform_points(pts, m) if pts.shape[0] == layout.num_points else None)
        names.append(img_path.name)
    landmarks = np.stack(lms).astype(np.float64) if full else None
    return FaceSet(np.stack(crops), landmarks, names, source)


def synthetic_faces(count: int, input_size: int, seed: int) -> FaceSet:
    """``count`` synthetic JD-106 faces aligned to ``input_size`` (deterministic in ``seed``)."""
    from sdk.data.synth import generate_aligned

    d = generate_aligned(count, seed, input_size)
    return FaceSet(d["crops"], d["landmarks"].astype(np.float64),
                   [f"synthetic:{seed}:{i}" for i in range(count)], f"synthetic (seed {seed})")


def build_sets(
    source: str | os.PathLike = "synthetic",
    input_size: int = 192,
    layout: str | Layout = "jd106",
    num_calib: int = DEFAULT_CALIB_SIZE,
    num_eval: int = DEFAULT_EVAL_SIZE,
) -> tuple[FaceSet, FaceSet]:
    """Disjoint calibration and evaluation sets.

    Args:
        source: ``"synthetic"`` or a folder (see the module docstring).
        input_size: model input side S in pixels.
        layout: landmark layout of the annotations.
        num_calib, num_eval: wanted sizes. A folder with fewer than ``num_calib + num_eval``
            images gives half (at most ``num_eval``) to evaluation and the rest to calibration.
    Returns:
        ``(calibration, evaluation)``.
    """
    if num_calib < 1 or num_eval < 1:
        raise InputError(f"need at least one calibration and one evaluation face, got {num_calib}, {num_eval}")
    lay = get_layout(layout)
    if str(source) == "synthetic":
        if lay.name != "jd106":
            raise InputError(f"synthetic faces are JD-106; the model's layout is {lay.name}")
        return (synthetic_faces(num_calib, input_size, CALIB_SEED),
                synthetic_faces(num_eval, input_size, EVAL_SEED))
    pairs = list_annotated(source)
    if len(pairs) < 2:
        raise InputError(f"{source}: need at least 2 annotated images (calibration + evaluation), found {len(pairs)}")
    order = np.random.default_rng(0).permutation(len(pairs))
    n_eval = min(num_eval, len(pairs) // 2) if len(pairs) < num_calib + num_eval else num_eval
    eval_pairs = [pairs[i] for i in order[:n_eval]]
    calib_pairs = [pairs[i] for i in order[n_eval:n_eval + num_calib]]
    return (load_annotated(calib_pairs, input_size, lay, str(source)),
            load_annotated(eval_pairs, input_size, lay, str(source)))
