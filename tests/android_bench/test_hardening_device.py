"""Issue 12 (hardening), device side: no stale files on the (virtual) device after a run,
after a killed run and --resume, or after a failed check."""
from __future__ import annotations

import pytest

from facelm.android_bench import records as rec
from facelm.android_bench.bench import bench
from facelm.android_bench.config import BenchOptions
from facelm.android_bench.transfer import JOURNAL, RemoteFiles
from facelm.errors import DeviceError

pytestmark = pytest.mark.timeout(120)

FAST = dict(runs=2, warmup=1, repeats=1, timeout_s=20, bench_timeout_s=60, cooldown_s=0.0)
WORKDIR = "/data/local/tmp/facelm"


def _left(vd, workdir: str = WORKDIR) -> list[str] | None:
    """Names in the sandbox's workdir, or None when the folder is gone."""
    d = vd.root / workdir.lstrip("/")
    return sorted(p.name for p in d.iterdir()) if d.exists() else None


def test_resume_removes_what_the_killed_run_pushed(adb, vdev_factory, plain_dir, tmp_path):
    vd = vdev_factory()
    results = tmp_path / "r.jsonl"
    bench(plain_dir, BenchOptions(**FAST), serials=[vd.serial], results=results, adb=adb, artifacts=["a_small"])
    assert _left(vd) is None  # a finished run leaves nothing
    # A run killed mid-way (no cleanup ran): its model and an input tensor stay on the device.
    killed = RemoteFiles(adb, vd.serial, WORKDIR)
    killed.push(plain_dir / "a_small.tflite")
    killed.push_bytes(b"\x00" * 64, "input0.bin", tmp_path)
    assert len(_left(vd)) >= 2
    res = bench(plain_dir, BenchOptions(**FAST), serials=[vd.serial], results=results, adb=adb, resume=True)
    assert res.skipped == 1 and [r["artifact"]["name"] for r in res.records] == ["b_big"]
    assert [r["artifact"]["name"] for r in rec.read_records(results)] == ["a_small", "b_big"]
    assert _left(vd) is None, _left(vd)  # the killed run's files, the journal and the folder are gone


def test_failed_check_leaves_no_empty_workdir(adb, vdev_factory, plain_dir, tmp_path):
    vd = vdev_factory()
    opts = BenchOptions(**FAST, benchmark_binary="/data/local/tmp/no-such-benchmark_model")
    with pytest.raises(DeviceError, match="no executable benchmark_model"):
        bench(plain_dir, opts, serials=[vd.serial], results=tmp_path / "r.jsonl", adb=adb)
    assert _left(vd) is None


def test_existing_folder_is_kept_and_keep_writes_no_journal(adb, vdev_factory, plain_dir, tmp_path):
    vd = vdev_factory()
    mine = "/data/local/tmp/mine"
    (vd.root / mine.lstrip("/")).mkdir(parents=True)
    bench(plain_dir, BenchOptions(**FAST, workdir=mine), serials=[vd.serial], results=None, adb=adb,
          artifacts=["a_small"])
    assert _left(vd, mine) == []  # the user's folder stays, emptied of what the run pushed
    bench(plain_dir, BenchOptions(**FAST, keep=True), serials=[vd.serial], results=None, adb=adb,
          artifacts=["a_small"])
    left = _left(vd)
    assert JOURNAL not in left and any(n.endswith("-a_small.tflite") for n in left)
