"""VIDEO-mode logic: an oracle crop model (the true landmarks, seen through the crop) for the
health checks one by one, and the shipped demo checkpoint (run in torch) on real-face clips for the
no-collapse and re-acquisition checks."""
import numpy as np
import pytest

from facelm.alignment import transform_points
from facelm.data import real_clips
from facelm.data.synth_video import render_clip
from facelm.detect import POINT_NAMES, Detection
from facelm.errors import InputError
from facelm.layouts import JD106
from facelm.runtime import tracking
from facelm.runtime.tracking import (
    CropLandmarks,
    ImageSmoother,
    TrackingConfig,
    VideoTracker,
    clamp_motion,
    crop_scale,
    detect_image,
)
from facelm.smoothing import OneEuroConfig


class Oracle:
    """Crop model that returns the current frame's truth in the crop, plus optional noise and a
    distortion of the crop-space shape (``warp``: a function of (K, 2) crop points)."""

    input_size = 192
    layout = JD106

    def __init__(self, noise=0.0, seed=0):
        self.truth = None
        self.score = 0.8
        self.noise = noise
        self.warp = None
        self.calls = 0
        self.rng = np.random.default_rng(seed)

    def __call__(self, image, transform):
        self.calls += 1
        crop = transform_points(self.truth, transform) + self.rng.normal(0, self.noise, self.truth.shape)
        if self.warp is not None:
            crop = self.warp(crop)
        return CropLandmarks(crop=crop, scores=np.full(106, self.score), timings={"model": 0.1})


class TruthDetector:
    name = "truth"

    def __init__(self, oracle):
        self.oracle, self.runs, self.blind, self.offset = oracle, 0, False, np.zeros(2)

    def detect(self, image):
        self.runs += 1
        if self.blind:
            return []
        t = self.oracle.truth + self.offset
        lo, hi = t.min(0), t.max(0)
        return [Detection(np.concatenate([lo, hi]), 0.9, JD106.five_points(t), POINT_NAMES[:5], self.name)]


@pytest.fixture(scope="module")
def slow():
    return render_clip(12, "slow", seed=0)


@pytest.fixture(scope="module")
def still():
    """A real still clip and 106 pseudo-truth points on its face (a synthetic face's landmarks
    placed by a similarity onto the photo's pinned eyes, so the oracle sees consistent motion)."""
    clip = real_clips.render_clip("astronaut", "static", frames=8)
    synth = render_clip(1, "static", seed=0).landmarks[0]
    eyes = np.array(real_clips.EYES["astronaut"])
    from facelm.alignment import umeyama

    photo_pts = transform_points(synth, umeyama(synth[[104, 105]], eyes))
    return clip, clip.truth(photo_pts)


def _run(tracker, oracle, frames, ts, truths):
    out = []
    for f, t, gt in zip(frames, ts, truths):
        oracle.truth = gt
        out.append(tracker.process(f, t))
    return out


def _fixed_motion(monkeypatch, a):
    """Make the image motion estimate return ``a`` (previous frame -> this frame) with 50 inliers."""
    monkeypatch.setattr(tracking, "estimate_motion", lambda *args, **kw: (np.asarray(a, np.float64), 50))


def _iod(lm):
    return float(np.linalg.norm(lm[104] - lm[105]))


def test_tracking_follows_the_image_with_one_detection(slow):
    """The crop moves with the image's own motion; the detector ran once in 12 frames."""
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=0, max_speed=1.0))
    res = _run(tr, oracle, slow.frames, slow.timestamps_ms, slow.landmarks)
    assert det.runs == 1 and [r.source for r in res] == ["detector"] + ["tracking"] * 11
    for r, gt in zip(res, slow.landmarks):
        np.testing.assert_allclose(r.landmarks, gt, atol=0.01)
        assert r.health.get("shape_residual", 0.0) < 0.03  # the crop still frames the same shape
    assert "detector" in res[0].timings and "tracking" in res[1].timings and "detector" not in res[1].timings
    assert res[1].timings["total"] == pytest.approx(sum(v for k, v in res[1].timings.items() if k != "total"))


