"""Units: adb message framing, sandbox path mapping, push-once transfers, local backend, records."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from facelm.android_bench import records as rec
from facelm.android_bench.bench import bench, resolve_targets
from facelm.android_bench.config import BenchOptions
from facelm.android_bench.transfer import RemoteFiles
from facelm.android_bench.virtual_device import DeviceProfile, protocol as P
from facelm.android_bench.virtual_device.paths import device_path
from facelm.android_bench.virtual_device.server import rewrite_command
from facelm.errors import ConfigError, InputError

pytestmark = pytest.mark.timeout(60)


def test_message_roundtrip_and_checksum():
    msg = P.Message(P.A_WRTE, 7, 9, b"\x01\x02\xff")
    raw = P.pack(msg)
    cmd, a0, a1, n, check = P.unpack_header(raw[:24])
    assert (cmd, a0, a1, n, check) == (P.A_WRTE, 7, 9, 3, 0x102)
    assert struct.unpack("<I", raw[20:24])[0] == P.A_WRTE ^ 0xFFFFFFFF
    with pytest.raises(P.ProtocolError, match="magic"):
        P.unpack_header(raw[:20] + b"\0\0\0\0")
    banner = P.connect_banner({"ro.product.model": "M"}, ("shell_v2",))
    assert banner == b"device::ro.product.name=;ro.product.model=M;ro.product.device=;features=shell_v2"


def test_sandbox_path_mapping(tmp_path):
    assert device_path(tmp_path, "/data/local/tmp/a b") == tmp_path / "data/local/tmp/a b"
    assert device_path(tmp_path, "/data/local/tmp/../../../etc/passwd") is None
    assert device_path(tmp_path, "/etc/passwd") is None
    assert device_path(tmp_path, "relative") is None
    cmd = "cd /data/local/tmp && cat '/sys/x' --graph=/data/y in:/data/z /database /proc/cpuinfo"
    assert rewrite_command(tmp_path, cmd) == (
        f"cd {tmp_path}/data/local/tmp && cat '{tmp_path}/sys/x' --graph={tmp_path}/data/y "
        f"in:{tmp_path}/data/z /database {tmp_path}/proc/cpuinfo")


def test_profile_json_overrides():
    p = DeviceProfile.from_json('{"props": {"ro.product.model": "X"}, "clusters": '
                                '[{"first": 0, "count": 2, "max_freq_khz": 1000}]}')
    assert p.props["ro.product.model"] == "X" and p.props["ro.board.platform"] == "sdm845"
    assert p.num_cores == 2
    with pytest.raises(ConfigError, match="unknown"):
        DeviceProfile.from_json('{"nope": 1}')


def test_options_validate():
    with pytest.raises(ConfigError, match="delegate"):
        BenchOptions(delegate="tpu")
    with pytest.raises(ConfigError, match="runs"):
        BenchOptions(runs=0)


def test_push_once_by_sha256(adb, vdev, artifact_dir):
    files = RemoteFiles(adb, vdev.serial, "/data/local/tmp/facelm dir")  # a space: quoting matters
    remote = files.push(artifact_dir / "fp32.tflite")
    again = files.push(artifact_dir / "fp32.tflite")
    assert remote == again and (files.pushed, files.reused) == (1, 1)
    local_copy = vdev.root / remote.lstrip("/")
    assert local_copy.read_bytes() == (artifact_dir / "fp32.tflite").read_bytes()
    local_copy.write_bytes(b"corrupted")  # same name, other content: pushed again
    files.push(artifact_dir / "fp32.tflite")
    assert files.pushed == 2 and local_copy.read_bytes() == (artifact_dir / "fp32.tflite").read_bytes()
    files.cleanup()
    assert not (vdev.root / "data/local/tmp/facelm dir").exists()
    kept = RemoteFiles(adb, vdev.serial, "/data/local/tmp/kept", keep=True)
    kept.push(artifact_dir / "fp32.tflite")
    kept.cleanup()
    assert len(list((vdev.root / "data/local/tmp/kept").iterdir())) == 1


def test_pull_roundtrip(adb, vdev, tmp_path):
    (vdev.root / "data/local/tmp/blob.bin").write_bytes(bytes(range(256)) * 1000)
    adb.pull(vdev.serial, "/data/local/tmp/blob.bin", tmp_path / "blob.bin")
    assert (tmp_path / "blob.bin").read_bytes() == bytes(range(256)) * 1000
    res = adb.shell(vdev.serial, "echo out; echo err >&2; exit 7")
    assert (res.returncode, res.stdout, res.stderr) == (7, "out\n", "err\n")


def test_local_backend_and_manifest_drift(artifact_dir, tmp_path):
    res = bench(artifact_dir, BenchOptions(runs=5, warmup=1, drift=True, drift_samples=2, threads=1), local=True,
                results=tmp_path / "r.jsonl")
    r = {x["artifact"]["name"]: x for x in res.records}
    assert r["fp32"]["backend"] == "local-tflite" and r["fp32"]["device"]["serial"] == "local"
    lat = r["fp32"]["latency_ms"]
    assert lat["count"] == 5 and lat["basis"] == "per-run"
    assert lat["min"] <= lat["median"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert r["fp32"]["drift_vs_host"]["mean"] == 0.0
    assert r["dynamic_int8"]["drift_vs_host"]["mean"] > 0


def test_no_device_means_local(adb, models, tmp_path):
    assert adb.devices() == []
    res = bench(models["fp32"], BenchOptions(runs=3, warmup=1), adb=adb, results=None)
    assert "no device attached" in res.backend_note
    assert res.records[0]["backend"] == "local-tflite"


def test_tampered_artifact_is_refused(artifact_dir, tmp_path):
    import shutil

    d = tmp_path / "copy"
    shutil.copytree(artifact_dir, d)
    with open(d / "fp32.tflite", "ab") as fh:
        fh.write(b"x")
    with pytest.raises(InputError, match="fp32"):
        resolve_targets(d)


def test_drift_needs_manifest(models):
    with pytest.raises(InputError, match="manifest"):
        bench(models["fp32"], BenchOptions(drift=True), local=True, results=None)


def test_third_party_model_local_and_device(adb, vdev, face_landmark_tflite, tmp_path):
    opts = BenchOptions(runs=3, warmup=1, repeats=1, threads=2, timeout_s=20)
    local = bench(face_landmark_tflite, opts, local=True, results=None)
    dev = bench(face_landmark_tflite, opts, serials=[vdev.serial], adb=adb, results=None)
    for r in local.records + dev.records:
        assert r["status"] == "ok" and r["latency_ms"]["mean"] > 0
        assert r["artifact"]["name"] == "face_landmark" and r["artifact"]["manifest"] is None


def test_records_reader(tmp_path):
    p = tmp_path / "r.jsonl"
    rec.append_record(p, {"schema": 1, "x": float("nan"), "y": np.float32(1.5)})
    with open(p, "a") as fh:
        fh.write('{"schema": 1, "trunc')  # a crash mid-write leaves a partial last line
    (r,) = rec.read_records(p)
    assert r["x"] is None and r["y"] == 1.5
    p.write_text('{"schema": 1}\nnot json\n{"schema": 1}\n')
    with pytest.raises(InputError, match=":2"):
        rec.read_records(p)
    stats = rec.latency_stats([1.0, 2.0, 3.0, 4.0])
    assert stats["median"] == 2.5 and stats["p90"] == pytest.approx(3.7) and stats["std"] == pytest.approx(1.118034)
