"""``facelm bench report RESULTS``: a Markdown or HTML table plus a latency plot (PNG).

With a second results file, rows are matched on (device model, SoC, artifact
name, backend, options) and the table adds ratios ``other / base`` of mean and
median latency (below 1: the other run is faster).
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

from facelm.errors import InputError
from facelm.fileio import atomic_path, atomic_write_text

from .records import read_records

COLUMNS = ("device", "artifact", "backend", "delegate", "threads", "status", "mean", "median", "p90", "p99",
           "std", "min", "init", "first", "mem_mb", "psnr_db", "nme_drift_vs_host")


#: What an emulated device's latency and memory cells say: its timings are no phone's.
NOT_COMPARABLE = "not comparable (emulated)"
#: Cells an emulated record does not report as figures (its drift columns are kept: real numerics).
TIMING_CELLS = ("mean", "median", "p90", "p99", "std", "min", "init", "first", "mem_mb")


EMULATED_NOTE = (" Rows marked [emulated] ran on an emulated CPU (qemu): their drift is real (computed on that "
                 f"CPU's numerics); their latency and memory are {NOT_COMPARABLE!r} with a phone's.")


def is_emulated(record: dict) -> bool:
    """True for a record from an emulated device (``"emulated"``, or the device facts' ``emulator``)."""
    return bool(record.get("emulated") or (record.get("device") or {}).get("emulator"))


@dataclass(frozen=True)
class Row:
    key: tuple
    cells: dict


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def rows_of(records: list[dict]) -> list[Row]:
    """One table row per record (latency in ms, drift NME as a fraction)."""
    out = []
    for r in records:
        d, a, o = r.get("device") or {}, r.get("artifact") or {}, r.get("options") or {}
        lat = r.get("latency_ms") or {}
        drift = r.get("drift_vs_host") or {}
        dev_name = " ".join(x for x in (d.get("model"), f"({d.get('soc')})" if d.get("soc") else None) if x) \
            or d.get("serial", "?")
        cells = {
            "device": dev_name, "artifact": a.get("name"), "backend": r.get("backend"),
            "delegate": o.get("delegate"), "threads": o.get("threads"), "status": r.get("status"),
            "mean": lat.get("mean"), "median": lat.get("median"), "p90": lat.get("p90"), "p99": lat.get("p99"),
            "std": lat.get("std"), "min": lat.get("min"), "init": lat.get("init"), "first": lat.get("first"),
            "mem_mb": (r.get("memory_mb") or {}).get("overall"),
            "psnr_db": drift.get("psnr_db"), "nme_drift_vs_host": drift.get("mean"),
        }
        if is_emulated(r):  # the drift is kept (computed on the emulated CPU); timings are not a phone's
            cells["device"] += f" [emulated: {d.get('emulator') or 'yes'}]"
            cells.update(dict.fromkeys(TIMING_CELLS, NOT_COMPARABLE))
        key = (d.get("model"), d.get("soc"), a.get("name"), r.get("backend"),
               tuple(sorted((k, str(v)) for k, v in o.items())))
        out.append(Row(key, cells))
    return out


def _ratio(a, b):
    num = (int, float)
    return None if not isinstance(a, num) or not isinstance(b, num) or a == 0 else b / a


def table(base: list[Row], other: list[Row] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and formatted cells; with ``other``, ratio columns other/base."""
    header = list(COLUMNS)
    body = []
    other_by_key = {r.key: r for r in other or []}
    if other is not None:
        header += ["other mean", "ratio mean", "ratio median"]
    for r in base:
        cells = [_fmt(r.cells[c], 4 if c == "nme_drift_vs_host" else 2) for c in COLUMNS]
        if other is not None:
            o = other_by_key.get(r.key)
            om, omed = (o.cells["mean"], o.cells["median"]) if o else (None, None)
            cells += [_fmt(om), _fmt(_ratio(r.cells["mean"], om), 3), _fmt(_ratio(r.cells["median"], omed), 3)]
        body.append(cells)
    return header, body


def markdown(header: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in body]
    return "\n".join(lines) + "\n"


def html_table(header: list[str], body: list[list[str]], title: str, plot: str | None, extra: str = "") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in body)
    img = f'<p><img src="{html.escape(plot)}" alt="latency plot"></p>' if plot else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>td,th{padding:2px 8px;border:1px solid #ccc;font-family:monospace}</style></head>"
            f"<body><h1>{html.escape(title)}</h1><table><tr>{th}</tr>{trs}</table>{img}{extra}</body></html>\n")


def plot_latency(base: list[Row], path: Path, other: list[Row] | None = None) -> Path | None:
    """Horizontal bars of mean latency (std as error bars); grouped when comparing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in base if isinstance(r.cells["mean"], (int, float))]  # emulated rows have no latency
    if not ok:
        return None
    labels = [f"{r.cells['artifact']} · {r.cells['device']} · {r.cells['delegate']}x{r.cells['threads']}" for r in ok]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(ok) + 1.5))
    y = list(range(len(ok)))
    h = 0.4 if other is not None else 0.7
    ax.barh([v - (h / 2 if other is not None else 0) for v in y], [r.cells["mean"] for r in ok], height=h,
            xerr=[r.cells["std"] or 0 for r in ok], label="base", color="#4c72b0")
    if other is not None:
        by_key = {r.key: r for r in other}
        vals = [(by_key.get(r.key).cells["mean"] if by_key.get(r.key) else None) for r in ok]
        vals = [v if isinstance(v, (int, float)) else 0 for v in vals]
        ax.barh([v + h / 2 for v in y], vals, height=h, label="other", color="#dd8452")
        ax.legend()
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("mean latency (ms)")
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=100)
    finally:
        plt.close(fig)
    return path


