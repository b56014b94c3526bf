"""manifest.json schema, hash verification and the int8 helpers of the runtime."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facelm.runtime import (
    SCHEMA_VERSION,
    Manifest,
    ManifestError,
    Quantization,
    TensorSpec,
    load_manifest,
    sha256_file,
    write_manifest,
)
from facelm.runtime.manifest import ArtifactEntry, artifact_entry_for
from facelm.runtime.tflite import dequantize, quantize


def _contract():
    from facelm.alignment import reference_template
    from facelm.codec import DecodeConfig
    from facelm.layouts import JD106
    from facelm.preprocess import DEFAULT_NORMALIZATION
    from facelm.runtime import LayoutSpec, ModelContract, ModelSpec, PreprocessSpec

    model = ModelSpec(name="t", num_keypoints=106, input_size=(8, 8), heatmap_size=(2, 2), stride=(4.0, 4.0))
    pre = PreprocessSpec(DEFAULT_NORMALIZATION, tuple(map(tuple, reference_template(8).tolist())))
    return ModelContract(model, pre, LayoutSpec.of(JD106), DecodeConfig())


def _manifest(folder, names=("fp32",)):
    from facelm.artifacts import artifact_kind

    entries = []
    for name in names:
        f = artifact_kind(name).file
        (folder / f).write_bytes(name.encode() * 10)
        entries.append(artifact_entry_for(
            folder, name,
            input=TensorSpec("input", (1, 8, 8, 3), "NHWC", "int8", Quantization(0.02, -3)),
            output=TensorSpec("out", (1, 2, 2, 106), "NHWC", "float32"),
            drift_vs_torch={"mean": 0.001}))
    return Manifest(facelm_version="0.2.0", contract=_contract(), tools={"torch": "x"}, artifacts=entries)


def test_roundtrip(tmp_path):
    m = _manifest(tmp_path, ("fp32", "int8"))
    path = write_manifest(m, tmp_path)
    assert path.name == "manifest.json" and not list(tmp_path.glob(".manifest.*"))
    back = load_manifest(tmp_path)
    assert back.to_dict() == m.to_dict()
    a = back.artifact("fp32")
    assert a.input.quantization == Quantization(0.02, -3) and a.output.quantization is None
    assert a.sha256 == sha256_file(tmp_path / "fp32.tflite") and a.bytes == 40
    assert (a.precision, a.weight_dtype, a.platform) == ("fp32", "float32", "any")
    assert back.artifact("int8").weight_dtype == "int8"
    assert back.artifact_path("int8") == (tmp_path / "int8.tflite").resolve()
    assert back.model.stride == (4.0, 4.0) and back.layout.name == "jd106" and back.decode.method == "dark"
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_tampered_truncated_missing(tmp_path):
    write_manifest(_manifest(tmp_path), tmp_path)
    (tmp_path / "fp32.tflite").write_bytes(b"A" * 40)  # same size, other bytes
    with pytest.raises(ManifestError, match="sha256"):
        load_manifest(tmp_path)
    (tmp_path / "fp32.tflite").write_bytes(b"a")
    with pytest.raises(ManifestError, match="bytes"):
        load_manifest(tmp_path)
    (tmp_path / "fp32.tflite").unlink()
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(tmp_path)
    assert load_manifest(tmp_path, verify=False).names() == ["fp32"]


def test_schema_errors(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path)
    d = _manifest(tmp_path).to_dict()
    for change, match in (({"schema_version": 99}, "not supported"), ({"artifacts": [{"name": "x"}]}, r"artifacts\[0\]\.file is missing")):
        (tmp_path / "manifest.json").write_text(json.dumps({**d, **change}))
        with pytest.raises(ManifestError, match=match):
            load_manifest(tmp_path)
    del d["tools"]
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError, match="tools"):
        load_manifest(tmp_path)


def test_unknown_artifact_and_path_escape(tmp_path):
    m = _manifest(tmp_path)
    write_manifest(m, tmp_path)
    with pytest.raises(ManifestError, match="no artifact 'zz'"):
        load_manifest(tmp_path).artifact("zz")
    m.artifacts.append(ArtifactEntry("evil", "../a.tflite", "tflite", "fp32", "float32", "float32", "any",
                                     "0" * 64, 1))
    write_manifest(m, tmp_path)
    with pytest.raises(ManifestError, match="outside"):
        load_manifest(tmp_path)


def test_quantize_dequantize_int8():
    q = Quantization(0.1, -5)
    x = np.array([-20.0, -0.04, 0.0, 0.26, 30.0], dtype=np.float32)
    qi = quantize(x, q, "int8")
    np.testing.assert_array_equal(qi, [-128, -5, -5, -2, 127])  # saturates at both ends
    np.testing.assert_allclose(dequantize(qi, q), [-12.3, 0.0, 0.0, 0.3, 13.2], atol=1e-6)
    np.testing.assert_array_equal(dequantize(x, None), x)


@pytest.mark.parametrize("path, value, match", [
    (("preprocess", "std"), [0.0, 0.0, 0.0], r"preprocess\.std"),
    (("preprocess", "mean"), [1e30, 0, 0], r"preprocess\.mean"),
    (("preprocess", "color"), "YUV", r"preprocess\.color"),
    (("model", "input_size"), "abc", r"model\.input_size"),
    (("model", "stride"), [3.0, 4.0], r"model\.stride"),
    (("model", "num_keypoints"), 98, r"num_keypoints 98 differs"),
    (("layout", "name"), "nope", r"layout\.name"),
    (("decode", "method"), "soft", r"decode"),
    (("decode", "blur_kernel"), 4, r"decode"),
    (("model",), "a string", r"manifest field manifest\.model: expected an object"),
    (("artifacts",), "x", r"manifest\.artifacts: expected a list"),
    (("artifacts",), [1, 2], r"artifacts\[0\]: expected an object"),
])
def test_typed_sections_name_the_bad_field(tmp_path, path, value, match):
    d = _manifest(tmp_path).to_dict()
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError, match=match):
        load_manifest(tmp_path)


def test_missing_section_field_is_an_error_not_a_default(tmp_path):
    d = _manifest(tmp_path).to_dict()
    del d["model"]["stride"]
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError, match=r"model\.stride is missing"):
        load_manifest(tmp_path)


def test_duplicate_names_deep_json_and_symlink_escape(tmp_path):
    m = _manifest(tmp_path)
    d = m.to_dict()
    d["artifacts"] = d["artifacts"] * 2
    (tmp_path / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError, match="twice"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ManifestError, match="nested too deeply"):
        load_manifest(tmp_path)
    # an artifact symlinked outside its folder, with the matching hash, is refused
    outside = tmp_path.parent / f"{tmp_path.name}-outside.bin"
    outside.write_bytes(b"secret" * 10)
    (tmp_path / "fp32.tflite").unlink()
    (tmp_path / "fp32.tflite").symlink_to(outside)
    m.artifacts[0].sha256, m.artifacts[0].bytes = sha256_file(outside), outside.stat().st_size
    write_manifest(m, tmp_path)
    with pytest.raises(ManifestError, match="outside its folder"):
        load_manifest(tmp_path)


def test_size_is_checked_before_hashing(tmp_path, monkeypatch):
    import facelm.runtime.manifest as mf

    write_manifest(_manifest(tmp_path), tmp_path)
    (tmp_path / "fp32.tflite").write_bytes(b"x" * 1000)
    monkeypatch.setattr(mf, "sha256_file", lambda p: pytest.fail("hashed a file of the wrong size"))
    with pytest.raises(ManifestError, match="1000 bytes"):
        load_manifest(tmp_path)


def test_deep_json_is_refused_before_parsing_even_with_a_raised_recursion_limit(tmp_path):
    """json.loads recurses in C: with the recursion limit raised (TensorFlow/TVM do), 100k levels crashed the process."""
    import sys

    from facelm.runtime.manifest import MAX_JSON_DEPTH, json_depth

    old = sys.getrecursionlimit()
    sys.setrecursionlimit(1_000_000)
    try:
        (tmp_path / "manifest.json").write_text("[" * 100_000 + "]" * 100_000)
        with pytest.raises(ManifestError, match="nested too deeply"):
            load_manifest(tmp_path)
    finally:
        sys.setrecursionlimit(old)
    assert json_depth('{"a": [1, {"b": "[[[[\\"]"}]}') == 3
    assert json_depth("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1)) == MAX_JSON_DEPTH + 1
