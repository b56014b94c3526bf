"""Which layer breaks int8 accuracy: per-layer quantization error and its cost in landmarks.

Method (TensorFlow's own quantization debugger, not code of ours):

1. The artifact folder's ``fp32.tflite`` is calibrated again on the calibration faces rebuilt
   from the manifest (``tensorflow.lite.python.optimize.calibrator.Calibrator``), then
   quantized by the same MLIR quantizer the TFLite converter (and so onnx2tf) uses
   (``convert.mlir_quantize``) with numeric verification on. Each quantized op then has a
   float twin fed with the *dequantized inputs of the quantized op*, so the difference
   measures that layer's own error given the same inputs, not the error accumulated before it.
2. That debug model (the one ``tf.lite.experimental.QuantizationDebugger`` runs) runs on the
   evaluation faces in LiteRT with every tensor kept; each NumericVerify op's inputs are the
   float twin's output ``f`` and the int8 output ``q`` (scale ``s``, zero point ``z``), read
   as the debugger's ``layer_direct_compare_metrics`` read them, but summed per channel:

   - SQNR (dB) = ``10 log10(sum f^2 / sum (f - s (q - z))^2)`` over all faces;
   - RMSE / scale = ``sqrt(mean (f - s (q - z))^2) / s`` (0.29 = ideal rounding noise);
   - clipped = share of ``f`` outside the int8 range ``[s (-128 - z), s (127 - z)]`` (± s/2);
   - worst-channel SQNR = the lowest SQNR of one output channel.
3. Landmark sensitivity: for the K layers with the lowest SQNR (whole-tensor or worst channel), the model is quantized again
   with only that layer kept float (``denylisted_nodes``) and its landmarks are compared
   with the fp32 TFLite model's (mean landmark distance over the template inter-pupil distance,
   :func:`facelm.quantization.drift.mean_drift`; fp32 TFLite matches torch within the
   conversion's parity gate, which the manifest records).
4. The re-quantized model is checked against the shipped int8 artifact (landmark drift between
   them): a large difference means the calibration data were not rebuilt faithfully.

Layer names are the TFLite tensor names; the torch module is traced where a layer has
weights: its float weights are matched (as sorted values) with the ONNX initialisers, and
the ONNX node name (``/backbone/features/features.1/.../Conv``) gives the module path.

TensorFlow is imported lazily (it takes ~20 s to load); everything else is numpy + LiteRT.
"""
from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelm.errors import InputError
from facelm.quantization.tflite_graph import (const_array, match_weights, onnx_module_path,  # noqa: F401
                                              onnx_weight_index, read_graph, tensor_name)

log = logging.getLogger("facelm.quant_debug")

#: Ops whose output the quantizer leaves float or that only move bytes (no own error worth ranking).
INT8_RANGE = (-128, 127)
DEFAULT_TOP_K = 5


class DataRebuildError(InputError):
    """The calibration or evaluation faces of an artifact folder cannot be rebuilt."""


# ------------------------------------------------------------------ data from the manifest
@dataclass
class DebugData:
    """Faces rebuilt from a manifest.

    Attributes:
        calib: (N, H, W, 3) float32 normalised calibration inputs (NHWC, the TFLite layout).
        evals: (M, 3, H, W) float32 normalised evaluation inputs (NCHW, :class:`TfliteRunner` input).
        calib_source, eval_source: where they came from (for the report).
    """

    calib: np.ndarray
    evals: np.ndarray
    calib_source: str
    eval_source: str

    @property
    def evals_nhwc(self) -> np.ndarray:
        return np.ascontiguousarray(self.evals.transpose(0, 2, 3, 1))




def recorded_data(folder: Path, manifest) -> dict[str, Any]:
    """What the conversion recorded about its faces (the manifest's ``data`` section):
    ``{"source", "num_calib", "num_eval"}``; missing values are ``None``."""
    c, e = manifest.data.get("calibration") or {}, manifest.data.get("evaluation") or {}
    return {"source": c.get("source") or e.get("source"), "num_calib": c.get("count"), "num_eval": e.get("count")}


