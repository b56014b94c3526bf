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


def _without_timings(recs):
    return [{k: v for k, v in r.items() if k != "timings_ms"} for r in recs]


def test_python_api_writes_what_the_command_writes(light, converted, clip, tmp_path):
    import facelm

    _, art = converted
    s = facelm.detect_path(clip / "video.mp4", art, tmp_path / "py", mode="image", smooth=True, progress=False)
    res = light("detect", clip / "video.mp4", "--model", art, "--mode", "image", "--smooth", "--out", tmp_path / "cli",
                "--no-progress")
    assert res.returncode == 0, res.stderr
    py, cli = _records(tmp_path / "py" / "landmarks.jsonl"), _records(tmp_path / "cli" / "landmarks.jsonl")
    assert _without_timings(py) == _without_timings(cli)
    assert s["frames"] == 6 and s["faces"] == sum(r["face"] is not None for r in py) and s["mode"] == "image"
    assert s["overlay"] == str(tmp_path / "py" / "overlay.mp4")


def _frames(clip):
    from facelm.detect_flow import read_image

    return [read_image(p)[0] for p in sorted((clip / "frames").glob("*.png"))]


def test_stream_video_mode_is_landmarker_detect_for_video(converted, clip):
    """One video route: LandmarkStream('video') gives what Landmarker.detect_for_video gives."""
    from facelm.detect_flow import LandmarkStream
    from facelm.runtime.landmarker import Landmarker, LandmarkerOptions
    from facelm.smoothing import OneEuroConfig

    _, art = converted
    frames = _frames(clip)
    with Landmarker.create_from_options(LandmarkerOptions(art, running_mode="VIDEO", smoothing=OneEuroConfig())) as lm:
        direct = [lm.detect_for_video(f, 40.0 * i) for i, f in enumerate(frames)]
    with LandmarkStream(art, "video", smoothing=OneEuroConfig()) as stream:
        ours = [stream.process(f, 40.0 * i) for i, f in enumerate(frames)]
    assert any(d is not None for d in direct)
    for d, o in zip(direct, ours):
        assert (d is None) == (o.result is None)
        if d is not None:
            np.testing.assert_allclose(o.landmarks, d.landmarks, atol=1e-9)
            assert o.source == d.source and o.timestamp_ms == d.timestamp_ms


def test_stream_image_mode_smooths_with_one_euro_and_checks_time(converted, clip):
    """IMAGE mode on a stream: Landmarker.detect per frame, then One Euro in crop-scaled units."""
    from facelm.detect_flow import LandmarkStream, crop_scale
    from facelm.errors import InputError
    from facelm.smoothing import OneEuroConfig, OneEuroFilter

    _, art = converted
    frames = _frames(clip)
    ref = OneEuroFilter(OneEuroConfig())
    with LandmarkStream(art, "image") as plain, LandmarkStream(art, "image", smoothing=OneEuroConfig()) as smooth:
        for i, f in enumerate(frames):
            r, s = plain.process(f, 40.0 * i), smooth.process(f, 40.0 * i)
            if r.result is None:
                ref.reset()
                assert s.result is None
                continue
            want = ref(r.landmarks, 40.0 * i, value_scale=1.0 / crop_scale(r.result.transform))
            np.testing.assert_allclose(s.landmarks, want, atol=1e-9)
            assert "smoothing" in s.timings and "smoothing" not in r.timings
            assert s.timings["total"] == pytest.approx(sum(v for k, v in s.timings.items() if k != "total"))
        with pytest.raises(InputError, match="timestamps must increase"):
            smooth.process(frames[0], 40.0 * (len(frames) - 1))
