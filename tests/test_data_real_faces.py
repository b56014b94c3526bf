"""facelm.data.real_faces: the real photo set loads, is pinned by sha256, and fails clearly."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from facelm.data import real_faces
from facelm.errors import InputError

#: (height, width) of every photo, read once from the files (a wrong member or version changes them).
SHAPES = {"astronaut": (512, 512), "grace_hopper": (600, 512), "obama": (1137, 910), "obama_speaking": (1200, 626),
          "biden": (2204, 970), "obama_partial": (1137, 491), "tom_hanks": (112, 112), "group": (886, 1280)}


def test_every_photo_loads_as_rgb_uint8():
    assert set(real_faces.names()) == set(SHAPES)
    for name in real_faces.names():
        img = real_faces.load(name)
        assert img.dtype == np.uint8 and img.shape == SHAPES[name] + (3,), name
        assert 20 < float(img.mean()) < 235, name  # a real picture, not a blank decode


def test_unknown_name_is_a_clear_error():
    with pytest.raises(InputError, match="unknown real photo 'lena'"):
        real_faces.load("lena")


def test_a_changed_byte_is_refused(tmp_path, monkeypatch):
    src = real_faces.path_of("tom_hanks")
    cache = tmp_path / "cache"
    dst = cache / "insightface" / real_faces.photo("tom_hanks").member
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    data = bytearray(dst.read_bytes())
    data[-20] ^= 0xFF
    dst.write_bytes(bytes(data))
    monkeypatch.setenv(real_faces.CACHE_ENV, str(cache))
    with pytest.raises(InputError, match="has sha256 .* expected"):
        real_faces.load("tom_hanks")


def test_an_unfetched_photo_says_how_to_fetch_it(tmp_path, monkeypatch):
    monkeypatch.setenv(real_faces.CACHE_ENV, str(tmp_path / "empty"))
    with pytest.raises(InputError, match=r"not fetched yet: run `python -m facelm.data.real_faces fetch`"):
        real_faces.load("group")
    assert "group" not in real_faces.available() and "astronaut" in real_faces.available()
