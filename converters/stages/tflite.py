"""TFLite: onnx2tf in a background process, and each variant handled as soon as it is written.

Each variant is copied in, made NHWC, its RELUs fused, the contract embedded, then evaluated as
shipped (drift vs the reference, parity for float ones, op counts, GPU readiness); its latency
is measured at the end (:func:`facelm.converters.stages.publish.measure_pending_latencies`).
"""
from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

from facelm.artifacts import artifact_kind
from facelm.converters.config import ConvertConfig
from facelm.converters.state import PreparedInputs, StageState
from facelm.runtime.manifest import ArtifactEntry, artifact_entry_for

log = logging.getLogger("facelm.convert")


def wanted_variants(cfg: ConvertConfig) -> list[str]:
    """The TFLite artifacts to write, in catalogue order (see :attr:`ConvertConfig.variants`)."""
    from facelm.artifacts import tflite_names

    need = {"int8"} if "tvm_int8" in cfg.targets else set()  # tvm_int8 is compiled from int8.tflite
    if cfg.variants is not None:
        return [n for n in tflite_names() if n in cfg.variants or n in need]
    return [n for n in tflite_names() if not artifact_kind(n).optional or (n == "int16x8" and cfg.int16x8)]


def start_tflite(cfg: ConvertConfig, prep: PreparedInputs, work: Path, threads: int | None = None):
    """Start onnx2tf on a copy of ``model.onnx`` for the wanted variants (one calibration)."""
    from facelm.converters.tflite import start_onnx2tf

    norm = prep.contract.preprocess.normalization
    return start_onnx2tf(prep.onnx_path, prep.calib.unit_nhwc(norm), norm.mean, norm.std, work,
                         quant_type=cfg.quant_type, variants=wanted_variants(cfg), threads=threads)


def tflite_entries(state: StageState, job) -> list[ArtifactEntry]:
    """Every wanted TFLite variant, each handled as soon as onnx2tf has written it (while it works
    on the next): metadata, op counts, drift; latency is measured at the end."""
    pending = wanted_variants(state.cfg)
    entries = []
    while pending:  # variants that are complete while onnx2tf still runs
        ready = job.ready()
        names = [n for n in pending if n in ready]
        if not names:
            if job.proc.poll() is not None or job.expired():
                break
            time.sleep(1.0)
            continue
        for name in names:
            entries.append(tflite_entry(state, name, ready[name]))
            pending.remove(name)
    produced = job.wait()  # errors, timeouts and missing variants are raised here
    if len(pending) > 1:  # onnx2tf is done: its core is free, evaluate the rest side by side
        from concurrent.futures import ThreadPoolExecutor  # (LiteRT and numpy release the GIL)

        with ThreadPoolExecutor(max_workers=min(len(pending), os.cpu_count() or 1)) as pool:
            entries += list(pool.map(lambda n: tflite_entry(state, n, produced[n]), pending))
    elif pending:
        entries.append(tflite_entry(state, pending[0], produced[pending[0]]))
    return entries


def tflite_entry(state: StageState, name: str, src: Path) -> ArtifactEntry:
    """One TFLite variant: copied in, made NHWC, metadata embedded, evaluated as shipped."""
    from facelm.converters.tflite import count_ops, embed_metadata, ensure_nhwc_output, fuse_activations
    from facelm.runtime.tflite import TfliteRunner, dequantize

    cfg = state.cfg
    kind = artifact_kind(name)
    dst = state.tmp / kind.file
    shutil.copyfile(src, dst)
    m = state.contract.model
    if ensure_nhwc_output(dst, (1, m.num_keypoints) + tuple(m.heatmap_size)):
        log.info("  %s: onnx2tf left the heatmaps NCHW; appended one TRANSPOSE to NHWC", name)
    if fuse_activations(dst):  # a lone int8 RELU splits the XNNPACK graph (converters/tflite.py)
        log.info("  %s: fused RELU ops into the convolutions before them", name)
    runner = TfliteRunner(dst, num_threads=1)
    meta = dict(state.contract.to_dict(), tools=state.tools,
                artifact=dict(kind.to_dict(), name=name, quant_type=cfg.quant_type,
                              input=runner.input_spec.to_dict(), output=runner.output_spec.to_dict()))
    embed_metadata(dst, meta)
    runner = TfliteRunner(dst, num_threads=1)  # evaluate the file as shipped
    raw = runner.run_raw(state.ref.x)
    q = runner.output_spec.quantization
    hm = dequantize(raw, q).transpose(0, 3, 1, 2)
    # int8 outputs are decoded directly on the integers (the phone's path)
    lms = state.landmarks(raw, runner.output_spec)
    state.rec.artifact_lms[name] = lms
    if name == "int8" and "tvm_int8" in cfg.targets:  # (N, K, h, w) float: kept only where it is compared
        state.rec.artifact_hm[name] = hm
    drift = state.drift(name, hm, lms)
    ops, rank = count_ops(dst)
    p = {}
    if kind.float_reference:  # its max_abs is the heatmap difference vs torch
        state.rec.parity[name] = float(drift["max_abs"])
        p = {"max_abs": state.rec.parity[name]}
    state.rec.pending_latency[name] = (runner.invoke, runner.prepare(state.ref.x[:1]), cfg.latency_runs)
    notes = f"{kind.weight_dtype} weights, {kind.precision} activations, {kind.io} input/output; {cfg.quant_type}"
    if rank > 4:
        notes += f"; WARNING: rank-{rank} tensors (the TFLite GPU delegate accepts rank <= 4)"
    log.info("  %s.tflite: drift mean %.4g on %d faces", name, float(drift["mean"]), len(state.ref.x))
    return artifact_entry_for(
        state.tmp, name, input=runner.input_spec, output=runner.output_spec, op_counts=ops,
        max_tensor_rank=rank, parity=p, drift_vs_torch=drift, notes=notes, checks=gpu_checks(dst))


def gpu_checks(path: Path) -> dict:
    """Manifest ``checks`` of a ``.tflite``: static GPU delegate readiness (facelm.quantization.delegates)."""
    from facelm.quantization.delegates import gpu_check

    return gpu_check(path)
