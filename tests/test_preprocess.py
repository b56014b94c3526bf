import numpy as np
import pytest

from facelm.alignment import invert_affine, reference_template, transform_points
from facelm.errors import InputError
from facelm.preprocess import DEFAULT_NORMALIZATION, align_face, denormalize, normalize, preprocess_face, to_unit_nhwc


def test_normalize_round_trip_and_constants():
    img = np.random.default_rng(0).integers(0, 256, (8, 9, 3), dtype=np.uint8)
    x = normalize(img)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0], (img[..., 0] / 255.0 - 0.485) / 0.229, rtol=1e-5)
    np.testing.assert_array_equal(denormalize(x), img)
    d = DEFAULT_NORMALIZATION.to_dict()
    assert d["color"] == "RGB" and d["pixel_scale"] == pytest.approx(1 / 255)


def test_preprocess_face_shapes_and_inverse_mapping():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    five = reference_template(192) * 1.4 + [30, 10]
    x, m = preprocess_face(img, five, 128)
    assert x.shape == (3, 128, 128) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_allclose(transform_points(five, m), reference_template(128), atol=1e-6)
    back = transform_points(reference_template(128), invert_affine(m))
    np.testing.assert_allclose(back, five, atol=1e-6)


def test_bad_images_are_rejected():
    five = reference_template(64)
    with pytest.raises(InputError, match="uint8"):
        align_face(np.zeros((64, 64, 3), np.float32), five, 64)
    with pytest.raises(InputError, match="RGB"):
        align_face(np.zeros((64, 64), np.uint8), five, 64)
    with pytest.raises(InputError):
        to_unit_nhwc(np.zeros((64, 64, 3), np.uint8))
    assert to_unit_nhwc(np.full((1, 2, 2, 3), 255, np.uint8)).max() == 1.0
