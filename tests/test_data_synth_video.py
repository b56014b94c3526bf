"""Synthetic video: exact ground truth, a still static clip, smooth motion, the folder writer."""
import json

import cv2
import numpy as np
import pytest

from facelm.alignment import invert_affine, transform_points
from facelm.data.synth_video import MOTIONS, VideoConfig, read_clip_landmarks, render_clip, trajectory, write_clip
from facelm.errors import InputError


def test_static_truth_is_bit_identical_while_pixels_change():
    clip = render_clip(6, "static", seed=1)
    assert clip.frames.shape == (6, 240, 320, 3) and clip.frames.dtype == np.uint8
    assert np.all(clip.landmarks == clip.landmarks[0])
    assert np.abs(clip.frames[1].astype(int) - clip.frames[0]).mean() > 1.0  # fresh noise and lighting
    np.testing.assert_allclose(np.diff(clip.timestamps_ms), 1000 / 30)


def test_pupils_are_drawn_where_the_truth_says():
    """Across a moving clip (3-D pose, mouth and in-plane motion), the pupil discs sit on the truth."""
    clip = render_clip(11, "slow", seed=4, config=VideoConfig(noise_sigma=0.0, blur_sigma=(0.0, 0.0), light_drift=0.0))
    assert np.linalg.norm(clip.landmarks[10] - clip.landmarks[0], axis=1).mean() > 1.0
    for i in (0, 5, 10):
        grey = clip.frames[i].astype(np.float64).mean(axis=2)
        for k in (74, 83):
            x, y = clip.landmarks[i, k]
            xi, yi = int(round(x)), int(round(y))
            win = grey[yi - 2:yi + 3, xi - 2:xi + 3]
            w = (win < 20).astype(float)  # the pupil disc (10, 10, 10); the iris is lighter
            cy, cx = np.mgrid[yi - 2:yi + 3, xi - 2:xi + 3]
            assert w.sum() >= 3
            assert np.hypot((w * cx).sum() / w.sum() - x, (w * cy).sum() / w.sum() - y) < 0.6


def test_motions_are_smooth_and_ordered():
    speed = {}
    for name in ("slow", "fast"):
        clip = render_clip(20, name, seed=5)
        step = np.linalg.norm(np.diff(clip.landmarks, axis=0), axis=2).mean(axis=1)
        assert step.min() > 0
        assert np.abs(np.diff(step)).max() < 0.5 * step.max() + 0.2  # no jumps
        speed[name] = step.mean()
    assert speed["fast"] > 2 * speed["slow"]
    a, b = trajectory("slow", 10, seed=3), trajectory("slow", 10, seed=3)
    np.testing.assert_array_equal(a["roll"], b["roll"])
    assert set(MOTIONS) == {"static", "slow", "fast"}


def test_write_clip_folder(tmp_path):
    out = write_clip(tmp_path / "clip", 4, "slow", seed=0)
    assert sorted(p.name for p in (out / "frames").iterdir()) == [f"{i:06d}.png" for i in range(4)]
    lms, ts = read_clip_landmarks(out)
    assert lms.shape == (4, 106, 2) and list(ts) == pytest.approx([0, 1000 / 30, 2000 / 30, 3000 / 30])
    np.testing.assert_allclose(lms, render_clip(4, "slow", seed=0).landmarks, atol=1e-6)
    row = json.loads((out / "landmarks.jsonl").read_text().splitlines()[2])
    assert row["frame"] == 2 and len(row["five_points"]) == 5 and len(row["box"]) == 4
    cap = cv2.VideoCapture(str(out / "video.mp4"))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 4
    assert json.loads((out / "clip.json").read_text())["motion"] == "slow"
    with pytest.raises(InputError, match="already exists"):
        write_clip(out, 2)
    with pytest.raises(InputError, match="unknown motion"):
        render_clip(2, "wobble")
    with pytest.raises(InputError, match="frames"):
        render_clip(0)