def test_still_real_clip_keeps_the_anchor_crop(still):
    clip, truth = still
    oracle = Oracle(noise=0.3)
    tr = VideoTracker(oracle, TruthDetector(oracle), TrackingConfig(check_every=0))
    res = _run(tr, oracle, clip.frames, clip.timestamps_ms, truth)
    m0 = res[0].transform
    for r in res[1:]:
        assert r.source == "tracking"
        # Five crop points within 0.1 px of the anchor's: flow on sensor noise does not move it.
        assert np.abs(tracking.five_points_for_transform(r.transform, 192)
                      - tracking.five_points_for_transform(m0, 192)).max() < 0.1


def test_a_new_frame_size_re_detects_instead_of_following_flow(slow):
    """A folder of photos in VIDEO mode: frames of another size cannot be compared by optical flow
    (OpenCV asserts on it), so the tracker starts again from the detector."""
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=0))
    f0, f1 = slow.frames[0], slow.frames[1]
    big = np.zeros((f1.shape[0] + 40, f1.shape[1] + 60, 3), np.uint8)
    big[:f1.shape[0], :f1.shape[1]] = f1
    res = _run(tr, oracle, [f0, big, big], [0.0, 33.0, 66.0], [slow.landmarks[0], slow.landmarks[1], slow.landmarks[1]])
    assert [r.source for r in res] == ["detector", "detector", "tracking"] and det.runs == 2
    assert res[1].health["redetect"] == "frame_size"
    np.testing.assert_allclose(res[1].landmarks, slow.landmarks[1], atol=0.01)


def test_estimate_motion_recovers_a_known_similarity():
    """Flow + RANSAC on a real face: a 2 deg, 3 % zoom and (3.3, -1.7) px move is recovered from
    the image alone to 0.15 px at the corners of the crop's inner box (a measurement, not exact
    maths: LK on real texture)."""
    import cv2

    clip = real_clips.render_clip("astronaut", "static", frames=1,
                                  config=real_clips.RealClipConfig(noise_sigma=0.0))
    prev = cv2.cvtColor(clip.frames[0], cv2.COLOR_RGB2GRAY)
    c = np.array([160.0, 110.0])  # the face's middle
    r = 1.03 * np.array([[np.cos(0.035), -np.sin(0.035)], [np.sin(0.035), np.cos(0.035)]])
    a = np.concatenate([r, (c + np.array([3.3, -1.7]) - r @ c)[:, None]], axis=1)
    cur = cv2.warpAffine(prev, a, prev.shape[::-1], flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT101)
    m = np.array([[1.5, 0.0, 96.0 - 1.5 * c[0]], [0.0, 1.5, 96.0 - 1.5 * c[1]]])  # a 192 crop centred on c
    est, inliers = tracking.estimate_motion(prev, cur, m, 192)
    assert inliers >= 20
    box = tracking.to_image(np.array([[29.0, 29.0], [163.0, 29.0], [163.0, 163.0], [29.0, 163.0]]), m)
    np.testing.assert_allclose(transform_points(box, est), transform_points(box, a), atol=0.15)


def test_no_flow_re_detects(still, monkeypatch):
    clip, truth = still
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=0))
    _run(tr, oracle, clip.frames[:1], clip.timestamps_ms[:1], truth[:1])
    monkeypatch.setattr(tracking, "estimate_motion", lambda *args, **kw: (None, 2))
    r = _run(tr, oracle, clip.frames[1:2], clip.timestamps_ms[1:2], truth[1:2])[0]
    assert r.source == "detector" and r.health["redetect"] == "flow" and det.runs == 2
    np.testing.assert_allclose(r.landmarks, truth[1], atol=0.01)


