"""Raw model output -> landmarks: layouts, int8 outputs, stride and the inverse alignment, at sub-pixel tolerance."""
from __future__ import annotations

import numpy as np
import pytest

from facelm.alignment import estimate_alignment, transform_points
from facelm.codec import DecodeConfig, encode, input_to_heatmap
from facelm.errors import InputError
from facelm.postprocess import output_to_landmarks
from facelm.runtime import ModelSpec, Quantization, TensorSpec

K, S, H = 5, 64, 16
SPEC = ModelSpec(name="t", num_keypoints=K, input_size=(S, S), heatmap_size=(H, H), stride=(S / H, S / H))


def _truth(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(12, S - 12, size=(2, K, 2))  # crop pixels


def _heatmaps(crop_pts):
    hm, _ = encode(input_to_heatmap(crop_pts, SPEC.stride), (H, H), sigma=1.5)
    return hm.astype(np.float32)  # (N, K, H, W)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_float_output_in_either_layout(layout):
    truth = _truth()
    hm = _heatmaps(truth)
    raw = hm if layout == "NCHW" else np.ascontiguousarray(hm.transpose(0, 2, 3, 1))
    out = TensorSpec("o", (1,) + raw.shape[1:], layout, "float32")
    lms = output_to_landmarks(raw, out, SPEC, DecodeConfig())
    assert lms.crop.shape == (2, K, 2) and lms.image is None
    assert np.abs(lms.crop - truth).max() < 0.01 * SPEC.stride[0]  # 0.01 heatmap px
    assert np.all(lms.scores > 0.5)


def test_int8_output_is_decoded_on_the_integers():
    truth = _truth(1)
    hm = _heatmaps(truth).transpose(0, 2, 3, 1)
    q = Quantization(1.0 / 255, -128)
    raw = np.clip(np.rint(hm / q.scale) + q.zero_point, -128, 127).astype(np.int8)
    out = TensorSpec("o", (1, H, H, K), "NHWC", "int8", q)
    lms = output_to_landmarks(raw, out, SPEC, DecodeConfig())
    assert np.abs(lms.crop - truth).max() < 0.1  # 8-bit quantization noise
    with pytest.raises(InputError, match="no quantization"):
        output_to_landmarks(raw, TensorSpec("o", (1, H, H, K), "NHWC", "int8"), SPEC, DecodeConfig())


def test_transforms_map_back_to_image_pixels():
    truth = _truth(2)
    rng = np.random.default_rng(3)
    five = rng.uniform(100, 300, size=(5, 2))
    m = estimate_alignment(five, S)
    lms = output_to_landmarks(_heatmaps(truth), TensorSpec("o", (1, K, H, H), "NCHW", "float32"), SPEC,
                              DecodeConfig(), transforms=m)
    np.testing.assert_allclose(transform_points(lms.image[0], m), lms.crop[0], atol=1e-9)


def test_shape_mismatch_names_both_shapes():
    raw = np.zeros((1, K + 1, H, H), np.float32)
    with pytest.raises(InputError, match=r"\(1, 6, 16, 16\).*K=5"):
        output_to_landmarks(raw, TensorSpec("o", (1, K + 1, H, H), "NCHW", "float32"), SPEC, DecodeConfig())
