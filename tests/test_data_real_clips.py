"""Real-face clips: known similarity motion, fresh noise, face-absent labels, folder round trip."""
import math

import cv2
import numpy as np
import pytest

from facelm.alignment import transform_points
from facelm.data import real_clips, real_faces
from facelm.errors import InputError


def _eyes_in_frames(clip):
    eyes = np.array(real_clips.EYES[clip.photo])
    return np.stack([transform_points(eyes, m) for m in clip.transforms])


def test_static_clip_has_fixed_geometry_and_fresh_noise():
    cfg = real_clips.RealClipConfig()
    clip = real_clips.render_clip("astronaut", "static", frames=4)
    assert clip.frames.shape == (4, cfg.height, cfg.width, 3) and clip.frames.dtype == np.uint8
    np.testing.assert_array_equal(clip.transforms, np.broadcast_to(clip.transforms[0], clip.transforms.shape))
    e = _eyes_in_frames(clip)[0]
    assert np.linalg.norm(e[1] - e[0]) == pytest.approx(cfg.iod, abs=1e-9)
    assert e[0, 1] == pytest.approx(e[1, 1], abs=1e-9)  # levelled
    assert np.mean(e[:, 0]) == pytest.approx((cfg.width - 1) / 2, abs=1e-9)
    diff = clip.frames[1].astype(np.float64) - clip.frames[0]
    assert 3.5 < diff.std() < 5.0  # two independent sigma-3 noises: std 3 * sqrt(2), rounding aside
    assert abs(diff.mean()) < 0.1
    np.testing.assert_array_equal(clip.state, real_clips.INSIDE)


def test_frames_are_the_photo_through_the_saved_transform():
    clip = real_clips.render_clip("astronaut", "slow", frames=30)
    photo = real_faces.load("astronaut").astype(np.float32)
    for i in (0, 17, 29):
        m = clip.transforms[i]
        s = math.sqrt(abs(np.linalg.det(m[:, :2])))
        src = cv2.GaussianBlur(photo, (0, 0), 0.5 * math.sqrt(1 / s ** 2 - 1)) if s < 1 else photo
        ref = cv2.warpAffine(src, m, (clip.frames.shape[2], clip.frames.shape[1]), flags=cv2.INTER_LINEAR)
        win = (slice(40, 200), slice(80, 240))  # the face and around it, away from the border fill
        assert np.abs(clip.frames[i][win] - ref[win]).mean() < 3.0  # sigma-3 noise: mean |n| = 2.4
    other = cv2.warpAffine(photo, clip.transforms[0], (clip.frames.shape[2], clip.frames.shape[1]))
    assert np.abs(clip.frames[29][win] - other[win]).mean() > 6.0  # another frame's transform is far off


def test_motions_reach_their_amplitudes():
    slow = real_clips.render_clip("astronaut", "slow")
    e = _eyes_in_frames(slow)
    roll = np.degrees(np.arctan2(e[:, 1, 1] - e[:, 0, 1], e[:, 1, 0] - e[:, 0, 0]))
    assert 5 < np.abs(roll).max() <= 10.0 + 1e-9
    iod = np.linalg.norm(e[:, 1] - e[:, 0], axis=1)
    np.testing.assert_allclose(iod / real_clips.RealClipConfig().iod, slow.scales, atol=1e-9)
    zoom = real_clips.trajectory("zoom")["scale"]
    assert zoom.max() / zoom.min() == pytest.approx(2.0, abs=1e-3) and zoom[0] == zoom[-1]


def test_leave_clip_labels_absent_frames_and_returns():
    clip = real_clips.render_clip("astronaut", "leave", frames=45)
    st = clip.state
    assert st[0] == st[-1] == real_clips.INSIDE
    absent = np.flatnonzero(st == real_clips.ABSENT)
    assert len(absent) >= 5 and np.all(np.diff(absent) == 1)  # one stretch out of the frame
    assert (st[: absent[0]] != real_clips.ABSENT).all() and (st[absent[-1] + 1:] != real_clips.ABSENT).all()
    # Every face-box corner of an absent frame is out of the frame.
    box = real_clips.face_box("astronaut")
    corners = transform_points(np.array([[box[0], box[1]], [box[2], box[3]]]), clip.transforms[absent[0]])
    assert corners[:, 0].min() > clip.frames.shape[2] - 1


def test_truth_moves_reference_points_with_the_frames():
    img, m = real_clips.reference_frame("astronaut")
    eyes_frame = transform_points(np.array(real_clips.EYES["astronaut"]), m)
    photo_pts = real_clips.to_photo(eyes_frame, m)
    np.testing.assert_allclose(photo_pts, real_clips.EYES["astronaut"], atol=1e-9)
    clip = real_clips.render_clip("astronaut", "zoom", frames=9)
    t = clip.truth(photo_pts)
    np.testing.assert_allclose(np.linalg.norm(t[:, 1] - t[:, 0], axis=1),
                               real_clips.RealClipConfig().iod * clip.scales, rtol=1e-9)
    assert img.shape == clip.frames.shape[1:]


def test_write_and_read_clip(tmp_path):
    out = real_clips.write_clip(tmp_path / "clip", "astronaut", "fast", frames=5, mp4=False)
    back = real_clips.read_clip(out)
    src = real_clips.render_clip("astronaut", "fast", frames=5)
    np.testing.assert_array_equal(back.frames, src.frames)
    np.testing.assert_allclose(back.transforms, src.transforms, atol=0)
    np.testing.assert_array_equal(back.state, src.state)
    assert back.motion == "fast" and back.config == src.config
    with pytest.raises(InputError, match="not an empty directory"):
        real_clips.write_clip(out, "astronaut", "fast", frames=2)


def test_bad_arguments_are_named():
    with pytest.raises(InputError, match="unknown motion"):
        real_clips.trajectory("sideways")
    with pytest.raises(InputError, match="no eye centres"):
        real_clips.render_clip("group", "static", frames=2)
    with pytest.raises(InputError, match="not a real-face clip"):
        real_clips.read_clip("/nonexistent")
    with pytest.raises(InputError, match="at least 64x64"):
        real_clips.RealClipConfig(width=32)
