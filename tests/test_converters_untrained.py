"""Untrained models convert (issue 21): drift is normalised by the contract's template, not by a prediction.

An untrained model's landmarks can collapse (several or all landmarks on one point). Drift was
normalised by the reference's own predicted landmarks (face box or eye distance), which is 0
there: ``ground truth gives a zero or non-finite normalisation distance``, exit 2. Here an
untrained iBUG-68 ONNX model (256 px, 68x64x64 NCHW) and a random-init JD-106 ``tiny`` convert
end to end with synthetic calibration and every target, and ``quant-debug`` runs on the
converted random-init model.
"""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import byom_helpers as bh  # noqa: E402

FAST = ["--num-calib", "8", "--num-eval", "4", "--latency-runs", "1", "--variants", "fp32,int8"]


def _targets() -> str:
    have_tvm = importlib.util.find_spec("tvm") is not None and importlib.util.find_spec("tflite") is not None
    return "tflite,tvm,tvm_int8" if have_tvm else "tflite"


def untrained_ibug68_onnx(path: Path, seed: int = 0) -> Path:
    """The byom_helpers iBUG-68 network, untrained: torch's default init (uniform +-1/sqrt(fan_in)),
    no prior, and a heatmap head whose 68 output channels start identical, so every landmark of
    every face decodes to the same point (a collapsed prediction)."""
    import onnx
    from onnx import numpy_helper

    bh.ibug68_onnx(path)
    m = onnx.load(str(path))
    rng = np.random.default_rng(seed)
    fan_in = {"w1": 3 * 16, "b1": 3 * 16, "w2": 16 * 9, "b2": 16 * 9, "w3": 16, "b3": 16}
    for i, init in enumerate(m.graph.initializer):
        shape = numpy_helper.to_array(init).shape
        if init.name in fan_in:
            bound = 1.0 / np.sqrt(fan_in[init.name])
            v = rng.uniform(-bound, bound, shape).astype(np.float32)
            if init.name in ("w3", "b3"):  # one output channel, repeated
                v = np.repeat(v[:1], shape[0], axis=0)
        elif init.name == "prior":
            v = np.zeros(shape, np.float32)
        else:
            continue
        m.graph.initializer[i].CopyFrom(numpy_helper.from_array(v, init.name))
    onnx.save(m, str(path))
    return path


def _check_drift_sections(man) -> None:
    """Every drift entry is finite and normalised by the template inter-pupil distance."""
    from facelm.alignment import reference_template

    t = reference_template(man.model.input_side)
    ipd = float(np.hypot(*(t[1] - t[0])))
    drifts = [a for a in man.artifacts if a.drift_vs_torch]
    assert drifts
    for a in drifts:
        d = a.drift_vs_torch
        assert d["normaliser"] == "template_inter_pupil" and d["scale_px"] == pytest.approx(ipd, abs=1e-9), a.name
        for key in ("mean", "p95", "max", "mean_px", "p95_px", "max_px"):
            assert np.isfinite(d[key]) and d[key] >= 0, (a.name, key, d[key])
        assert d["mean_px"] == pytest.approx(d["mean"] * ipd, rel=1e-9)


def _converted(rc: int, out: Path, capsys):
    """The loaded manifest of a conversion that ran to the end (rc 0, or 1 for a failed gate only)."""
    from facelm.runtime.manifest import load_manifest

    err = capsys.readouterr().err
    assert rc in (0, 1), err
    assert "normalisation distance" not in err
    man = load_manifest(out)  # hashes verified
    assert (rc == 1) == bool(man.gates["failures"])  # 1 only for a gate, never for an error
    return man


@pytest.fixture(scope="module")
def random_tiny(tmp_path_factory):
    """(exit code, folder) of ``facelm convert --config tiny --random-init`` with every target."""
    pytest.importorskip("onnx2tf")
    from facelm.cli import main

    out = tmp_path_factory.mktemp("untrained") / "tiny"
    rc = main(["convert", "--config", "tiny", "--random-init", "--targets", _targets(), *FAST, "--out", str(out)])
    return rc, out


@pytest.mark.slow  # one conversion with every target (~40 s on an idle 2-core host, TVM compiles dominate)
def test_untrained_ibug68_onnx_converts(tmp_path, capsys):
    pytest.importorskip("onnx2tf")
    from facelm.cli import main
    from facelm.converters.sources import DeclaredContract, load_source
    from facelm.errors import InputError
    from facelm.metrics import landmark_errors
    from facelm.postprocess import output_to_landmarks
    from facelm.quantization.calibration import EVAL_SEED, synthetic_faces
    from facelm.runtime.manifest import ModelContract, TensorSpec

    src = untrained_ibug68_onnx(tmp_path / "untrained68.onnx")
    # the premise: its landmarks collapse, so the old normaliser (the reference's eye distance) is 0
    contract = ModelContract.build("u", "ibug68", bh.SIZE, bh.HM)
    x = synthetic_faces(2, bh.SIZE, EVAL_SEED).inputs(contract.preprocess.normalization)
    b = load_source(str(src), DeclaredContract.from_mapping({"layout": "ibug68", "input_size": bh.SIZE}), None)
    hm = b.reference(x)
    lms = output_to_landmarks(hm, TensorSpec("o", (1, bh.K, bh.HM, bh.HM), "NCHW", "float32"),
                              contract.model, contract.decode).crop
    assert np.ptp(lms, axis=1).max() < 1e-6  # every landmark on one point
    with pytest.raises(InputError, match="zero or non-finite"):
        landmark_errors(lms, lms, "ibug68")

    out = tmp_path / "out"
    rc = main(["convert", "--model", str(src), "--layout", "ibug68", "--input-size", str(bh.SIZE),
               "--targets", _targets(), *FAST, "--out", str(out)])
    man = _converted(rc, out, capsys)
    assert {"onnx", "fp32", "int8"} <= set(man.names())
    if "tvm" in _targets():
        assert {"tvm_host", "tvm_int8"} <= set(man.names())
    _check_drift_sections(man)
    # the source ONNX is the reference: nothing is compared with itself
    assert not man.artifact("onnx").drift_vs_torch and not man.artifact("onnx").parity
    assert man.artifact("fp32").parity["max_abs"] < 1e-4
    report = (out / "report.md").read_text()
    assert "onnxruntime - onnxruntime" not in report and "onnxruntime fp32 (reference)" in report


@pytest.mark.slow  # the random_tiny fixture: one conversion with every target
def test_random_init_tiny_converts_with_every_target(random_tiny, capsys):
    rc, out = random_tiny
    man = _converted(rc, out, capsys)
    assert man.model.weights_file.startswith("random-init")
    wanted = {"onnx", "fp32", "int8"} | ({"tvm_host", "tvm_android", "tvm_int8", "tvm_int8_android"}
                                         if "tvm" in _targets() else set())
    assert wanted <= set(man.names())
    _check_drift_sections(man)
    assert man.artifact("fp32").parity["max_abs"] < 1e-4  # parity still gated, and met


@pytest.mark.slow  # shares the random_tiny conversion
def test_quant_debug_on_random_init_tiny(random_tiny, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from facelm.cli import main

    _, out = random_tiny
    capsys.readouterr()
    rc = main(["quant-debug", str(out), "--top-k", "2", "--no-chain", "--out", str(tmp_path / "qd")])
    err = capsys.readouterr().err
    assert rc == 0, err
    text = (tmp_path / "qd" / "report.md").read_text()
    assert "int8 landmark drift vs fp32 TFLite" in text and "nan%" not in text
