"""Loaders: JD-landmark folders, WFLW annotation files, 300W .pts, detector-point files."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from facelm.data import synth
from facelm.data.ibug import load_ibug, read_pts
from facelm.data.jd import load_jd
from facelm.data.records import load_detector_points, read_image
from facelm.data.sources import detect_format, load_records
from facelm.data.wflw import load_wflw
from facelm.errors import InputError
from facelm.layouts import IBUG68, JD106, WFLW98


@pytest.fixture(scope="module")
def jd_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("jd") / "faces"
    synth.write_jd_folder(root, 4, seed=21, size=96, progress=False)
    return root


def test_jd_round_trip_of_synthetic_faces(jd_dir):
    records = load_jd(jd_dir)
    imgs, lms = synth.generate(4, seed=21, size=96)
    assert [r.name for r in records] == [f"synth_21_{i:07d}.jpg" for i in range(4)]
    for r, lm in zip(records, lms):
        np.testing.assert_allclose(r.landmarks, lm, atol=1e-4)
        np.testing.assert_allclose(r.bbox, synth.bbox_of(lm), atol=1e-4)
        np.testing.assert_allclose(r.alignment_points(JD106), JD106.five_points(lm), atol=1e-4)
    img = read_image(records[0].image)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    # JPEG at quality 95: close to the rendered RGB image (checks the channel order too).
    assert np.abs(img.astype(int) - imgs[0].astype(int)).mean() < 6
    assert np.abs(img[..., ::-1].astype(int) - imgs[0].astype(int)).mean() > np.abs(img.astype(int) - imgs[0].astype(int)).mean()
    recs, layout = load_records(jd_dir)
    assert layout is JD106 and len(recs) == 4 and detect_format(jd_dir) == "jd"


def test_jd_bad_files_raise_input_error(tmp_path, jd_dir):
    bad = tmp_path / "bad"
    (bad / "picture").mkdir(parents=True)
    (bad / "landmark").mkdir()
    with pytest.raises(InputError, match="no annotation"):
        load_jd(bad)
    (bad / "landmark" / "a.jpg.txt").write_text("106\n1 2\n")
    with pytest.raises(InputError, match="picture"):
        load_jd(bad)
    cv2.imwrite(str(bad / "picture" / "a.jpg"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(InputError, match="header says 106"):
        load_jd(bad)
    (bad / "landmark" / "a.jpg.txt").write_text("2\n1 2\n3 x\n")
    with pytest.raises(InputError, match="not a number"):
        load_jd(bad)
    with pytest.raises(InputError, match="not a JD"):
        load_jd(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        read_image(tmp_path / "nope.jpg")


def test_wflw_annotation_file(tmp_path):
    rng = np.random.default_rng(0)
    img_root = tmp_path / "WFLW_images" / "0--Parade"
    img_root.mkdir(parents=True)
    cv2.imwrite(str(img_root / "a.jpg"), np.zeros((50, 60, 3), np.uint8))
    ann_dir = tmp_path / "WFLW_annotations"
    ann_dir.mkdir()
    pts = [rng.uniform(0, 50, (98, 2)) for _ in range(2)]
    lines = []
    for p in pts:
        nums = list(p.ravel()) + [1, 2, 40, 45] + [0, 1, 0, 0, 1, 0]
        lines.append(" ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in nums) + " 0--Parade/a.jpg")
    ann = ann_dir / "list_98pt_rect_attr_test.txt"
    ann.write_text("\n".join(lines) + "\n")
    records, layout = load_records(ann)
    assert layout is WFLW98 and len(records) == 2
    assert records[0].image == tmp_path / "WFLW_images" / "0--Parade" / "a.jpg"
    assert [r.name for r in records] == ["0--Parade/a.jpg", "0--Parade/a.jpg#2"]
    np.testing.assert_allclose(records[1].landmarks, pts[1], atol=1e-3)
    np.testing.assert_array_equal(records[0].bbox, [1, 2, 40, 45])
    ann.write_text("1 2 3 x.jpg\n")
    with pytest.raises(InputError, match="expected 206 numbers"):
        load_wflw(ann)


def test_300w_pts_files(tmp_path):
    rng = np.random.default_rng(1)
    p = rng.uniform(1, 40, (68, 2))
    body = "\n".join(f"{x:.3f} {y:.3f}" for x, y in p)
    sub = tmp_path / "helen"
    sub.mkdir()
    (sub / "img1.pts").write_text(f"version: 1\nn_points:  68\n{{\n{body}\n}}\n")
    cv2.imwrite(str(sub / "img1.png"), np.zeros((48, 48, 3), np.uint8))
    records, layout = load_records(tmp_path)
    assert layout is IBUG68 and records[0].name == "helen/img1.png"
    np.testing.assert_allclose(records[0].landmarks, p - 1.0, atol=1e-3)  # 1-based -> 0-based
    np.testing.assert_allclose(read_pts(sub / "img1.pts", one_based=False), p, atol=1e-3)
    (sub / "img1.pts").write_text("version: 1\nn_points: 5\n{\n1 2\n}\n")
    with pytest.raises(InputError, match="n_points says 5"):
        load_ibug(tmp_path)


def test_detector_points_files(tmp_path, jd_dir):
    recs, _ = load_records(jd_dir)
    five = {r.name: np.arange(10.0).reshape(5, 2) + i for i, r in enumerate(recs)}
    js = tmp_path / "det.json"
    js.write_text(json.dumps({k: v.tolist() for k, v in five.items()}))
    txt = tmp_path / "det.txt"
    txt.write_text("# name x1 y1 ... x5 y5\n" + "\n".join(
        f"{k} " + " ".join(str(v) for v in a.ravel()) for k, a in five.items()) + "\n")
    for path in (js, txt):
        loaded, _ = load_records(jd_dir, detector_points=path)
        for r in loaded:
            np.testing.assert_array_equal(r.alignment_points(JD106), five[r.name])
    txt.write_text(f"{recs[0].name} 1 2 3\n")
    with pytest.raises(InputError, match="10 numbers"):
        load_detector_points(txt)
    txt.write_text(f"{recs[0].name} " + " ".join(["1"] * 10) + "\n")
    with pytest.raises(InputError, match="3 of 4 images have no detector points"):
        load_records(jd_dir, detector_points=txt)


def test_unknown_format(tmp_path):
    with pytest.raises(InputError, match="cannot tell"):
        load_records(tmp_path)
    with pytest.raises(InputError, match="unknown data format"):
        load_records(tmp_path, fmt="coco")