def test_motion_clamp_limits_scale_and_rotation():
    a = 1.3 * np.array([[np.cos(0.35), -np.sin(0.35), 4.0], [np.sin(0.35), np.cos(0.35), -2.0]])
    c = np.array([50.0, 80.0])
    out, step, deg = clamp_motion(a, c, 0.1, 10.0)
    assert step == pytest.approx(np.log(1.3)) and deg == pytest.approx(np.degrees(0.35))
    assert crop_scale(out) == pytest.approx(np.exp(0.1))
    assert np.degrees(np.arctan2(out[1, 0], out[0, 0])) == pytest.approx(10.0)
    np.testing.assert_allclose(transform_points(c[None], out), transform_points(c[None], a), atol=1e-9)
    small = np.array([[1.01, 0.0, 3.0], [0.0, 1.01, 1.0]])
    assert clamp_motion(small, c, 0.1, 10.0)[0] is small


def test_a_crop_forced_to_shrink_is_refused(still, monkeypatch):
    """Image motion that would zoom the crop in by 40 % in one frame is implausible: the detector
    re-anchors (the face keeps its true size), or, when it sees nothing, the crop moves by the
    clamped step (10 %) only."""
    clip, truth = still
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=0))
    _run(tr, oracle, clip.frames[:2], clip.timestamps_ms[:2], truth[:2])
    c = truth[1].mean(0)
    _fixed_motion(monkeypatch, np.array([[1.4, 0, -0.4 * c[0]], [0, 1.4, -0.4 * c[1]]]))
    r = _run(tr, oracle, clip.frames[2:3], clip.timestamps_ms[2:3], truth[2:3])[0]
    assert r.health["scale_step"] == pytest.approx(np.log(1.4)) and det.runs == 2
    assert r.source == "detector" and r.health["redetect"] == "clamped" and tr.reanchors == 1
    assert _iod(r.landmarks) == pytest.approx(_iod(truth[2]), rel=0.01)
    det.blind = True
    before = r.transform
    r = _run(tr, oracle, clip.frames[3:4], clip.timestamps_ms[3:4], truth[3:4])[0]
    assert r.source == "tracking" and det.runs == 3
    assert crop_scale(before) / crop_scale(r.transform) == pytest.approx(np.exp(0.1))


def test_a_face_grown_past_max_anchor_zoom_takes_a_fresh_anchor(still, monkeypatch):
    """8 % zoom per frame is plausible, but after three frames (1.26x > 1.25x) the anchor is
    re-taken at the face's new size, even though the detector agrees with the track."""
    clip, truth = still
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=0))
    _run(tr, oracle, clip.frames[:1], clip.timestamps_ms[:1], truth[:1])
    c = truth[0].mean(0)
    a = np.array([[1.08, 0, -0.08 * c[0]], [0, 1.08, -0.08 * c[1]]])
    _fixed_motion(monkeypatch, a)
    gt, res = truth[0], []
    for i in range(1, 4):
        gt = transform_points(gt, a)
        res.append(_run(tr, oracle, clip.frames[i:i + 1], clip.timestamps_ms[i:i + 1], [gt])[0])
    assert [r.source for r in res] == ["tracking", "tracking", "detector"] and det.runs == 2
    assert res[2].health["redetect"] == "zoom" and res[2].health["anchor_zoom"] == pytest.approx(1.08 ** 3)
    assert res[2].health["disagreement"] < 0.01
    np.testing.assert_allclose(res[2].landmarks, gt, atol=0.01)


def test_shape_checks_refuse_a_crop_without_the_face(still):
    """Landmarks that no longer have the anchor's shape (scrambled, or filling the crop at 70 %)
    re-detect, whatever their score."""
    clip, truth = still
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=0))
    _run(tr, oracle, clip.frames[:2], clip.timestamps_ms[:2], truth[:2])
    perm = np.random.default_rng(0).permutation(106)
    oracle.warp = lambda p: p[perm]
    r = _run(tr, oracle, clip.frames[2:3], clip.timestamps_ms[2:3], truth[2:3])[0]
    assert r.health["redetect"] == "shape_residual" and r.health["score"] > 0.25 and det.runs == 2
    oracle.warp = lambda p: 96.0 + 0.7 * (p - 96.0)
    tr.reset()
    _run(tr, oracle, clip.frames[3:4], clip.timestamps_ms[3:4], truth[3:4])  # anchor with this warp
    oracle.warp = None
    r = _run(tr, oracle, clip.frames[4:5], clip.timestamps_ms[4:5], truth[4:5])[0]
    assert r.health["redetect"] == "fit_scale" and r.health["fit_scale"] == pytest.approx(0.7, rel=1e-3)


