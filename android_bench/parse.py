"""Parse what TFLite's ``benchmark_model`` prints, whatever its vintage.

Known variants (all timings in microseconds on the wire, returned in ms):

* 2.x (2020+)::

    count=14 first=40123 curr=35211 min=34901 max=40123 avg=35800.1 std=1320     <- warmup
    count=50 first=35123 curr=35022 min=34500 max=37800 avg=35300.2 std=601      <- inference
    Inference timings in us: Init: 45123, First inference: 40123, Warmup (avg): 35800.1, Inference (avg): 35300.2
    Memory footprint delta from the start of the tool (MB): init=6.1875 overall=12.3438

* 1.15-2.2: ``Average inference timings in us: Warmup: 83235, Init: 4254, Inference: 81556.6``
  and ``Peak memory footprint (MB): init=2.27734 overall=9.36719``;
* TF 1.x: ``Timings (microseconds): count=50 first=... avg=... std=...`` and
  ``Initialized session in 4.254ms.``;
* lines wrapped by logcat (``I tflite  : ...``) or ``INFO:`` prefixes, ``no stats``
  placeholders, and ``count=0`` blocks without statistics.
"""
from __future__ import annotations

import re

KEYS = ("init_ms", "first_ms", "warmup_avg_ms", "avg_ms", "min_ms", "max_ms", "std_ms", "count",
        "curr_ms", "memory_init_mb", "memory_overall_mb", "peak_memory_mb", "model_size_mb")

_NUM = r"([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)"
_STATS_RE = re.compile(r"count=(\d+)((?:\s+\w+=" + _NUM + r")*)")
_KV_RE = re.compile(r"(\w+)=" + _NUM)
_SUMMARY_NEW = re.compile(r"(?<!Average )Inference timings in us:(.*)", re.I)
_SUMMARY_OLD = re.compile(r"Average inference timings in us:(.*)", re.I)
_FIELD_RE = re.compile(r"([A-Za-z][A-Za-z ()]*?)\s*:\s*(" + _NUM[1:-1] + r"|no stats)")
_MEM_RE = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*"
                     r"init=" + _NUM + r"\s+overall=" + _NUM, re.I)
_PEAK_RE = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*" + _NUM, re.I)
_SESSION_RE = re.compile(r"Initialized session in\s*" + _NUM + r"\s*ms", re.I)
_SIZE_RE = re.compile(r"The input model file size \(MB\):\s*" + _NUM, re.I)


def _us(v: str | None) -> float | None:
    return None if v is None else float(v) / 1000.0


def _stats_blocks(text: str) -> list[dict[str, float]]:
    blocks = []
    for m in _STATS_RE.finditer(text):
        kv = {k: float(v) for k, v in _KV_RE.findall(m.group(2))}
        kv["count"] = float(m.group(1))
        blocks.append(kv)
    return blocks


def _summary_fields(line: str) -> dict[str, str]:
    out = {}
    for name, value in _FIELD_RE.findall(line):
        out[name.strip().lower()] = value
    return out


def parse_benchmark_output(text: str) -> dict:
    """Parse ``benchmark_model`` stdout into a flat dict of numbers (ms / MB).

    Returns at least the keys ``init_ms``, ``first_ms``, ``warmup_avg_ms``,
    ``avg_ms``, ``min_ms``, ``max_ms``, ``std_ms``, ``count``,
    ``memory_init_mb``, ``memory_overall_mb`` (None where the text has no value),
    plus ``curr_ms``, ``peak_memory_mb``, ``model_size_mb``. ``count`` is an int.
    Where both a summary line and a statistics line give a value, the summary wins
    for averages and the last statistics block (the measured runs, after the
    warmup block) gives count/min/max/std.
    """
    out: dict = dict.fromkeys(KEYS)
    blocks = [b for b in _stats_blocks(text) if b.get("count", 0) > 0 or len(b) > 1]
    if blocks:
        run = blocks[-1]
        out["count"] = int(run["count"])
        for key, name in (("min_ms", "min"), ("max_ms", "max"), ("avg_ms", "avg"), ("std_ms", "std"),
                          ("first_ms", "first"), ("curr_ms", "curr")):
            if name in run:
                out[key] = run[name] / 1000.0
        if len(blocks) >= 2 and "avg" in blocks[-2]:
            out["warmup_avg_ms"] = blocks[-2]["avg"] / 1000.0
        if len(blocks) >= 2 and "first" in blocks[0]:
            # The very first inference is the first of the warmup block.
            out["first_ms"] = blocks[0]["first"] / 1000.0
    m = None
    for m in _SUMMARY_NEW.finditer(text):
        pass
    if m is not None:
        f = _summary_fields(m.group(1))
        _set_us(out, "init_ms", f.get("init"))
        _set_us(out, "first_ms", f.get("first inference"))
        _set_us(out, "warmup_avg_ms", f.get("warmup (avg)"))
        _set_us(out, "avg_ms", f.get("inference (avg)"))
    old = None
    for old in _SUMMARY_OLD.finditer(text):
        pass
    if old is not None:
        f = _summary_fields(old.group(1))
        _set_us(out, "init_ms", f.get("init"))
        _set_us(out, "warmup_avg_ms", f.get("warmup"))
        _set_us(out, "avg_ms", f.get("inference") or f.get("no stats"))
    if out["init_ms"] is None:
        s = _SESSION_RE.search(text)
        if s:
            out["init_ms"] = float(s.group(1))
    mem = None
    for mem in _MEM_RE.finditer(text):
        pass
    if mem is not None:
        out["memory_init_mb"] = float(mem.group(1))
        out["memory_overall_mb"] = float(mem.group(2))
    peak = _PEAK_RE.search(text)
    if peak:
        out["peak_memory_mb"] = float(peak.group(1))
    size = _SIZE_RE.search(text)
    if size:
        out["model_size_mb"] = float(size.group(1))
    return out


def _set_us(out: dict, key: str, value: str | None) -> None:
    if value is None or value == "no stats":
        return
    out[key] = float(value) / 1000.0
