"""Calibration and evaluation sets of aligned faces.

Every face goes through :func:`facelm.preprocess.align_face` (the alignment inside
``preprocess_face``) and :func:`facelm.preprocess.normalize` / :func:`facelm.preprocess.to_unit_nhwc`,
so calibration, drift evaluation, training and the runtime see identical inputs.

Sources (``source`` argument):

- ``"synthetic"``: :func:`facelm.data.synth.generate_aligned` faces (calibration and evaluation
  use different seeds, so they are disjoint). They are JD-106 faces: for a model of another
  layout (a brought iBUG-68 model) they are still aligned faces for calibration and drift,
  but carry no ground truth of that layout (``landmarks`` is ``None``; no own NME).
- a data set that :func:`facelm.data.sources.load_records` reads: a JD-landmark folder
  (``picture/`` + ``landmark/``), a WFLW annotation ``.txt`` or a 300W folder of ``.pts`` files.
- an image folder: ``NAME.jpg|png|bmp`` with a sidecar ``NAME.txt`` / ``NAME.jpg.txt``
  holding ``x y`` lines: either 5 points (ArcFace order, no ground truth then) or all K
  landmarks of the layout (a leading count line is skipped).

A folder is split deterministically: the evaluation faces are drawn first, calibration takes
the rest, so the two never overlap.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelm.errors import InputError
from facelm.layouts import Layout, get_layout

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp")
SIDECAR_EXTS = (".txt",)
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

    def inputs(self, norm=None) -> np.ndarray:
        """Normalised network inputs, (N, 3, S, S) float32 (``norm``: a :class:`facelm.preprocess.Normalization`)."""
        from facelm.preprocess import DEFAULT_NORMALIZATION, normalize

        x = normalize(self.crops, norm or DEFAULT_NORMALIZATION)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2), dtype=np.float32)

    def unit_nhwc(self, norm=None) -> np.ndarray:
        """onnx2tf calibration format: (N, S, S, 3) float32 in [0, 1], in the network's channel order."""
        from facelm.preprocess import to_unit_nhwc

        x = to_unit_nhwc(self.crops)
        return np.ascontiguousarray(x[..., ::-1]) if norm is not None and norm.color == "BGR" else x


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


def _sidecar(image: Path) -> Path | None:
    for cand in [image.with_suffix(e) for e in SIDECAR_EXTS] + [image.with_name(image.name + ".txt")]:
        if cand.is_file():
            return cand
    return None


