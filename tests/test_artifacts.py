"""The artifact catalogue: one description per artifact, and the rules derived from it."""
from __future__ import annotations

import pytest

from facelm.artifacts import CATALOGUE, FORMATS, PLATFORMS, PRECISIONS, artifact_kind, artifact_names, tflite_names
from facelm.errors import ConfigError


def test_names_unique_and_fields_valid():
    names = [k.name for k in CATALOGUE]
    assert len(names) == len(set(names))
    assert len({k.file for k in CATALOGUE}) == len(CATALOGUE)
    for k in CATALOGUE:
        assert k.format in FORMATS and k.precision in PRECISIONS and k.platform in PLATFORMS
        assert k.file.endswith({"tflite": ".tflite", "onnx": ".onnx", "tvm_so": ".so", "tvm_tar": ".tar"}[k.format])


def test_gate_membership_follows_precision_and_weights():
    assert {k.name for k in CATALOGUE if k.float_reference} >= {"onnx", "fp32", "tvm_host"}
    assert "fp16" not in {k.name for k in CATALOGUE if k.float_reference}
    assert {k.name for k in CATALOGUE if k.int8_weights} >= {"dynamic_int8", "int8", "int8_io", "int16x8"}
    assert tflite_names(include_optional=False) == ("fp32", "fp16", "dynamic_int8", "int8", "int8_io")
    assert artifact_names(target_group="tvm", format="tvm_so", include_optional=False) == ("tvm_host",)
    assert "int8_mixed" not in tflite_names() and "int8_mixed" in artifact_names(format="tflite")


def test_unknown_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown artifact 'int4'"):
        artifact_kind("int4")


def test_onnx2tf_suffix_only_on_what_onnx2tf_makes():
    for k in CATALOGUE:
        assert bool(k.onnx2tf_suffix) == (k.name in tflite_names()), k.name
    assert len({k.onnx2tf_suffix for k in CATALOGUE if k.onnx2tf_suffix}) == len(tflite_names())


def test_onnx2tf_suffixes_are_the_files_onnx2tf_writes():
    """Each suffix is one onnx2tf 1.29 itself writes (``{output_file_name}_<suffix>.tflite`` in its source)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("onnx2tf")
    if spec is None:
        pytest.skip("onnx2tf not installed")
    source = (Path(list(spec.submodule_search_locations)[0]) / "onnx2tf.py").read_text(encoding="utf-8")
    for name in tflite_names():
        assert "{output_file_name}_" + artifact_kind(name).onnx2tf_suffix + ".tflite" in source, name


def test_converter_and_worker_tables_are_the_catalogue_field_by_field():
    """The converter's variants are the catalogue entries (every field), and the worker's spec
    carries each entry's fields unchanged and the file onnx2tf writes for it."""
    from facelm.converters.tflite import VARIANT_BY_NAME, VARIANTS, onnx2tf_file, worker_table

    assert [v.name for v in VARIANTS] == list(tflite_names())
    for v in VARIANTS:
        assert v == artifact_kind(v.name)  # dataclass equality: every field
    for row, k in zip(worker_table(VARIANTS), VARIANTS, strict=True):
        assert row == {"name": k.name, "file": f"model_{k.onnx2tf_suffix}.tflite", "precision": k.precision,
                       "weight_dtype": k.weight_dtype, "io": k.io}
        assert row["file"] == onnx2tf_file(k) and VARIANT_BY_NAME[k.name] is k


def test_worker_plans_each_variant_from_its_fields():
    """How the worker makes each variant follows from precision / weights / io, not from its name."""
    from facelm.converters.onnx2tf_worker import plan
    from facelm.converters.tflite import VARIANTS, worker_table

    groups = plan(worker_table(VARIANTS))
    assert {g: [v["name"] for v in vs] for g, vs in groups.items()} == {
        "float": ["fp32", "fp16"], "dynamic": ["dynamic_int8"], "calibrated": ["int8", "int8_io"],
        "int16": ["int16x8"]}
    assert [v["io"] for v in groups["calibrated"]] == ["float32", "int8"]
    renamed = [dict(v, name=f"x{i}") for i, v in enumerate(worker_table(VARIANTS))]
    assert [len(vs) for vs in plan(renamed).values()] == [len(vs) for vs in groups.values()]
    with pytest.raises(ValueError, match="no way to make 'odd'"):
        plan([{"name": "odd", "file": "x.tflite", "precision": "fp16", "weight_dtype": "int8", "io": "float32"}])


def _tflite_dtypes(path) -> tuple[str, set[str], set[str]]:
    """(input dtype, dtypes of constant tensors with >= 64 elements, dtypes of CONV_2D outputs) of a .tflite."""
    import numpy as np
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(path.read_bytes(), 0))
    names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    ops = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    g = model.subgraphs[0]
    dtype = lambda t: np.dtype(names[t.type].lower()).name  # noqa: E731
    const = {dtype(t) for t in g.tensors
             if model.buffers[t.buffer].data is not None and int(np.prod(t.shape)) >= 64}
    conv_out = {dtype(g.tensors[op.outputs[0]]) for op in g.operators
                if ops[model.operatorCodes[op.opcodeIndex].builtinCode] == "CONV_2D"}
    return dtype(g.tensors[g.inputs[0]]), const, conv_out


def test_written_tflite_files_have_the_catalogue_precisions(converted):
    """Every TFLite file conversion writes has the input dtype (``io``), weight dtype and
    activation precision its catalogue entry says."""
    from facelm.runtime import load_manifest

    _, out = converted  # (its drift gate is set to fail on purpose; every file is still written)
    manifest = load_manifest(out)
    written = [a.name for a in manifest.artifacts if a.format == "tflite"]
    assert set(tflite_names()) <= set(written)
    activations = {"fp32": "float32", "fp16": "float32", "int8": "int8", "int16": "int16"}  # fp16 computes in fp32
    for name in written:
        kind = artifact_kind(name)
        entry = manifest.artifact(name)
        assert (entry.precision, entry.weight_dtype, entry.io, entry.platform) == \
            (kind.precision, kind.weight_dtype, kind.io, kind.platform)
        io, const, conv_out = _tflite_dtypes(out / kind.file)
        assert io == kind.io, name
        assert kind.weight_dtype in const, (name, const)
        assert conv_out == {activations[kind.precision]}, (name, conv_out)


def test_named_constants_are_catalogue_entries():
    from facelm import artifacts

    for name in (artifacts.FP32_REFERENCE, artifacts.DEFAULT_RUNTIME_ARTIFACT, artifacts.TVM_HOST,
                 artifacts.TVM_ANDROID, artifacts.TVM_LINUX_ARM64):
        assert artifacts.artifact_kind(name).name == name