def test_fast_crop_motion_asks_the_detector_and_disagreement_reanchors(still, monkeypatch):
    clip, truth = still
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=0))
    r = _run(tr, oracle, clip.frames[:2], clip.timestamps_ms[:2], truth[:2])[-1]
    five = tracking.five_points_for_transform(r.transform, 192)
    iod = np.linalg.norm(five[1] - five[0])  # the crop's eye distance, the unit of max_speed
    _fixed_motion(monkeypatch, np.array([[1.0, 0, 0.4 * iod], [0, 1.0, 0]]))  # 0.4 IOD in one frame
    r = _run(tr, oracle, clip.frames[2:3], clip.timestamps_ms[2:3], truth[2:3])[0]
    assert r.health["speed"] == pytest.approx(0.4, rel=1e-6) and det.runs == 2
    # The face did not move: the detector disagrees with the track by 0.4 IOD and re-anchors it.
    assert r.source == "detector" and r.health["redetect"] == "disagreement" and tr.reanchors == 1
    np.testing.assert_allclose(r.landmarks, truth[2], atol=0.01)


def test_periodic_cross_check_and_small_disagreement_keeps_the_track(still):
    clip, truth = still
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=3))
    det.offset = np.array([0.05 * _iod(truth[0]), 0.0])  # within max_disagreement (0.15 IOD)
    res = _run(tr, oracle, clip.frames, clip.timestamps_ms, truth)
    assert det.runs == 3  # frame 0, then frames 3 and 6
    assert [("disagreement" in r.health) for r in res] == [False, False, False, True, False, False, True, False]
    assert tr.reanchors == 0 and all(r.source == "tracking" for r in res[1:])


def test_timestamps_must_increase(slow):
    oracle = Oracle()
    oracle.truth = slow.landmarks[0]
    tr = VideoTracker(oracle, TruthDetector(oracle))
    tr.process(slow.frames[0], 100.0)
    with pytest.raises(InputError, match="increase"):
        tr.process(slow.frames[1], 100.0)
    with pytest.raises(InputError, match="increase"):
        tr.process(slow.frames[1], 50.0)
    s = ImageSmoother(oracle, TruthDetector(oracle))
    s.process(slow.frames[0], 5.0)
    with pytest.raises(InputError, match="increase"):
        s.process(slow.frames[0], 5.0)


def test_low_score_runs_the_detector_again(slow):
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(min_score=0.5, check_every=0, max_speed=1.0))
    res = []
    for i in range(6):
        oracle.truth = slow.landmarks[i]
        oracle.score = 0.2 if i == 3 else 0.8
        res.append(tr.process(slow.frames[i], slow.timestamps_ms[i]))
    assert det.runs == 2 and res[3].health["redetect"] == "score"
    assert [r.source for r in res] == ["detector", "tracking", "tracking", "detector", "tracking", "tracking"]


def test_face_leaving_the_frame_and_no_face(slow):
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(check_every=0, max_speed=1.0))
    gone = slow.landmarks[2] + np.array([400.0, 0.0])  # right of the 320 px frame
    truths = [slow.landmarks[0], slow.landmarks[1], gone, slow.landmarks[3]]
    det_blind = [False, False, True, False]
    res = []
    for i in range(4):
        oracle.truth, det.blind = truths[i], det_blind[i]
        res.append(tr.process(slow.frames[i], slow.timestamps_ms[i]))
    assert res[2].landmarks is None and res[2].to_dict()["face"] is None and res[2].health["redetect"] == "inside"
    assert res[3].source == "detector" and det.runs == 3
    np.testing.assert_allclose(res[3].landmarks, slow.landmarks[3], atol=0.01)


