"""Bring your own model: an iBUG-68 ONNX model (256 px, 64x64 NCHW heatmaps) that is not in the zoo,
a factory with --weights, a .pt2 program, the declared contract and its refusals.

The models come from tests/byom_helpers.py (built here, ONNX without torch). Their heatmaps are
Gaussian peaks at known cells plus an image-dependent term, so the landmarks a converted model
gives are known to within a cell: that checks stride, layout and decode end to end.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import byom_helpers as bh  # noqa: E402

from facelm.errors import FacelmError, InputError  # noqa: E402

CONTRACT = ["--layout", "ibug68", "--input-size", "256"]
COMMON = ["--num-calib", "8", "--num-eval", "4", "--latency-runs", "1"]
FAST = COMMON + ["--targets", "tflite"]


def _aligned_face(size: int = 256):
    """An aligned synthetic face crop and the five points that map it onto itself."""
    from facelm.alignment import reference_template
    from facelm.data.synth import generate_aligned

    crop = generate_aligned(1, 5, size)["crops"][0]
    return crop, np.asarray(reference_template(size), np.float64)


def _expected_crop_points() -> np.ndarray:
    """Crop pixels of the models' peaks: x_in = stride * x + (stride - 1) / 2 with stride 4."""
    return bh.PEAKS * 4 + 1.5


@pytest.fixture(scope="module")
def onnx_converted(tmp_path_factory):
    pytest.importorskip("onnx2tf")
    from facelm.cli import main

    d = tmp_path_factory.mktemp("byom")
    src = bh.ibug68_onnx(d / "my_ibug68.onnx")  # symbolic batch, input 'image', output 'logits'
    before = src.read_bytes()
    out = d / "out"
    targets = "tflite,tvm,tvm_int8" if importlib.util.find_spec("tvm") and importlib.util.find_spec("tflite") else "tflite"
    rc = main(["convert", "--model", str(src), *CONTRACT, *COMMON, "--targets", targets, "--variants", "fp32,int8",
               "--out", str(out)])
    return rc, out, src, before


def test_onnx_model_converts_end_to_end(onnx_converted):
    from facelm.runtime.manifest import load_manifest

    rc, out, src, before = onnx_converted
    assert rc == 0
    assert src.read_bytes() == before  # the user's file is never handed to onnx2tf
    man = load_manifest(out)  # hashes verified
    assert {"onnx", "fp32", "int8"} <= set(man.names())
    assert not {"fp16", "dynamic_int8", "int8_io"} & set(man.names())  # only the variants asked for
    m = man.model
    assert (m.source, m.name, m.num_keypoints) == ("onnx", "my_ibug68", 68)
    assert m.input_size == (256, 256) and m.heatmap_size == (64, 64) and m.stride == (4.0, 4.0)
    assert man.layout.name == "ibug68"
    assert m.config["declared"]["layout"] == "ibug68" and m.config["reference"] == "onnxruntime"
    for name in ("fp32", "int8"):
        e = man.artifact(name)
        assert e.drift_vs_torch["reference"] == "onnxruntime_fp32"
    # model.onnx is the reference itself: no parity or drift against itself (issue 21)
    assert not man.artifact("onnx").parity and not man.artifact("onnx").drift_vs_torch
    assert "onnxruntime - onnxruntime" not in (out / "report.md").read_text()
    assert man.artifact("fp32").parity["max_abs"] < 1e-4
    assert man.artifact("int8").drift_vs_torch["mean"] < 0.01
    assert man.gates["passed"]
    assert "my_ibug68" in (out / "report.md").read_text()


def test_onnx_model_embedded_metadata_and_landmarker(onnx_converted):
    from facelm import Landmarker
    from facelm.runtime.manifest import ModelContract, load_manifest
    from facelm.runtime.tflite import read_tflite_metadata

    rc, out, _, _ = onnx_converted
    man = load_manifest(out)
    meta = read_tflite_metadata(out / "int8.tflite")
    assert ModelContract.from_dict(meta).to_dict() == man.contract.to_dict()
    crop, five = _aligned_face()
    with Landmarker.create_from_model_path(out) as lmk:  # the int8 artifact
        res = lmk.detect(crop, five)
    lms = np.asarray(res.landmarks_crop).reshape(-1, 2)
    assert lms.shape == (68, 2)
    err = np.abs(lms - _expected_crop_points())
    assert err.max() < 2.0, err.max()  # half a heatmap cell


