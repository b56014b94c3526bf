"""Across the chain: the first node where fp32 TFLite stops matching ONNX.

Both models run on the same faces with every intermediate tensor kept (onnxruntime with
each node output exposed; LiteRT with ``experimental_preserve_all_tensors``). TFLite ops
with weights are matched to ONNX nodes by their weights (:func:`facelm.quantization.tflite_graph.onnx_weight_index`);
the TFLite output (NHWC) is compared with the ONNX node's output and, when the TFLite op fused
an activation, with the output of the ONNX activation that follows (NCHW, transposed).
The first op, in TFLite execution order, whose max difference exceeds ``tolerance`` times
the tensor's max |value| is the divergence.

Torch vs ONNX is checked at the output by the conversion's parity gate; per node it is not.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from facelm.errors import InputError

DEFAULT_TOLERANCE = 1e-3
_ACTS = ("Relu", "Clip", "Sigmoid", "Tanh")


def _onnx_all_outputs(onnx_path: Path, x_nchw: np.ndarray) -> dict[str, np.ndarray]:
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(onnx_path))
    have = {o.name for o in m.graph.output}
    for n in m.graph.node:
        for o in n.output:
            if o and o not in have and n.op_type != "Constant":
                m.graph.output.append(onnx.helper.make_empty_tensor_value_info(o))
                have.add(o)
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    runs = [sess.run(names, {sess.get_inputs()[0].name: x_nchw[i:i + 1].astype(np.float32)})
            for i in range(x_nchw.shape[0])]  # exported with batch 1
    return {n: np.concatenate([r[j] for r in runs]) if np.ndim(runs[0][j]) else runs[0][j]
            for j, n in enumerate(names)}


def first_divergence(onnx_path: str | os.PathLike, fp32_tflite: str | os.PathLike, x_nchw: np.ndarray,
                     tolerance: float = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Compare fp32 TFLite with ONNX op by op (see the module docstring).

    Args:
        x_nchw: (N, 3, H, W) normalised faces (a few are enough).
    Returns:
        ``{"compared", "faces", "tolerance", "first", "first_error", "max_rel", "per_op": [...]}``;
        ``first`` is None when nothing diverged.
    """
    import onnx
    from ai_edge_litert.interpreter import Interpreter

    from facelm.quantization.tflite_graph import const_array, match_weights, onnx_weight_index, read_graph, tensor_name

    onnx_path, fp32_tflite = Path(onnx_path), Path(fp32_tflite)
    model = fp32_tflite.read_bytes()
    index = onnx_weight_index(onnx_path)
    g = onnx.load(str(onnx_path), load_external_data=False).graph
    node_by_name = {n.name: n for n in g.node}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    ops, tensors = read_graph(model)
    matched = []
    for op in ops:
        if len(op.inputs) > 1 and op.inputs[1] >= 0:
            hit = match_weights(const_array(model, tensors[op.inputs[1]]), index)
            if hit:
                matched.append((op, hit[0]))
    if not matched:
        raise InputError("no TFLite op could be matched to an ONNX node (weights differ)")
    onnx_out = _onnx_all_outputs(onnx_path, x_nchw)
    it = Interpreter(model_content=model, experimental_preserve_all_tensors=True, num_threads=1)
    it.allocate_tensors()
    inp = it.get_input_details()[0]["index"]
    tfl: dict[int, list[np.ndarray]] = {}
    for i in range(x_nchw.shape[0]):
        it.set_tensor(inp, np.ascontiguousarray(x_nchw[i:i + 1].transpose(0, 2, 3, 1)).astype(np.float32))
        it.invoke()
        for op, _ in matched:
            tfl.setdefault(op.outputs[0], []).append(it.get_tensor(op.outputs[0]).copy())
    per_op, first, first_err, max_rel = [], None, None, 0.0
    for op, node_name in matched:
        t = np.concatenate(tfl[op.outputs[0]])
        node = node_by_name[node_name]
        cands = [node.output[0]] + [c.output[0] for c in consumers.get(node.output[0], []) if c.op_type in _ACTS]
        best = None
        for name in cands:
            ref = onnx_out.get(name)
            if ref is None or ref.ndim != 4 or ref.transpose(0, 2, 3, 1).shape != t.shape:
                continue
            r = ref.transpose(0, 2, 3, 1)
            rel = float(np.max(np.abs(r - t)) / (np.max(np.abs(r)) or 1.0))
            if best is None or rel < best[0]:
                best = (rel, name)
        if best is None:
            continue
        rel, name = best
        max_rel = max(max_rel, rel)
        per_op.append({"index": op.index, "op": op.op, "tflite": tensor_name(tensors[op.outputs[0]]),
                       "onnx": name, "rel_diff": rel})
        if first is None and rel > tolerance:
            first, first_err = f"{op.op} #{op.index} = ONNX {name}", f"relative difference {rel:.3g}"
    return {"compared": len(per_op), "faces": int(x_nchw.shape[0]), "tolerance": tolerance, "first": first,
            "first_error": first_err, "max_rel": max_rel, "per_op": per_op}
