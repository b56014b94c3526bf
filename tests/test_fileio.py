import hashlib

import pytest

from facelm.fileio import atomic_open, atomic_path, atomic_write_bytes, atomic_write_text, sha256_file


def test_atomic_write_and_hash(tmp_path):
    p = atomic_write_text(tmp_path / "a" / "b.txt", "hello")
    assert p.read_text() == "hello"
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    assert sha256_file(p, chunk=1) == hashlib.sha256(b"\x00\x01").hexdigest()
    assert sorted(x.name for x in p.parent.iterdir()) == ["b.txt"]


def test_failure_leaves_destination_untouched_and_no_temp(tmp_path):
    dest = tmp_path / "out.json"
    dest.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(dest) as fh:
            fh.write("half")
            raise RuntimeError("boom")
    with pytest.raises(RuntimeError):
        with atomic_path(dest) as tmp:
            tmp.write_text("half")
            raise RuntimeError("boom")
    assert dest.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["out.json"]