def rebuild_data(folder: str | os.PathLike, manifest, source: str | None = None, num_calib: int | None = None,
                 num_eval: int | None = None) -> DebugData:
    """Calibration and evaluation faces of a conversion (arguments override what was recorded).

    Raises:
        DataRebuildError: naming what cannot be rebuilt (unknown source or count, a missing folder).
    """
    from facelm.quantization.calibration import CALIB_SOURCES, build_sets

    rec = recorded_data(Path(folder), manifest)
    source = source or rec["source"]
    num_calib = num_calib or rec["num_calib"]
    num_eval = num_eval or rec["num_eval"]
    missing = [n for n, v in (("calibration source", source), ("calibration count", num_calib),
                              ("evaluation count", num_eval)) if not v]
    if missing:
        raise DataRebuildError(
            f"cannot rebuild the calibration/evaluation faces of {folder}: the manifest and report do not record "
            f"the {', '.join(missing)}; pass --calib SOURCE --num-calib N --num-eval M")
    # the report writes synthetic sources as "synthetic (seed 1001)"
    src = "synthetic" if str(source).startswith("synthetic") else str(source)
    if src not in CALIB_SOURCES and not Path(src).exists():
        raise DataRebuildError(f"cannot rebuild the calibration faces: their source folder {src} does not exist here")
    norm = manifest.preprocess.normalization
    try:
        calib, evals = build_sets(src, manifest.model.input_side, manifest.layout.name, int(num_calib), int(num_eval))
    except InputError as exc:
        raise DataRebuildError(f"cannot rebuild the calibration/evaluation faces from {src}: {exc}") from None
    x_cal = np.ascontiguousarray(calib.inputs(norm).transpose(0, 2, 3, 1))
    return DebugData(x_cal, evals.inputs(norm), f"{calib.source} ({len(calib)} faces)",
                     f"{evals.source} ({len(evals)} faces)")


# ----------------------------------------------------------------- quantizing with TensorFlow
def _quiet_tf() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")


def calibrate(fp32_model: bytes, calib_nhwc: np.ndarray) -> bytes:
    """Record activation ranges of a float ``.tflite`` (bytes) on (N, H, W, C) float32 inputs.

    Returns the calibrated float model (min/max in its tensors), the quantizer's input.
    """
    _quiet_tf()
    from tensorflow.lite.python.optimize import calibrator

    x = np.asarray(calib_nhwc, dtype=np.float32)

    def gen():
        for i in range(x.shape[0]):
            yield [x[i:i + 1]]

    return calibrator.Calibrator(fp32_model).calibrate(gen)


def quantize(calibrated: bytes, per_channel: bool = True, keep_float: Sequence[str] = (),
             debug: bool = False) -> bytes:
    """int8 model (float input/output, like ``int8.tflite``) from a calibrated model.

    Args:
        per_channel: per-channel int8 weights (onnx2tf's default) or per-tensor.
        keep_float: output tensor names of ops to leave in float (``denylisted_nodes``).
        debug: add NumericVerify ops (a float twin per quantized op) for the debugger.
    """
    _quiet_tf()
    from tensorflow.lite.python import convert

    return convert.mlir_quantize(calibrated, disable_per_channel=not per_channel, enable_numeric_verify=debug,
                                 denylisted_nodes=list(keep_float) or None)