def test_smoothing_cuts_static_jitter():
    clip = render_clip(40, "static", seed=1)

    def jitter(cfg):
        oracle = Oracle(noise=0.5, seed=3)
        res = _run(VideoTracker(oracle, TruthDetector(oracle), cfg), oracle, clip.frames, clip.timestamps_ms,
                   clip.landmarks)
        lm = np.array([r.landmarks for r in res[5:]])
        return np.sqrt((np.diff(lm, axis=0) ** 2).sum(-1).mean()), np.abs(lm - clip.landmarks[0]).max()

    raw, err_raw = jitter(TrackingConfig())
    smooth, err_smooth = jitter(TrackingConfig(smoothing=OneEuroConfig(min_cutoff=1.0, beta=0.05)))
    assert smooth < 0.5 * raw
    assert err_raw < 5.0 and err_smooth < 5.0  # stays on the face (no drift)


def test_image_mode_refines_from_its_own_points(slow):
    oracle = Oracle()
    oracle.truth = slow.landmarks[0]
    r = detect_image(slow.frames[0], oracle, TruthDetector(oracle), refine_passes=1)
    assert oracle.calls == 2 and r.source == "detector"
    np.testing.assert_allclose(r.landmarks, slow.landmarks[0], atol=0.01)
    oracle.calls = 0
    r = detect_image(slow.frames[0], oracle, five_points=JD106.five_points(slow.landmarks[0]))
    assert oracle.calls == 1 and "detector" not in r.timings
    with pytest.raises(InputError, match="detector or five points"):
        detect_image(slow.frames[0], oracle)


def test_tracking_config_rejects_impossible_thresholds():
    with pytest.raises(InputError, match="positive"):
        TrackingConfig(max_fit_scale=0.9)
    with pytest.raises(InputError, match="check_every"):
        TrackingConfig(check_every=-1)


# ---------------------------------------------------------------- the demo model on real clips
class TorchCropModel:
    """The shipped demo checkpoint as a crop model, in torch (no conversion in the test)."""

    def __init__(self):
        import torch

        from facelm.assets import demo_checkpoint
        from facelm.codec import DecodeConfig
        from facelm.model import load_checkpoint
        from facelm.training.evaluate import torch_model_spec

        torch.set_num_threads(1)
        self.torch = torch
        self.net, cfg, _ = load_checkpoint(demo_checkpoint())
        self.input_size, self.layout = cfg.input_size, JD106
        hm = int(self.net(torch.zeros(1, 3, cfg.input_size, cfg.input_size)).shape[-1])
        self.spec, self.out = torch_model_spec(cfg.num_keypoints, cfg.input_size, hm)
        self.decode = DecodeConfig()

    def __call__(self, image, transform):
        from facelm.alignment import warp_face
        from facelm.postprocess import output_to_landmarks
        from facelm.preprocess import normalize

        x = normalize(warp_face(image, transform, self.input_size)).transpose(2, 0, 1)[None]
        with self.torch.no_grad():
            raw = self.net(self.torch.from_numpy(np.ascontiguousarray(x))).numpy()
        lm = output_to_landmarks(raw, self.out, self.spec, self.decode)
        return CropLandmarks(crop=lm.crop[0], scores=lm.scores[0])


@pytest.fixture(scope="module")
def demo():
    pytest.importorskip("torch")
    from facelm.detect import create_detector

    return TorchCropModel(), create_detector("auto")


def _real_truth(clip, model, det):
    img, m = real_clips.reference_frame(clip.photo, clip.config)
    ref = detect_image(img, model, det)
    assert ref.landmarks is not None
    return clip.truth(real_clips.to_photo(ref.landmarks, m))


