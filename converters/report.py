"""``report.md``: the manifest's figures for people, with one CED plot per artifact."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from facelm.fileio import atomic_write_text
from facelm.runtime.manifest import Manifest


def _fmt(v, spec: str, missing: str = "–") -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return missing
    return format(v, spec)


def _size(n: int) -> str:
    return f"{n / 2**20:.2f} MiB" if n >= 2**20 else f"{n / 1024:.1f} KiB"


def artifact_table(manifest: Manifest, latency: Mapping[str, float]) -> str:
    """Markdown table: file, size, latency, PSNR, drift mean/p95/max, own NME/AUC/FR, ops."""
    rows = ["| artifact | file | size | host latency (1 thread, median) | PSNR (dB) | drift vs torch mean | p95 | max | NME | AUC@0.08 | FR@0.08 |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    if "torch" in latency:
        rows.append(f"| torch fp32 (reference) | – | – | {latency['torch']:.2f} ms | – | – | – | – | – | – | – |")
    for a in manifest.artifacts:
        d = a.drift_vs_torch or {}
        psnr = d.get("psnr_db", None) if d else None
        psnr_txt = ("∞ (identical)" if psnr is None else f"{psnr:.1f}") if d else "–"
        pct = lambda key: _fmt(None if d.get(key) is None else 100 * d[key], ".3f") + ("%" if d.get(key) is not None else "")  # noqa: E731
        lat = latency.get(a.name)
        rows.append(
            f"| {a.name} | `{a.file}` | {_size(a.bytes)} | {_fmt(lat, '.2f')}{' ms' if lat is not None else ''} | {psnr_txt} | "
            f"{pct('mean')} | {pct('p95')} | {pct('max')} | {pct('nme')} | "
            f"{_fmt(None if d.get('auc') is None else 100 * d['auc'], '.2f')} | {pct('fr')} |")
    from facelm.converters.arm64_check import with_column  # "arm64 (emulated) vs host", after --arm64-check

    return "\n".join(with_column(rows, manifest))


def op_table(manifest: Manifest) -> str:
    """Per-artifact op histogram (TFLite builtins, ONNX node types, relax ops) and max tensor rank."""
    lines = []
    for a in manifest.artifacts:
        if not a.op_counts:
            continue
        ops = ", ".join(f"{k} {v}" for k, v in sorted(a.op_counts.items(), key=lambda kv: (-kv[1], kv[0])))
        rank = f"; max tensor rank {a.max_tensor_rank}" if a.max_tensor_rank is not None else ""
        lines.append(f"- **{a.name}** ({sum(a.op_counts.values())} ops{rank}): {ops}")
    return "\n".join(lines)


def write_report(
    folder: str | os.PathLike,
    manifest: Manifest,
    latency: Mapping[str, float],
    own_nmes: Mapping[str, np.ndarray],
    drift_nmes: Mapping[str, np.ndarray],
    timings: Mapping[str, float],
    warnings: list[str],
    eval_source: str = "",
    calib_source: str = "",
    ref_own_nme: np.ndarray | None = None,
) -> Path:
    """Write ``folder/report.md`` and ``folder/ced/<artifact>.png`` (atomically).

    Args:
        own_nmes: artifact -> (N,) NME vs ground truth (empty without ground truth).
        drift_nmes: artifact -> (N,) NME vs the torch fp32 landmarks (plotted when no ground truth).
        ref_own_nme: (N,) torch fp32 NME vs ground truth, drawn in every CED for comparison.
    """
    from facelm.metrics import plot_ced

    folder = Path(folder)
    ced_dir = folder / "ced"
    ced_lines = []
    for name in [a.name for a in manifest.artifacts]:
        if name in own_nmes:
            runs = {name: own_nmes[name]}
            if ref_own_nme is not None:
                runs["torch fp32"] = ref_own_nme
            title = f"{name}: CED vs ground truth"
        elif name in drift_nmes:
            runs, title = {f"{name} vs torch fp32": drift_nmes[name]}, f"{name}: CED of drift vs torch fp32"
        else:
            continue
        png = ced_dir / f"{name}.png"
        plot_ced(runs, png, title=title)
        ced_lines.append(f"![{name}](ced/{png.name})")

    m = manifest.model
    gates = manifest.gates
    norm = manifest.preprocess.normalization
    text = [
        f"# facelm conversion report: {m.name}",
        "",
        f"- model: {m.source} `{m.weights_file}` (sha256 `{m.weights_sha256}`)",
        f"- input {list(m.input_size)} px ({norm.color}, mean {list(norm.mean)}, std {list(norm.std)}), "
        f"heatmaps {list(m.heatmap_size)} (stride {list(m.stride)}), K = {m.num_keypoints} ({manifest.layout.name})",
        f"- calibration: {calib_source}; evaluation: {eval_source}",
        f"- decode: {manifest.decode.method} (blur kernel {manifest.decode.blur_kernel})",
        f"- tools: " + ", ".join(f"{k} {v}" for k, v in manifest.tools.items() if v),
        f"- gates: **{'PASSED' if gates.get('passed') else 'FAILED'}** "
        f"(fp32 parity ≤ {gates.get('parity_max_abs')}, int8 mean drift ≤ {gates.get('int8_drift_mean')})",
    ]
    text += [f"  - {f}" for f in gates.get("failures", [])]
    text += [
        "",
        "## Artifacts",
        "",
        "Latency: this host, one thread, median of the timed runs. PSNR: `20·log10(max|ref|/RMSE)` of the "
        "heatmaps against torch fp32. Drift vs torch: per-image NME between the artifact's and torch fp32's "
        "landmarks. NME/AUC/FR: against ground truth.",
        "",
        artifact_table(manifest, latency),
        "",
        "## Landmarks that drift most (mean NME vs torch fp32)",
        "",
    ]
    for a in manifest.artifacts:
        top = (a.drift_vs_torch or {}).get("top_landmarks") or []
        if top and a.name not in ("onnx",):
            text.append(f"- **{a.name}**: " + ", ".join(f"{t['index']} ({t['region']}) {100 * t['drift']:.3f}%" for t in top))
    from facelm.converters.arm64_check import report_section

    text += [""] + report_section(manifest)
    text += ["## Operators", "", op_table(manifest), "", "## CED", ""] + ced_lines
    if warnings:
        text += ["", "## Warnings", ""] + [f"- {w}" for w in warnings]
    text += ["", "## Stage timings", ""] + [f"- {k}: {v:.1f} s" for k, v in timings.items()]
    path = folder / "report.md"
    atomic_write_text(path, "\n".join(text) + "\n")
    return path
