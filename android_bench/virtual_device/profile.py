"""The device a virtual device pretends to be, and the sandbox that stands in for its disk.

A :class:`DeviceProfile` is plain data (JSON-loadable) giving system properties,
CPU clusters, thermal zones and battery temperature. :func:`build_sandbox` writes
it as a small root filesystem under a host directory::

    ROOT/data/local/tmp/          the writable place, as on a phone
    ROOT/sys/devices/system/cpu/  cpuN/cpufreq/{cpuinfo_max_freq,scaling_governor,...}
    ROOT/sys/class/thermal/       thermal_zoneN/{type,temp} (millidegrees C)
    ROOT/sys/class/power_supply/battery/temp   (tenths of degrees C)
    ROOT/proc/{cpuinfo,meminfo}
    ROOT/system/bin/              getprop, taskset, dumpsys, cmd stand-ins

The default profile is Snapdragon 845-like (Pocophone F1): four Kryo 385 Silver
cores at 1.766 GHz (cpu0-3) and four Kryo 385 Gold cores at 2.803 GHz (cpu4-7).
"""
from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from facelm.android_bench.device import EMULATED_PROP  # the property an emulated device sets (its emulator)
from facelm.errors import ConfigError


@dataclass(frozen=True)
class CpuCluster:
    """Cores ``first..first+count-1`` sharing one max frequency (kHz) and governor."""

    first: int
    count: int
    max_freq_khz: int
    governor: str = "schedutil"
    part: str = "0x803"


@dataclass(frozen=True)
class DeviceProfile:
    """Everything the virtual device reports about itself."""

    props: dict = field(default_factory=lambda: {
        "ro.product.name": "beryllium",
        "ro.product.model": "POCOPHONE F1",
        "ro.product.device": "beryllium",
        "ro.product.manufacturer": "Xiaomi",
        "ro.product.brand": "Xiaomi",
        "ro.board.platform": "sdm845",
        "ro.hardware": "qcom",
        "ro.product.cpu.abi": "arm64-v8a",
        "ro.product.cpu.abilist": "arm64-v8a,armeabi-v7a,armeabi",
        "ro.build.version.sdk": "29",
        "ro.build.version.release": "10",
        "ro.build.fingerprint": "Xiaomi/beryllium/beryllium:10/QKQ1.190828.002/V12.0.3.0.QEJMIXM:user/release-keys",
        "ro.serialno": "vd0000845",
    })
    clusters: tuple = (
        CpuCluster(0, 4, 1766400, "schedutil", "0x805"),
        CpuCluster(4, 4, 2803200, "schedutil", "0x804"),
    )
    hardware: str = "Qualcomm Technologies, Inc SDM845"
    thermal_zones: tuple = (("cpu-0-0-usr", 38500), ("cpu-1-0-usr", 41200), ("battery", 31000), ("xo-therm", 33000))
    battery_temp_decic: int = 312
    thermal_status: int = 0
    mem_total_kb: int = 5_860_000
    fixed_performance_mode: bool = True

    @property
    def num_cores(self) -> int:
        return sum(c.count for c in self.clusters)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "DeviceProfile":
        """Load a profile; missing keys take the SD845-like defaults."""
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"device profile is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError("device profile must be a JSON object")
        base = cls()
        kwargs = {}
        for key, value in raw.items():
            if not hasattr(base, key):
                raise ConfigError(f"unknown device profile key {key!r}")
            if key == "props":
                value = {**base.props, **value}
            elif key == "clusters":
                value = tuple(CpuCluster(**c) for c in value)
            elif key == "thermal_zones":
                value = tuple((str(n), int(t)) for n, t in value)
            kwargs[key] = value
        return cls(**kwargs)


REMOTE_TMP = "/data/local/tmp"
#: Virtual device architectures: "host" runs the stand-ins as host processes; "arm64" runs
#: them as aarch64 processes under qemu-user (facelm.arm64), numerics of a real arm64 CPU.
ARCHES = ("host", "arm64")


def profile_for_arch(profile: DeviceProfile, arch: str) -> DeviceProfile:
    """``profile`` as a device of ``arch`` reports it: arm64 sets arm64-v8a and EMULATED_PROP."""
    if arch not in ARCHES:
        raise ConfigError(f"virtual device arch must be one of {ARCHES}, got {arch!r}")
    if arch == "host":
        return profile
    props = {**profile.props, "ro.product.cpu.abi": "arm64-v8a", "ro.product.cpu.abilist": "arm64-v8a",
             EMULATED_PROP: "qemu-aarch64"}
    return DeviceProfile(**{**{f: getattr(profile, f) for f in profile.__dataclass_fields__}, "props": props})


def _write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


