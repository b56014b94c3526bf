"""facelm.android_bench.virtual_device.procmem: one resident-memory reader, NaN when unreadable."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from facelm.android_bench import runners
from facelm.android_bench.virtual_device import benchmark_model, procmem


def test_reads_vmrss_in_mib(tmp_path):
    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmPeak:\t  9000 kB\nVmRSS:\t   2048 kB\n")
    assert procmem.rss_mb(str(status)) == 2.0
    assert procmem.rss_mb() > 1.0  # this process, on Linux


def test_unreadable_or_malformed_is_nan_not_zero(tmp_path):
    assert math.isnan(procmem.rss_mb(str(tmp_path / "missing")))
    bad = tmp_path / "status"
    bad.write_text("VmRSS:\tlots kB\n")
    assert math.isnan(procmem.rss_mb(str(bad)))
    bad.write_text("Name:\tpython\n")
    assert math.isnan(procmem.rss_mb(str(bad)))


def test_without_proc_the_own_reading_is_the_peak(tmp_path, monkeypatch):
    """The sandboxed virtual device has no /proc: its stand-in reads the peak resident size."""
    monkeypatch.setattr(procmem, "STATUS_PATH", str(tmp_path / "no-proc"))
    got = procmem.rss_mb()
    assert got == procmem.peak_rss_mb() and got > 1.0  # a real figure, not NaN or 0.0
    assert math.isnan(procmem.rss_mb(str(tmp_path / "no-proc")))  # an explicit file stays strict


def test_host_runner_and_stand_in_share_the_one_reader():
    assert runners.rss_mb is procmem.rss_mb
    assert benchmark_model.rss_mb is procmem.rss_mb


def test_stand_in_loads_the_reader_as_a_sibling_without_facelm(tmp_path):
    """The aarch64 stand-in runs benchmark_model.py as a script, with no facelm on the path."""
    src = Path(procmem.__file__).parent
    code = ("import sys; sys.modules['facelm'] = None; sys.path.insert(0, sys.argv[1]); "
            "import runpy; g = runpy.run_path(sys.argv[1] + '/benchmark_model.py', run_name='stand_in'); "
            "print(g['rss_mb'].__module__, g['rss_mb']() > 0)")
    out = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True, cwd=tmp_path,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["procmem", "True"]
