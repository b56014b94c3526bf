"""``facelm detect`` and ``facelm synth-video`` end to end on the tiny converted artifact, with the
heavy packages blocked (the light install): JSONL records, overlays, clear errors."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.timeout(600)

from light_path import light_env  # noqa: E402


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    env = light_env(tmp_path_factory.mktemp("blocker"))
    exe = Path(sys.executable).parent / "facelm"

    def run(*args):
        return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=300, env=env)

    return run


@pytest.fixture(scope="module")
def clip(tmp_path_factory, light):
    out = tmp_path_factory.mktemp("clip") / "slow"
    res = light("synth-video", out, "--frames", 6, "--motion", "slow", "--seed", 2)
    assert res.returncode == 0, res.stderr
    return out


def _records(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_detect_video_writes_jsonl_and_mp4(light, converted, clip, tmp_path):
    rc, art = converted
    res = light("detect", clip / "video.mp4", "--model", art, "--artifact", "int8", "--smooth",
                "--out", tmp_path / "v", "--no-progress")
    assert res.returncode == 0, res.stderr
    recs = _records(tmp_path / "v" / "landmarks.jsonl")
    assert [r["frame"] for r in recs] == list(range(6))
    faces = [r for r in recs if r["face"] is not None]
    assert faces, recs[0]
    assert len(faces[0]["face"]["landmarks"]) == 106 and "total" in faces[0]["timings_ms"]
    assert recs[0]["source"] == "detector"
    cap = cv2.VideoCapture(str(tmp_path / "v" / "overlay.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 6


def test_detect_images_gray_rgba_and_no_face(light, converted, clip, tmp_path):
    _, art = converted
    src = tmp_path / "imgs"
    src.mkdir()
    frame = cv2.imread(str(clip / "frames" / "000000.png"))
    cv2.imwrite(str(src / "a_color.png"), frame)
    cv2.imwrite(str(src / "b_gray.png"), cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(src / "c_rgba.png"), cv2.cvtColor(frame, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(src / "d_blank.png"), np.full((120, 160, 3), 127, np.uint8))
    res = light("detect", src, "--model", art, "--out", tmp_path / "o")
    assert res.returncode == 0, res.stderr
    assert "grayscale" in res.stdout and "alpha" in res.stdout
    recs = {r["image"]: r for r in _records(tmp_path / "o" / "landmarks.jsonl")}
    assert recs["d_blank.png"]["face"] is None
    assert recs["a_color.png"]["face"] is not None and recs["b_gray.png"]["note"].startswith("grayscale")
    assert sorted(p.name for p in (tmp_path / "o" / "overlays").iterdir()) == [
        "a_color.png", "b_gray.png", "c_rgba.png", "d_blank.png"]


def test_detect_bad_input_is_one_line(light, converted, tmp_path):
    _, art = converted
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"not a video")
    res = light("detect", bad, "--model", art, "--out", tmp_path / "o")
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "cannot read" in res.stderr
    res = light("detect", tmp_path / "missing.png", "--model", art, "--out", tmp_path / "o")
    assert res.returncode == 2 and "no such input" in res.stderr