def _cpuinfo(profile: DeviceProfile) -> str:
    blocks = []
    for cluster in profile.clusters:
        for cpu in range(cluster.first, cluster.first + cluster.count):
            blocks.append(
                f"processor\t: {cpu}\nBogoMIPS\t: 38.40\n"
                "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop\n"
                f"CPU implementer\t: 0x51\nCPU architecture: 8\nCPU variant\t: 0x7\nCPU part\t: {cluster.part}\nCPU revision\t: 12\n"
            )
    return "\n".join(blocks) + f"\nHardware\t: {profile.hardware}\n"


def _script(python_body: str) -> str:
    return f"#!{sys.executable}\n{python_body}"


def build_sandbox(root: Path, profile: DeviceProfile) -> Path:
    """Write ``profile`` as a root filesystem under ``root``; return ``root``.

    Existing files under ``ROOT/data`` are kept, so a restarted device still has
    what was pushed to it (a real phone keeps /data/local/tmp across reconnects).
    """
    root = Path(root).resolve()
    (root / REMOTE_TMP.lstrip("/")).mkdir(parents=True, exist_ok=True)
    cpu = root / "sys/devices/system/cpu"
    n = profile.num_cores
    _write(cpu / "online", f"0-{n - 1}\n")
    _write(cpu / "possible", f"0-{n - 1}\n")
    for cluster in profile.clusters:
        for c in range(cluster.first, cluster.first + cluster.count):
            d = cpu / f"cpu{c}/cpufreq"
            _write(d / "cpuinfo_max_freq", f"{cluster.max_freq_khz}\n")
            _write(d / "cpuinfo_min_freq", "300000\n")
            _write(d / "scaling_cur_freq", f"{cluster.max_freq_khz}\n")
            _write(d / "scaling_governor", f"{cluster.governor}\n")
    for i, (name, temp) in enumerate(profile.thermal_zones):
        _write(root / f"sys/class/thermal/thermal_zone{i}/type", f"{name}\n")
        _write(root / f"sys/class/thermal/thermal_zone{i}/temp", f"{temp}\n")
    bat = root / "sys/class/power_supply/battery"
    _write(bat / "temp", f"{profile.battery_temp_decic}\n")
    _write(bat / "capacity", "87\n")
    _write(bat / "status", "Charging\n")
    _write(root / "proc/cpuinfo", _cpuinfo(profile))
    _write(root / "proc/meminfo", f"MemTotal:       {profile.mem_total_kb} kB\nMemFree:         812345 kB\n")
    _write(root / "props.json", json.dumps(profile.props, indent=1))
    _write(root / "profile.json", profile.to_json())
    _install_tools(root, profile)
    return root


def _install_tools(root: Path, profile: DeviceProfile) -> None:
    """Write the toybox-like stand-ins for getprop, taskset, dumpsys and cmd."""
    bin_dir = root / "system/bin"
    exe = stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH
    props = json.dumps(str(root / "props.json"))
    _write(bin_dir / "getprop", _script(f"""import json, sys
props = json.load(open({props}))
if len(sys.argv) > 1:
    print(props.get(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else ""))
else:
    for k in sorted(props):
        print(f"[{{k}}]: [{{props[k]}}]")
"""), exe)
    # taskset MASK CMD...: check the mask against this profile's cores, then run CMD
    # (the host may have fewer cores than the profile, so we never pin for real).
    _write(bin_dir / "taskset", _script(f"""import os, sys
n = {profile.num_cores}
if len(sys.argv) < 3:
    sys.stderr.write("usage: taskset [-p] MASK [PID | COMMAND [ARGS...]]\\n"); sys.exit(1)
try:
    mask = int(sys.argv[1], 16)
except ValueError:
    sys.stderr.write(f"taskset: bad mask '{{sys.argv[1]}}'\\n"); sys.exit(1)
if mask == 0 or mask >> n:
    sys.stderr.write(f"taskset: sched_setaffinity: Invalid argument\\n"); sys.exit(1)
with open(os.path.join({json.dumps(str(root))}, "taskset.log"), "a") as f:
    f.write(f"{{mask:x}} {{' '.join(sys.argv[2:])}}\\n")
os.execvp(sys.argv[2], sys.argv[2:])
"""), exe)
    bat = root / "sys/class/power_supply/battery/temp"
    _write(bin_dir / "dumpsys", _script(f"""import sys
what = sys.argv[1] if len(sys.argv) > 1 else ""
if what == "battery":
    t = open({json.dumps(str(bat))}).read().strip()
    print("Current Battery Service state:\\n  AC powered: false\\n  USB powered: true\\n  status: 2\\n  health: 2\\n  present: true\\n  level: 87\\n  scale: 100\\n  voltage: 4213\\n  temperature: " + t + "\\n  technology: Li-ion")
elif what == "thermalservice":
    print("IsStatusOverride: false\\nThermalEventListeners:\\n\\tcallbacks: 1\\nThermal Status: {profile.thermal_status}\\nCached temperatures:")
else:
    sys.stderr.write(f"Can't find service: {{what}}\\n"); sys.exit(1)
"""), exe)
    supported = "true" if profile.fixed_performance_mode else "false"
    _write(bin_dir / "cmd", _script(f"""import sys
args = sys.argv[1:]
if args[:2] == ["power", "set-fixed-performance-mode-enabled"]:
    if not {supported.capitalize()}:
        sys.stderr.write("Unknown command: set-fixed-performance-mode-enabled\\n"); sys.exit(255)
    with open({json.dumps(str(root / "fixed_performance"))}, "w") as f:
        f.write(args[2] if len(args) > 2 else "")
    sys.exit(0)
sys.stderr.write("cmd: Can't find service: " + (args[0] if args else "") + "\\n"); sys.exit(20)
"""), exe)


