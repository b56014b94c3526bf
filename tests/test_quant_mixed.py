"""facelm quant-debug on a real (tiny) conversion: JSON rows on stdout, the manifest's GPU checks, one-line errors."""
from __future__ import annotations

import json
import shutil

import pytest

pytest.importorskip("tensorflow")

from facelm.cli import main  # noqa: E402


def test_quant_debug_json_on_stdout(converted, capsys):
    rc, out = converted
    assert rc == 1  # the fixture sets an impossible drift gate (--int8-drift-max 1e-12): converted, gate failed
    capsys.readouterr()
    assert main(["quant-debug", str(out), "--format", "json", "--top-k", "2", "--no-chain"]) == 0
    rows = json.loads(capsys.readouterr().out)  # stdout is the JSON alone (logs on stderr)
    assert [r["index"] for r in rows] == list(range(len(rows))) and len(rows) > 10
    assert {"index", "op", "name", "sqnr_db", "rmse_over_scale", "clipped", "drift_if_float"} <= set(rows[0])
    assert {r["op"] for r in rows} >= {"CONV_2D", "DEPTHWISE_CONV_2D"}
    ranked = [r for r in rows if r["drift_if_float"] is not None]
    assert 1 <= len(ranked) <= 2
    traced = [r for r in rows if r["module"]]
    assert traced and all(r["module"].startswith(("backbone", "head", "adapter", "final")) for r in traced), traced[:3]


def test_manifest_records_gpu_readiness(converted):
    from facelm.runtime.manifest import load_manifest

    m = load_manifest(converted[1])
    for name in ("fp32", "int8"):
        gpu = m.artifact(name).checks["gpu_delegate"]
        assert isinstance(gpu["gpu_ready"], bool) and gpu["ops"] > 0


def test_bad_inputs_are_one_line(converted, tmp_path, capsys):
    _, out = converted
    bad = tmp_path / "art"
    shutil.copytree(out, bad)
    # data that cannot be rebuilt: a calibration folder that does not exist here
    assert main(["quant-debug", str(bad), "--calib", str(tmp_path / "nowhere"), "--no-chain"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("facelm: error: cannot rebuild the calibration faces")
    # hash mismatch
    with open(bad / "int8.tflite", "r+b") as f:
        f.seek(100)
        b = f.read(1)
        f.seek(100)
        f.write(bytes([b[0] ^ 1]))
    assert main(["quant-debug", str(bad), "--no-chain"]) == 2
    assert "sha256" in capsys.readouterr().err.strip().splitlines()[-1]
    # no int8 artifact
    m = json.loads((bad / "manifest.json").read_text())
    m["artifacts"] = [a for a in m["artifacts"] if a["precision"] != "int8"]
    (bad / "manifest.json").write_text(json.dumps(m))
    assert main(["quant-debug", str(bad)]) == 2
    assert "has no int8 TFLite artifact" in capsys.readouterr().err.strip().splitlines()[-1]


def test_quant_debug_keep_float_writes_int8_mixed(converted, tmp_path, capsys):
    """``--keep-float auto`` through the library flow (facelm.quant_debug): a target the all-int8
    model already meets keeps nothing float, and the folder gets int8_mixed.tflite beside the report."""
    from facelm.artifacts import artifact_kind
    from facelm.runtime.tflite import load_interpreter

    _, out = converted
    qd = tmp_path / "qd"
    assert main(["quant-debug", str(out), "--top-k", "0", "--no-chain", "--keep-float", "auto",
                 "--drift-target", "1.0", "--out", str(qd)]) == 0
    assert "int8_mixed.tflite" in capsys.readouterr().err
    rows = json.loads((qd / "layers.json").read_text())
    assert rows and all(r["drift_if_float"] is None for r in rows)  # --top-k 0: no layer ranked
    report = (qd / "report.md").read_text()
    assert "Selective quantization (int8_mixed)" in report and "kept float: nothing" in report
    mixed = qd / artifact_kind("int8_mixed").file
    assert len(load_interpreter(mixed).get_input_details()) == 1  # LiteRT loads it