# --------------------------------------------------------------------------- per layer
@dataclass
class LayerRow:
    """One quantized op (a row of ``facelm quant-debug``).

    Attributes:
        index: execution order among the quantized ops, from 0.
        op: TFLite op name (``CONV_2D``).
        name: the op's output tensor name (what ``--keep-float`` takes).
        module: torch module path where traceable, else ``""``; onnx_node likewise.
        scale, zero_point: int8 output quantization.
        sqnr_db: own-error SQNR over the evaluation faces (dB; ``inf`` when exact).
        rmse_over_scale: own-error RMSE in quantization steps.
        clipped: share of the float twin's values outside the int8 range.
        worst_channel_sqnr_db: the lowest SQNR of one output channel (a wide range set by one
            channel crushes the others: the whole-tensor SQNR hides it, this shows it).
        drift_if_float: mean landmark drift vs fp32 TFLite with only this layer float, fraction of the
            template inter-pupil distance (ranked layers only).
    """

    index: int
    op: str
    name: str
    module: str = ""
    onnx_node: str = ""
    scale: float = 0.0
    zero_point: int = 0
    sqnr_db: float = float("inf")
    rmse_over_scale: float = 0.0
    clipped: float = 0.0
    worst_channel_sqnr_db: float = float("inf")
    drift_if_float: float | None = None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("sqnr_db", "worst_channel_sqnr_db"):
            if not math.isfinite(d[k]):
                d[k] = None
        return d


