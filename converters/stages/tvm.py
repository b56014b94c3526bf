"""TVM: the host and Android arm64 modules compiled from ``model.onnx``, and ``tvm_int8`` from ``int8.tflite``."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from facelm.artifacts import artifact_kind
from facelm.converters.state import StageState
from facelm.runtime.manifest import ArtifactEntry, TensorSpec, artifact_entry_for

log = logging.getLogger("facelm.convert")


def tvm_host_stage(state: StageState, onnx_path: Path) -> list[ArtifactEntry]:
    """ONNX -> ``tvm/host.so`` (untuned or tuned) with parity, drift and latency."""
    from facelm.converters import onnx_export as ox
    from facelm.converters import tvm as tv

    cfg, m = state.cfg, state.contract.model
    kind = artifact_kind("tvm_host")
    state.rec.relax_module = tv.import_onnx(onnx_path, state.input_shape)
    b = tv.compile_host(onnx_path, state.tmp / kind.file, state.input_shape, trials=cfg.tvm_trials,
                        mod=state.rec.relax_module, work_dir=cfg.tvm_tuning_db)
    tuned = bool(cfg.tvm_trials or cfg.tvm_tuning_db or b.database)
    runner = tv.TvmRunner(b.path)
    # an untuned module is slow (~1.5 s a face on the paper model): a few faces give its parity
    # (still gated) and drift; a tuned one runs every evaluation face
    n = len(state.ref.x) if tuned else min(cfg.tvm_eval_faces, len(state.ref.x))
    tvm_hm = runner.heatmaps(state.ref.x[:n])
    out = TensorSpec("output", (1, m.num_keypoints) + tuple(m.heatmap_size), "NCHW", "float32")
    state.rec.parity["tvm_host"] = ox.max_abs_diff(state.ref.heatmaps[:n], tvm_hm)
    # measured after onnx2tf finishes; an untuned module (~1.5 s a run on the paper model) gets 3 runs
    state.rec.pending_latency["tvm_host"] = (runner.invoke, state.ref.x[:1],
                                             cfg.latency_runs if tuned else min(3, cfg.latency_runs))
    return [artifact_entry_for(
        state.tmp, "tvm_host", target=b.target, input=TensorSpec("input", state.input_shape, "NCHW", "float32"),
        output=out, op_counts=b.op_counts,
        parity={"max_abs": state.rec.parity["tvm_host"]},
        drift_vs_torch=state.drift("tvm_host", tvm_hm, state.landmarks(tvm_hm, out)),
        notes=(f"MetaSchedule trials: {cfg.tvm_trials}{f', database {Path(cfg.tvm_tuning_db).name if cfg.tvm_tuning_db else b.database}' if cfg.tvm_tuning_db or b.database else ''}; "
               f"{b.tuned_kernels} kernels with tuned schedules; weights prepacked except conv2d_transpose"
               if tuned else f"untuned ({b.note}); parity and drift on {n} of {len(state.ref.x)} evaluation faces"))]


def tvm_android_stage(state: StageState, onnx_path: Path) -> list[ArtifactEntry]:
    """ONNX -> Android arm64 library (linked with $TVM_NDK_CC) or object archive."""
    from facelm.converters import tvm as tv

    m = state.contract.model
    a = tv.compile_android(onnx_path, state.tmp / "tvm", state.input_shape, mod=state.rec.relax_module)
    if not a.linked:
        state.rec.warnings.append(a.note)
        log.warning("WARNING: %s", a.note)
    return [artifact_entry_for(
        state.tmp, "tvm_android", f"tvm/{a.path.name}", "tvm_so" if a.linked else "tvm_tar", target=a.target,
        input=TensorSpec("input", state.input_shape, "NCHW", "float32"),
        output=TensorSpec("output", (1, m.num_keypoints) + tuple(m.heatmap_size), "NCHW", "float32"),
        op_counts=tv.object_counts(a.path) if not a.linked else {},
        notes="linked with $TVM_NDK_CC" if a.linked else a.note)]


def tvm_int8_stage(state: StageState) -> list[ArtifactEntry]:
    """``int8.tflite`` -> ``tvm/int8_host.so`` + the Android arm64 archive/library, with drift and parity.

    The module is untuned (its parity and drift use the first ``tvm_eval_faces`` faces); its
    drift vs the fp32 reference must stay within :data:`facelm.converters.config.TVM_INT8_DRIFT_RATIO` x int8 TFLite's
    on the same faces (a gate), and its parity against int8 TFLite is reported.
    """
    from facelm.converters import tvm as tv
    from facelm.quantization.drift import drift_scale, landmark_drift

    cfg, m = state.cfg, state.contract.model
    mod = tv.import_tflite_int8(state.tmp / artifact_kind("int8").file)
    s, (hh, hw), k = m.input_side, m.heatmap_size, m.num_keypoints
    nhwc_in = (1, s, s, 3)
    b = tv.compile_host(None, state.tmp / artifact_kind("tvm_int8").file, nhwc_in, mod=mod)
    runner = tv.TvmRunner(b.path)
    n = min(cfg.tvm_eval_faces, len(state.ref.x))
    x = np.ascontiguousarray(state.ref.x[:n].transpose(0, 2, 3, 1))
    raw = runner.run_raw(x)
    out = TensorSpec("output", (1, hh, hw, k), "NHWC", "float32")
    hm = raw.transpose(0, 3, 1, 2)
    lms = state.landmarks(raw, out)
    drift = state.drift("tvm_int8", hm, lms)
    ref8 = state.rec.artifact_lms["int8"][:n]
    scale = drift_scale(state.contract)
    int8_drift = float(landmark_drift(state.ref.landmarks[:n], ref8, scale)[0].mean())
    vs_tflite = landmark_drift(ref8, lms, scale)[0]
    parity = {"vs_int8_tflite_heatmap_max_abs": float(np.abs(hm - state.rec.artifact_hm["int8"][:n]).max()),
              "vs_int8_tflite_landmark_drift_mean": float(vs_tflite.mean()),
              "vs_int8_tflite_landmark_drift_max": float(vs_tflite.max()),
              "int8_tflite_drift_mean_same_faces": int8_drift,
              "drift_ratio_vs_int8_tflite": float(drift["mean"]) / int8_drift if int8_drift > 0 else None,
              "faces": n}
    state.rec.tvm_int8_check = (float(drift["mean"]), int8_drift)
    state.rec.pending_latency["tvm_int8"] = (runner.invoke, x[:1], min(3, cfg.latency_runs))
    entries = [artifact_entry_for(
        state.tmp, "tvm_int8", target=b.target, input=TensorSpec("input", nhwc_in, "NHWC", "float32"), output=out,
        op_counts=b.op_counts or {}, parity=parity, drift_vs_torch=drift,
        notes=f"int8.tflite through the relax TFLite frontend (QDQ), untuned; parity and drift on {n} faces")]
    a = tv.compile_android(None, state.tmp / "tvm", nhwc_in, mod=mod, stem="int8_android")
    if not a.linked and a.note not in state.rec.warnings:
        state.rec.warnings.append(a.note)
    entries.append(artifact_entry_for(
        state.tmp, "tvm_int8_android", f"tvm/{a.path.name}", "tvm_so" if a.linked else "tvm_tar", target=a.target,
        input=TensorSpec("input", nhwc_in, "NHWC", "float32"), output=out,
        op_counts=tv.object_counts(a.path) if not a.linked else {},
        notes="int8.tflite through the relax TFLite frontend; " + ("linked with $TVM_NDK_CC" if a.linked else a.note)))
    return entries