def test_demo_model_video_mode_does_not_collapse_on_a_still_real_face(demo):
    """The issue's failure: a still astronaut (sigma-3 noise) shrank from 44 px to 5 px between
    the eyes by frame 35 in VIDEO mode. Now: the eye distance stays within 20 % of the true one
    on every frame, and VIDEO jitter is at most IMAGE mode's."""
    model, det = demo
    clip = real_clips.render_clip("astronaut", "static", frames=45)
    truth = _real_truth(clip, model, det)
    true_iod = _iod(truth[0])
    runs = {}
    for mode, runner in (("video", VideoTracker(model, det)), ("image", ImageSmoother(model, det))):
        res = [runner.process(f, t) for f, t in zip(clip.frames, clip.timestamps_ms)]
        assert all(r.landmarks is not None for r in res)
        runs[mode] = np.array([r.landmarks for r in res])
    ratio = np.array([_iod(lm) for lm in runs["video"]]) / true_iod
    assert ratio.min() > 0.8 and ratio.max() < 1.2, (ratio.min(), ratio.max())
    jit = {k: np.sqrt((np.linalg.norm(np.diff(v, axis=0), axis=-1) ** 2).mean()) for k, v in runs.items()}
    assert jit["video"] <= jit["image"], jit


def test_demo_model_video_mode_reacquires_a_returning_face(demo):
    model, det = demo
    clip = real_clips.render_clip("astronaut", "leave", frames=45)
    truth = _real_truth(clip, model, det)
    tr = VideoTracker(model, det)
    res = [tr.process(f, t) for f, t in zip(clip.frames, clip.timestamps_ms)]
    have = np.array([r.landmarks is not None for r in res])
    absent = np.flatnonzero(clip.state == real_clips.ABSENT)
    assert not have[absent].any()  # no face is invented while it is out of the frame
    inside = clip.state == real_clips.INSIDE
    back = next(i for i in range(absent[-1] + 1, len(res)) if inside[i])
    on = [i for i in range(back, len(res)) if have[i]
          and np.linalg.norm(res[i].landmarks - truth[i], axis=-1).mean() < 0.25 * _iod(truth[i])]
    assert on and on[0] - back <= 5 and on == list(range(on[0], len(res)))
    for i in np.flatnonzero(inside & have):
        assert 0.8 < _iod(res[i].landmarks) / _iod(truth[i]) < 1.2


# ---------------------------------------------------------------- Landmarker running modes
def test_landmarker_running_modes(converted, slow):
    from facelm.runtime import Landmarker, LandmarkerOptions
    from facelm.runtime.landmarker import RunningMode

    _, art = converted
    with Landmarker.create_from_options(LandmarkerOptions(art, artifact="int8")) as lm:
        assert lm.running_mode is RunningMode.IMAGE
        r = lm.detect(slow.frames[0])  # built-in detector
        assert r is not None and r.landmarks.shape == (106, 2) and r.source == "detector"
        assert {"detector", "warp", "model", "decode", "total"} <= set(r.timings)
        five = JD106.five_points(slow.landmarks[0])
        r5 = lm.detect(slow.frames[0], five)  # today's API, unchanged
        assert r5.source == "five_points" and "detector" not in r5.timings
        assert lm.detect(np.full((96, 128, 3), 127, np.uint8)) is None  # no face
        with pytest.raises(InputError, match="VIDEO"):
            lm.detect_for_video(slow.frames[0], 0.0)
    opts = LandmarkerOptions(art, artifact="int8", running_mode="VIDEO", smoothing=OneEuroConfig())
    with Landmarker.create_from_options(opts) as lm:
        out = [lm.detect_for_video(f, t) for f, t in zip(slow.frames[:4], slow.timestamps_ms[:4])]
        assert out[0].source == "detector"
        assert all(o is not None and o.landmarks.shape == (106, 2) for o in out)
        assert "smoothing" in out[1].timings and out[1].timestamp_ms == slow.timestamps_ms[1]
        with pytest.raises(InputError, match="increase"):
            lm.detect_for_video(slow.frames[4], slow.timestamps_ms[3])
        with pytest.raises(InputError, match="IMAGE mode"):
            lm.detect(slow.frames[0])
    with pytest.raises(InputError, match="running_mode"):
        Landmarker.create_from_options(LandmarkerOptions(art, running_mode="LIVE_STREAM"))