def _install_stand_in(root: Path, name: str, module: str, project_root: Path | None) -> str:
    """Write /data/local/tmp/NAME as a shell script that runs ``python -m MODULE "$@"``.

    Returns its device path. The script runs this interpreter with the project on PYTHONPATH.
    """
    project_root = project_root or Path(__file__).resolve().parents[2]
    path = Path(root) / REMOTE_TMP.lstrip("/") / name
    body = (
        "#!/bin/sh\n"
        f"PYTHONPATH={_sh_quote(str(project_root))}${{PYTHONPATH:+:$PYTHONPATH}} "
        f"exec {_sh_quote(sys.executable)} -m {module} \"$@\"\n"
    )
    _write(path, body, 0o755)
    return f"{REMOTE_TMP}/{name}"


#: Guest python wrapper of an arm64 device: a host shell script, so that the emulated
#: python can exec "itself" (qemu-user does not follow execve into aarch64 binaries).
ARM64_PYTHON = "system/bin/python3-aarch64"


def _install_arm64_python(root: Path, arm64_root) -> Path:
    """Write ROOT/system/bin/python3-aarch64: ``qemu-aarch64 -L AROOT AROOT/usr/bin/python3.11 "$@"``
    with the aarch64 site folder as its only PYTHONPATH (``arm64_root``: a facelm.arm64.Arm64Root)."""
    from facelm.arm64 import emulated_cpu  # a phone-class core, not qemu's "max" (see facelm.arm64.run)

    path = Path(root) / ARM64_PYTHON
    q = _sh_quote
    body = ("#!/bin/sh\n"
            "unset PYTHONHOME LD_LIBRARY_PATH LD_PRELOAD\n"
            f"PYTHONPATH={q(str(arm64_root.site))} PYTHONNOUSERSITE=1 FACELM_VD_PYTHON={q(str(path))} "
            f"QEMU_CPU={q(emulated_cpu())} exec qemu-aarch64 -L {q(str(arm64_root.path))} {q(str(arm64_root.python))} \"$@\"\n")
    _write(path, body, 0o755)
    return path


def _install_arm64_stand_in(root: Path, name: str, script: str, arm64_root) -> str:
    """/data/local/tmp/NAME running the self-contained stand-in SCRIPT (no facelm imports) on aarch64."""
    python = _install_arm64_python(root, arm64_root)
    src = Path(__file__).resolve().parent / script
    body = f"#!/bin/sh\nFACELM_VD_EMULATED=qemu-aarch64 exec {_sh_quote(str(python))} {_sh_quote(str(src))} \"$@\"\n"
    _write(Path(root) / REMOTE_TMP.lstrip("/") / name, body, 0o755)
    return f"{REMOTE_TMP}/{name}"


def install_benchmark_model(root: Path, project_root: Path | None = None, arm64_root=None) -> str:
    """Put the stand-in ``benchmark_model`` (ai-edge-litert inside) at /data/local/tmp/benchmark_model.

    With ``arm64_root`` (a built :class:`facelm.arm64.Arm64Root`) it runs as an aarch64
    process under qemu-user (aarch64 LiteRT/XNNPACK numerics; its timings are emulated)."""
    if arm64_root is not None:
        return _install_arm64_stand_in(root, "benchmark_model", "benchmark_model.py", arm64_root)
    return _install_stand_in(root, "benchmark_model", "facelm.android_bench.virtual_device.benchmark_model", project_root)


def install_tvm_rpc(root: Path, project_root: Path | None = None, arm64_root=None) -> str:
    """Put a stand-in ``tvm_rpc`` (TVM's Python RPC server) at /data/local/tmp/tvm_rpc (aarch64 with ``arm64_root``)."""
    if arm64_root is not None:
        return _install_arm64_stand_in(root, "tvm_rpc", "tvm_rpc.py", arm64_root)
    return _install_stand_in(root, "tvm_rpc", "facelm.android_bench.virtual_device.tvm_rpc", project_root)


def _sh_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


def sandbox_env(root: Path) -> dict[str, str]:
    """Environment for commands run on the virtual device."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANDROID_SERIAL",)}
    env["PATH"] = f"{Path(root) / 'system/bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["TMPDIR"] = str(Path(root) / REMOTE_TMP.lstrip("/"))
    env["FACELM_VD_ROOT"] = str(root)
    return env
