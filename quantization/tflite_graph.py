"""A ``.tflite`` flatbuffer's graph, and its weights matched to the ONNX nodes they came from.

Shared by quant-debug's per-layer table (:mod:`facelm.quantization.debug`) and the ONNX vs fp32
TFLite comparison (:mod:`facelm.quantization.chain`): operators in execution order, tensor
names and float constants read from the flatbuffer; ONNX weights indexed by their sorted values
so a TFLite op with weights is traced to its ONNX node and torch module path.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

@dataclass
class Op:
    """One operator of subgraph 0: builtin (or custom) name and tensor indices."""

    index: int
    op: str
    inputs: list[int]
    outputs: list[int]


def read_graph(model: bytes) -> tuple[list[Op], list[Any]]:
    """(operators in execution order, tensors) of subgraph 0 of a ``.tflite`` flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema

    from facelm.quantization.delegates import op_codes

    m = schema.Model.GetRootAsModel(model, 0)
    codes = [custom if name == "CUSTOM" and custom else name for name, custom, _ in op_codes(m)]
    sg = m.Subgraphs(0)
    ops = [Op(i, codes[sg.Operators(i).OpcodeIndex()], list(sg.Operators(i).InputsAsNumpy()),
              list(sg.Operators(i).OutputsAsNumpy())) for i in range(sg.OperatorsLength())]
    tensors = [sg.Tensors(t) for t in range(sg.TensorsLength())]
    return ops, tensors


def tensor_name(t) -> str:
    """A flatbuffer tensor's name as text."""
    return (t.Name() or b"").decode("utf-8", "replace")


def const_array(model: bytes, tensor) -> np.ndarray | None:
    """A float32 constant tensor's values, or None."""
    from ai_edge_litert import schema_py_generated as schema

    if tensor.Type() != schema.TensorType.FLOAT32:
        return None
    m = schema.Model.GetRootAsModel(model, 0)
    buf = m.Buffers(tensor.Buffer())
    if buf is None:
        return None
    if buf.DataLength():
        raw = buf.DataAsNumpy().tobytes()
    elif buf.Size():
        raw = model[buf.Offset():buf.Offset() + buf.Size()]
    else:
        return None
    return np.frombuffer(raw, dtype=np.float32)


def onnx_module_path(node_name: str) -> str:
    """ONNX node name from the torch exporter -> torch module path.

    ``/backbone/features/features.1/block/block.0/block.0.0/Conv`` -> ``backbone.features.1.block.0.0``.
    """
    comps = [c for c in node_name.strip("/").split("/") if c][:-1]
    parts, prev = [], None
    for c in comps:
        parts.append(c[len(prev) + 1:] if prev and c.startswith(prev + ".") else c)
        prev = c
    return ".".join(parts)


def onnx_weight_index(onnx_path: str | os.PathLike) -> list[tuple[np.ndarray, str, str]]:
    """``[(sorted float weights, node name, module path)]`` for every Conv/ConvTranspose/Gemm/MatMul."""
    import onnx
    from onnx import numpy_helper

    g = onnx.load(str(onnx_path)).graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n for n in g.node if n.op_type == "Constant"}
    out = []
    for n in g.node:
        if n.op_type not in ("Conv", "ConvTranspose", "Gemm", "MatMul") or len(n.input) < 2:
            continue
        w = None
        if n.input[1] in inits:
            w = numpy_helper.to_array(inits[n.input[1]])
        elif n.input[1] in consts:
            w = numpy_helper.to_array(consts[n.input[1]].attribute[0].t)
        if w is not None:
            out.append((np.sort(w.astype(np.float32).ravel()), n.name, onnx_module_path(n.name)))
    return out


def match_weights(w: np.ndarray | None, index: list[tuple[np.ndarray, str, str]]) -> tuple[str, str] | None:
    """``(node name, module path)`` of the ONNX weights equal to ``w`` as sorted values (1e-4 relative), or None."""
    if w is None or w.size < 2:
        return None
    ws = np.sort(w)
    best = None
    for sorted_w, node, module in index:
        if sorted_w.size != ws.size:
            continue
        err = float(np.max(np.abs(sorted_w - ws)))
        scale = float(np.max(np.abs(sorted_w))) or 1.0
        if err <= 1e-4 * scale and (best is None or err < best[0]):
            best = (err, node, module)
    return None if best is None else (best[1], best[2])