def layer_statistics(debug_model: bytes, evals_nhwc: np.ndarray, weights_index: list | None = None,
                     calibrated: bytes | None = None) -> list[LayerRow]:
    """Per-layer own error of a NumericVerify debug model (:func:`quantize` with ``debug=True``).

    Runs the debug model with LiteRT (``experimental_preserve_all_tensors``) and reads each
    NumericVerify op's two inputs, the int8 output ``q`` and its float twin's output ``f``,
    as TensorFlow's ``QuantizationDebugger`` does with ``layer_direct_compare_metrics``; the
    sums are kept per channel (last axis) so a layer whose range is ruined by one channel
    shows in ``worst_channel_sqnr_db``.

    Args:
        evals_nhwc: (M, H, W, C) float32 normalised evaluation inputs.
        weights_index: :func:`onnx_weight_index` of the ONNX model, to trace torch modules.
        calibrated: the calibrated float model the debug model came from: row names are then
            its tensor names, the names ``keep_float`` takes.
    """
    from ai_edge_litert.interpreter import Interpreter

    known: set[str] = set()
    if calibrated is not None:
        c_ops, c_tensors = read_graph(calibrated)
        known = {tensor_name(c_tensors[o]) for op in c_ops for o in op.outputs}

    ops, tensors = read_graph(debug_model)
    producer = {o: op for op in ops for o in op.outputs}
    layers = []
    for op in ops:
        if op.op != "NumericVerify" or len(op.inputs) < 2:
            continue
        q_idx, f_idx = int(op.inputs[0]), int(op.inputs[1])
        qop, fop = producer.get(q_idx), producer.get(f_idx)
        qp = tensors[q_idx].Quantization()
        if qop is None or qp is None or not qp.ScaleLength():
            continue
        layers.append((q_idx, f_idx, qop, fop, float(qp.Scale(0)), int(qp.ZeroPoint(0)) if qp.ZeroPointLength() else 0))
    if not layers:
        raise InputError("the debug model has no NumericVerify ops (nothing was quantized)")
    it = Interpreter(model_content=debug_model, experimental_preserve_all_tensors=True, num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    x = np.asarray(evals_nhwc, dtype=np.float32)
    sums = [None] * len(layers)  # per channel: [signal, noise, clipped, count]
    for i in range(x.shape[0]):
        it.set_tensor(inp, x[i:i + 1])
        it.invoke()
        for j, (q_idx, f_idx, _, _, scale, zp) in enumerate(layers):
            f = it.get_tensor(f_idx).astype(np.float64)
            q = it.get_tensor(q_idx).astype(np.float64)
            c = f.shape[-1] if f.ndim else 1
            f, err = f.reshape(-1, c), (f - scale * (q - zp)).reshape(-1, c)
            lo, hi = scale * (INT8_RANGE[0] - zp) - scale / 2, scale * (INT8_RANGE[1] - zp) + scale / 2
            acc = np.stack([np.sum(f * f, 0), np.sum(err * err, 0), np.sum((f < lo) | (f > hi), 0),
                            np.full(c, f.shape[0], np.float64)])
            sums[j] = acc if sums[j] is None else sums[j] + acc
    rows = []
    for (q_idx, f_idx, qop, fop, scale, zp), acc in zip(layers, sums):
        sig, noi, clip, cnt = acc
        module = node = ""
        if weights_index and fop is not None and len(fop.inputs) > 1 and fop.inputs[1] >= 0:
            hit = match_weights(const_array(debug_model, tensors[int(fop.inputs[1])]), weights_index)
            if hit:
                node, module = hit
        fname = tensor_name(tensors[fop.outputs[0]]) if fop is not None else tensor_name(tensors[q_idx])
        while known and fname not in known and fname[-1:].isdigit():
            fname = fname[:-1]  # the quantizer suffixes duplicated names ("x:0" -> "x:01")
        live = sig > 0
        ch = [_db(a, b) for a, b in zip(sig[live], noi[live])]
        rows.append(LayerRow(index=len(rows), op=qop.op, name=fname, module=module, onnx_node=node, scale=scale,
                             zero_point=zp, sqnr_db=_db(sig.sum(), noi.sum()),
                             rmse_over_scale=math.sqrt(noi.sum() / cnt.sum()) / scale,
                             clipped=float(clip.sum() / cnt.sum()),
                             worst_channel_sqnr_db=min(ch) if ch else float("inf")))
    return rows


def _db(signal: float, noise: float) -> float:
    if noise == 0:
        return float("inf")
    return float("-inf") if signal == 0 else 10 * math.log10(signal / noise)


# ------------------------------------------------------------------------- landmarks
def _model_file(model: bytes, folder: Path, name: str) -> Path:
    p = folder / f"{name}.tflite"
    p.write_bytes(model)
    return p


def model_landmarks(model: bytes | str | os.PathLike, evals_nchw: np.ndarray, contract) -> np.ndarray:
    """(M, K, 2) crop-pixel landmarks of a ``.tflite`` (bytes or path) on normalised NCHW faces."""
    from facelm.postprocess import output_to_landmarks
    from facelm.runtime.tflite import TfliteRunner

    with tempfile.TemporaryDirectory(prefix="facelm-qd-") as tmp:
        path = _model_file(model, Path(tmp), "m") if isinstance(model, (bytes, bytearray)) else Path(model)
        runner = TfliteRunner(path, num_threads=1)
        raw = runner.run_raw(evals_nchw)
        return output_to_landmarks(raw, runner.output_spec, contract.model, contract.decode).crop


def mean_drift(ref: np.ndarray, test: np.ndarray, contract) -> float:
    """Mean per-image landmark drift of ``test`` vs ``ref`` (fraction of the contract's template
    inter-pupil distance, :func:`facelm.quantization.drift.drift_scale`)."""
    from facelm.quantization import drift

    return drift.mean_drift(ref, test, contract)


def sensitivity(calibrated: bytes, rows: list[LayerRow], ref_lms: np.ndarray, evals_nchw: np.ndarray, contract,
                per_channel: bool = True, k: int = DEFAULT_TOP_K) -> list[LayerRow]:
    """Fill ``drift_if_float`` for the ``k`` rows with the lowest SQNR (the lower of whole-tensor and
    worst-channel); returns them by drift, best first."""
    worst = sorted(rows, key=lambda r: min(r.sqnr_db, r.worst_channel_sqnr_db))[:max(k, 0)]
    for r in worst:
        try:
            model = quantize(calibrated, per_channel, keep_float=[r.name])
        except Exception as exc:  # the quantizer refuses some names (e.g. fused outputs)
            log.warning("cannot keep %s float: %s", r.name, str(exc).splitlines()[0] if str(exc) else exc)
            continue
        r.drift_if_float = mean_drift(ref_lms, model_landmarks(model, evals_nchw, contract), contract)
        log.info("  %s kept float: drift %.4f%%", r.name, 100 * r.drift_if_float)
    return sorted([r for r in worst if r.drift_if_float is not None], key=lambda r: r.drift_if_float)


# ---------------------------------------------------------------------------- report
@dataclass
class DebugReport:
    """Everything ``facelm quant-debug`` shows."""

    folder: str
    artifact: str
    rows: list[LayerRow]
    ranking: list[LayerRow]
    data: dict[str, str]
    drift: dict[str, float]
    per_channel: bool
    delegates: dict[str, Any] = field(default_factory=dict)
    chain: dict[str, Any] = field(default_factory=dict)
    mixed: dict[str, Any] = field(default_factory=dict)

    def worst(self) -> LayerRow:
        """The layer that costs most: by landmark drift where ranked (lowest drift when kept float), else SQNR."""
        if self.ranking:
            return self.ranking[0]
        return min(self.rows, key=lambda r: r.sqnr_db)

    def to_json(self) -> list[dict[str, Any]]:
        return [r.to_json() for r in self.rows]


def _int8_artifact(manifest, artifact: str | None) -> str:
    from facelm.artifacts import artifact_kind

    names = [n for n in manifest.names()
             if _known(n) and artifact_kind(n).format == "tflite" and artifact_kind(n).precision == "int8"]
    if artifact is None:
        if not names:
            raise InputError(f"{manifest.root} has no int8 TFLite artifact (it has {manifest.names()})")
        return "int8" if "int8" in names else names[0]
    if artifact not in names:
        raise InputError(f"{manifest.root} has no int8 TFLite artifact {artifact!r} (int8 artifacts: {names or 'none'})")
    return artifact


def _known(name: str) -> bool:
    from facelm.artifacts import artifact_kind
    from facelm.errors import ConfigError

    try:
        artifact_kind(name)
        return True
    except ConfigError:
        return False


def per_channel_of(path: Path, manifest, name: str) -> bool:
    """Whether the shipped int8 weights are per-channel (embedded metadata, else the manifest notes)."""
    from facelm.runtime.tflite import read_tflite_metadata

    try:
        meta = read_tflite_metadata(path) or {}
        qt = (meta.get("artifact") or {}).get("quant_type")
        if qt:
            return qt == "per-channel"
    except InputError:
        pass
    return "per-tensor" not in (manifest.artifact(name).notes or "")


def debug_artifacts(folder: str | os.PathLike, artifact: str | None = None, k: int = DEFAULT_TOP_K,
                    calib: str | None = None, num_calib: int | None = None, num_eval: int | None = None,
                    delegates: bool = True, chain: bool = True) -> DebugReport:
    """Run the whole analysis on an artifact folder (see the module docstring).

    Raises:
        ManifestError: no/malformed manifest, or an artifact whose hash does not match.
        InputError: no int8 TFLite or no fp32 TFLite artifact in the folder.
        DataRebuildError: the faces cannot be rebuilt.
    """
    from facelm.runtime.manifest import load_manifest

    folder = Path(folder)
    manifest = load_manifest(folder, verify=False)
    name = _int8_artifact(manifest, artifact)
    if "fp32" not in manifest.names():
        raise InputError(f"{folder} has no fp32 TFLite artifact: the per-layer comparison needs it")
    int8_path = manifest.artifact_path(name)  # hash checked here
    fp32_path = manifest.artifact_path("fp32")
    onnx_path = manifest.artifact_path("onnx") if "onnx" in manifest.names() else None
    data = rebuild_data(folder, manifest, calib, num_calib, num_eval)
    per_channel = per_channel_of(int8_path, manifest, name)
    contract = manifest.contract

    log.info("calibrating fp32.tflite on %s", data.calib_source)
    calibrated = calibrate(fp32_path.read_bytes(), data.calib)
    rebuilt = quantize(calibrated, per_channel)
    ref = model_landmarks(fp32_path, data.evals, contract)
    shipped = model_landmarks(int8_path, data.evals, contract)
    rebuilt_lms = model_landmarks(rebuilt, data.evals, contract)
    drift = {"shipped_vs_fp32_tflite": mean_drift(ref, shipped, contract),
             "rebuilt_vs_fp32_tflite": mean_drift(ref, rebuilt_lms, contract),
             "rebuilt_vs_shipped": mean_drift(shipped, rebuilt_lms, contract)}
    log.info("per-layer statistics on %s", data.eval_source)
    index = onnx_weight_index(onnx_path) if onnx_path is not None else None
    rows = layer_statistics(quantize(calibrated, per_channel, debug=True), data.evals_nhwc, index, calibrated)
    log.info("landmark sensitivity of the %d layers with the lowest SQNR", k)
    ranking = sensitivity(calibrated, rows, ref, data.evals, contract, per_channel, k)
    rep = DebugReport(str(folder), name, rows, ranking, {"calibration": data.calib_source,
                                                         "evaluation": data.eval_source}, drift, per_channel)
    if delegates:
        from facelm.quantization.delegates import folder_readiness

        rep.delegates = folder_readiness(manifest)
    if chain and onnx_path is not None:
        from facelm.quantization.chain import first_divergence

        try:
            rep.chain = first_divergence(onnx_path, fp32_path, data.evals[:4])
        except InputError as exc:
            rep.chain = {"error": str(exc)}
    return rep


# ---------------------------------------------------------------------------- rendering
def _fmt_db(v: float) -> str:
    return "inf" if math.isinf(v) and v > 0 else f"{v:.1f}"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.3f}%"