# ------------------------------------------------------------------ per-op time (--op-profile)
#: Ops listed per record in the report, slowest first.
TOP_OPS = 10


def _profile_title(r: dict, row: Row) -> str:
    c = row.cells
    return f"{c['artifact']} · {c['device']} · {c['backend']} · {c['delegate']}x{c['threads']}"


def op_profile_tables(record: dict, top: int = TOP_OPS) -> tuple[str, list[tuple[list[str], list[list[str]]]]]:
    """``(note, [(header, body), ...])``: the slowest ops and the time per op type of one record.

    Times in ms per run (mean over invocations), ``%`` of the graph's summed op time. An
    emulated record keeps the shares and shows its times as not comparable; a record run
    with --op-profile but without tables says why.
    """
    prof = (record.get("latency_ms") or {}).get("op_profile")
    if not prof:
        return "no op profile for this backend (tables come from benchmark_model or the local one-op timing)", []
    if not prof.get("available"):
        return f"op profile unavailable: {prof.get('reason')}", []
    emulated = is_emulated(record)
    ms = (lambda v: NOT_COMPARABLE) if emulated else (lambda v: _fmt(v, 3))
    graphs = {o["graph"] for o in prof["ops"]} | {t["graph"] for t in prof["by_type"]}
    g = (lambda row: [str(row["graph"])]) if len(graphs) > 1 else (lambda row: [])
    gh = ["graph"] if len(graphs) > 1 else []
    ops = sorted(prof["ops"], key=lambda o: -(o["avg_ms"] or 0))[:top]
    top_t = (gh + ["op", "type", "name", "avg ms", "%"],
             [g(o) + [str(o["order"]), o["type"], o["name"], ms(o["avg_ms"]), _fmt(o["pct"], 1)] for o in ops])
    type_t = (gh + ["op type", "count", "avg ms", "%"],
              [g(t) + [t["type"], str(t["count"]), ms(t["avg_ms"]), _fmt(t["pct"], 1)] for t in prof["by_type"]])
    note = f"{prof.get('source')}; {prof.get('invocations')} invocation(s); ops total {ms(prof.get('total_ms'))} ms"
    if prof.get("method"):
        note += f"; method: {prof['method']}"
    if emulated:
        note += f"; emulated CPU: times {NOT_COMPARABLE}, shares kept"
    return note, [top_t, type_t]


