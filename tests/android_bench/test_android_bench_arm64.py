"""An arm64 virtual device: the stand-in benchmark_model runs as an aarch64 process under qemu-user,
so `bench --drift` measures drift on aarch64 LiteRT numerics. Emulated timings are never checked."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from facelm.android_bench.bench import bench
from facelm.android_bench.config import BenchOptions
from facelm.android_bench.device import read_facts
from facelm.android_bench.records import write_records
from facelm.android_bench.report import NOT_COMPARABLE, report
from facelm.cli import main
from facelm.android_bench.virtual_device import VirtualDevice

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from arm64_support import arm64_root  # noqa: E402

pytestmark = pytest.mark.timeout(900)

# one timed run, two drift samples: each benchmark_model call starts an emulated python (~10 s)
EMULATED = dict(runs=1, warmup=0, repeats=1, timeout_s=60, bench_timeout_s=600, drift_samples=2)


@pytest.fixture
def arm64_vdev(adb, tmp_path):
    vd = VirtualDevice(tmp_path / "sandbox-arm64", arch="arm64", arm64_root=arm64_root()).start()
    adb.connect(vd.serial)
    yield vd
    adb.disconnect(vd.serial)
    vd.stop()


def test_arm64_device_reports_arm64_and_emulation(adb, arm64_vdev):
    facts = read_facts(adb, arm64_vdev.serial)
    assert facts.abi == "arm64-v8a"
    assert facts.emulator == "qemu-aarch64" and facts.emulated
    res = adb.shell(arm64_vdev.serial, "getprop ro.facelm.emulated")
    assert res.returncode == 0 and res.stdout.strip() == "qemu-aarch64"


def test_host_device_is_not_emulated(adb, vdev):
    facts = read_facts(adb, vdev.serial)
    assert facts.emulator is None and not facts.emulated and facts.to_dict()["emulator"] is None


def test_virtual_device_cli_arch_arm64_answers_devices_with_arm64(adb, artifact_dir, tmp_path, capsys):
    """`facelm virtual-device --arch arm64` in its own process; `facelm devices --facts` reads arm64-v8a."""
    root = arm64_root()  # skips without qemu-user
    env = {**os.environ, "HOME": adb.env["HOME"], "FACELM_ARM64_ROOT": str(root.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facelm.cli", "virtual-device", "--arch", "arm64", "--port", "0",
         "--sandbox", str(tmp_path / "sb"), "--adb-port", str(adb.server_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    serial = None
    try:
        first = proc.stdout.readline()
        assert "[arm64-v8a (aarch64 under qemu-user" in first and "listening on 127.0.0.1:" in first, first
        serial = first.split("listening on ")[1].split(";")[0]
        assert main(["devices", "--adb-port", str(adb.server_port), "--connect", serial, "--facts", "--json"]) == 0
        rows = json.loads(capsys.readouterr().out)
        (row,) = [r for r in rows if r["serial"] == serial]
        assert row["facts"]["abi"] == "arm64-v8a" and row["facts"]["emulator"] == "qemu-aarch64"
        # its stand-in benchmark_model is an aarch64 process (one emulated run of a 64 px model)
        adb.push(serial, artifact_dir / "fp32.tflite", "/data/local/tmp/m.tflite")
        res = adb.shell(serial, "/data/local/tmp/benchmark_model --graph=/data/local/tmp/m.tflite --num_runs=1 "
                                "--warmup_runs=0", timeout_s=300)
        assert res.returncode == 0 and "Emulated: aarch64 under qemu-aarch64" in res.stdout, res.stdout[-500:]
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if serial:
            adb.disconnect(serial)
    log = (tmp_path / "sb" / "benchmark_model.log").read_text().split()
    assert log and log[0] == "aarch64", log


def test_bench_drift_is_computed_on_aarch64(adb, arm64_vdev, artifact_dir, tmp_path):
    res = bench(artifact_dir, BenchOptions(drift=True, **EMULATED), serials=[arm64_vdev.serial],
                results=tmp_path / "results.jsonl", adb=adb)
    assert [r["status"] for r in res.records] == ["ok", "ok"]
    r = {x["artifact"]["name"]: x for x in res.records}
    dyn = r["dynamic_int8"]["drift_vs_host"]
    assert dyn["samples"] == 2 and dyn["reference_artifact"] == "fp32"
    assert dyn["psnr_db"] is not None and 15 < dyn["psnr_db"] < 80
    # fp32 on aarch64 XNNPACK vs x86: equal or within float rounding
    assert r["fp32"]["drift_vs_host"]["mean"] < 1e-4
    # every benchmark_model invocation (timing and drift outputs) ran on aarch64 instructions
    log = (arm64_vdev.root / "benchmark_model.log").read_text().splitlines()
    assert len(log) >= 4 and all(line.split()[0] == "aarch64" for line in log), log
    # the records say so, and the report keeps the aarch64 drift but no latency figure
    assert all(x["emulated"] is True and x["device"]["emulator"] == "qemu-aarch64" for x in res.records)
    text = report(tmp_path / "results.jsonl", tmp_path / "rep")["text"]
    rows = [line for line in text.splitlines() if "dynamic_int8" in line]
    assert len(rows) == 1 and "[emulated: qemu-aarch64]" in rows[0] and NOT_COMPARABLE in rows[0]
    assert f"{dyn['mean']:.4f}" in rows[0]


def _record(emulated: bool, emulator: str | None) -> dict:
    return {"schema": 1, "backend": "benchmark_model", "status": "ok", "emulated": emulated,
            "device": {"serial": "s", "model": "M", "soc": "sdm845", "emulator": emulator},
            "artifact": {"name": "int8"}, "options": {"threads": 1, "delegate": "xnnpack"},
            "latency_ms": {"mean": 1234.5, "median": 1200.0, "std": 3.0, "min": 1100.0},
            "memory_mb": {"overall": 80.0}, "drift_vs_host": {"mean": 0.0123, "psnr_db": 41.5}}


def test_report_marks_emulated_latency_not_comparable_and_keeps_drift(tmp_path, capsys):
    write_records(tmp_path / "emu.jsonl", [_record(True, "qemu-aarch64")])
    write_records(tmp_path / "phone.jsonl", [_record(False, None)])
    out = report(tmp_path / "emu.jsonl", tmp_path / "o", compare=tmp_path / "phone.jsonl")
    header, row = out["text"].splitlines()[0], out["text"].splitlines()[2]
    cells = dict(zip([c.strip() for c in header.split("|")], [c.strip() for c in row.split("|")]))
    for col in ("mean", "median", "min", "mem_mb"):
        assert cells[col] == NOT_COMPARABLE, (col, cells)
    # no emulated timing or memory figure in any of the emulated run's own cells
    assert all("1234" not in v and "80.00" not in v for k, v in cells.items() if k != "other mean"), cells
    assert cells["nme_drift_vs_host"] == "0.0123" and cells["psnr_db"] == "41.50"
    assert cells["ratio mean"] == "—" and cells["other mean"] == "1234.50"  # the phone's own figure stays
    assert out["plot"] is None  # nothing to plot: the only row is emulated
    assert "[emulated]" in out["table"].read_text()
    # the phone-side report: figures, no emulation note
    phone = report(tmp_path / "phone.jsonl", tmp_path / "p")["text"]
    assert "1234.50" in phone and NOT_COMPARABLE not in phone
    # older records without the top-level key: the device facts' emulator is enough
    rec = _record(True, "qemu-aarch64")
    del rec["emulated"]
    write_records(tmp_path / "old.jsonl", [rec])
    assert NOT_COMPARABLE in report(tmp_path / "old.jsonl", tmp_path / "q")["text"]
    # the bench CLI summary line says the same
    from facelm.cli.bench import _summary

    _summary([{**_record(True, "qemu-aarch64"), "error": None}])
    line = capsys.readouterr().out
    assert NOT_COMPARABLE in line and "1234" not in line
