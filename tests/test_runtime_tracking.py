"""VIDEO-mode logic with an oracle crop model (the true landmarks, seen through the crop):
tracking follows motion exactly, the detector runs only when needed, timestamps must increase."""
from types import SimpleNamespace

import numpy as np
import pytest

from facelm.alignment import transform_points
from facelm.data.synth_video import render_clip
from facelm.detect import POINT_NAMES, Detection
from facelm.errors import InputError
from facelm.layouts import JD106
from facelm.runtime.tracking import (
    CropLandmarks,
    ImageSmoother,
    LandmarkerCropModel,
    TrackingConfig,
    VideoTracker,
    detect_image,
)
from facelm.smoothing import OneEuroConfig


class Oracle:
    """Crop model that returns the current frame's truth in the crop, plus optional noise."""

    input_size = 192
    layout = JD106

    def __init__(self, noise=0.0, seed=0):
        self.truth = None
        self.score = 0.8
        self.noise = noise
        self.calls = 0
        self.rng = np.random.default_rng(seed)

    def __call__(self, image, transform):
        self.calls += 1
        crop = transform_points(self.truth, transform) + self.rng.normal(0, self.noise, self.truth.shape)
        return CropLandmarks(crop=crop, scores=np.full(106, self.score), timings={"model": 0.1})


class TruthDetector:
    name = "truth"

    def __init__(self, oracle):
        self.oracle, self.runs, self.blind = oracle, 0, False

    def detect(self, image):
        self.runs += 1
        if self.blind:
            return []
        five = JD106.five_points(self.oracle.truth)
        lo, hi = self.oracle.truth.min(0), self.oracle.truth.max(0)
        return [Detection(np.concatenate([lo, hi]), 0.9, five, POINT_NAMES[:5], self.name)]


@pytest.fixture(scope="module")
def slow():
    return render_clip(12, "slow", seed=0)


def _run(tracker, oracle, clip, truths=None):
    out = []
    for i, (f, ts) in enumerate(zip(clip.frames, clip.timestamps_ms)):
        oracle.truth = clip.landmarks[i] if truths is None else truths[i]
        out.append(tracker.process(f, ts))
    return out


def test_tracking_follows_motion_to_0_01_px_with_one_detection(slow):
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det, TrackingConfig(crop_filter=None))
    res = _run(tr, oracle, slow)
    assert det.runs == 1 and [r.source for r in res] == ["detector"] + ["tracking"] * 11
    for r, gt in zip(res, slow.landmarks):
        np.testing.assert_allclose(r.landmarks, gt, atol=0.01)
    assert "detector" in res[0].timings and "tracking" in res[1].timings and "detector" not in res[1].timings
    assert res[1].timings["total"] == pytest.approx(sum(v for k, v in res[1].timings.items() if k != "total"))


def test_tracked_crop_is_the_five_point_crop_of_the_truth(slow):
    """With the face's own template, the 106-point fit reproduces the detection alignment."""
    from facelm.alignment import estimate_alignment

    oracle = Oracle()
    tr = VideoTracker(oracle, TruthDetector(oracle), TrackingConfig(crop_filter=None))
    static = np.broadcast_to(slow.landmarks[0], slow.landmarks.shape)
    res = _run(tr, oracle, slow, truths=static)
    np.testing.assert_allclose(res[5].transform, estimate_alignment(JD106.five_points(static[0]), 192), atol=1e-9)


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
    tr = VideoTracker(oracle, det, TrackingConfig(min_score=0.5))
    res = []
    for i in range(6):
        oracle.truth = slow.landmarks[i]
        oracle.score = 0.2 if i == 3 else 0.8
        res.append(tr.process(slow.frames[i], slow.timestamps_ms[i]))
    assert det.runs == 2
    assert [r.source for r in res] == ["detector", "tracking", "tracking", "detector", "tracking", "tracking"]


def test_face_leaving_the_frame_and_no_face(slow):
    oracle = Oracle()
    det = TruthDetector(oracle)
    tr = VideoTracker(oracle, det)
    gone = slow.landmarks[2] + np.array([400.0, 0.0])  # right of the 320 px frame
    truths = [slow.landmarks[0], slow.landmarks[1], gone, slow.landmarks[3]]
    det_blind = [False, False, True, False]
    res = []
    for i in range(4):
        oracle.truth, det.blind = truths[i], det_blind[i]
        res.append(tr.process(slow.frames[i], slow.timestamps_ms[i]))
    assert res[2].landmarks is None and res[2].to_dict()["face"] is None
    assert res[3].source == "detector" and det.runs == 3
    np.testing.assert_allclose(res[3].landmarks, slow.landmarks[3], atol=0.01)


def test_smoothing_and_crop_filter_cut_static_jitter():
    clip = render_clip(40, "static", seed=1)

    def jitter(cfg):
        oracle = Oracle(noise=0.5, seed=3)
        res = _run(VideoTracker(oracle, TruthDetector(oracle), cfg), oracle, clip)
        lm = np.array([r.landmarks for r in res[5:]])
        return np.sqrt((np.diff(lm, axis=0) ** 2).sum(-1).mean()), np.abs(lm - clip.landmarks[0]).max()

    raw, err_raw = jitter(TrackingConfig(crop_filter=None))
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


def test_landmarker_adapter_passes_the_exact_crop(slow):
    from facelm.alignment import estimate_alignment

    seen = {}

    def detect(image, five_points):
        m = estimate_alignment(five_points, 192)
        seen["m"] = m
        crop = transform_points(slow.landmarks[0], m)
        return SimpleNamespace(landmarks_crop=crop, scores=np.ones(106), layout="jd106")

    model = LandmarkerCropModel(SimpleNamespace(input_size=192, detect=detect))
    m = np.array([[0.9, -0.1, 5.0], [0.1, 0.9, -3.0]])
    out = model(slow.frames[0], m)
    np.testing.assert_allclose(seen["m"], m, atol=1e-9)
    assert "landmarker" in out.timings and model.layout is JD106


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