def render_table(rep: DebugReport) -> str:
    """Plain-text table of every quantized layer (``--format table``)."""
    head = f"{'#':>3}  {'op':<18} {'SQNR dB':>8} {'worst ch':>8} {'RMSE/s':>7} {'clipped':>8} {'drift if float':>14}  {'scale':>9} {'zp':>4}  name [torch module]"
    lines = [head, "-" * len(head)]
    for r in rep.rows:
        mod = f" [{r.module}]" if r.module else ""
        lines.append(f"{r.index:>3}  {r.op:<18} {_fmt_db(r.sqnr_db):>8} {_fmt_db(r.worst_channel_sqnr_db):>8} {r.rmse_over_scale:>7.3f} "
                     f"{100 * r.clipped:>7.2f}% {_pct(r.drift_if_float):>14}  {r.scale:>9.3g} {r.zero_point:>4}  {r.name}{mod}")
    lines.append("")
    lines.append(f"int8 drift vs fp32 TFLite: shipped {_pct(rep.drift['shipped_vs_fp32_tflite'])}, "
                 f"rebuilt {_pct(rep.drift['rebuilt_vs_fp32_tflite'])} (rebuilt vs shipped {_pct(rep.drift['rebuilt_vs_shipped'])})")
    if rep.ranking:
        lines.append("landmark sensitivity (drift vs fp32 TFLite with only this layer float), best first:")
        for r in rep.ranking:
            lines.append(f"  #{r.index} {r.op} {r.name}: {_pct(r.drift_if_float)}")
    return "\n".join(lines) + "\n"


