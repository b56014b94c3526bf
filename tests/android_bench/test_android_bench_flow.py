"""The whole flow through the real adb client and the virtual device."""
from __future__ import annotations


import pytest

from facelm.android_bench import records as rec
from facelm.android_bench.bench import bench
from facelm.android_bench.config import BenchOptions
from facelm.android_bench.device import read_facts
from facelm.fileio import sha256_file

pytestmark = pytest.mark.timeout(120)

FAST = dict(runs=5, warmup=1, repeats=2, timeout_s=20, bench_timeout_s=60, drift_samples=2)


def test_discover_and_facts(adb, vdev):
    # What the real client sent: the version that skips checksums, and its features.
    version, maxdata, banner = vdev.host_hellos[-1]
    assert version == 0x01000001 and maxdata >= 4096
    assert banner.startswith(b"host::") and b"shell_v2" in banner
    entries = {e.serial: e for e in adb.devices()}
    assert entries[vdev.serial].state == "device"
    assert entries[vdev.serial].attrs["model"] == "POCOPHONE_F1"
    assert adb.select(vdev.serial) == vdev.serial
    facts = read_facts(adb, vdev.serial)
    assert facts.model == "POCOPHONE F1" and facts.soc == "sdm845" and facts.abi == "arm64-v8a"
    assert facts.api_level == 29
    assert [c.max_freq_khz for c in facts.cores] == [1766400] * 4 + [2803200] * 4
    assert facts.big_cores == (4, 5, 6, 7) and facts.big_core_mask == "f0"
    assert facts.governors == {"schedutil": 8}
    assert facts.thermal.cpu_max_c == pytest.approx(41.2)
    assert facts.thermal.battery_c == pytest.approx(31.2)
    assert facts.thermal.status == 0


