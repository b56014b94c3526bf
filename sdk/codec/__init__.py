"""Heatmap codec: unbiased Gaussian targets, DARK sub-pixel decoding, flip test.

- :func:`encode` / :func:`decode` (methods ``argmax``, ``quarter``, ``dark``),
- :class:`DecodeConfig` / :class:`EncodeConfig`: the decode/encode parameters an artifact
  manifest carries,
- :func:`heatmap_to_input` / :func:`input_to_heatmap`: the stride mapping (pixel centres on
  integers: pixel (row i, col j) is the point (x=j, y=i)),
- :func:`flip_heatmaps`, :func:`average_flip`: the flip test (points are mirrored by
  :func:`facelm.layouts.flip_landmarks`),
- :func:`backend`: ``"c"`` (``facelm.codec._cdark``, built from ``csrc/``) or ``"numpy"``.
"""
from facelm.codec.config import (
    INVALID_SCORE,
    LOG_FLOOR,
    MAX_OFFSET,
    METHODS,
    MIN_SHRUNK_RADIUS,
    DecodeConfig,
    EncodeConfig,
    heatmap_to_input,
    input_to_heatmap,
    stride_for,
)
from facelm.codec.core import average_flip, backend, decode, encode, flip_heatmaps

__all__ = [
    "DecodeConfig", "EncodeConfig", "METHODS", "LOG_FLOOR", "MAX_OFFSET", "MIN_SHRUNK_RADIUS",
    "INVALID_SCORE", "average_flip", "backend", "decode", "encode", "flip_heatmaps",
    "heatmap_to_input", "input_to_heatmap", "stride_for",
]
