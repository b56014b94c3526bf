"""End-to-end conversion of the tiny config (one onnx2tf run per session) and the chain's errors.

The session fixture (tests/conftest.py) converts a tiny checkpoint through the CLI with an int8
drift bound no model can meet, so one run exercises: every TFLite variant, TVM host + Android archive, the
manifest, the report, and the failing-gate path (exit 1, folder still written).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from facelm.cli import main

pytest.importorskip("onnx2tf")
pytest.importorskip("tvm")

TFLITE = ("fp32", "fp16", "dynamic_int8", "int8", "int8_io", "int16x8")
PARITY = 1e-4


def test_failing_gate_exits_1_and_still_writes_everything(converted):
    rc, out = converted
    assert rc == 1
    assert (out / "report.md").is_file() and (out / "manifest.json").is_file()
    leftovers = [p.name for p in out.parent.iterdir() if p.name != out.name]
    assert leftovers == [], f"temporary folders left behind: {leftovers}"
    m = json.loads((out / "manifest.json").read_text())
    assert m["gates"]["passed"] is False
    assert any(f.startswith("int8:") for f in m["gates"]["failures"])
    assert not any("parity" in f for f in m["gates"]["failures"])
    assert "FAILED" in (out / "report.md").read_text()


def test_manifest_lists_every_artifact_and_hashes_verify(converted, tiny_ckpt):
    from facelm.runtime import load_manifest, sha256_file

    _, out = converted
    man = load_manifest(out)  # verifies every sha256
    assert set(man.names()) == {"onnx", *TFLITE, "tvm_host", "tvm_android"}
    for name in TFLITE:
        assert man.artifact(name).file == f"{name}.tflite"
    assert man.model.weights_sha256 == sha256_file(tiny_ckpt)
    assert man.model.config["name"] == "tiny" and man.model.heatmap_size == (24, 24)
    assert man.model.stride == (4.0, 4.0)
    assert len(man.layout.flip_permutation) == 106
    perm = np.array(man.layout.flip_permutation)
    assert np.array_equal(perm[perm], np.arange(106))
    assert man.decode.method == "dark"
    for tool in ("torch", "onnx", "onnx2tf", "tensorflow", "tvm"):
        assert man.tools[tool]
    from facelm.preprocess import DEFAULT_NORMALIZATION

    assert man.preprocess.normalization.mean == DEFAULT_NORMALIZATION.mean


def test_tampering_is_detected(converted, tmp_path):
    from facelm.runtime import ManifestError, load_manifest

    _, out = converted
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    p = copy / "int8.tflite"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="int8"):
        load_manifest(copy)
    man = load_manifest(copy, verify=False)
    assert man.artifact_path("fp32").is_file()
    with pytest.raises(ManifestError, match="sha256"):
        man.artifact_path("int8")


def test_fp32_parity_within_1e4(converted):
    from facelm.runtime import load_manifest

    man = load_manifest(converted[1])
    for name in ("onnx", "fp32", "tvm_host"):
        assert man.artifact(name).parity["max_abs"] <= PARITY, name
    assert man.artifact("fp32").drift_vs_torch["psnr_db"] is None or man.artifact("fp32").drift_vs_torch["psnr_db"] > 80


def test_tensor_specs(converted):
    from facelm.runtime import load_manifest

    man = load_manifest(converted[1])
    for name in ("fp32", "fp16", "dynamic_int8", "int8"):
        a = man.artifact(name)
        assert (a.input.dtype, a.input.shape, a.input.layout) == ("float32", (1, 96, 96, 3), "NHWC")
        assert (a.output.dtype, a.output.shape) == ("float32", (1, 24, 24, 106))
    io = man.artifact("int8_io")
    assert io.input.dtype == "int8" and io.output.dtype == "int8"
    assert io.input.quantization.scale > 0 and -128 <= io.input.quantization.zero_point <= 127
    assert io.output.quantization.scale > 0
    onnx = man.artifact("onnx")
    assert onnx.input.shape == (1, 3, 96, 96) and onnx.output.shape == (1, 106, 24, 24)


def test_drift_figures(converted):
    from facelm.alignment import reference_template
    from facelm.runtime import load_manifest

    man = load_manifest(converted[1])
    t = reference_template(96)
    ipd = float(np.hypot(*(t[1] - t[0])))
    for name in TFLITE + ("onnx", "tvm_host"):
        d = man.artifact(name).drift_vs_torch
        # the untuned TVM module runs the first --tvm-eval-faces (8) faces only
        assert d["count"] == (8 if name == "tvm_host" else 12)
        assert d.get("faces", 12) == d["count"]
        assert 0 <= d["mean"] <= d["p95"] <= d["max"] + 1e-12
        assert len(d["top_landmarks"]) == 10
        assert d["nme"] is not None and 0 <= d["auc"] <= 1  # synthetic faces carry ground truth
        # normalised by the template's inter-pupil distance (96 px crop), also given in pixels
        assert d["normaliser"] == "template_inter_pupil" and d["scale_px"] == pytest.approx(ipd, abs=1e-9)
        assert d["mean_px"] == pytest.approx(d["mean"] * ipd, rel=1e-9, abs=1e-15)
        assert d["max_px"] == pytest.approx(d["max"] * ipd, rel=1e-9, abs=1e-15)
    int8 = man.artifact("int8").drift_vs_torch
    assert int8["psnr_db"] < 60  # quantized: a real, finite difference
    assert int8["top_landmarks"][0]["drift"] >= int8["top_landmarks"][-1]["drift"]


def test_ops_and_rank(converted):
    from facelm.runtime import load_manifest

    man = load_manifest(converted[1])
    fp32 = man.artifact("fp32")
    assert fp32.op_counts.get("CONV_2D", 0) > 0 and fp32.op_counts.get("TRANSPOSE_CONV", 0) == 2
    assert fp32.max_tensor_rank <= 4  # rank-4 PixelShuffle formulation: no 6-D tensors
    assert man.artifact("onnx").op_counts.get("ConvTranspose") == 2
    assert "BatchNormalization" not in man.artifact("onnx").op_counts  # folded at export
    assert man.artifact("tvm_host").op_counts.get("nn.conv2d_transpose") == 2
    for name in TFLITE:  # folded BN: no MUL/ADD after the deconvs; SAME deconvs: no crop
        ops = man.artifact(name).op_counts
        assert "MUL" not in ops and "STRIDED_SLICE" not in ops, (name, ops)
        assert ops.get("ADD") == 10, (name, ops)  # the backbone's residual connections only


def test_fold_deconv_batchnorm_same_function_and_untouched_original():
    import torch

    from facelm.converters.onnx_export import fold_deconv_batchnorm
    from facelm.model import build_model, load_config

    torch.manual_seed(0)
    model = build_model(load_config("tiny")).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.2, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    folded, n = fold_deconv_batchnorm(model)
    assert n == 2  # tiny is SDD
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules()) == \
        sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) - 2
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        ref, got = model(x), folded(x)
    assert ref.abs().max() > 1e-3
    assert (ref - got).abs().max() <= 1e-6 * max(1.0, float(ref.abs().max()))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def _deconv_onnx(path: Path, k: int, s: int, p: int, op: int = 0, after_reshape: bool = False) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((4, 6, k, k), np.float32), "w")
    nodes, src = [], "input"
    if after_reshape:
        shape = numpy_helper.from_array(np.array([1, 4, 8, 8], np.int64), "shape")
        nodes.append(helper.make_node("Reshape", ["input", "shape"], ["r"], name="reshape0"))
        src, inits = "r", [w, shape]
    else:
        inits = [w]
    nodes.append(helper.make_node("ConvTranspose", [src, "w"], ["heatmaps"], name="deconv0", kernel_shape=[k, k],
                                  strides=[s, s], pads=[p, p, p, p], output_padding=[op, op]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 8, 8])],
                          [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_same_padding_replacements(tmp_path):
    from facelm.converters.tflite import same_padding_replacements

    (r,) = same_padding_replacements(_deconv_onnx(tmp_path / "a.onnx", 4, 2, 1))
    assert r == {"op_name": "deconv0", "param_target": "op", "padding": "SAME", "strides": [2, 2],
                 "dilations": [1, 1], "output_shape": [1, 16, 16, 6]}
    # kernel 3, stride 2, pad 1 (+ output_padding 1): TF SAME would crop 0 before / 1 after, not 1 / 1
    assert same_padding_replacements(_deconv_onnx(tmp_path / "b.onnx", 3, 2, 1, op=1)) == []
    assert same_padding_replacements(_deconv_onnx(tmp_path / "c.onnx", 4, 2, 0)) == []
    pre, conv = same_padding_replacements(_deconv_onnx(tmp_path / "d.onnx", 4, 2, 1, after_reshape=True))
    assert pre == {"op_name": "reshape0", "param_target": "outputs", "param_name": "r",
                   "post_process_transpose_perm": [0, 2, 3, 1]}
    assert conv["op_name"] == "deconv0"


def test_report_and_ced(converted):
    _, out = converted
    text = (out / "report.md").read_text()
    for name in TFLITE + ("onnx", "tvm_host", "tvm_android"):
        assert f"| {name} |" in text
        if name != "tvm_android":
            png = out / "ced" / f"{name}.png"
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "## Operators" in text and "PSNR" in text
    assert "| torch fp32 (reference) |" in text and "% IPD" in text
    if "| tvm_host |" in text:  # the untuned TVM module ran 8 of the 12 faces: every row again on those 8
        assert "### Every artifact on the first 8 evaluation faces" in text


def test_same_faces_tables_compare_rows_on_the_same_faces():
    """A row measured on fewer faces gets every other row (and the reference) on those faces."""
    from types import SimpleNamespace

    from facelm.converters.report import same_faces_tables
    from facelm.metrics import summarize

    rng = np.random.default_rng(0)
    own = {"int8": rng.uniform(0.01, 0.03, 10), "tvm_int8": rng.uniform(0.01, 0.03, 3)}
    drifts = {"int8": rng.uniform(0, 0.01, 10), "tvm_int8": rng.uniform(0, 0.01, 3)}
    ref = rng.uniform(0.01, 0.03, 10)
    man = SimpleNamespace(artifacts=[SimpleNamespace(name=n) for n in ("int8", "tvm_int8", "tvm_android")])
    lines = same_faces_tables(man, own, drifts, "torch fp32", ref)
    assert lines[0] == "### Every artifact on the first 3 evaluation faces"
    rows = {ln.split(" | ")[0].strip("| "): ln for ln in lines if ln.startswith("| ") and "---" not in ln}
    assert set(rows) == {"artifact", "torch fp32 (reference)", "int8", "tvm_int8"}
    for name, nmes in (("torch fp32 (reference)", ref[:3]), ("int8", own["int8"][:3]), ("tvm_int8", own["tvm_int8"])):
        assert f"| 3 |" in rows[name] and f"{100 * summarize(nmes)['nme']:.3f}%" in rows[name], rows[name]
    assert f"{100 * drifts['int8'][:3].mean():.3f}%" in rows["int8"]
    # every row on every face: nothing to add
    assert same_faces_tables(man, {"int8": own["int8"]}, {"int8": drifts["int8"]}, "torch fp32", ref) == []


def test_embedded_metadata_matches_manifest(converted):
    from facelm.runtime import load_manifest
    from facelm.runtime.tflite import read_tflite_metadata

    man = load_manifest(converted[1])
    meta = read_tflite_metadata(man.artifact_path("int8_io"))
    assert meta["model"]["weights_sha256"] == man.model.weights_sha256
    assert meta["artifact"]["input"] == man.artifact("int8_io").input.to_dict()
    assert meta["layout"]["flip_permutation"] == list(man.layout.flip_permutation)


def test_tflite_with_metadata_still_runs_like_onnx(converted):
    from facelm.converters.onnx_export import onnx_heatmaps
    from facelm.runtime.tflite import TfliteRunner

    _, out = converted
    x = np.random.default_rng(0).normal(size=(2, 3, 96, 96)).astype(np.float32)
    ref = onnx_heatmaps(out / "model.onnx", x)
    assert np.abs(TfliteRunner(out / "fp32.tflite").heatmaps(x) - ref).max() <= PARITY


def test_tvm_artifacts(converted):
    import tarfile

    from facelm.converters.onnx_export import onnx_heatmaps
    from facelm.converters.tvm import TvmRunner
    from facelm.runtime import load_manifest

    _, out = converted
    x = np.random.default_rng(1).normal(size=(1, 3, 96, 96)).astype(np.float32)
    assert np.abs(TvmRunner(out / "tvm" / "host.so").heatmaps(x) - onnx_heatmaps(out / "model.onnx", x)).max() <= PARITY
    man = load_manifest(out)
    android = man.artifact("tvm_android")
    assert android.format == "tvm_tar" and "TVM_NDK_CC" in android.notes  # no NDK here: archive + note
    assert android.target["mtriple"] == "aarch64-linux-android"
    with tarfile.open(out / android.file) as tf:
        assert any(m.name.endswith(".o") for m in tf.getmembers())


# ---------------------------------------------------------------------- Landmarker
# --------------------------------------------------------------------------- errors
def test_existing_output_refused_without_force(converted, capsys):
    _, out = converted
    before = sorted(p.name for p in out.iterdir())
    assert main(["convert", "--config", "tiny", "--random-init", "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


def test_publish_replaces_only_when_complete(tmp_path):
    from facelm.errors import InputError
    from facelm.fileio import atomic_dir

    out = tmp_path / "a"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(InputError, match="--force"):
        with atomic_dir(out, force=False):
            pass
    with pytest.raises(RuntimeError):
        with atomic_dir(out, force=True) as tmp:
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("a stage failed")
    assert [p.name for p in out.iterdir()] == ["old.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    with atomic_dir(out, force=True) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (out / "old.txt").is_file()  # untouched until the block completes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]
    assert [p.name for p in out.iterdir()] == ["new.txt"]


def test_missing_weights(tmp_path, capsys):
    assert main(["convert", "--weights", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "o")]) == 2
    assert "nope.pt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_mismatched_weights(tiny_ckpt, tmp_path, capsys):
    assert main(["convert", "--config", "mnv2_1.0_sdd128", "--weights", str(tiny_ckpt),
                 "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "do not match" in err and "width" in err
    assert [p.name for p in tmp_path.iterdir()] == []  # no temp folder left


def test_random_init_needs_explicit_config(tmp_path, capsys):
    assert main(["convert", "--random-init", "--out", str(tmp_path / "o")]) == 2
    assert "random_init" in capsys.readouterr().err


def test_bad_targets(tmp_path, capsys):
    assert main(["convert", "--targets", "tflite,coreml", "--out", str(tmp_path / "o")]) == 2
    assert "coreml" in capsys.readouterr().err


def _onnx_with(op_type: str, path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    relu = helper.make_node("Relu", ["input"], ["r"], name="relu0")
    odd = helper.make_node(op_type, ["r"], ["heatmaps"], name="the_odd_node", domain="")
    g = helper.make_graph([relu, odd], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_unconvertible_op_names_op_and_node(tmp_path):
    from facelm.converters.tflite import check_onnx2tf_ops, explain_onnx2tf_failure
    from facelm.errors import ConversionError

    with pytest.raises(ConversionError, match=r"'FancyOp'.*'the_odd_node'"):
        check_onnx2tf_ops(_onnx_with("FancyOp", tmp_path / "a.onnx"))
    check_onnx2tf_ops(_onnx_with("Sigmoid", tmp_path / "b.onnx"))  # supported: no error
    log = ("\x1b[31mERROR:\x1b[0m The trace log is below.\nValueError: Cannot reshape a tensor\n"
           "\x1b[31mERROR:\x1b[0m onnx_op_name: the_odd_node\n")
    msg = explain_onnx2tf_failure(log, tmp_path / "b.onnx")
    assert "'Sigmoid'" in msg and "'the_odd_node'" in msg and "Cannot reshape" in msg
    # onnx2tf writes "/x" node names as "wa/x" in its quantizing runs
    onnx_path = _onnx_with("Sigmoid", tmp_path / "c.onnx")
    import onnx

    m = onnx.load(str(onnx_path))
    m.graph.node[1].name = "/head/odd"
    onnx.save(m, str(onnx_path))
    msg = explain_onnx2tf_failure("ValueError: bad\nonnx_op_name: wa/head/odd\n", onnx_path)
    assert "'Sigmoid'" in msg and "'/head/odd'" in msg


def test_tvm_missing_is_a_clear_error(monkeypatch):
    import builtins

    from facelm.android_bench import tvm_runners
    from facelm.converters import tvm as tv
    from facelm.runtime.tvm import TvmUnavailableError

    real = builtins.__import__

    def fake(name, *a, **k):
        if name == "tvm" or name.startswith("tvm."):
            raise ImportError("No module named 'tvm'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    # conversion and the bench harness share one loader and one error class
    for load in (tv.import_tvm, tvm_runners._import_tvm):
        with pytest.raises(TvmUnavailableError, match=r"need facelm\[tvm\]: pip install 'facelm\[tvm\]'"):
            load()


def test_bad_ndk_compiler(converted, tmp_path, monkeypatch):
    from facelm.converters.tvm import compile_android
    from facelm.errors import ConversionError

    monkeypatch.setenv("TVM_NDK_CC", str(tmp_path / "no-such-clang"))
    with pytest.raises(ConversionError, match="TVM_NDK_CC"):
        compile_android(converted[1] / "model.onnx", tmp_path / "tvm", (1, 3, 96, 96))


# TVM tuning: tests/test_converters_tvm_tuning.py (a two-kernel graph; the tiny config's prepacking)


def test_embed_metadata_replaces_without_leftovers(converted, tmp_path):
    from facelm.converters.tflite import embed_metadata
    from facelm.runtime.tflite import read_tflite_metadata

    f = tmp_path / "m.tflite"
    shutil.copyfile(converted[1] / "fp32.tflite", f)
    embed_metadata(f, {"a": list(range(50))})
    size = f.stat().st_size
    embed_metadata(f, {"a": list(range(50))})
    assert f.stat().st_size == size  # the old payload is replaced, not orphaned
    meta = read_tflite_metadata(f)
    assert meta["a"] == list(range(50)) and sorted(meta) == ["a", "body_sha256"]
    assert b'"a":[0,1,2' in f.read_bytes()  # compact JSON


def test_lone_tflite_is_sealed_and_a_changed_byte_is_refused(converted, tmp_path):
    """A copied-out .tflite carries its own sha256; one flipped weight byte is refused before it runs."""
    from facelm.errors import InputError
    from facelm.runtime import Landmarker
    from facelm.runtime.tflite_seal import check_tflite_seal

    f = tmp_path / "int8.tflite"
    shutil.copyfile(converted[1] / "int8.tflite", f)
    assert check_tflite_seal(f) is not None
    data = bytearray(f.read_bytes())
    data[len(data) // 3] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(InputError, match="modified after conversion"):
        Landmarker.create_from_model_path(f)


def test_tuning_plan_spends_the_whole_budget():
    from facelm.converters.tvm import tuning_plan

    assert tuning_plan(70, 36) == (2, 1)  # 36 x 2 >= 70: no task capped below the budget
    assert tuning_plan(210, 36) == (6, 5)
    assert tuning_plan(4, 35) == (1, 1)  # fewer trials than tasks: one each, as far as it goes
    assert tuning_plan(10_000, 10) == (1000, 64)
    for trials, tasks in ((70, 36), (210, 36), (1000, 35), (7, 3)):
        per_task, per_round = tuning_plan(trials, tasks)
        assert per_task * tasks >= trials and per_round * tasks <= max(trials, tasks)


def _imports_of(path: Path) -> list[tuple[str, str]]:
    """(module, name) of every ``from facelm... import name`` in a file, at any depth."""
    import ast

    out = []
    for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("facelm"):
            out += [(n.module, a.name) for a in n.names]
    return out


def test_conversion_modules_import_no_private_names_and_pipeline_is_not_imported_back():
    """Issue 22: the stages share the public StageState; no module reaches into another's private
    names (pipeline <-> arm64_check, quantization.chain -> debug), and nothing a stage imports
    imports the pipeline (no cycle through it)."""
    repo = Path(__file__).resolve().parents[1]
    files = sorted((repo / "converters").rglob("*.py")) + sorted((repo / "quantization").glob("*.py"))
    private = [(f.relative_to(repo).as_posix(), m, n) for f in files for m, n in _imports_of(f)
               if n.startswith("_") and n != "__version__"]
    assert private == []
    back = [f.relative_to(repo).as_posix() for f in files if f.name != "pipeline.py"
            and any(m == "facelm.converters.pipeline" for m, _ in _imports_of(f))]
    assert back == []
    # the model package does not import the converters (export_probe lives in converters/)
    model = [f.relative_to(repo).as_posix() for f in sorted((repo / "sdk" / "model").rglob("*.py"))
             if any(m.startswith("facelm.converters") for m, _ in _imports_of(f))]
    assert model == []
