"""``facelm convert --arm64-check``: every TFLite artifact and tvm_linux_arm64 run on aarch64 (qemu-user).

One tiny conversion (2 evaluation faces, so 2 emulated inferences per artifact, all in one
emulated python). Nothing here measures time.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import facelm.arm64 as arm64
from facelm.artifacts import artifact_kind, tflite_names
from facelm.cli import main
from facelm.converters.arm64_check import CHECK_KEY, COLUMN, LINUX_ARM64, report_cell, with_column
from facelm.runtime.manifest import ArtifactEntry

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arm64_support import arm64_root  # noqa: E402

pytestmark = pytest.mark.timeout(1200)

EM_AARCH64 = 183  # ELF e_machine
FACES = 2


def _entry(name: str, checks: dict | None = None) -> ArtifactEntry:
    k = artifact_kind(name)
    return ArtifactEntry(name=name, file=k.file, format=k.format, precision=k.precision, weight_dtype=k.weight_dtype,
                         io=k.io, platform=k.platform, sha256="0" * 64, bytes=1, checks=checks or {})


def _check(max_abs: float, exact: bool, drift: float, **kw) -> dict:
    return {CHECK_KEY: {"faces": 3, "max_abs_vs_host": max_abs, "bit_exact": exact,
                        "drift_vs_host": {"mean": drift, "max": drift}, "runtime": "x", **kw}}


def test_catalogue_and_report_column():
    k = artifact_kind(LINUX_ARM64)
    assert (k.file, k.format, k.platform, k.target_group, k.float_reference) == \
        ("tvm/linux_arm64.so", "tvm_so", "linux-arm64", "tvm", True)
    rows = ["| artifact |", "|---|", "| torch |", "| fp32 |", "| int8_io |", "| tvm_host |"]
    plain = SimpleNamespace(artifacts=[_entry("fp32"), _entry("int8_io"), _entry("tvm_host")])
    assert with_column(rows, plain) == rows  # nothing ran on aarch64: no column
    checked = SimpleNamespace(artifacts=[_entry("fp32", _check(3e-7, False, 1e-6)),
                                         _entry("int8_io", _check(0.0, True, 0.0, max_lsb_vs_host=0)),
                                         _entry("tvm_host")])
    out = with_column(rows, checked)
    assert out[0].endswith(f"| {COLUMN} |") and out[1].endswith("| --- |") and out[2].endswith("| – |")
    assert "max \\|Δ\\| 3e-07" in out[3] and "drift 0.0001% (3 faces)" in out[3]
    assert "bit-exact, drift 0%" in out[4]  # zero is recorded as zero, not left out
    assert out[5].endswith("| – |")
    lsb = _entry("int8", _check(0.02, False, 0.001, max_lsb_vs_host=1))
    assert report_cell(lsb).startswith("max \\|Δ\\| 0.02 (1 LSB), drift 0.1%")


def test_arm64_check_without_the_aarch64_root_fails_before_converting(tmp_path, monkeypatch, capsys):
    if arm64.missing_tools():
        pytest.skip("no qemu-user / aarch64 cross compilers")
    monkeypatch.setenv("FACELM_ARM64_ROOT", str(tmp_path / "no-root"))
    rc = main(["convert", "--config", "tiny", "--random-init", "--arm64-check", "--out", str(tmp_path / "out"),
               "--num-calib", "2", "--num-eval", "2"])
    err = capsys.readouterr().err
    assert rc == 2 and "facelm arm64 setup" in err and str(tmp_path / "no-root") in err
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def arm64_converted(tiny_ckpt, tmp_path_factory):
    """The session's tiny checkpoint (non-trivial heatmaps) converted with --arm64-check."""
    arm64_root()  # skips without qemu-user / cross compilers; builds the default root when missing
    pytest.importorskip("tvm")
    out = tmp_path_factory.mktemp("arm64conv") / "art"
    rc = main(["convert", "--config", "tiny", "--weights", str(tiny_ckpt), "--arm64-check", "--out", str(out),
               "--num-calib", "4", "--num-eval", str(FACES), "--latency-runs", "1", "--tvm-eval-faces", "1",
               "--int8-drift-max", "1"])
    assert rc == 0, "conversion failed or a gate failed"
    return out


