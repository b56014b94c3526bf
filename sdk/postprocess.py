"""Raw model output -> landmarks: the one implementation.

Conversion drift, the runtime (:class:`facelm.Landmarker`), on-device drift and evaluation
all call :func:`output_to_landmarks`. It mirrors :mod:`facelm.preprocess`:

1. read the output tensor in its own layout (``NCHW`` or ``NHWC``, from its
   :class:`facelm.runtime.TensorSpec`);
2. decode with :func:`facelm.codec.decode` — integer outputs are decoded directly on the
   integers with their scale and zero point (the phone's path), never dequantized first;
3. map heatmap cells to crop pixels with the model's stride
   (:func:`facelm.codec.heatmap_to_input`, ``x_in = s*x + (s-1)/2``);
4. optionally map crop pixels back to the original image with the inverse alignment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facelm.errors import InputError


@dataclass(frozen=True)
class Landmarks:
    """Decoded landmarks of N faces.

    Attributes:
        crop: (N, K, 2) float64 ``(x, y)`` in the aligned crop's pixels.
        scores: (N, K) float32 heatmap peak values (dequantized).
        image: (N, K, 2) float64 in the original images' pixels, or ``None`` without transforms.
    """

    crop: np.ndarray
    scores: np.ndarray
    image: np.ndarray | None = None


def output_to_landmarks(raw: np.ndarray, output, model, decode, transforms: np.ndarray | None = None) -> Landmarks:
    """Decode a batch of raw model outputs.

    Args:
        raw: (N, K, h, w) for an ``NCHW`` output or (N, h, w, K) for ``NHWC``; float, or
            integer with ``output.quantization``.
        output: the artifact's output :class:`facelm.runtime.TensorSpec` (layout, dtype,
            quantization). The layout is always the tensor's own, never a manifest-wide guess.
        model: :class:`facelm.runtime.ModelSpec` (stride, K, heatmap size).
        decode: :class:`facelm.codec.DecodeConfig` (method, blur kernel).
        transforms: (N, 2, 3) or (2, 3) image -> crop similarities; when given, ``image``
            landmarks are filled in with the inverse transforms.
    Returns:
        :class:`Landmarks`.
    Raises:
        InputError: the output's shape does not match K and the heatmap size.
    """
    from facelm.codec import decode as decode_heatmaps
    from facelm.codec import heatmap_to_input

    arr = np.asarray(raw)
    layout = output.layout.lower()
    k, (hh, hw) = int(model.num_keypoints), model.heatmap_size
    want = (k, hh, hw) if layout == "nchw" else (hh, hw, k)
    if arr.ndim != 4 or tuple(arr.shape[1:]) != want:
        raise InputError(f"model output of shape {tuple(arr.shape)} does not match the declared "
                         f"{output.layout} (N, {', '.join(map(str, want))}) for K={k} and {hh}x{hw} heatmaps")
    kwargs = dict(method=decode.method, blur_kernel=decode.blur_kernel, layout=layout)
    q = output.quantization
    if np.dtype(arr.dtype).kind in "iu":
        if q is None:
            raise InputError(f"integer output {output.name!r} has no quantization parameters")
        kwargs.update(scale=q.scale, zero_point=q.zero_point)
    elif arr.dtype != np.float32:
        arr = arr.astype(np.float32)
    coords, scores = decode_heatmaps(arr, **kwargs)
    crop = heatmap_to_input(coords, model.stride)
    image = None
    if transforms is not None:
        image = crop_to_image(crop, transforms)
    return Landmarks(crop=crop, scores=np.asarray(scores, dtype=np.float32), image=image)


def crop_to_image(crop: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """(N, K, 2) crop pixels -> image pixels with the inverse of each (2, 3) image -> crop transform."""
    from facelm.alignment import invert_affine, transform_points

    m = np.asarray(transforms, dtype=np.float64)
    if m.shape == (2, 3):
        m = np.broadcast_to(m, (crop.shape[0], 2, 3))
    if m.shape != (crop.shape[0], 2, 3):
        raise InputError(f"transforms must be (2, 3) or (N, 2, 3) with N={crop.shape[0]}, got {m.shape}")
    return np.stack([transform_points(c, invert_affine(t)) for c, t in zip(crop, m)])