def sqnr_plot(rep: DebugReport, path: Path) -> Path:
    """Per-layer SQNR bar chart (PNG), ranked layers highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ranked = {r.index for r in rep.ranking}
    vals = [min(r.sqnr_db, 80.0) for r in rep.rows]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.12 * len(vals) + 2), 3.2))
    ax.bar(range(len(vals)), vals, color=["tab:red" if r.index in ranked else "tab:blue" for r in rep.rows])
    ax.set_xlabel("quantized op (execution order)")
    ax.set_ylabel("own-error SQNR (dB)")
    ax.set_title(f"{rep.artifact}: per-layer SQNR (red: landmark-ranked)")
    fig.tight_layout()
    from facelm.fileio import atomic_path

    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return path


def render_markdown(rep: DebugReport, plot: str | None = None) -> str:
    """The Markdown report (``--format md``); ``plot`` = relative path of :func:`sqnr_plot`'s PNG."""
    out = [f"# facelm quant-debug: `{rep.artifact}` in `{rep.folder}`", "",
           f"- calibration faces: {rep.data['calibration']}; evaluation faces: {rep.data['evaluation']}",
           f"- weights: {'per-channel' if rep.per_channel else 'per-tensor'} int8; the int8 model is re-quantized "
           "from `fp32.tflite` with TensorFlow's MLIR quantizer (what onnx2tf uses) and checked against the shipped one",
           f"- int8 landmark drift vs fp32 TFLite: shipped {_pct(rep.drift['shipped_vs_fp32_tflite'])}, rebuilt "
           f"{_pct(rep.drift['rebuilt_vs_fp32_tflite'])}; rebuilt vs shipped {_pct(rep.drift['rebuilt_vs_shipped'])}",
           "- SQNR / RMSE÷scale / clipped: each layer's own error given the same (dequantized int8) inputs, "
           "TFLite's QuantizationDebugger; drift if float: mean landmark distance vs fp32 TFLite, with only that layer float, in % of the "
           "template inter-pupil distance",
           ""]
    if rep.ranking:
        w = rep.ranking[0]
        out += ["## Landmark sensitivity (lowest-SQNR layers, best fix first)", "",
                "| # | op | layer | torch module | SQNR (dB) | drift if float |", "|---|---|---|---|---|---|"]
        out += [f"| {r.index} | {r.op} | `{r.name}` | {r.module or '–'} | {_fmt_db(r.sqnr_db)} | {_pct(r.drift_if_float)} |"
                for r in rep.ranking]
        out += ["", f"Worst layer: **#{w.index} {w.op} `{w.name}`**{' (' + w.module + ')' if w.module else ''}.", ""]
    if plot:
        out += [f"![per-layer SQNR]({plot})", ""]
    out += ["## Every quantized layer", "",
            "| # | op | SQNR (dB) | worst channel (dB) | RMSE/scale | clipped | scale | zp | layer | torch module |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r.index} | {r.op} | {_fmt_db(r.sqnr_db)} | {_fmt_db(r.worst_channel_sqnr_db)} | {r.rmse_over_scale:.3f} | {100 * r.clipped:.2f}% | "
            f"{r.scale:.3g} | {r.zero_point} | `{r.name}` | {r.module or '–'} |" for r in rep.rows]
    out.append("")
    if rep.mixed:
        from facelm.quantization.mixed import render_search

        out += render_search(rep.mixed)
    if rep.chain:
        out += ["## Across the chain (ONNX → fp32 TFLite)", ""]
        if "error" in rep.chain:
            out += [f"- not checked: {rep.chain['error']}", ""]
        else:
            c = rep.chain
            out += [f"- {c['compared']} ONNX tensors compared with fp32 TFLite tensors on {c['faces']} faces "
                    f"(tolerance {c['tolerance']:g} relative to the tensor's max |value|)",
                    f"- first divergence: {('`' + c['first'] + '` (' + str(c.get('first_error')) + ')') if c.get('first') else 'none'}",
                    f"- largest relative difference: {c['max_rel']:.3g}", ""]
    if rep.delegates:
        from facelm.quantization.delegates import render_markdown as render_delegates

        out += render_delegates(rep.delegates)
    return "\n".join(out) + "\n"


def write_outputs(rep: DebugReport, out: str | os.PathLike) -> dict[str, Path]:
    """``report.md``, ``layers.json`` and ``sqnr.png`` in ``out`` (each written atomically)."""
    from facelm.fileio import atomic_write_text

    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    png = sqnr_plot(rep, d / "sqnr.png")
    md = atomic_write_text(d / "report.md", render_markdown(rep, png.name))
    js = atomic_write_text(d / "layers.json", json.dumps(rep.to_json(), indent=1) + "\n")
    return {"report": md, "json": js, "plot": png}