def test_factory_with_weights(tmp_path):
    pytest.importorskip("onnx2tf")
    import torch

    from facelm.cli import main
    from facelm.runtime.manifest import load_manifest

    w = tmp_path / "w.pt"
    torch.save({"state_dict": bh.factory_state()}, w)
    out = tmp_path / "out"
    rc = main(["convert", "--model", "byom_helpers:factory", "--weights", str(w), *CONTRACT, *FAST,
               "--variants", "fp32", "--stride", "4", "--out", str(out)])
    assert rc == 0
    man = load_manifest(out)
    assert man.model.source == "factory" and man.model.weights_file == "w.pt"
    assert man.names() == ["onnx", "fp32"]
    assert man.artifact("onnx").parity["max_abs"] < 1e-5  # torch vs onnxruntime
    assert man.artifact("fp32").parity["max_abs"] < 1e-4
    assert man.artifact("fp32").drift_vs_torch["reference"] == "torch_fp32"


def test_output_shape_mismatch_refused_naming_both_shapes(tmp_path, capsys):
    from facelm.cli import main

    src = bh.ibug68_onnx(tmp_path / "m32.onnx", hm=32)  # stride 8, declared 4
    rc = main(["convert", "--model", str(src), *CONTRACT, "--stride", "4", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and not (tmp_path / "o").exists()
    assert "(1, 68, 32, 32)" in err and "(1, 68, 64, 64)" in err
    # wrong K: a 68-point model declared as JD-106
    rc = main(["convert", "--model", str(bh.ibug68_onnx(tmp_path / "m.onnx")), "--layout", "jd106",
               "--input-size", "256", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "(1, 68, 64, 64)" in err and "(1, 106, 64, 64)" in err


def test_declared_layouts_and_sources_agree(tmp_path):
    """NHWC ONNX, NCHW ONNX, the factory and a .pt2 program give the same NCHW reference heatmaps."""
    import torch

    from facelm.converters.sources import DeclaredContract, load_source

    x = np.random.default_rng(0).standard_normal((2, 3, 256, 256)).astype(np.float32)
    nchw = DeclaredContract.from_mapping({"layout": "ibug68", "input_size": 256})
    nhwc = DeclaredContract.from_mapping({"layout": "ibug68", "input_size": 256, "output_layout": "nhwc"})
    a = load_source(str(bh.ibug68_onnx(tmp_path / "a.onnx")), nchw)
    b = load_source(str(bh.ibug68_onnx(tmp_path / "b.onnx", nhwc=True)), nhwc)
    ref = a.reference(x)
    assert ref.shape == (2, 68, 64, 64) and a.heatmap_size == b.heatmap_size == (64, 64)
    np.testing.assert_allclose(b.reference(x), ref, atol=1e-6)
    torch.save(bh.factory_state(), tmp_path / "w.pt")
    f = load_source("byom_helpers:factory", nchw, str(tmp_path / "w.pt"))
    np.testing.assert_allclose(f.reference(x), ref, atol=1e-4)
    prog = torch.export.export(f.module, (torch.zeros(1, 3, 256, 256),))
    torch.export.save(prog, tmp_path / "p.pt2")
    p = load_source(str(tmp_path / "p.pt2"), nchw)
    assert p.kind == "pt2"
    np.testing.assert_allclose(p.reference(x[:1]), ref[:1], atol=1e-4)
    # the NHWC model declared NCHW is refused (its "K" axis is 64)
    with pytest.raises(InputError, match=r"\(1, 64, 64, 68\)"):
        load_source(str(tmp_path / "b.onnx"), nchw)


def test_bad_weights_and_contracts_are_refused(tmp_path, capsys):
    import torch

    from facelm.cli import main
    from facelm.converters.sources import DeclaredContract, load_source

    nchw = DeclaredContract.from_mapping({"layout": "ibug68", "input_size": 256})
    state = bh.factory_state()
    state["c2.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(InputError, match="non-finite"):
        load_source("byom_helpers:factory", nchw, str(tmp_path / "nan.pt"))
    torch.save({"not": "tensors", "x": 1}, tmp_path / "junk.pt")
    with pytest.raises(InputError, match="no state dict"):
        load_source("byom_helpers:factory", nchw, str(tmp_path / "junk.pt"))
    with pytest.raises(InputError, match="cannot import"):
        load_source("no_such_module_xyz:factory", nchw)
    with pytest.raises(FacelmError, match="input_size"):
        DeclaredContract.from_mapping({"layout": "ibug68"})
    # YAML contract: unknown keys refused; flags override the file
    (tmp_path / "c.yaml").write_text("layout: ibug68\ninput_size: 256\nstrid: 4\n")
    rc = main(["convert", "--model", str(bh.ibug68_onnx(tmp_path / "m.onnx")), "--contract",
               str(tmp_path / "c.yaml"), "--out", str(tmp_path / "o")])
    assert rc == 2 and "strid" in capsys.readouterr().err
    # contract flags without --model are a usage error, not silently ignored
    rc = main(["convert", "--layout", "ibug68", "--out", str(tmp_path / "o")])
    assert rc == 2 and "--model" in capsys.readouterr().err


def test_contract_yaml(tmp_path):
    from facelm.cli.convert import contract_from_args
    from facelm.converters.sources import DeclaredContract

    (tmp_path / "c.yaml").write_text(json.dumps({"layout": "ibug68", "input_size": 256, "stride": 4,
                                                 "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "color": "BGR",
                                                 "output_layout": "NHWC", "decode": "quarter"}))
    import argparse

    ns = argparse.Namespace(model="x.onnx", contract=str(tmp_path / "c.yaml"), name=None, layout=None,
                            input_size=None, stride=None, mean=None, std=None, color=None, output_layout=None,
                            decode="dark")
    d = DeclaredContract.from_mapping(contract_from_args(ns))
    assert d.decode == "dark" and d.output_layout == "NHWC" and d.stride == 4.0
    assert d.normalization().color == "BGR" and d.normalization().mean == (0.5, 0.5, 0.5)


def test_tvm_targets_of_a_brought_model(onnx_converted):
    """fp32 TVM (no isnan/where left from Clip) and int8 TVM compiled from int8.tflite, checked here."""
    import tarfile

    from facelm.runtime.manifest import load_manifest
    from facelm.runtime.tflite import TfliteRunner
    from facelm.runtime.tvm import TvmRunner

    rc, out, src, _ = onnx_converted
    man = load_manifest(out)
    if "tvm_int8" not in man.names():
        pytest.skip("TVM or the tflite package is not installed")
    host = man.artifact("tvm_host")
    assert "isnan" not in host.op_counts and "where" not in host.op_counts and host.op_counts["nn.conv2d"] == 3
    assert host.parity["max_abs"] < 1e-4
    t8 = man.artifact("tvm_int8")
    assert (t8.precision, t8.weight_dtype, t8.platform, t8.format) == ("int8", "int8", "host", "tvm_so")
    assert t8.parity["drift_ratio_vs_int8_tflite"] <= 1.5
    assert t8.drift_vs_torch["mean"] <= 1.5 * t8.parity["int8_tflite_drift_mean_same_faces"] + 1e-12
    # independent check: the library against int8.tflite on a fresh input (NHWC in and out)
    x = np.random.default_rng(7).normal(size=(2, 3, 256, 256)).astype(np.float32)
    got = TvmRunner(out / t8.file).run_raw(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    tfl = TfliteRunner(out / "int8.tflite").run_raw(x)
    assert got.shape == tfl.shape == (2, 64, 64, 68)
    assert np.abs(got - tfl).max() <= 0.05 * np.abs(tfl).max()  # a few output quantization steps at most
    assert np.argmax(got.reshape(2, -1, 68), 1).tolist() == np.argmax(tfl.reshape(2, -1, 68), 1).tolist()
    android = man.artifact("tvm_int8_android")
    assert android.platform == "android-arm64" and android.target["mtriple"] == "aarch64-linux-android"
    with tarfile.open(out / android.file) as tf:
        assert any(m.name.endswith(".o") for m in tf.getmembers())
