"""Calibration and evaluation sets of aligned faces.

Every face goes through :func:`facelm.preprocess.align_face` (the alignment inside
``preprocess_face``) and :func:`facelm.preprocess.normalize` / :func:`facelm.preprocess.to_unit_nhwc`,
so calibration, drift evaluation, training and the runtime see identical inputs.

Sources (``source`` argument):

- ``"synthetic"``: :func:`facelm.data.synth.generate_aligned` faces (calibration and evaluation
  use different seeds, so they are disjoint). They are JD-106 faces: for a model of another
  layout (a brought iBUG-68 model) they are still aligned faces for calibration and drift,
  but carry no ground truth of that layout (``landmarks`` is ``None``; no own NME).
- ``"realistic"``: faces of the realistic renderer (``SynthConfig.realistic()``: pose up to 60
  degrees yaw, expressions, occluders, real backgrounds, grey, blur, JPEG), seed 1001.
- ``"real"``: the real photos of :data:`REAL_CALIB_PHOTOS` (:mod:`facelm.data.real_faces`),
  aligned from the shipped detector's points as the runtime aligns them, each face augmented into
  many crops (:class:`CropAugment`: similarity jitter, mirror, brightness/contrast/saturation,
  blur, grey, sensor noise). The real-clip photos (:data:`REAL_EVAL_PHOTOS`) are never used.
- ``"mixed"``: a third each of ``synthetic``, ``realistic`` and ``real``.

  For these three the evaluation set is the standard synthetic one (seed 2002), so drift figures
  stay comparable across calibration sources.
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


# ------------------------------------------------------------ deployment-like calibration sources
#: Named calibration sources (``facelm convert --calib NAME``); anything else is a folder.
CALIB_SOURCES = ("synthetic", "realistic", "real", "mixed")
#: Real photos that calibration augments (:mod:`facelm.data.real_faces`; 10 detected faces).
REAL_CALIB_PHOTOS = ("obama_speaking", "biden", "obama_partial", "tom_hanks", "group")
#: Real photos kept out of calibration: the real-clip photos (:data:`facelm.data.real_clips.EYES`),
#: whose crops and clips evaluate int8 drift and jitter.
REAL_EVAL_PHOTOS = ("astronaut", "grace_hopper", "obama")


@dataclass(frozen=True)
class CropAugment:
    """How one detected real face becomes many calibration crops.

    Attributes:
        rotation_deg: rotation about the crop centre, uniform in ``±rotation_deg`` degrees.
        scale: relative scale change, uniform in ``1 ± scale``.
        shift: translation per axis, uniform in ``±shift`` as a fraction of the crop side.
        flip: probability of a horizontal mirror (no landmarks are carried, so no relabelling).
        color_jitter: brightness, contrast and saturation each scaled by ``U(1 ± color_jitter)``.
        noise_sigma: (min, max) sigma of fresh Gaussian sensor noise, grey levels (0..255).
        blur: probability of a Gaussian blur of sigma ``U(blur_sigma)`` crop pixels.
        blur_sigma: (min, max) blur sigma.
        grayscale: probability of turning the crop grey (three equal channels).
    """

    rotation_deg: float = 10.0
    scale: float = 0.08
    shift: float = 0.03
    flip: float = 0.5
    color_jitter: float = 0.3
    noise_sigma: tuple[float, float] = (0.0, 6.0)
    blur: float = 0.3
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    grayscale: float = 0.15


def _jitter_transform(rng: np.random.Generator, aug: CropAugment, size: int) -> np.ndarray:
    """(2, 3) crop -> jittered-crop similarity (rotation, scale, shift about the centre, optional mirror)."""
    from facelm.data.augment import AugmentConfig, compose, geometric_transform, mirror_transform

    cfg = AugmentConfig(flip=0.0, pca_noise=0.0, color_jitter=0.0, erasing=0.0, rotation=aug.rotation_deg,
                        scale=aug.scale, shift=aug.shift * size)
    m = geometric_transform(rng, cfg, size)
    return compose(mirror_transform(size), m) if rng.random() < aug.flip else m


def _photometric(crop: np.ndarray, rng: np.random.Generator, aug: CropAugment) -> np.ndarray:
    """Colour jitter, optional blur, optional grey, sensor noise on a (S, S, 3) uint8 crop -> uint8."""
    import cv2

    from facelm.data.augment import LUMA, color_jitter

    x = crop.astype(np.float32)
    if aug.color_jitter > 0:
        x = color_jitter(x, rng, aug.color_jitter)
    if rng.random() < aug.blur:
        x = cv2.GaussianBlur(x, (0, 0), float(rng.uniform(*aug.blur_sigma)))
    if rng.random() < aug.grayscale:
        x = np.repeat((x @ LUMA)[..., None], 3, axis=-1)
    sigma = float(rng.uniform(*aug.noise_sigma))
    if sigma > 0:
        x = x + rng.normal(0.0, sigma, x.shape).astype(np.float32)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def detect_real_faces(photos: tuple[str, ...], detector: str = "auto") -> list[tuple[str, np.ndarray, object]]:
    """Every face the shipped detector finds in each photo: ``(name, image, Detection)``.

    Names are ``PHOTO#j`` (j = detection rank). Raises InputError when a photo holds no face.
    """
    from facelm.data import real_faces
    from facelm.detect import create_detector

    det = create_detector(detector)
    out = []
    for name in photos:
        img = real_faces.load(name)
        found = det.detect(img)
        if not found:
            raise InputError(f"real photo {name!r}: the {detector} detector finds no face")
        out += [(f"{name}#{j}", img, d) for j, d in enumerate(found)]
    return out


def real_photo_faces(count: int, input_size: int, seed: int, photos: tuple[str, ...] = REAL_CALIB_PHOTOS,
                     augment: CropAugment | None = None, detector: str = "auto") -> FaceSet:
    """``count`` aligned crops of real photos (no ground truth: ``landmarks`` is ``None``).

    Each face is aligned from the detector's points (:meth:`facelm.detect.base.Detection.alignment`,
    the runtime's crop), first once as is, then again and again with :class:`CropAugment`
    (deterministic in ``seed``), cycling over the faces.
    """
    from facelm.alignment import warp_face
    from facelm.data.augment import compose

    if count < 1:
        raise InputError(f"need at least one real crop, got {count}")
    aug = augment or CropAugment()
    faces = detect_real_faces(tuple(photos), detector)
    rng = np.random.default_rng(seed)
    crops, names = np.empty((count, input_size, input_size, 3), np.uint8), []
    for i in range(count):
        name, img, d = faces[i % len(faces)]
        m = d.alignment(input_size)
        if i < len(faces):
            crops[i] = warp_face(img, m, input_size)
        else:
            crops[i] = _photometric(warp_face(img, compose(_jitter_transform(rng, aug, input_size), m), input_size),
                                    rng, aug)
        names.append(f"real:{seed}:{name}:{i}")
    return FaceSet(crops, None, names, f"real photos {', '.join(photos)} ({len(faces)} faces, augmented, seed {seed})")


def realistic_faces(count: int, input_size: int, seed: int, with_landmarks: bool = True) -> FaceSet:
    """``count`` faces of the realistic renderer (``SynthConfig.realistic()``: pose, expressions,
    occluders, real backgrounds), aligned from their ground-truth five points."""
    from facelm.data.synth import SynthConfig, generate_aligned

    d = generate_aligned(count, seed, input_size, cfg=SynthConfig.realistic())
    lms = d["landmarks"].astype(np.float64) if with_landmarks else None
    names = [f"realistic:{seed}:{i}" for i in range(count)]
    return FaceSet(d["crops"], lms, names, f"realistic synthetic (seed {seed})")


def mixed_faces(count: int, input_size: int, seed: int) -> FaceSet:
    """Thirds of synthetic, realistic synthetic and augmented real crops (no ground truth)."""
    n = [count // 3 + (1 if i < count % 3 else 0) for i in range(3)]
    parts = [synthetic_faces(n[0], input_size, seed), realistic_faces(n[1], input_size, seed),
             real_photo_faces(n[2], input_size, seed)]
    parts = [p for p, k in zip(parts, n) if k > 0]
    return FaceSet(np.concatenate([p.crops for p in parts]), None, sum((p.names for p in parts), []),
                   "mixed: " + "; ".join(p.source for p in parts))


def calibration_faces(source: str, count: int, input_size: int, with_landmarks: bool = True) -> FaceSet:
    """The calibration set of a named source (:data:`CALIB_SOURCES`), seed :data:`CALIB_SEED`."""
    if source == "synthetic":
        return synthetic_faces(count, input_size, CALIB_SEED, with_landmarks)
    if source == "realistic":
        return realistic_faces(count, input_size, CALIB_SEED, with_landmarks)
    if source == "real":
        return real_photo_faces(count, input_size, CALIB_SEED)
    if source == "mixed":
        return mixed_faces(count, input_size, CALIB_SEED)
    raise InputError(f"unknown calibration source {source!r}; choose one of {', '.join(CALIB_SOURCES)} or a folder")


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
        source: a name of :data:`CALIB_SOURCES` or a folder (see the module docstring).
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
    if str(source) in CALIB_SOURCES:
        gt = lay.name == "jd106"
        if not gt and not synthetic_any_layout:
            what = "" if str(source) == "synthetic" else f" (the evaluation set of calibration source {source})"
            raise InputError(f"synthetic faces are JD-106{what}; the model's layout is {lay.name}")
        return (calibration_faces(str(source), num_calib, input_size, gt),
                synthetic_faces(num_eval, input_size, EVAL_SEED, gt))
    faces = _faces_from_folder(Path(source), lay)
    if len(faces) < 2:
        raise InputError(f"{source}: need at least 2 annotated faces (calibration + evaluation), found {len(faces)}")
    order = np.random.default_rng(0).permutation(len(faces))
    n_eval = min(num_eval, len(faces) // 2) if len(faces) < num_calib + num_eval else num_eval
    return (align_faces([faces[i] for i in order[n_eval:n_eval + num_calib]], input_size, str(source)),
            align_faces([faces[i] for i in order[:n_eval]], input_size, str(source)))
