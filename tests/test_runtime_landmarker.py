"""Landmarker and TfliteRunner on a small converted artifact folder (no TVM needed; the light path too)."""
from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from light_path import light_env


def _face(seed: int = 7):
    from facelm.data.synth import sample
    from facelm.layouts import JD106

    image, lms = sample(seed, 0)
    return image, JD106.five_points(lms)


def test_landmarker_matches_torch_to_sub_pixel(converted, tiny_ckpt):
    import torch

    from facelm.alignment import invert_affine, transform_points
    from facelm.codec import decode, heatmap_to_input
    from facelm.model import load_checkpoint
    from facelm.preprocess import preprocess_face
    from facelm.runtime import Landmarker

    _, out = converted
    image, five = _face()
    with Landmarker.create_from_model_path(out, artifact="fp32") as lm:
        res = lm.detect(image, five)
    model, cfg, _ = load_checkpoint(tiny_ckpt)
    x, m = preprocess_face(image, five, cfg.input_size)
    with torch.no_grad():
        hm = model(torch.from_numpy(x[None])).numpy()
    ref = transform_points(heatmap_to_input(decode(hm)[0][0], cfg.stride), invert_affine(m))  # by hand
    assert res.landmarks.shape == (106, 2)
    assert np.abs(res.landmarks - ref).max() < 0.01  # pixels in the original image


def test_landmarker_int8_io_from_lone_tflite_uses_embedded_metadata(converted, tmp_path):
    from facelm.runtime import Landmarker, LandmarkerOptions

    _, out = converted
    image, five = _face(8)
    with Landmarker.create_from_model_path(out, artifact="int8_io") as lm:
        a = lm.detect(image, five)
    lone = tmp_path / "m.tflite"
    shutil.copyfile(out / "int8_io.tflite", lone)
    with Landmarker.create_from_options(LandmarkerOptions(model_path=lone)) as lm:
        b = lm.detect(image, five)
    np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_landmarker_misuse(converted, tmp_path):
    from facelm.errors import InputError
    from facelm.runtime import Landmarker, LandmarkerOptions, ManifestError

    _, out = converted
    with pytest.raises(InputError, match="create_from"):
        Landmarker(LandmarkerOptions(model_path=out))
    lm = Landmarker.create_from_model_path(out)
    lm.close()
    with pytest.raises(InputError, match="closed"):
        lm.detect(*_face())
    with pytest.raises(InputError, match="onnx"):
        Landmarker.create_from_model_path(out, artifact="onnx")
    with pytest.raises(InputError, match="five_points"):
        Landmarker.create_from_model_path(out).detect(_face()[0], "abc")
    copy = tmp_path / "c"
    shutil.copytree(out, copy)
    (copy / "int8.tflite").write_bytes((copy / "int8.tflite").read_bytes() + b"x")
    with pytest.raises(ManifestError):
        Landmarker.create_from_model_path(copy / "int8.tflite")




def test_landmarker_runs_on_the_light_path(converted, tmp_path):
    """In a process where torch/TensorFlow/ONNX/TVM cannot be imported, Landmarker gives the same landmarks."""
    from facelm.runtime import Landmarker

    _, out = converted
    image, five = _face(9)
    with Landmarker.create_from_model_path(out, artifact="int8") as lm:
        want = lm.detect(image, five).landmarks
    np.save(tmp_path / "img.npy", image)
    np.save(tmp_path / "five.npy", five)
    script = textwrap.dedent(f"""
        import numpy as np, facelm, sys
        lm = facelm.Landmarker.create_from_model_path({str(out)!r}, artifact="int8")
        res = lm.detect(np.load({str(tmp_path / 'img.npy')!r}), np.load({str(tmp_path / 'five.npy')!r}))
        np.save({str(tmp_path / 'got.npy')!r}, res.landmarks)
        heavy = [m for m in ("torch", "tensorflow", "onnx", "tvm") if m in sys.modules]
        assert not heavy, heavy
    """)
    env = light_env(tmp_path / "blocker")
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "got.npy"), want)


def test_tflite_runner_specs_and_batch(converted):
    from facelm.runtime.tflite import TfliteRunner

    _, out = converted
    r = TfliteRunner(out / "int8_io.tflite")
    assert r.input_spec.dtype == "int8" and r.input_spec.quantization is not None
    assert r.input_spec.layout == "NHWC" and r.output_spec.shape[-1] == 106
    x = np.random.default_rng(0).normal(size=(3, 3, 96, 96)).astype(np.float32)
    raw = r.run_raw(x)
    assert raw.shape[0] == 3 and raw.dtype == np.int8
    np.testing.assert_array_equal(raw[1:2], r.run_raw(x[1:2]))


def test_landmarker_refuses_impossible_five_points(converted):
    from facelm.errors import InputError
    from facelm.runtime import Landmarker

    _, out = converted
    image, five = _face(10)
    with Landmarker.create_from_model_path(out, artifact="fp32") as lm:
        for bad, match in ((five + 10_000, "outside"), (np.repeat(five[:1], 5, axis=0), "eyes"),
                           ((five - five.mean(0)) * 1e6, "outside")):
            with pytest.raises(InputError, match=match):
                lm.detect(image, bad)
        with pytest.raises(InputError, match="outside"):
            lm.detect(image[:1, :1], five)
        assert lm.detect(image, five).landmarks.shape == (106, 2)


def test_video_mode_auto_detector_skips_the_quarter_turns(converted):
    """``auto`` is the full multiscale search for photos and its fast variant for a stream."""
    from facelm.runtime import Landmarker, LandmarkerOptions

    with Landmarker.create_from_options(LandmarkerOptions(model_path=converted[1])) as lm:
        assert lm.detector.name == "multiscale"
    with Landmarker.create_from_options(LandmarkerOptions(model_path=converted[1], running_mode="VIDEO")) as lm:
        assert lm.detector.name == "multiscale_fast"
