"""Selective quantization: keep the fewest layers float so landmark drift meets a target.

:func:`mixed_precision` takes what the conversion already has (the fp32 ``.tflite`` that
onnx2tf wrote, the calibration faces, the evaluation faces and reference landmarks) and
returns an ``int8_mixed`` model: the fp32 model calibrated and quantized by TensorFlow's
MLIR quantizer (what onnx2tf itself uses) with the kept layers on its deny list
(``denylisted_nodes``), so they run in float between DEQUANTIZE/QUANTIZE pairs.

``keep_float="auto"``: a greedy search over the sensitivity ranking of
:mod:`facelm.quantization.debug`: the ``candidates`` layers with the lowest own-error SQNR
are each kept float alone and ranked by the drift that leaves; layers are then added in that
order, one at a time, until the mean drift is at most ``drift_target`` (or the candidates
run out). Every step is recorded. A list of names keeps exactly those layers.
"""
from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelm.errors import ConfigError

log = logging.getLogger("facelm.mixed")

#: mean drift vs the reference, fraction of the template inter-pupil distance
#: (facelm.quantization.drift.drift_scale): 0.0005 face-box NME x 2.2 (see GateConfig)
DEFAULT_DRIFT_TARGET = 0.0011
DEFAULT_CANDIDATES = 8


@dataclass
class MixedStep:
    """One model tried by the search: the layers kept float and what it gave."""

    kept: list[str]
    drift: float
    bytes: int


@dataclass
class MixedResult:
    """The chosen model and the search that found it.

    Attributes:
        model: the ``.tflite`` bytes (float input/output, like ``int8.tflite``).
        kept: output tensor names of the layers kept float.
        drift: its mean landmark NME vs the reference landmarks (fraction).
        baseline_drift: the same for the all-int8 model (nothing kept float).
        target: the drift target (None for a hand-picked list); reached: whether drift <= target.
        steps: every model tried, in order.
        reference: what the drift is measured against.
    """

    model: bytes
    kept: list[str]
    drift: float
    baseline_drift: float
    baseline_bytes: int
    target: float | None
    reached: bool
    steps: list[MixedStep] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    reference: str = "torch_fp32"

    def record(self) -> dict[str, Any]:
        """JSON-ready summary (manifest ``checks`` / reports), without the model bytes."""
        d = asdict(self)
        d.pop("model")
        d["bytes"] = len(self.model)
        return d


def parse_keep_float(value: str | None) -> str | list[str] | None:
    """``--keep-float`` text -> ``"auto"``, a list of names, or None."""
    if value is None or not value.strip():
        return None
    if value.strip() == "auto":
        return "auto"
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ConfigError("--keep-float takes 'auto' or comma-separated layer names")
    return names


def mixed_precision(fp32_model: bytes, calib_nhwc: np.ndarray, evals_nchw: np.ndarray, ref_landmarks: np.ndarray,
                    contract, keep_float: str | Sequence[str] = "auto", drift_target: float = DEFAULT_DRIFT_TARGET,
                    per_channel: bool = True, candidates: int = DEFAULT_CANDIDATES,
                    reference: str = "torch_fp32") -> MixedResult:
    """Build ``int8_mixed`` (see the module docstring).

    Args:
        fp32_model: the float ``.tflite`` bytes (NHWC input).
        calib_nhwc: (N, H, W, 3) float32 normalised calibration inputs.
        evals_nchw: (M, 3, H, W) float32 normalised evaluation inputs.
        ref_landmarks: (M, K, 2) reference landmarks in crop pixels (torch fp32 in a conversion).
        contract: the :class:`~facelm.runtime.manifest.ModelContract` (decoding, layout).
        keep_float: ``"auto"`` or layer names (output tensor names, as ``facelm quant-debug`` lists them).
        drift_target: mean NME fraction to reach (``auto``).
        candidates: layers ranked by landmark sensitivity in ``auto``.
    Raises:
        ConfigError: a bad target, or a name the quantizer does not know.
    """
    from facelm.quantization import debug as qd

    if keep_float != "auto" and isinstance(keep_float, str):
        raise ConfigError(f"keep_float must be 'auto' or a list of layer names, got {keep_float!r}")
    if keep_float == "auto" and not drift_target > 0:
        raise ConfigError(f"drift target must be > 0, got {drift_target}")
    calibrated = qd.calibrate(fp32_model, calib_nhwc)

    def measure(kept: list[str]) -> tuple[bytes, MixedStep]:
        model = qd.quantize(calibrated, per_channel, keep_float=kept)
        d = qd.mean_drift(ref_landmarks, qd.model_landmarks(model, evals_nchw, contract), contract)
        log.info("  int8_mixed with %d float layer(s): drift %.4f%%, %d bytes", len(kept), 100 * d, len(model))
        return model, MixedStep(list(kept), d, len(model))

    base_model, base = measure([])
    steps = [base]
    if keep_float != "auto":
        names = list(keep_float)
        known = {r.name for r in qd.layer_statistics(qd.quantize(calibrated, per_channel, debug=True),
                                                     np.ascontiguousarray(evals_nchw[:1].transpose(0, 2, 3, 1)),
                                                     calibrated=calibrated)}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ConfigError(f"--keep-float: no quantized layer named {unknown[0]!r} "
                              "(facelm quant-debug lists the names)")
        model, step = measure(names)
        steps.append(step)
        return MixedResult(model, names, step.drift, base.drift, base.bytes, None, True, steps, [], reference)

    if base.drift <= drift_target:
        return MixedResult(base_model, [], base.drift, base.drift, base.bytes, drift_target, True, steps, [], reference)
    rows = qd.layer_statistics(qd.quantize(calibrated, per_channel, debug=True),
                               np.ascontiguousarray(evals_nchw.transpose(0, 2, 3, 1)), calibrated=calibrated)
    ranked = qd.sensitivity(calibrated, rows, ref_landmarks, evals_nchw, contract, per_channel, candidates)
    cands = [{"name": r.name, "op": r.op, "index": r.index, "sqnr_db": r.sqnr_db, "drift_if_float": r.drift_if_float}
             for r in ranked]
    best_model, best, kept = base_model, base, []
    for r in ranked:
        trial = kept + [r.name]
        model, step = measure(trial)
        steps.append(step)
        if step.drift < best.drift:  # greedy: keep a layer only when it helps
            kept, best_model, best = trial, model, step
        if best.drift <= drift_target:
            break
    return MixedResult(best_model, kept, best.drift, base.drift, base.bytes, drift_target,
                       best.drift <= drift_target, steps, cands, reference)


