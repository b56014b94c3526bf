"""Issue 12 (hardening), device side: no stale files on the (virtual) device after a run,
after a killed run and --resume, or after a failed check."""
from __future__ import annotations

from pathlib import Path

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


# ------------------------------------------------------- the virtual device's sandbox is real
def test_shell_cannot_read_or_write_host_paths(adb, vdev, tmp_path):
    """Issue: `adb shell cat /etc/passwd` read the host file and `touch` created host files."""
    import facelm

    secret = tmp_path / "host-secret.txt"  # beside the sandbox, not in it
    secret.write_text("HOSTSECRET\n")
    assert vdev.jail is not None
    res = adb.shell(vdev.serial, f"cat {secret}; cat /etc/passwd; ls /root /home")
    assert res.returncode != 0 and "HOSTSECRET" not in res.stdout and "root:x:0" not in res.stdout
    pkg = Path(facelm.__file__).parent
    adb.shell(vdev.serial, f"touch {tmp_path}/made-by-device; mkdir -p {tmp_path}/dir-by-device/x; "
                           f"echo pwned > {secret}; touch {pkg}/made-by-device")
    assert not (tmp_path / "made-by-device").exists() and not (tmp_path / "dir-by-device").exists()
    assert secret.read_text() == "HOSTSECRET\n" and not (pkg / "made-by-device").exists()
    # the device still works inside its sandbox
    res = adb.shell(vdev.serial, "echo inside > /data/local/tmp/probe && cat /data/local/tmp/probe", check=True)
    assert res.stdout.strip() == "inside" and (vdev.root / "data/local/tmp/probe").read_text() == "inside\n"


def test_push_and_pull_refuse_symlinks_leaving_the_sandbox(adb, vdev, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("HOSTSECRET\n")
    adb.shell(vdev.serial, f"ln -s {outside}/secret.txt /data/local/tmp/link; ln -s {outside} /data/local/tmp/dirlink",
              check=True)
    assert (vdev.root / "data/local/tmp/link").is_symlink()
    with pytest.raises(DeviceError):
        adb.pull(vdev.serial, "/data/local/tmp/link", tmp_path / "got.txt")
    assert not (tmp_path / "got.txt").exists()
    payload = tmp_path / "payload.bin"
    payload.write_bytes(b"x" * 100)
    with pytest.raises(DeviceError):
        adb.push(vdev.serial, payload, "/data/local/tmp/dirlink/pwned.bin")
    with pytest.raises(DeviceError):
        adb.push(vdev.serial, payload, "/data/local/tmp/link")  # replacing the link is fine, following it not
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "HOSTSECRET\n"


def test_bench_workdir_cannot_create_host_folders(adb, vdev, plain_dir, tmp_path):
    """Issue: `facelm bench --serial VD --workdir /some/host/path` created that host folder."""
    target = tmp_path / "host" / "folder"
    with pytest.raises(DeviceError):
        bench(plain_dir, BenchOptions(**FAST, workdir=str(target)), serials=[vdev.serial], results=None, adb=adb,
              artifacts=["a_small"])
    assert not (tmp_path / "host").exists()


def test_device_refuses_to_start_without_a_namespace(tmp_path, monkeypatch):
    from facelm.android_bench.virtual_device import VirtualDevice, server

    monkeypatch.setattr(server.shutil, "which", lambda name: None)  # no bwrap on this machine
    with pytest.raises(DeviceError, match="--unsafe-host-shell"):
        VirtualDevice(tmp_path / "sb").start()
    vd = VirtualDevice(tmp_path / "sb2", unsafe_host_shell=True).start()
    try:
        assert vd.jail is None and vd.port > 0
    finally:
        vd.stop()


def test_cli_offers_unsafe_host_shell(capsys):
    from facelm.cli import main

    assert main(["virtual-device", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--unsafe-host-shell" in out and "refuses to start" in out and "--authorized-key" in out


def _fake_adb_key(seed: int) -> str:
    """An adbkey.pub-format key with a random 2048-bit modulus (nobody holds its private key)."""
    import base64
    import random
    import struct

    n = random.Random(seed).getrandbits(2048) | (1 << 2047) | 1
    words = 64
    raw = struct.pack("<II", words, 0) + n.to_bytes(256, "little") + b"\0" * 256 + struct.pack("<I", 65537)
    return base64.b64encode(raw).decode() + " nobody@nowhere"


def test_authorized_keys_let_only_the_keyed_host_in(adb, tmp_path):
    """Optional auth: with authorized_keys, only a host whose adb key signs the token connects."""
    import time

    from facelm.android_bench.adb import DeviceUnauthorizedError
    from facelm.android_bench.virtual_device import VirtualDevice

    pub = Path(adb.env["HOME"]) / ".android" / "adbkey.pub"
    if not pub.is_file():
        pytest.skip(f"the adb client made no key at {pub}")
    good = VirtualDevice(tmp_path / "good", authorized_keys=(pub, _fake_adb_key(1))).start()
    bad = VirtualDevice(tmp_path / "bad", authorized_keys=(_fake_adb_key(2),)).start()
    try:
        adb.connect(good.serial)
        end = time.monotonic() + 15
        while adb.get_state(good.serial) != "device" and time.monotonic() < end:
            time.sleep(0.2)
        assert adb.shell(good.serial, "echo in", check=True).stdout.strip() == "in"
        with pytest.raises(DeviceUnauthorizedError):
            adb.connect(bad.serial)
        with pytest.raises(DeviceError):
            adb.shell(bad.serial, "true")
    finally:
        for vd in (good, bad):
            adb.disconnect(vd.serial)
            vd.stop()


def test_adb_key_parsing_refuses_junk():
    from facelm.android_bench.virtual_device.server import parse_adb_public_key
    from facelm.errors import ConfigError

    assert parse_adb_public_key(_fake_adb_key(3))[1] == 65537
    for junk in ("", "abc", "QUFBQQ== x"):
        with pytest.raises(ConfigError, match="adb public key"):
            parse_adb_public_key(junk)
