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


def _pct(v, digits: int = 3) -> str:
    return "–" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.{digits}f}%"


def _own_cells(nmes: np.ndarray | None) -> str:
    """``NME | AUC@0.08 | FR@0.08`` cells of (n,) per-image NMEs (dashes without ground truth)."""
    from facelm.metrics import summarize

    if nmes is None or len(nmes) == 0:
        return "– | – | –"
    s = summarize(nmes)
    return f"{_pct(s['nme'])} | {100 * s['auc']:.2f} | {_pct(s['fr'])}"


def _reference_of(manifest: Manifest) -> str:
    """What the drift was measured against (the artifacts' ``drift_vs_torch.reference``)."""
    refs = [a.drift_vs_torch["reference"] for a in manifest.artifacts if (a.drift_vs_torch or {}).get("reference")]
    return refs[0] if refs else "torch_fp32"


def artifact_table(manifest: Manifest, latency: Mapping[str, float], reference: str = "torch fp32",
                   ref_own_nme: np.ndarray | None = None) -> str:
    """Markdown table: file, size, latency, faces, PSNR, drift mean (% and px)/p95/max, own NME/AUC/FR.

    ``faces`` is each row's sample size: drift and NME/AUC/FR of a row are on its first
    ``faces`` evaluation faces (see :func:`same_faces_tables` for rows on fewer faces).
    """
    rows = [f"| artifact | file | size | host latency (1 thread, median) | faces | PSNR (dB) | drift vs {reference} "
            "mean (% IPD) | mean (px) | p95 | max | NME | AUC@0.08 | FR@0.08 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lat = latency.get(reference.split()[0])
    n = "–" if ref_own_nme is None else str(len(ref_own_nme))
    rows.append(f"| {reference} (reference) | – | – | {_fmt(lat, '.2f')}{' ms' if lat is not None else ''} | {n} | "
                f"– | – | – | – | – | {_own_cells(ref_own_nme)} |")
    for a in manifest.artifacts:
        d = a.drift_vs_torch or {}
        psnr = d.get("psnr_db", None) if d else None
        psnr_txt = ("∞ (identical)" if psnr is None else f"{psnr:.1f}") if d else "–"
        lat = latency.get(a.name)
        own = "– | – | –" if d.get("nme") is None else \
            f"{_pct(d['nme'])} | {_fmt(None if d.get('auc') is None else 100 * d['auc'], '.2f')} | {_pct(d.get('fr'))}"
        rows.append(
            f"| {a.name} | `{a.file}` | {_size(a.bytes)} | {_fmt(lat, '.2f')}{' ms' if lat is not None else ''} | "
            f"{d.get('count', '–') if d else '–'} | {psnr_txt} | {_pct(d.get('mean'))} | {_fmt(d.get('mean_px'), '.3f')} | "
            f"{_pct(d.get('p95'))} | {_pct(d.get('max'))} | {own} |")
    from facelm.converters.arm64_check import with_column  # "arm64 (emulated) vs host", after --arm64-check

    return "\n".join(with_column(rows, manifest))


def same_faces_tables(manifest: Manifest, own_nmes: Mapping[str, np.ndarray], drifts: Mapping[str, np.ndarray],
                      reference: str = "torch fp32", ref_own_nme: np.ndarray | None = None) -> list[str]:
    """Markdown lines comparing every artifact on the faces of each artifact evaluated on fewer faces.

    Artifacts such as the untuned TVM modules run only the first n evaluation faces; their
    NME/AUC/FR cannot be compared with rows on every face. For each such n, this table gives
    every artifact's drift and own accuracy on the same first n faces (empty when all rows
    used every face).

    Args:
        own_nmes, drifts: artifact -> per-image NME vs ground truth / drift vs the reference, on
            the artifact's first n faces.
        ref_own_nme: (N,) the reference's NME vs ground truth.
    """
    counts = {a.name: len(drifts[a.name]) for a in manifest.artifacts if a.name in drifts}
    if not counts:
        return []
    full = max(counts.values())
    lines: list[str] = []
    for n in sorted({c for c in counts.values() if c < full}):
        few = [k for k, c in counts.items() if c == n]
        lines += [f"### Every artifact on the first {n} evaluation faces", "",
                  f"{', '.join(few)} ran on {n} of the {full} faces only; each row below is on those same {n} faces.", "",
                  f"| artifact | faces | drift vs {reference} mean (% IPD) | NME | AUC@0.08 | FR@0.08 |",
                  "|---|---|---|---|---|---|"]
        if ref_own_nme is not None:
            lines.append(f"| {reference} (reference) | {n} | – | {_own_cells(ref_own_nme[:n])} |")
        for name, c in counts.items():
            if c >= n:
                own = own_nmes.get(name)
                lines.append(f"| {name} | {n} | {_pct(float(np.mean(drifts[name][:n])))} | "
                             f"{_own_cells(None if own is None else own[:n])} |")
        lines.append("")
    return lines


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


def ced_plots(ced_dir: Path, manifest: Manifest, own_nmes: Mapping[str, np.ndarray],
              drifts: Mapping[str, np.ndarray], reference: str, ref_own_nme: np.ndarray | None) -> list[str]:
    """``ced_dir/<artifact>.png`` for every artifact (own NME vs ground truth, with the reference on
    the same faces; else its drift); returns the report's image lines."""
    from facelm.metrics import plot_ced

    lines = []
    for name in [a.name for a in manifest.artifacts]:
        if name in own_nmes:
            runs = {name: own_nmes[name]}
            if ref_own_nme is not None:
                runs[reference] = ref_own_nme[:len(own_nmes[name])]
            title = f"{name}: CED vs ground truth ({len(own_nmes[name])} faces)"
        elif name in drifts:
            runs = {f"{name} vs {reference}": drifts[name]}
            title = f"{name}: CED of drift vs {reference} (fraction of template inter-pupil distance)"
        else:
            continue
        png = ced_dir / f"{name}.png"
        plot_ced(runs, png, title=title)
        lines.append(f"![{name}](ced/{png.name})")
    return lines


def write_report(
    folder: str | os.PathLike,
    manifest: Manifest,
    latency: Mapping[str, float],
    own_nmes: Mapping[str, np.ndarray],
    drifts: Mapping[str, np.ndarray],
    timings: Mapping[str, float],
    warnings: list[str],
    eval_source: str = "",
    calib_source: str = "",
    ref_own_nme: np.ndarray | None = None,
    reference: str = "torch fp32",
) -> Path:
    """Write ``folder/report.md`` and ``folder/ced/<artifact>.png`` (atomically).

    Args:
        own_nmes: artifact -> (n,) NME vs ground truth on its first n faces (empty without ground truth).
        drifts: artifact -> (n,) drift vs the reference landmarks (fraction of the template
            inter-pupil distance), on its first n faces; plotted when there is no ground truth.
        ref_own_nme: (N,) the reference's NME vs ground truth, drawn in every CED (on the same faces).
        reference: what the drift is measured against, for people (``torch fp32``, ``onnxruntime fp32``).
    """
    folder = Path(folder)
    ced_lines = ced_plots(folder / "ced", manifest, own_nmes, drifts, reference, ref_own_nme)
    m = manifest.model
    gates = manifest.gates
    norm = manifest.preprocess.normalization
    from facelm.quantization.drift import drift_scale

    ipd = drift_scale(manifest.contract)
    text = [
        f"# facelm conversion report: {m.name}",
        "",
        f"- model: {m.source} `{m.weights_file}` (sha256 `{m.weights_sha256}`)",
        f"- input {list(m.input_size)} px ({norm.color}, mean {list(norm.mean)}, std {list(norm.std)}), "
        f"heatmaps {list(m.heatmap_size)} (stride {list(m.stride)}), K = {m.num_keypoints} ({manifest.layout.name})",
        f"- calibration: {calib_source}; evaluation: {eval_source}",
        f"- decode: {manifest.decode.method} (blur kernel {manifest.decode.blur_kernel})",
        "- tools: " + ", ".join(f"{k} {v}" for k, v in manifest.tools.items() if v),
        f"- gates: **{'PASSED' if gates.get('passed') else 'FAILED'}** "
        f"(fp32 parity ≤ {gates.get('parity_max_abs')}, int8 mean drift ≤ {gates.get('int8_drift_mean')} "
        "of the template inter-pupil distance)",
    ]
    text += [f"  - {f}" for f in gates.get("failures", [])]
    text += [
        "",
        "## Artifacts",
        "",
        f"Latency: this host, one thread, median of the timed runs. Faces: the evaluation faces a row is measured "
        f"on. PSNR: `20·log10(max|ref|/RMSE)` of the heatmaps against {reference}. Drift vs {reference}: per image, "
        f"the mean distance between the artifact's and {reference}'s landmarks, in % of the template inter-pupil "
        f"distance (IPD, {ipd:.2f} px in the {m.input_size[0]} px crop: fixed by the contract, not by a prediction) "
        "and in crop pixels. NME/AUC/FR: against ground truth (the layout's normaliser).",
        "",
        artifact_table(manifest, latency, reference, ref_own_nme),
        "",
    ]
    text += same_faces_tables(manifest, own_nmes, drifts, reference, ref_own_nme)
    text += [
        f"## Landmarks that drift most (mean distance vs {reference}, % of the template IPD)",
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
