"""The CLI: facelm devices / bench / bench report / virtual-device."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from facelm.cli import main

pytestmark = pytest.mark.timeout(90)


def test_devices_cli(adb, vdev, capsys):
    assert main(["devices", "--adb-port", str(adb.server_port), "--facts", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    (row,) = [r for r in rows if r["serial"] == vdev.serial]
    assert row["state"] == "device" and row["facts"]["big_core_mask"] == "f0"
    assert main(["devices", "--adb-port", str(adb.server_port), "--facts"]) == 0
    out = capsys.readouterr().out
    assert "SoC sdm845" in out and "mask f0" in out


def test_bench_and_report_cli(adb, vdev, artifact_dir, tmp_path, capsys):
    results = tmp_path / "results.jsonl"
    base = ["bench", str(artifact_dir), "--adb-port", str(adb.server_port), "--serial", vdev.serial,
            "--runs", "3", "--warmup", "1", "--repeats", "1", "--results", str(results)]
    assert main(base + ["--json", str(tmp_path / "a.json"), "--threads", "2", "--drift", "--drift-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert "fp32" in out and "PSNR" in out
    assert main(base + ["--json", str(tmp_path / "b.json"), "--threads", "1", "--delegate", "cpu"]) == 0
    capsys.readouterr()
    assert len(results.read_text().splitlines()) == 4
    # --resume: nothing left to do
    assert main(base + ["--threads", "1", "--delegate", "cpu", "--resume"]) == 0
    assert "skipped 2" in capsys.readouterr().out
    assert main(["bench", "report", str(tmp_path / "a.json"), "--compare", str(tmp_path / "b.json"),
                 "--out", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "ratio mean" in out
    assert (tmp_path / "rep/report.md").is_file() and (tmp_path / "rep/latency.png").is_file()
    assert main(["bench", "report", str(tmp_path / "a.json"), "--format", "html", "--out", str(tmp_path / "h")]) == 0
    assert "<table>" in (tmp_path / "h/report.html").read_text()


def test_report_ratios(tmp_path):
    from facelm.android_bench.records import write_records
    from facelm.android_bench.report import report

    def r(mean, median):
        return {"schema": 1, "backend": "benchmark_model", "status": "ok",
                "device": {"serial": "s", "model": "M", "soc": "sdm845"}, "artifact": {"name": "int8"},
                "options": {"threads": 4, "delegate": "xnnpack"},
                "latency_ms": {"mean": mean, "median": median, "std": 1.0}}

    write_records(tmp_path / "a.jsonl", [r(20.0, 19.0)])
    write_records(tmp_path / "b.jsonl", [r(10.0, 9.5)])
    text = report(tmp_path / "a.jsonl", tmp_path / "o", tmp_path / "b.jsonl")["text"]
    row = text.splitlines()[2].split("|")
    assert [c.strip() for c in row[-4:-1]] == ["10.00", "0.500", "0.500"]


def test_cli_errors_are_one_line(adb, capsys, tmp_path):
    assert main(["bench", str(tmp_path / "missing.tflite"), "--local"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["bench", "report"]) == 2
    assert main(["bench", str(tmp_path), "--adb-port", str(adb.server_port), "--serial", "nope:1"]) == 2


def test_virtual_device_cli(adb, tmp_path):
    env = {**os.environ, "HOME": adb.env["HOME"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facelm.cli", "virtual-device", "--port", "0", "--sandbox", str(tmp_path / "sb"),
         "--connect", "--adb-port", str(adb.server_port), "--crash", "exit"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in first, first
        serial = first.split("listening on ")[1].split(";")[0]
        assert "adb connect" in proc.stdout.readline()
        res = adb.shell(serial, "getprop ro.board.platform; /data/local/tmp/benchmark_model --graph=/nope")
        assert res.stdout.splitlines()[0] == "sdm845" and res.returncode == 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        adb.disconnect(serial)
