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
_STATS_RE = re.compile(r"count=(\d+)((?:[ \t]+\w+=" + _NUM + r")*)")  # one line: blocks never merge
_KV_RE = re.compile(r"(\w+)=" + _NUM)
_SUMMARY_NEW = re.compile(r"(?<!Average )Inference timings in us:(.*)", re.I)
_SUMMARY_OLD = re.compile(r"Average inference timings in us:(.*)", re.I)
#: Summary line formats (newer, older): record key -> the line's field names tried in order.
_SUMMARY_FORMATS = (
    (_SUMMARY_NEW, {"init_ms": ("init",), "first_ms": ("first inference",), "warmup_avg_ms": ("warmup (avg)",),
                    "avg_ms": ("inference (avg)",)}),
    (_SUMMARY_OLD, {"init_ms": ("init",), "warmup_avg_ms": ("warmup",), "avg_ms": ("inference", "no stats")}),
)
_FIELD_RE = re.compile(r"([A-Za-z][A-Za-z ()]*?)\s*:\s*(" + _NUM[1:-1] + r"|no stats)")
_MEM_RE = re.compile(r"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\):\s*"
                     r"init=" + _NUM + r"\s+overall=" + _NUM, re.I)
_PEAK_RE = re.compile(r"Overall peak memory footprint \(MB\) via periodic monitoring:\s*" + _NUM, re.I)
_SESSION_RE = re.compile(r"Initialized session in\s*" + _NUM + r"\s*ms", re.I)
_SIZE_RE = re.compile(r"The input model file size \(MB\):\s*" + _NUM, re.I)


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
    warmup block) gives count/min/max/std. Op-profile tables (``--enable_op_profiling``) are
    left out here (their own ``Timings`` lines are no latency); :func:`parse_op_profile` reads them.
    """
    text, _ = split_op_profile(text)
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
    for regex, names in _SUMMARY_FORMATS:  # the last line of each format wins; the older format last
        m = None
        for m in regex.finditer(text):
            pass
        if m is not None:
            f = _summary_fields(m.group(1))
            for key, tried in names.items():
                _set_us(out, key, next((f[n] for n in tried if f.get(n)), None))
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


# ------------------------------------------------------------------ --enable_op_profiling tables
#: The two profile blocks the tool prints (ProfilingListener), as the record keys them.
PROFILE_SECTIONS = {"Profiling Info for Benchmark Initialization": "init",
                    "Operator-wise Profiling Info for Regular Benchmark Runs": "runs"}
#: Table titles (StatsCalculator) -> keys.
PROFILE_TABLES = {"Run Order": "run_order", "Top by Computation Time": "top_by_time",
                  "Top by Memory Use": "top_by_memory", "Summary by node type": "by_type"}
#: Column headers (without brackets, lower case) -> row keys; "%" columns lose their sign.
PROFILE_COLUMNS = {"node type": "type", "start": "start_ms", "first": "first_ms", "avg ms": "avg_ms",
                   "%": "pct", "avg %": "pct", "cdf%": "cdf_pct", "cdf %": "cdf_pct", "mem kb": "mem_kb",
                   "times called": "times_called", "count": "count", "name": "name"}

_PREFIX_RE = re.compile(r"^(?:.*?\b[VDIWEF]\s+tflite\s*:\s?)?(?:INFO:\s?)?")
_SECTION_RE = re.compile(r"^\s*(" + "|".join(map(re.escape, PROFILE_SECTIONS)) + r"):\s*$")
_TITLE_RE = re.compile(r"^\s*=+\s+(.+?)\s+=+\s*$")
_GRAPH_RE = re.compile(r"^\s*(?:Primary graph|Subgraph \(index: (\d+)\)) (?:profile|summary):\s*$")
_SUMMARY_LINE_RE = re.compile(r"^\s*(?:Subgraph \(index: (\d+)\) )?(Timings \(microseconds\)|Memory \(bytes\)):(.*)$")
_OBSERVED_RE = re.compile(r"^\s*(\d+) nodes observed\s*$")
_EXECUTED_RE = re.compile(r"^\s*Number of nodes executed: (\d+)\s*$")
_METHOD_RE = re.compile(r"^\s*Op profiling method:\s*(.+?)\s*$")


def _row_re(columns: list[str]) -> re.Pattern:
    """A row of a table with these columns: text type, numbers (``%`` after percentages), free name."""
    parts = []
    for col in columns:
        key = PROFILE_COLUMNS.get(col.lower())
        if key == "type":
            parts.append(r"(?P<type>\S.*?)")
        elif key == "name":
            parts.append(r"(?P<name>.*?)")
        elif key is not None:
            parts.append(f"(?P<{key}>{_NUM[1:-1]})" + ("%" if key in ("pct", "cdf_pct") else ""))
        else:
            parts.append(r"\S+")
    return re.compile(r"^\s*" + r"\s+".join(parts) + r"\s*$")


def _profile_row(m: re.Match) -> dict:
    row = {}
    for key, value in m.groupdict().items():
        if key in ("type", "name"):
            row[key] = value.strip()
        elif key in ("times_called", "count"):
            row[key] = int(float(value))
        else:
            row[key] = float(value)
    return row


def split_op_profile(text: str) -> tuple[str, str]:
    """``(rest, profile)``: the lines of the op-profile blocks apart from the other output.

    A block starts at a :data:`PROFILE_SECTIONS` heading and runs while lines look like the
    profiler's (titles, headers, table rows, summaries, blank lines). Keeping them apart keeps
    their ``Timings (microseconds): count=...`` lines out of the latency statistics.
    """
    rest, prof = [], []
    inside, row = False, None
    for raw in text.splitlines():
        line = _PREFIX_RE.sub("", raw, count=1)
        if _SECTION_RE.match(line) or _METHOD_RE.match(line):
            inside, row = True, None
            prof.append(line)
            continue
        if inside:
            if line.strip().startswith("[") and "]" in line and ("[node type]" in line.lower()):
                row = _row_re(re.findall(r"\[([^\]]+)\]", line))
                prof.append(line)
                continue
            if (not line.strip() or _TITLE_RE.match(line) or _GRAPH_RE.match(line) or _SUMMARY_LINE_RE.match(line)
                    or _OBSERVED_RE.match(line) or _EXECUTED_RE.match(line) or line.strip() == "Delegate internal:"
                    or (row is not None and row.match(line))):
                prof.append(line)
                continue
            inside = False
        rest.append(raw)
    return "\n".join(rest), "\n".join(prof)


def parse_op_profile(text: str) -> dict | None:
    """Parse the ``--enable_op_profiling=true`` tables of one ``benchmark_model`` output.

    Returns None when the text has none, else ``{"method": str | None, "init": section | None,
    "runs": section | None}`` where a section maps a graph key (0 for the primary graph, the
    subgraph index, or "delegate" for "Delegate internal") to ``{"run_order": [op rows],
    "top_by_time": [op rows], "by_type": [type rows], "timings_us": {count, first, curr, min, max,
    avg, std} (µs per run, all ops), "nodes": int}``. An op row has ``type``, ``name``,
    ``first_ms``, ``avg_ms``, ``pct``, ``cdf_pct``, ``mem_kb``, ``times_called`` (and
    ``start_ms`` where the tool prints a [start] column); a type row has ``type``, ``count``,
    ``avg_ms`` (per run, all nodes of that type), ``pct``, ``cdf_pct``, ``mem_kb``, ``times_called``.
    Columns are found from each table's header, so versions with or without [start], tabs or
    spaces, and ``INFO:`` / logcat prefixes all parse.
    """
    _, prof = split_op_profile(text)
    if not prof:
        return None
    out: dict = {"method": None, "init": None, "runs": None}
    section = graph = table = row = None
    for line in prof.splitlines():
        if m := _METHOD_RE.match(line):
            out["method"] = m.group(1)
        elif m := _SECTION_RE.match(line):
            section, graph, table, row = PROFILE_SECTIONS[m.group(1)], 0, None, None
            out[section] = {}
        elif section is None:
            continue
        elif m := _GRAPH_RE.match(line):
            graph, table = (int(m.group(1)) if m.group(1) else 0), None
        elif line.strip() == "Delegate internal:":
            graph, table = "delegate", None
        elif m := _TITLE_RE.match(line):
            table = PROFILE_TABLES.get(m.group(1))
        elif "[node type]" in line.lower():
            row = _row_re(re.findall(r"\[([^\]]+)\]", line))
        elif m := _SUMMARY_LINE_RE.match(line):
            g = int(m.group(1)) if m.group(1) else graph
            if m.group(2).startswith("Timings"):
                stats = _stats_blocks(m.group(3))
                _graph(out[section], g)["timings_us"] = stats[0] if stats else None
            table = None
        elif m := _OBSERVED_RE.match(line):
            _graph(out[section], graph)["nodes"] = int(m.group(1))
        elif table is not None and row is not None and (m := row.match(line)):
            _graph(out[section], graph)[table].append(_profile_row(m))
    if out["init"] is None and out["runs"] is None:
        return None
    return out


def _graph(section: dict, key) -> dict:
    return section.setdefault(key, {"run_order": [], "top_by_time": [], "top_by_memory": [], "by_type": [],
                                    "timings_us": None, "nodes": None})


def op_profile_record(parsed: list[dict], source: str = "benchmark_model --enable_op_profiling=true") -> dict:
    """The record's ``op_profile`` from the :func:`parse_op_profile` results of several invocations.

    Per op (keyed by graph and name) and per op type, ``avg_ms`` is the mean over the
    invocations of the tool's per-run average; ``first_ms`` is the first invocation's;
    ``pct`` is the share of the graph's summed op times. Ops keep the first invocation's run
    order (``order``, from 0). ``total_ms`` is the mean per-run time of all ops of the primary graph.
    Returns ``{"available": False, "reason"}`` when no invocation printed tables.
    """
    runs = [p["runs"] for p in parsed if p and p.get("runs")]
    if not runs:
        return {"available": False, "reason": "benchmark_model printed no op-profile tables"}
    ops: dict = {}
    types: dict = {}
    for section in runs:
        for graph, g in section.items():
            for order, row in enumerate(g["run_order"]):
                o = ops.setdefault((graph, row["name"]), {"graph": graph, "order": order, "type": row["type"],
                                                          "name": row["name"], "first_ms": row.get("first_ms"),
                                                          "times_called": row.get("times_called"), "_avg": []})
                o["_avg"].append(row["avg_ms"])
            for row in g["by_type"]:
                t = types.setdefault((graph, row["type"]), {"graph": graph, "type": row["type"], "count": row["count"],
                                                            "times_called": row.get("times_called"), "_avg": []})
                t["_avg"].append(row["avg_ms"])
    for table in (ops, types):
        totals: dict = {}
        for row in table.values():
            avgs = row.pop("_avg")
            row["avg_ms"] = sum(avgs) / len(avgs)
            totals[row["graph"]] = totals.get(row["graph"], 0.0) + row["avg_ms"]
        for row in table.values():
            row["pct"] = 100.0 * row["avg_ms"] / totals[row["graph"]] if totals[row["graph"]] else None
    primary = [s[0]["timings_us"]["avg"] for s in runs
               if s.get(0, {}).get("timings_us") and "avg" in s[0]["timings_us"]]
    init = [{"type": r["type"], "name": r["name"], "avg_ms": r["avg_ms"]}
            for p in parsed[:1] if p and p.get("init") for r in p["init"].get(0, {}).get("run_order", [])]
    return {
        "available": True, "source": source, "method": next((p["method"] for p in parsed if p and p["method"]), None),
        "invocations": len(runs),
        "total_ms": sum(primary) / len(primary) / 1000.0 if primary else None,
        "ops": sorted(ops.values(), key=lambda o: (str(o["graph"]), o["order"])),
        "by_type": sorted(types.values(), key=lambda t: (str(t["graph"]), -t["avg_ms"])),
        "init": init,
    }
