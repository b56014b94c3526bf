"""``int8_mixed.tflite`` (``--keep-float``): fp32.tflite re-quantized with the fewest layers float."""
from __future__ import annotations

import numpy as np

from facelm.artifacts import artifact_kind
from facelm.converters.stages.publish import median_latency_ms
from facelm.converters.stages.tflite import gpu_checks
from facelm.converters.state import StageState
from facelm.runtime.manifest import ArtifactEntry, artifact_entry_for


def mixed_stage(state: StageState) -> list[ArtifactEntry]:
    """``int8_mixed.tflite``: fp32.tflite re-quantized with the fewest layers float (facelm.quantization.mixed)."""
    from facelm.converters.tflite import count_ops, embed_metadata
    from facelm.fileio import atomic_write_bytes
    from facelm.quantization.mixed import mixed_precision, parse_keep_float
    from facelm.runtime.tflite import TfliteRunner, dequantize

    cfg, norm = state.cfg, state.contract.preprocess.normalization
    kind = artifact_kind("int8_mixed")
    fp32 = state.tmp / artifact_kind("fp32").file
    calib = np.ascontiguousarray(state.calib.inputs(norm).transpose(0, 2, 3, 1))
    res = mixed_precision(fp32.read_bytes(), calib, state.ref.x, state.ref.landmarks, state.contract,
                          parse_keep_float(cfg.keep_float), cfg.drift_target, cfg.quant_type == "per-channel")
    dst = atomic_write_bytes(state.tmp / kind.file, res.model)
    runner = TfliteRunner(dst, num_threads=1)
    embed_metadata(dst, dict(state.contract.to_dict(), tools=state.tools,
                             artifact=dict(kind.to_dict(), name=kind.name, quant_type=cfg.quant_type,
                                           input=runner.input_spec.to_dict(), output=runner.output_spec.to_dict())))
    runner = TfliteRunner(dst, num_threads=1)
    raw = runner.run_raw(state.ref.x)
    hm = dequantize(raw, runner.output_spec.quantization).transpose(0, 3, 1, 2)
    drift = state.drift(kind.name, hm, state.landmarks(raw, runner.output_spec))
    state.rec.latency[kind.name] = median_latency_ms(runner.invoke, runner.prepare(state.ref.x[:1]), cfg.latency_runs)
    ops, rank = count_ops(dst)
    if not res.reached:
        state.rec.warnings.append(f"int8_mixed: drift target {cfg.drift_target:g} not reached ({res.drift:.4g} "
                                  f"with {len(res.kept)} float layers)")
    kept = ", ".join(res.kept) or "none"
    return [artifact_entry_for(state.tmp, kind.name, input=runner.input_spec, output=runner.output_spec,
                               op_counts=ops, max_tensor_rank=rank, drift_vs_torch=drift,
                               checks=dict(gpu_checks(dst), mixed_search=res.record()),
                               notes=f"int8 with float layers: {kept}; {cfg.quant_type}")]