#: what :func:`mixed_for_artifacts` measures drift against: the folder's fp32 TFLite
ARTIFACT_REFERENCE = "fp32_tflite"


def mixed_for_artifacts(folder: str | os.PathLike, keep_float: str | Sequence[str] = "auto",
                        drift_target: float = DEFAULT_DRIFT_TARGET, per_channel: bool = True,
                        calib: str | None = None, num_calib: int | None = None, num_eval: int | None = None,
                        candidates: int = DEFAULT_CANDIDATES) -> MixedResult:
    """``int8_mixed`` for an artifact folder (``facelm quant-debug --keep-float``): the folder's
    fp32 ``.tflite``, the conversion's calibration/evaluation faces rebuilt from its manifest, drift
    against the fp32 TFLite's own landmarks (:data:`ARTIFACT_REFERENCE`).

    Example::

        from facelm.quantization.mixed import mixed_for_artifacts
        res = mixed_for_artifacts("artifacts", "auto")                    # to DEFAULT_DRIFT_TARGET
        res.kept, res.drift, res.reached      # res.model: the .tflite bytes

    Args:
        folder: a ``facelm convert`` output folder (``manifest.json`` with an fp32 TFLite artifact).
        keep_float: ``"auto"``, layer names, or the ``--keep-float`` text (:func:`parse_keep_float`).
        per_channel: quantize weights per channel (as the shipped int8 was: ``debug.per_channel_of``).
        calib, num_calib, num_eval: override what the manifest records about the faces.
    Raises:
        ManifestError: no manifest, no fp32 artifact, or a hash mismatch.
        DataRebuildError: the faces cannot be rebuilt.
        ConfigError: a bad target or an unknown layer name.
    """
    from facelm.artifacts import FP32_REFERENCE
    from facelm.quantization import debug as qd
    from facelm.runtime.manifest import load_manifest

    if isinstance(keep_float, str) and keep_float != "auto":
        keep_float = parse_keep_float(keep_float)
    if keep_float is None:
        raise ConfigError("keep_float must be 'auto' or layer names, got nothing")
    m = load_manifest(folder, verify=False)
    data = qd.rebuild_data(Path(folder), m, calib, num_calib, num_eval)
    fp32 = m.artifact_path(FP32_REFERENCE)
    ref = qd.model_landmarks(fp32, data.evals, m.contract)
    return mixed_precision(fp32.read_bytes(), data.calib, data.evals, ref, m.contract, keep_float, drift_target,
                           per_channel, candidates, reference=ARTIFACT_REFERENCE)


def render_search(rec: dict[str, Any]) -> list[str]:
    """Markdown lines for a :meth:`MixedResult.record`."""
    tgt = rec.get("target")
    out = ["## Selective quantization (int8_mixed)", "",
           f"- drift vs {rec.get('reference', 'torch_fp32')}: all-int8 {100 * rec['baseline_drift']:.4f}% "
           f"-> int8_mixed {100 * rec['drift']:.4f}%"
           + (f" (target {100 * tgt:.4f}%: {'reached' if rec['reached'] else '**not reached**'})" if tgt else ""),
           f"- kept float: {', '.join('`' + k + '`' for k in rec['kept']) or 'nothing'}",
           f"- size: {rec['bytes']} bytes vs all-int8 {rec['baseline_bytes']} bytes",
           "", "| step | layers kept float | drift | bytes |", "|---|---|---|---|"]
    for i, s in enumerate(rec["steps"]):
        out.append(f"| {i} | {len(s['kept'])}: {', '.join(s['kept'][-1:]) or '–'} | {100 * s['drift']:.4f}% | {s['bytes']} |")
    out.append("")
    return out
