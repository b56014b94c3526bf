"""manifest.json schema, hash verification and the int8 helpers of the runtime."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sdk.runtime import (
    SCHEMA_VERSION,
    Manifest,
    ManifestError,
    Quantization,
    TensorSpec,
    load_manifest,
    sha256_file,
    write_manifest,
)
from sdk.runtime.manifest import ArtifactEntry, artifact_entry_for
from sdk.runtime.tflite import dequantize, quantize


def _manifest(folder, files=("a.tflite",)):
    entries = []
    for f in files:
        (folder / f).write_bytes(f.encode() * 10)
        entries.append(artifact_entry_for(
            folder, f.split(".")[0], f, "tflite",
            input=TensorSpec("input", [1, 8, 8, 3], "NHWC", "int8", Quantization(0.02, -3)),
            output=TensorSpec("out", [1, 2, 2, 5], "NHWC", "float32"),
            drift={"drift_mean": 0.001}))
    return Manifest(facelm_version="0.1.0", model={"name": "t"}, preprocess={"mean": [0.5] * 3},
                    layout={"name": "jd106"}, decode={"method": "dark"}, tools={"torch": "x"},
                    artifacts=entries)


def test_roundtrip(tmp_path):
    m = _manifest(tmp_path, ("a.tflite", "b.tflite"))
    path = write_manifest(m, tmp_path)
    assert path.name == "manifest.json" and not list(tmp_path.glob(".manifest.*"))
    back = load_manifest(tmp_path)
    assert back.to_dict() == m.to_dict()
    a = back.artifact("a")
    assert a.input.quantization == Quantization(0.02, -3) and a.output.quantization is None
    assert a.sha256 == sha256_file(tmp_path / "a.tflite") and a.bytes == 80
    assert back.artifact_path("b") == tmp_path / "b.tflite"
    assert json.loads(path.read_text())["schema_version"] == SCHEMA_VERSION


def test_tampered_truncated_missing(tmp_path):
    write_manifest(_manifest(tmp_path), tmp_path)
    (tmp_path / "a.tflite").write_bytes(b"A" * 80)  # same size, other bytes
    with pytest.raises(ManifestError, match="sha256"):
        load_manifest(tmp_path)
    (tmp_path / "a.tflite").write_bytes(b"a")
    with pytest.raises(ManifestError, match="bytes"):
        load_manifest(tmp_path)
    (tmp_path / "a.tflite").unlink()
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(tmp_path)
    assert load_manifest(tmp_path, verify=False).names() == ["a"]


def test_schema_errors(tmp_path):
    with pytest.raises(ManifestError, match="no manifest"):
        load_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path)
    d = _manifest(tmp_path).to_dict()
    for change, match in (({"schema_version": 99}, "not supported"), ({"artifacts": [{"name": "x"}]}, "malformed")):
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
    m.artifacts.append(ArtifactEntry("evil", "../a.tflite", "tflite", "0" * 64, 1))
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
