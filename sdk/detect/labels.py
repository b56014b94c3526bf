"""Hand-labelled faces of the real photo set (:mod:`facelm.data.real_faces`), and hit counting.

Every box and eye centre below was labelled by hand, once, by looking at each photo enlarged
under a pixel grid (2026-12-02). A box spans cheek to cheek and mid-forehead to chin (about
MediaPipe's box convention); eyes are pupil centres (centre of the closed lid when closed).
An eye hidden behind the nose (three-quarter profile) is ``None``. Labels are good to about 2-3 px
on the eyes and 10 px on the box edges, which is plenty for an IoU >= 0.4 hit test.

:func:`variants` adds crops and rotations of the photos with the labels carried through the same
transform (a tight close-up, quarter turns), which exercise letterbox padding and rotation search.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelm.detect.base import Detection, box_iou
from facelm.errors import InputError

#: A hit is a detection whose box overlaps the labelled box by at least this IoU.
HIT_IOU = 0.4
#: Eye points within this fraction of the labelled inter-ocular distance count as aligned.
EYE_TOLERANCE = 0.15


@dataclass(frozen=True)
class LabelledFace:
    """One hand-labelled face.

    Attributes:
        box: (4,) ``x1 y1 x2 y2`` image pixels (may extend past a border that cuts the face).
        eyes: ``((x, y) | None, (x, y) | None)``: the eye on the image left, then on the image
            right (for an upright face; after a rotation they follow the same physical eye).
    """

    box: tuple[float, float, float, float]
    eyes: tuple[tuple[float, float] | None, tuple[float, float] | None]


def _f(box, left, right) -> LabelledFace:
    return LabelledFace(tuple(float(v) for v in box), (left, right))


#: Faces per photo of :data:`facelm.data.real_faces.PHOTOS`, labelled by hand (see module doc).
LABELS: dict[str, tuple[LabelledFace, ...]] = {
    "astronaut": (_f((178, 80, 272, 176), (204, 101), (244, 103)),),
    "grace_hopper": (_f((180, 150, 365, 335), (220, 188), (307, 186)),),
    "obama": (_f((376, 148, 610, 382), (447, 215), (544, 213)),),
    "obama_speaking": (_f((205, 340, 480, 615), (251, 369), (369, 382)),),
    "biden": (_f((445, 285, 715, 555), (532, 323), (649, 349)),),
    "obama_partial": (_f((-36, 140, 186, 375), (21, 211), (129, 210)),),
    "tom_hanks": (_f((16, 33, 88, 113), (38, 51), (71, 49)),),
    "group": (
        _f((62, 285, 168, 398), (88, 328), (130, 308)),
        _f((272, 168, 370, 266), (291, 211), (321, 195)),
        _f((458, 282, 578, 405), (494, 320), (539, 333)),
        _f((745, 365, 850, 475), (766, 401), (807, 401)),
        _f((885, 75, 1005, 203), None, (942, 115)),  # three-quarter profile: far eye hidden
        _f((1128, 292, 1226, 390), (1151, 326), (1194, 324)),
    ),
}


@dataclass(frozen=True)
class Case:
    """One test image with its labelled faces.

    Attributes:
        name: photo name, or ``photo:variant``.
        image: (H, W, 3) uint8 RGB.
        faces: the labelled faces, in this image's pixels.
    """

    name: str
    image: np.ndarray
    faces: tuple[LabelledFace, ...]


def _map_face(face: LabelledFace, m: np.ndarray) -> LabelledFace:
    """A labelled face through the (2, 3) affine ``m`` (box: bounds of its mapped corners)."""
    x1, y1, x2, y2 = face.box
    corners = np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]]) @ m[:, :2].T + m[:, 2]
    eyes = tuple(None if e is None else tuple((np.asarray(e, float) @ m[:, :2].T + m[:, 2]).tolist())
                 for e in face.eyes)
    return LabelledFace(tuple(np.concatenate([corners.min(0), corners.max(0)]).tolist()), eyes)


def _rot90(img: np.ndarray, faces, quarter_turns: int) -> tuple[np.ndarray, tuple[LabelledFace, ...]]:
    """``np.rot90`` (counter-clockwise on screen) with the labels carried along."""
    h, w = img.shape[:2]
    k = quarter_turns % 4
    # pixel (x, y) -> rot90 k=1: (y, w - 1 - x); apply k times
    m = np.eye(3)
    cur_w, cur_h = w, h
    for _ in range(k):
        m = np.array([[0, 1, 0], [-1, 0, cur_w - 1], [0, 0, 1]], float) @ m
        cur_w, cur_h = cur_h, cur_w
    return np.ascontiguousarray(np.rot90(img, k)), tuple(_map_face(f, m[:2]) for f in faces)


def _crop(img: np.ndarray, faces, x1: int, y1: int, x2: int, y2: int):
    m = np.array([[1.0, 0.0, -x1], [0.0, 1.0, -y1]])
    return np.ascontiguousarray(img[y1:y2, x1:x2]), tuple(_map_face(f, m) for f in faces)


def cases(names: tuple[str, ...] | None = None) -> list[Case]:
    """The real photos as :class:`Case` (photos not on disk are left out).

    Args:
        names: photo names (default: every labelled photo that is available).
    """
    from facelm.data import real_faces

    have = set(real_faces.available())
    return [Case(n, real_faces.load(n), LABELS[n]) for n in (names or tuple(LABELS)) if n in have]


def variants(base: list[Case]) -> list[Case]:
    """Harder views of the photos, labels carried through (only for photos present in ``base``).

    - ``grace_hopper:closeup``: cropped so her face fills the frame (short-range's blind spot);
    - ``astronaut:rot90``, ``obama:rot270``, ``group:rot90``, ``group:rot180``: quarter turns of
      the whole photo;
    - ``tom_hanks:rot90``: the grayscale close-up turned as well.
    """
    by = {c.name: c for c in base}
    out = []
    if "grace_hopper" in by:
        out.append(Case("grace_hopper:closeup", *_crop(by["grace_hopper"].image, by["grace_hopper"].faces, 170, 140, 375, 345)))
    for name, k in (("astronaut", 1), ("obama", 3), ("group", 1), ("group", 2), ("tom_hanks", 1)):
        if name in by:
            out.append(Case(f"{name}:rot{90 * k}", *_rot90(by[name].image, by[name].faces, k)))
    return out


@dataclass(frozen=True)
class Score:
    """How a detector did on one case.

    Attributes:
        hits: labelled faces matched by a detection (IoU >= :data:`HIT_IOU`).
        faces: labelled faces.
        false_positives: detections matching no labelled face.
        eye_errors: per matched face, the worse visible eye's error over the labelled
            inter-ocular distance (nan when the detection has no eye points; see :func:`score`).
    """

    hits: int
    faces: int
    false_positives: int
    eye_errors: tuple[float, ...]


def score(detections: list[Detection], faces: tuple[LabelledFace, ...]) -> Score:
    """Greedy matching of detections (best score first) to labelled faces by IoU.

    Eye error: distance from each labelled (visible) eye to the detection's same eye
    (``eye_left``/``eye_right`` points) over the labelled inter-ocular distance; a face with a
    hidden eye uses 0.4 box widths as its IOD-like scale.
    """
    if not faces:
        raise InputError("score() needs at least one labelled face")
    boxes = np.array([f.box for f in faces])
    free = list(range(len(faces)))
    hits, fp, errs = 0, 0, []
    for d in sorted(detections, key=lambda d: -d.score):
        if not free:
            fp += 1
            continue
        ious = box_iou(d.box, boxes[free])
        j = int(np.argmax(ious))
        if ious[j] < HIT_IOU:
            fp += 1
            continue
        face = faces[free.pop(j)]
        hits += 1
        errs.append(_eye_error(d, face))
    return Score(hits, len(faces), fp, tuple(errs))


def _eye_error(d: Detection, face: LabelledFace) -> float:
    names = list(d.point_names)
    if "eye_left" not in names or "eye_right" not in names:
        return float("nan")
    return eye_error(np.stack([d.points[names.index("eye_left")], d.points[names.index("eye_right")]]), face)


def eye_error(eyes: np.ndarray, face: LabelledFace) -> float:
    """The worse visible eye's distance to its label over the labelled inter-ocular distance.

    Args:
        eyes: (2, 2) predicted eye on the image left, then on the image right (upright face).
    A face with a hidden eye uses 0.4 box widths as its IOD-like scale.
    """
    if face.eyes[0] is not None and face.eyes[1] is not None:
        scale = float(np.linalg.norm(np.subtract(face.eyes[1], face.eyes[0])))
    else:
        scale = 0.4 * (face.box[2] - face.box[0])
    return max(float(np.linalg.norm(np.asarray(p) - np.asarray(e))) / scale for p, e in zip(eyes, face.eyes) if e is not None)