def _profiled(records: list[dict]) -> list[dict]:
    return [r for r in records if (r.get("options") or {}).get("op_profile")
            or (r.get("latency_ms") or {}).get("op_profile")]


def op_profile_markdown(records: list[dict], top: int = TOP_OPS) -> str:
    """One section per profiled record: its slowest ops and its time per op type ("" when none)."""
    recs = _profiled(records)
    if not recs:
        return ""
    parts = [f"\n## Per-op time\n\nSlowest {top} ops and time per op type, per artifact and device.\n"]
    for r, row in zip(recs, rows_of(recs)):
        note, tables = op_profile_tables(r, top)
        parts.append(f"\n### {_profile_title(r, row)}\n\n{note}\n")
        for header, body in tables:
            parts.append("\n" + markdown(header, body))
    return "".join(parts)


def op_profile_html(records: list[dict], top: int = TOP_OPS) -> str:
    """The HTML twin of :func:`op_profile_markdown`."""
    recs = _profiled(records)
    if not recs:
        return ""
    parts = ["<h2>Per-op time</h2>"]
    for r, row in zip(recs, rows_of(recs)):
        note, tables = op_profile_tables(r, top)
        parts.append(f"<h3>{html.escape(_profile_title(r, row))}</h3><p>{html.escape(note)}</p>")
        for header, body in tables:
            th = "".join(f"<th>{html.escape(h)}</th>" for h in header)
            trs = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in b) + "</tr>" for b in body)
            parts.append(f"<table><tr>{th}</tr>{trs}</table>")
    return "".join(parts)


def report(results: Path, out_dir: Path | None = None, compare: Path | None = None, fmt: str = "md") -> dict:
    """Write ``report.md`` (or ``.html``) and ``latency.png`` into ``out_dir``.

    Records measured with ``--op-profile`` add a "Per-op time" section: each one's slowest
    ops and its time per op type (:func:`op_profile_tables`).
    Returns ``{"table": path, "plot": path or None, "text": table text (and per-op sections)}``.
    """
    if fmt not in ("md", "html"):
        raise InputError(f"report format must be md or html, got {fmt!r}")
    base_recs = read_records(results)
    if not base_recs:
        raise InputError(f"{results} holds no records")
    other = rows_of(read_records(compare)) if compare is not None else None
    base = rows_of(base_recs)
    out_dir = Path(out_dir) if out_dir is not None else Path(results).with_suffix("").parent / (Path(results).stem + "_report")
    out_dir.mkdir(parents=True, exist_ok=True)
    header, body = table(base, other)
    ops_md = op_profile_markdown(base_recs)
    plot = plot_latency(base, out_dir / "latency.png", other)
    title = f"facelm bench: {Path(results).name}" + (f" vs {Path(compare).name}" if compare else "")
    if fmt == "md":
        text = f"# {title}\n\nLatency in ms; memory in MB; nme_drift_vs_host is the device-vs-host landmark drift (mean landmark distance from the host fp32 TFLite's), a fraction of the template inter-pupil distance.{EMULATED_NOTE if any(map(is_emulated, base_recs)) else ''}\n\n" \
               + markdown(header, body) + (f"\n![latency](latency.png)\n" if plot else "") + ops_md
        path = out_dir / "report.md"
    else:
        text = html_table(header, body, title, "latency.png" if plot else None, op_profile_html(base_recs))
        path = out_dir / "report.html"
    atomic_write_text(path, text)
    return {"table": path, "plot": plot, "text": markdown(header, body) + ops_md}
