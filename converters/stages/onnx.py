"""``model.onnx``: onnxruntime parity and drift against torch, op counts and tensor rank."""
from __future__ import annotations

import logging
from pathlib import Path

from facelm.converters.state import StageState
from facelm.runtime.manifest import ArtifactEntry, TensorSpec, artifact_entry_for

log = logging.getLogger("facelm.convert")


def onnx_stage(state: StageState, onnx_path: Path) -> list[ArtifactEntry]:
    """``model.onnx``: onnxruntime parity and drift against torch. An ONNX source's reference *is*
    onnxruntime running this file: nothing is compared with itself (no parity, no drift)."""
    from facelm.converters import onnx_export as ox

    m = state.contract.model
    out = TensorSpec(m.output_name, (1, m.num_keypoints) + tuple(m.heatmap_size), "NCHW", "float32")
    common = dict(input=TensorSpec(m.input_name, state.input_shape, "NCHW", "float32"), output=out,
                  op_counts=onnx_op_counts(onnx_path), max_tensor_rank=onnx_max_rank(onnx_path))
    if state.lm.model is None:
        log.info("  onnx: the source ONNX file is the fp32 reference (onnxruntime): no parity or drift against itself")
        return [artifact_entry_for(state.tmp, "onnx", **common,
                                   notes="the fp32 reference (onnxruntime runs this file): no parity or drift against itself")]
    ort_hm = ox.onnx_heatmaps(onnx_path, state.ref.x)
    state.rec.parity["onnx"] = ox.max_abs_diff(state.ref.heatmaps, ort_hm)
    log.info("  onnx parity: max |torch - onnxruntime| = %.3g on %d faces", state.rec.parity["onnx"], len(ort_hm))
    return [artifact_entry_for(state.tmp, "onnx", **common, parity={"max_abs": state.rec.parity["onnx"]},
                               drift_vs_torch=state.drift("onnx", ort_hm, state.landmarks(ort_hm, out)))]


def onnx_op_counts(path: Path) -> dict[str, int]:
    import onnx
    from collections import Counter

    return dict(sorted(Counter(n.op_type for n in onnx.load(str(path)).graph.node).items()))


def onnx_max_rank(path: Path) -> int:
    import onnx

    m = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    ranks = [len(v.type.tensor_type.shape.dim) for v in list(m.graph.value_info) + list(m.graph.output)
             + list(m.graph.input) if v.type.tensor_type.HasField("shape")]
    return max(ranks) if ranks else 0