def list_annotated(folder: str | os.PathLike) -> list[tuple[Path, Path]]:
    """(image, sidecar) pairs of an annotated image folder, sorted by name.

    Raises:
        InputError: the folder is missing or holds no annotated image.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"calibration folder {root} does not exist")
    pairs = []
    for img in sorted(root.iterdir()):
        if img.suffix.lower() in IMAGE_EXTS:
            ann = _sidecar(img)
            if ann is not None:
                pairs.append((img, ann))
    if not pairs:
        raise InputError(
            f"{root} holds no annotated image: expected a JD/WFLW/300W data set or images with a sidecar "
            f".txt file of 5 or K 'x y' lines")
    return pairs


@dataclass(frozen=True)
class _Face:
    """One face to align: image path, five points, optional ground truth (image pixels)."""

    image: Path
    five: np.ndarray
    landmarks: np.ndarray | None
    name: str


def _faces_from_folder(source: Path, layout: Layout) -> list[_Face]:
    from facelm.data.sources import detect_format, load_records

    try:
        detect_format(source)
        is_dataset = True
    except InputError:
        is_dataset = False
    if is_dataset:
        records, lay = load_records(source)
        if lay.name != layout.name:
            raise InputError(f"{source} is a {lay.name} data set; the model's layout is {layout.name}")
        return [_Face(r.image, r.alignment_points(layout), np.asarray(r.landmarks, np.float64), r.name)
                for r in records]
    faces = []
    for img, ann in list_annotated(source):
        pts = read_points(ann)
        if pts.shape[0] == layout.num_points:
            faces.append(_Face(img, layout.five_points(pts), pts, img.name))
        elif pts.shape[0] == 5:
            faces.append(_Face(img, pts, None, img.name))
        else:
            raise InputError(f"{ann}: {pts.shape[0]} points; expected 5 or {layout.num_points} ({layout.name})")
    return faces


def align_faces(faces: list[_Face], input_size: int, source: str) -> FaceSet:
    """Align faces with :func:`facelm.preprocess.align_face`; ground truth only if every face has it."""
    from facelm.alignment import transform_points
    from facelm.data.records import read_image
    from facelm.preprocess import align_face

    crops, lms = [], []
    for f in faces:
        crop, m = align_face(read_image(f.image), f.five, input_size)
        crops.append(crop)
        lms.append(None if f.landmarks is None else transform_points(f.landmarks, m))
    full = all(x is not None for x in lms)
    return FaceSet(np.stack(crops), np.stack(lms).astype(np.float64) if full else None,
                   [f.name for f in faces], source)


def synthetic_faces(count: int, input_size: int, seed: int, with_landmarks: bool = True) -> FaceSet:
    """``count`` synthetic JD-106 faces aligned to ``input_size`` (deterministic in ``seed``).

    ``with_landmarks=False`` drops the JD-106 ground truth (for a model of another layout).
    """
    from facelm.data.synth import generate_aligned

    d = generate_aligned(count, seed, input_size)
    lms = d["landmarks"].astype(np.float64) if with_landmarks else None
    note = "" if with_landmarks else ", JD-106 faces: no ground truth for this layout"
    return FaceSet(d["crops"], lms, [f"synthetic:{seed}:{i}" for i in range(count)], f"synthetic (seed {seed}{note})")


def build_sets(
    source: str | os.PathLike = "synthetic",
    input_size: int = 192,
    layout: str | Layout = "jd106",
    num_calib: int = DEFAULT_CALIB_SIZE,
    num_eval: int = DEFAULT_EVAL_SIZE,
    synthetic_any_layout: bool = False,
) -> tuple[FaceSet, FaceSet]:
    """Disjoint calibration and evaluation sets.

    Args:
        source: ``"synthetic"`` or a folder (see the module docstring).
        input_size: model input side S in pixels.
        layout: landmark layout of the annotations.
        num_calib, num_eval: wanted sizes. A folder with fewer than ``num_calib + num_eval``
            images gives half (at most ``num_eval``) to evaluation and the rest to calibration.
        synthetic_any_layout: accept ``"synthetic"`` for a layout other than JD-106 (faces
            without ground truth: calibration and drift only). Otherwise that is refused.
    Returns:
        ``(calibration, evaluation)``.
    """
    if num_calib < 1 or num_eval < 1:
        raise InputError(f"need at least one calibration and one evaluation face, got {num_calib}, {num_eval}")
    lay = get_layout(layout)
    if str(source) == "synthetic":
        gt = lay.name == "jd106"
        if not gt and not synthetic_any_layout:
            raise InputError(f"synthetic faces are JD-106; the model's layout is {lay.name}")
        return (synthetic_faces(num_calib, input_size, CALIB_SEED, gt),
                synthetic_faces(num_eval, input_size, EVAL_SEED, gt))
    faces = _faces_from_folder(Path(source), lay)
    if len(faces) < 2:
        raise InputError(f"{source}: need at least 2 annotated faces (calibration + evaluation), found {len(faces)}")
    order = np.random.default_rng(0).permutation(len(faces))
    n_eval = min(num_eval, len(faces) // 2) if len(faces) < num_calib + num_eval else num_eval
    return (align_faces([faces[i] for i in order[n_eval:n_eval + num_calib]], input_size, str(source)),
            align_faces([faces[i] for i in order[:n_eval]], input_size, str(source)))