def test_bench_records_drift_and_report(adb, vdev, artifact_dir, tmp_path):
    results = tmp_path / "results.jsonl"
    out = tmp_path / "this_run.json"
    opts = BenchOptions(drift=True, **FAST)
    res = bench(artifact_dir, opts, serials=[vdev.serial], results=results, json_out=out, adb=adb)
    assert [r["status"] for r in res.records] == ["ok", "ok"]
    lines = rec.read_records(results)
    assert len(lines) == 2 and rec.read_records(out) == lines
    r = {x["artifact"]["name"]: x for x in lines}
    fp32, dyn = r["fp32"], r["dynamic_int8"]
    assert fp32["backend"] == "benchmark_model"
    assert fp32["device"]["serial"] == vdev.serial and fp32["device"]["big_core_mask"] == "f0"
    assert fp32["artifact"]["sha256"] == sha256_file(artifact_dir / "fp32.tflite")
    lat = fp32["latency_ms"]
    assert lat["count"] == 10 and lat["basis"] == "per-invocation means"
    assert lat["min"] <= lat["median"] <= lat["max"] and lat["init"] > 0 and lat["first"] > 0
    assert fp32["memory_mb"]["overall"] is not None
    assert fp32["thermal"]["before"]["cpu_max_c"] == pytest.approx(41.2)
    # taskset pinned every run to the big cores
    log = (vdev.root / "taskset.log").read_text().splitlines()
    assert log and all(line.startswith("f0 ") for line in log)
    # drift: the fp32 artifact on the "device" is the host reference itself; the
    # dynamic-range model drifts a little.
    assert fp32["drift_vs_host"]["psnr_db"] is None and fp32["drift_vs_host"]["mean"] == 0.0
    assert dyn["drift_vs_host"]["psnr_db"] is not None and 15 < dyn["drift_vs_host"]["psnr_db"] < 80
    assert dyn["drift_vs_host"]["samples"] == 2 and dyn["drift_vs_host"]["reference_artifact"] == "fp32"
    assert dyn["drift_vs_host"]["reference"] == "host_fp32_tflite" and "drift" not in dyn
    # fixed performance mode was switched on for the run and off again afterwards
    assert (vdev.root / "fixed_performance").read_text() == "false"
    # pushed files were cleaned up (only the stand-in binary remains)
    left = sorted(p.name for p in (vdev.root / "data/local/tmp").iterdir())
    assert left == ["benchmark_model", "tvm_rpc"]

    from facelm.android_bench.report import report

    rep = report(results, tmp_path / "rep")
    text = rep["table"].read_text()
    assert "| device |" in text and "fp32" in text and "dynamic_int8" in text
    assert rep["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"



def test_thermal_wait_and_cooldown(adb, vdev, models):
    from facelm.android_bench.runners import BenchmarkModelRunner

    zone = vdev.root / "sys/class/thermal/thermal_zone1/temp"
    zone.write_text("52000\n")  # cpu-1-0-usr at 52 C: too hot for a 45 C limit
    slept = []

    def fake_sleep(s):
        slept.append(s)
        zone.write_text("39000\n")  # the phone cools while we wait

    opts = BenchOptions(runs=2, warmup=0, repeats=2, thermal_limit_c=45, thermal_wait_s=60, cooldown_s=7,
                        timeout_s=20)
    runner = BenchmarkModelRunner(adb, vdev.serial, opts, sleep=fake_sleep)
    try:
        runner.setup()
        m = runner.benchmark(runner.prepare(models["fp32"]))
    finally:
        runner.close()
    assert slept == [5.0, 7]  # one thermal poll, then the cool-down between the two invocations
    assert any("thermal waits" in n for n in m.notes)
    assert m.latency["count"] == 4


def test_wait_cool_gives_up():
    from facelm.android_bench.device import Thermal, wait_cool

    slept = []
    snap, waited = wait_cool(lambda: Thermal(cpu_max_c=80.0), 45.0, 12.0, poll_s=5.0, sleep=slept.append)
    assert waited == 12.0 and slept == [5.0, 5.0, 2.0] and snap.cpu_max_c == 80.0
    snap, waited = wait_cool(lambda: Thermal(battery_c=30.0), 45.0, 12.0, sleep=slept.append)
    assert waited == 0.0


def test_bench_request_resolve_plan_run(artifact_dir, tmp_path):
    """bench() is resolve -> plan -> run over one BenchRequest; planning touches no device and reads
    the resume keys; a second run with resume skips what the first wrote."""
    import dataclasses

    from facelm.android_bench.bench import plan_bench, resolve_backend, run_plan
    from facelm.android_bench.config import BenchRequest

    results = tmp_path / "r.jsonl"
    req = BenchRequest(artifact_dir, BenchOptions(**FAST), serials=["no-such-serial"], results=results)
    assert resolve_backend(req) == (False, "")  # a serial was asked for: devices, without asking adb
    assert resolve_backend(dataclasses.replace(req, local=True)) == (True, "")
    plan = plan_bench(req, local=False)  # no adb call: the serial is never checked here
    assert [t.name for t in plan.targets] == ["fp32", "dynamic_int8"] and not plan.local and plan.done == set()
    local = dataclasses.replace(req, serials=(), local=True)
    first = run_plan(plan_bench(local, True), local)
    assert [r["status"] for r in first.records] == ["ok", "ok"] and first.skipped == 0
    again = dataclasses.replace(local, resume=True)
    plan = plan_bench(again, True)
    assert plan.done == {rec.run_key(r) for r in rec.read_records(results)} and len(plan.done) == 2
    res = bench(again)
    assert res.records == [] and res.skipped == 2


def test_bench_takes_a_request_or_a_path_with_its_fields(artifact_dir):
    from facelm.android_bench.config import BenchRequest
    from facelm.errors import ConfigError

    with pytest.raises(ConfigError, match="BenchRequest alone"):
        bench(BenchRequest(artifact_dir), BenchOptions())
    with pytest.raises(ConfigError, match="unknown argument 'serial'"):
        bench(artifact_dir, serial=["x"])  # the field is serials
    with pytest.raises(ConfigError, match="tvm_port"):
        BenchRequest(artifact_dir, tvm_port=0)