def test_every_tflite_artifact_has_an_arm64_vs_host_figure(arm64_converted):
    man = json.loads((arm64_converted / "manifest.json").read_text())
    arts = {a["name"]: a for a in man["artifacts"]}
    tfl = [n for n in tflite_names() if n in arts]
    assert len(tfl) >= 5
    for name in tfl:
        c = arts[name]["checks"][CHECK_KEY]
        assert c["machine"] == "aarch64" and c["faces"] == FACES, (name, c)
        assert isinstance(c["max_abs_vs_host"], float) and c["max_abs_vs_host"] >= 0
        assert c["bit_exact"] == (c["max_abs_vs_host"] == 0.0)
        assert set(c["drift_vs_host"]) == {"mean", "max", "mean_px", "max_px"}
        # aarch64 XNNPACK vs x86 on a phone-class core: equal or within rounding (the heatmaps peak at
        # ~2.5e-3 here; dynamic_int8 differs by ~2e-6; qemu's "max" CPU put it off by 2.3e-3, drift 0.43)
        assert c["cpu"] == arm64.emulated_cpu()
        assert c["max_abs_vs_host"] < 1e-4 and c["drift_vs_host"]["max"] < 1e-4, (name, c)
    # XNNPACK's int8 kernels: bit-exact across ISAs (checked, not assumed); integer outputs in LSB
    assert arts["int8"]["checks"][CHECK_KEY]["bit_exact"] and arts["int8_io"]["checks"][CHECK_KEY]["bit_exact"]
    assert arts["int8_io"]["checks"][CHECK_KEY]["max_lsb_vs_host"] == 0


def test_tvm_linux_arm64_parity_measured_on_aarch64(arm64_converted):
    from facelm.runtime import load_manifest

    man = load_manifest(arm64_converted, verify=True)  # hashes of every file, the new one included
    e = man.artifact(LINUX_ARM64)
    so = arm64_converted / e.file
    head = so.read_bytes()[:20]
    assert head[:4] == b"\x7fELF" and int.from_bytes(head[18:20], "little") == EM_AARCH64
    assert e.platform == "linux-arm64" and e.format == "tvm_so"
    assert e.parity["measured_on"].startswith("aarch64") and e.parity["faces"] == FACES
    assert 0 <= e.parity["max_abs"] <= man.gates["parity_max_abs"]
    assert e.drift_vs_torch["mean"] < 1e-3  # on the same FACES faces (all of them here)
    c = e.checks[CHECK_KEY]
    assert c["machine"] == "aarch64" and c["parity_vs_torch"] == e.parity["max_abs"]
    assert c["covers"].startswith("tvm_android") and e.checks["linked_from"] == "tvm_android"
    assert "max_abs_vs_host" in c  # vs the host TVM module (same relax module, x86 code)
    report = (arm64_converted / "report.md").read_text()
    assert f"| {COLUMN} |" in report and "## arm64 (emulated)" in report
    line = next(x for x in report.splitlines() if x.startswith(f"- **{LINUX_ARM64}** (TVM runtime"))
    assert "measured on aarch64" in line and "covers the Android TVM library" in line


def test_local_bench_does_not_load_the_linux_arm64_library(arm64_converted, tmp_path):
    from facelm.android_bench.bench import bench
    from facelm.android_bench.config import BenchOptions

    work = tmp_path / "art"
    shutil.copytree(arm64_converted, work)
    res = bench(work, BenchOptions(runs=1, warmup=0, repeats=1), local=True, results=None,
                artifacts=None, allow_native_code=True)
    names = {r["artifact"]["name"] for r in res.records}
    assert "tvm_host" in names and LINUX_ARM64 not in names and "tvm_android" not in names
    assert all(r["status"] == "ok" for r in res.records)
