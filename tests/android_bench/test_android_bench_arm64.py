"""An arm64 virtual device: the stand-in benchmark_model runs as an aarch64 process under qemu-user,
so `bench --drift` measures drift on aarch64 LiteRT numerics. Emulated timings are never checked."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from facelm.android_bench.bench import bench
from facelm.android_bench.config import BenchOptions
from facelm.android_bench.device import read_facts
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
    res = adb.shell(arm64_vdev.serial, "getprop ro.facelm.emulated")
    assert res.returncode == 0 and res.stdout.strip() == "qemu-aarch64"


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
