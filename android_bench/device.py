"""Facts about a device (model, SoC, ABI, cores, big-core mask, thermal), read over adb.

All facts come from one ``adb shell`` call running :data:`FACTS_SCRIPT`, whose
sections are tagged ``@@name``. Parsing is separate from reading, so it can be
tested on captured text.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass, field

from .adb import Adb

FACTS_SCRIPT = r"""
echo @@props; getprop
echo @@cpus
for c in /sys/devices/system/cpu/cpu[0-9]*; do
  echo "${c##*/cpu} $(cat $c/cpufreq/cpuinfo_max_freq 2>/dev/null || echo -) $(cat $c/cpufreq/scaling_governor 2>/dev/null || echo -)"
done
echo @@thermal
for z in /sys/class/thermal/thermal_zone*; do echo "$(cat $z/type 2>/dev/null | tr ' ' _) $(cat $z/temp 2>/dev/null)"; done
echo @@battery; cat /sys/class/power_supply/battery/temp 2>/dev/null
echo @@status; dumpsys thermalservice 2>/dev/null | grep -i 'Thermal Status'
echo @@cpuinfo; grep -i -E '^(Hardware|CPU part|model name)' /proc/cpuinfo 2>/dev/null
echo @@mem; grep MemTotal /proc/meminfo 2>/dev/null
echo @@end
"""

THERMAL_SCRIPT = r"""
echo @@thermal
for z in /sys/class/thermal/thermal_zone*; do echo "$(cat $z/type 2>/dev/null | tr ' ' _) $(cat $z/temp 2>/dev/null)"; done
echo @@battery; cat /sys/class/power_supply/battery/temp 2>/dev/null
echo @@status; dumpsys thermalservice 2>/dev/null | grep -i 'Thermal Status'
echo @@end
"""

#: System property an emulated device sets to its emulator's name (the arm64 virtual device
#: sets ``qemu-aarch64``); no phone has it.
EMULATED_PROP = "ro.facelm.emulated"

CPU_ZONE = re.compile(r"cpu|tsens|soc|apc|cluster|little|big|gold|silver|kryo", re.I)


@dataclass(frozen=True)
class Core:
    """One CPU core: index, max frequency (kHz, None if unreadable) and governor."""

    cpu: int
    max_freq_khz: int | None
    governor: str | None


@dataclass(frozen=True)
class Thermal:
    """A thermal snapshot. Temperatures in degrees C."""

    zones: dict = field(default_factory=dict)
    cpu_max_c: float | None = None
    battery_c: float | None = None
    status: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DeviceFacts:
    """What we record about a device alongside every result."""

    serial: str
    model: str | None
    manufacturer: str | None
    soc: str | None
    abi: str | None
    api_level: int | None
    release: str | None
    fingerprint: str | None
    cores: tuple = ()
    big_cores: tuple = ()
    big_core_mask: str | None = None
    governors: dict = field(default_factory=dict)
    mem_total_mb: float | None = None
    thermal: Thermal = field(default_factory=Thermal)
    #: the emulator when the device runs its code emulated (``ro.facelm.emulated``, e.g.
    #: ``"qemu-aarch64"`` on ``facelm virtual-device --arch arm64``), else None. An emulated
    #: device's numerics are real; its timings are not phone timings.
    emulator: str | None = None

    @property
    def emulated(self) -> bool:
        """True when the device's timings come from an emulator (never report them as a phone's)."""
        return bool(self.emulator)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["cores"] = [asdict(c) for c in self.cores]
        d["big_cores"] = list(self.big_cores)
        return d


def split_sections(text: str) -> dict[str, list[str]]:
    """Split ``@@name``-tagged output into {name: lines}."""
    sections: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.rstrip("\r")
        if line.startswith("@@"):
            current = line[2:].strip()
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def parse_getprop(lines: list[str]) -> dict[str, str]:
    """Parse ``getprop`` lines ``[key]: [value]``."""
    props = {}
    for line in lines:
        m = re.match(r"\[([^\]]+)\]:\s*\[(.*)\]\s*$", line)
        if m:
            props[m.group(1)] = m.group(2)
    return props


def _temp_c(raw: str) -> float | None:
    """Kernel temperatures are millidegrees on most SoCs, degrees or decidegrees on some."""
    try:
        v = float(raw)
    except ValueError:
        return None
    if abs(v) >= 1000:
        return v / 1000.0
    if abs(v) >= 200:
        return v / 10.0
    return v


def parse_thermal(sections: dict[str, list[str]]) -> Thermal:
    """Thermal zones (m°C), battery temperature (tenths of °C) and thermal status."""
    zones = {}
    for line in sections.get("thermal", []):
        parts = line.split()
        if len(parts) == 2:
            t = _temp_c(parts[1])
            if t is not None:
                name = parts[0]
                while name in zones:
                    name += "'"
                zones[name] = t
    cpu = [t for n, t in zones.items() if CPU_ZONE.search(n)]
    battery = None
    for line in sections.get("battery", []):
        try:
            battery = int(line.strip()) / 10.0
        except ValueError:
            pass
    status = None
    for line in sections.get("status", []):
        m = re.search(r"Thermal Status:\s*(\d+)", line, re.I)
        if m:
            status = int(m.group(1))
    return Thermal(zones=zones, cpu_max_c=max(cpu) if cpu else None, battery_c=battery, status=status)


def big_cores(cores: list[Core]) -> list[int]:
    """Cores faster than the slowest cluster (all cores when every core is equal).

    SD845: cpu4-7 (2.8 GHz) over cpu0-3 (1.77 GHz) -> [4, 5, 6, 7]. SD855's prime
    core and gold cluster together form the big cores.
    """
    known = [c for c in cores if c.max_freq_khz]
    if not known:
        return []
    slowest = min(c.max_freq_khz for c in known)
    big = [c.cpu for c in known if c.max_freq_khz > slowest]
    return sorted(big or [c.cpu for c in known])


def core_mask(cpus: list[int]) -> str | None:
    """Hex affinity mask for ``taskset`` (e.g. [4,5,6,7] -> 'f0')."""
    if not cpus:
        return None
    return format(sum(1 << c for c in cpus), "x")


def parse_facts(serial: str, text: str) -> DeviceFacts:
    """Build :class:`DeviceFacts` from :data:`FACTS_SCRIPT` output."""
    sec = split_sections(text)
    props = parse_getprop(sec.get("props", []))
    cores = []
    for line in sec.get("cpus", []):
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            freq = int(parts[1]) if parts[1].isdigit() else None
            gov = parts[2] if len(parts) > 2 and parts[2] != "-" else None
            cores.append(Core(int(parts[0]), freq, gov))
    cores.sort(key=lambda c: c.cpu)
    hardware = None
    for line in sec.get("cpuinfo", []):
        if line.lower().startswith("hardware"):
            hardware = line.split(":", 1)[1].strip()
    soc = props.get("ro.soc.model") or props.get("ro.board.platform") or hardware or props.get("ro.hardware")
    governors: dict[str, int] = {}
    for c in cores:
        if c.governor:
            governors[c.governor] = governors.get(c.governor, 0) + 1
    mem = None
    for line in sec.get("mem", []):
        m = re.search(r"MemTotal:\s*(\d+)", line)
        if m:
            mem = round(int(m.group(1)) / 1024.0, 1)
    api = props.get("ro.build.version.sdk")
    big = big_cores(cores)
    return DeviceFacts(
        serial=serial,
        model=props.get("ro.product.model"),
        manufacturer=props.get("ro.product.manufacturer"),
        soc=soc,
        abi=props.get("ro.product.cpu.abi"),
        api_level=int(api) if api and api.isdigit() else None,
        release=props.get("ro.build.version.release"),
        fingerprint=props.get("ro.build.fingerprint"),
        cores=tuple(cores),
        big_cores=tuple(big),
        big_core_mask=core_mask(big),
        governors=governors,
        mem_total_mb=mem,
        thermal=parse_thermal(sec),
        emulator=props.get(EMULATED_PROP) or None,
    )


def read_facts(adb: Adb, serial: str, timeout_s: float | None = None) -> DeviceFacts:
    """Read every fact in one shell call."""
    res = adb.shell(serial, FACTS_SCRIPT, timeout_s=timeout_s)
    return parse_facts(serial, res.stdout)


def read_thermal(adb: Adb, serial: str, timeout_s: float | None = None) -> Thermal:
    """A fresh thermal snapshot."""
    return parse_thermal(split_sections(adb.shell(serial, THERMAL_SCRIPT, timeout_s=timeout_s).stdout))


def wait_cool(read: "callable", limit_c: float | None, max_wait_s: float, poll_s: float = 5.0,
              sleep=time.sleep) -> tuple[Thermal, float]:
    """Poll ``read()`` until the CPU (or battery) temperature is at most ``limit_c``.

    Returns the last snapshot and the seconds waited. Gives up after ``max_wait_s``
    (the run proceeds; the record shows the temperature it started at).
    """
    waited = 0.0
    snap = read()
    if limit_c is None:
        return snap, 0.0
    while waited < max_wait_s:
        temp = snap.cpu_max_c if snap.cpu_max_c is not None else snap.battery_c
        if temp is None or temp <= limit_c:
            break
        step = min(poll_s, max_wait_s - waited)
        sleep(step)
        waited += step
        snap = read()
    return snap, waited
