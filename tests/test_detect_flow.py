"""facelm.detect_flow without a model: image reading notes, the JSONL record, crop scale, input errors."""
import math

import cv2
import numpy as np
import pytest

from facelm.detect_flow import IMAGE_SUFFIXES, StreamFrame, crop_scale, detect_path, read_image
from facelm.errors import InputError


def test_read_image_converts_and_says_so(tmp_path):
    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 0] = 200  # red
    cv2.imwrite(str(tmp_path / "c.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(tmp_path / "g.png"), np.full((8, 10), 90, np.uint8))
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA))
    img, note = read_image(tmp_path / "c.png")
    assert note is None and img.shape == (8, 10, 3) and img[0, 0].tolist() == [200, 0, 0]
    img, note = read_image(tmp_path / "g.png")
    assert note.startswith("grayscale") and img[0, 0].tolist() == [90, 90, 90]
    img, note = read_image(tmp_path / "a.png")
    assert "alpha dropped" in note and img[0, 0].tolist() == [200, 0, 0]
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "bad.png")


def test_crop_scale_of_a_similarity():
    s, a = 2.5, 0.3
    m = np.array([[s * math.cos(a), -s * math.sin(a), 4.0], [s * math.sin(a), s * math.cos(a), -7.0]])
    assert crop_scale(m) == pytest.approx(2.5, abs=1e-12)


def test_no_face_record_keeps_the_line_format():
    d = StreamFrame(12.5, None, {"total": 3.21234}).to_dict()
    assert d == {"timestamp_ms": 12.5, "source": "detector", "timings_ms": {"total": 3.2123}, "face": None}


def test_input_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="no such input"):
        detect_path(tmp_path / "missing.png", tmp_path, tmp_path / "o")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no images"):
        detect_path(tmp_path / "empty", tmp_path, tmp_path / "o")
    with pytest.raises(InputError, match="mode must be image or video"):
        detect_path(tmp_path / "empty", tmp_path, tmp_path / "o", mode="burst")
    assert ".png" in IMAGE_SUFFIXES and not (tmp_path / "o").exists()  # nothing written on bad input
