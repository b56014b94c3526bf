"""Every fault switch of the virtual device, seen through the real adb client."""
from __future__ import annotations

import time

import pytest

from facelm.android_bench import records as rec
from facelm.android_bench.adb import (
    Adb, AdbTimeoutError, AmbiguousDeviceError, DeviceError, DeviceLostError, DeviceNotFoundError,
    DeviceOfflineError, DeviceUnauthorizedError, StorageFullError,
)
from facelm.android_bench.bench import bench
from facelm.android_bench.config import BenchOptions
from facelm.android_bench.transfer import RemoteFiles
from facelm.android_bench.virtual_device import Faults

pytestmark = pytest.mark.timeout(90)

FAST = dict(runs=3, warmup=1, repeats=1, timeout_s=20, bench_timeout_s=60)


def _wait_state(adb: Adb, serial: str, state: str, timeout: float = 15.0) -> str:
    end = time.monotonic() + timeout
    current = adb.get_state(serial)
    while current != state and time.monotonic() < end:
        time.sleep(0.25)
        current = adb.get_state(serial)
    return current


def test_unauthorized(adb, vdev_factory):
    vd = vdev_factory(Faults(unauthorized=True), connect=False)
    with pytest.raises(DeviceUnauthorizedError, match="unauthorized"):
        adb.connect(vd.serial)
    assert _wait_state(adb, vd.serial, "unauthorized") == "unauthorized"
    with pytest.raises(DeviceUnauthorizedError, match="Allow USB debugging"):
        adb.select(vd.serial)
    with pytest.raises(DeviceUnauthorizedError):
        adb.shell(vd.serial, "true")


def test_offline(adb, vdev_factory):
    vd = vdev_factory(Faults(offline=True), connect=False)
    with pytest.raises(DeviceError):  # adb waits for a handshake that never comes
        adb.connect(vd.serial, timeout_s=1.5)
    assert _wait_state(adb, vd.serial, "offline") == "offline"
    with pytest.raises(DeviceOfflineError, match="offline"):
        adb.select(vd.serial)


def test_selection_rules(adb, vdev_factory):
    a, b = vdev_factory(name="a"), vdev_factory(name="b")
    with pytest.raises(AmbiguousDeviceError) as err:
        adb.select()
    assert a.serial in str(err.value) and b.serial in str(err.value)
    assert adb.select(b.serial) == b.serial
    with_env = Adb(server_port=adb.server_port, env={**adb.env, "ANDROID_SERIAL": a.serial})
    assert with_env.select() == a.serial
    assert with_env.select(b.serial) == b.serial  # explicit beats the environment
    with pytest.raises(DeviceNotFoundError, match=a.serial):
        adb.select("127.0.0.1:1")


def test_storage_full_on_push(adb, vdev_factory, artifact_dir, tmp_path):
    vd = vdev_factory(Faults(storage_full=True))
    files = RemoteFiles(adb, vd.serial, "/data/local/tmp/facelm")
    with pytest.raises(StorageFullError, match="ran out of storage"):
        files.push(artifact_dir / "fp32.tflite")
    assert not list((vd.root / "data/local/tmp/facelm").glob("*.tflite"))
    with pytest.raises(DeviceError, match="storage"):
        bench(artifact_dir, BenchOptions(**FAST), serials=[vd.serial], results=tmp_path / "r.jsonl", adb=adb)


def test_quota_lets_small_files_through(adb, vdev_factory, plain_dir):
    vd = vdev_factory(Faults(quota_bytes=200_000))
    files = RemoteFiles(adb, vd.serial, "/data/local/tmp/facelm")
    small = files.push(plain_dir / "a_small.tflite")
    assert small.endswith("-a_small.tflite")
    with pytest.raises(StorageFullError):
        files.push(plain_dir / "b_big.tflite")


def test_binary_crash_is_recorded(adb, vdev_factory, artifact_dir, tmp_path):
    vd = vdev_factory(Faults(crash="segv"))
    results = tmp_path / "r.jsonl"
    res = bench(artifact_dir, BenchOptions(**FAST), serials=[vd.serial], results=results, adb=adb,
                artifacts=["fp32"])
    (r,) = rec.read_records(results)
    assert r["status"] == "failed" and res.records[0]["status"] == "failed"
    assert "exit 139" in r["error"] and "SIGSEGV" in r["error"]
    assert "fault injected" in r["stderr_tail"]
    assert r["latency_ms"] is None
    vd.faults.crash = "exit"
    res = bench(artifact_dir, BenchOptions(**FAST), serials=[vd.serial], results=None, adb=adb, artifacts=["fp32"])
    assert res.records[0]["status"] == "failed" and "exit 1" in res.records[0]["error"]


def test_slow_link_times_out(adb, vdev_factory, plain_dir):
    vd = vdev_factory(Faults(slow_bytes_per_s=4_000))
    t0 = time.monotonic()
    with pytest.raises(AdbTimeoutError, match="timed out"):
        adb.shell(vd.serial, "cat /proc/cpuinfo /proc/cpuinfo /proc/cpuinfo /proc/cpuinfo", timeout_s=0.5)
    assert time.monotonic() - t0 < 5
    vd.faults.slow_bytes_per_s = None
    with pytest.raises(AdbTimeoutError):
        adb.shell(vd.serial, "sleep 30", timeout_s=1.0)
    assert adb.shell(vd.serial, "echo alive").stdout.strip() == "alive"


def test_device_lost_mid_run_then_resume(adb, vdev_factory, plain_dir, tmp_path):
    # The link drops after 1 MB: the small model finishes, the 2 MB push breaks.
    vd = vdev_factory(Faults(drop_after_bytes=1_000_000))
    results = tmp_path / "r.jsonl"
    with pytest.raises(DeviceError, match="--resume") as err:
        bench(plain_dir, BenchOptions(**FAST), serials=[vd.serial], results=results, adb=adb)
    assert isinstance(err.value.result.errors[vd.serial], DeviceLostError)
    done = rec.read_records(results)
    assert [r["artifact"]["name"] for r in done] == ["a_small"]
    # adb reconnects TCP devices by itself; a real user would replug.
    if _wait_state(adb, vd.serial, "device") != "device":
        adb.connect(vd.serial)
    res = bench(plain_dir, BenchOptions(**FAST), serials=[vd.serial], results=results, adb=adb, resume=True)
    assert res.skipped == 1 and [r["artifact"]["name"] for r in res.records] == ["b_big"]
    assert [r["artifact"]["name"] for r in rec.read_records(results)] == ["a_small", "b_big"]


def test_several_devices_in_parallel(adb, vdev_factory, artifact_dir, tmp_path):
    a, b = vdev_factory(name="a"), vdev_factory(name="b")
    res = bench(artifact_dir, BenchOptions(**FAST), all_devices=True, results=tmp_path / "r.jsonl", adb=adb,
                artifacts=["fp32"])
    assert sorted(r["device"]["serial"] for r in res.records) == sorted([a.serial, b.serial])
    assert all(r["status"] == "ok" for r in res.records)
