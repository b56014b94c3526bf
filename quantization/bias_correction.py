"""Analytic bias correction of int8 weight rounding, applied to the ONNX model before onnx2tf.

Per-channel int8 weights ``W_q = s_o * clip(round(W / s_o), -127, 127)`` (``s_o = max|W_o| / 127``,
TFLite's symmetric per-output-channel scheme) shift every convolution's output mean by
``ΔW · E[x]`` (Nagel et al. 2019, "Data-Free Quantization", bias correction): ``ΔW = W_q - W``
summed over the kernel taps, ``E[x]`` the per-channel mean of the layer's float input over the
calibration faces. Subtracting that shift from the bias leaves the quantized layer's output mean
where the float layer's is. Zero padding at the borders is ignored (interior approximation);
``ConvTranspose`` spreads its taps over ``stride_h * stride_w`` output phases, so its shift is
divided by that.

TensorFlow's converter has no bias-correction switch, so this rewrites the float model that
onnx2tf then quantizes; the float model's own outputs move by the (tiny) corrections.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facelm.errors import InputError

INT8_MAX = 127
CONV_OPS = ("Conv", "ConvTranspose")


@dataclass(frozen=True)
class BiasShift:
    """One corrected layer: ONNX node name, op type, largest |shift| and the bias scale it compares to."""

    node: str
    op: str
    max_shift: float
    max_bias: float


def quantize_per_channel(w: np.ndarray, axis: int) -> np.ndarray:
    """Symmetric per-channel int8 rounding, dequantized: (same shape as ``w``) float32.

    ``axis`` is the output-channel axis (0 for Conv ``(O, I/g, kh, kw)``, 1 for ConvTranspose
    ``(I, O/g, kh, kw)``). An all-zero channel stays zero.
    """
    w = np.asarray(w, dtype=np.float64)
    red = tuple(i for i in range(w.ndim) if i != axis)
    s = np.abs(w).max(axis=red, keepdims=True) / INT8_MAX
    s = np.where(s > 0, s, 1.0)
    return (np.clip(np.round(w / s), -INT8_MAX, INT8_MAX) * s).astype(np.float32)


def output_shift(op: str, w: np.ndarray, mean_in: np.ndarray, group: int, strides: tuple[int, int]) -> np.ndarray:
    """Mean output change (O,) that int8 weight rounding causes, for a per-channel input mean (I,)."""
    dw = quantize_per_channel(w, 0 if op == "Conv" else 1).astype(np.float64) - w
    dsum = dw.sum(axis=(2, 3))  # Conv (O, I/g); ConvTranspose (I, O/g)
    mean_in = np.asarray(mean_in, dtype=np.float64)
    if op == "Conv":
        o, ig = dsum.shape
        og = o // group
        return np.concatenate([dsum[g * og:(g + 1) * og] @ mean_in[g * ig:(g + 1) * ig] for g in range(group)])
    i, og = dsum.shape
    ig = i // group
    out = np.concatenate([mean_in[g * ig:(g + 1) * ig] @ dsum[g * ig:(g + 1) * ig] for g in range(group)])
    return out / float(strides[0] * strides[1])


def _attr(node, name: str, default):
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def input_means(model, names: list[str], x_nchw: np.ndarray, batch: int = 1) -> dict[str, np.ndarray]:
    """Per-channel mean (C,) of the named NCHW tensors of an ONNX model over ``x_nchw`` (N, 3, S, S)
    (``batch`` faces per run: 1 for the static-shape exports)."""
    import copy

    import onnx
    import onnxruntime as ort

    m = copy.deepcopy(model)
    known = {o.name for o in m.graph.output}
    for n in names:
        if n not in known and n not in {i.name for i in m.graph.input}:
            m.graph.output.append(onnx.helper.make_empty_tensor_value_info(n))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    sums: dict[str, np.ndarray] = {}
    for k in range(0, len(x_nchw), batch):
        xb = np.ascontiguousarray(x_nchw[k:k + batch], dtype=np.float32)
        feeds = {in_name: xb}
        outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        outs[in_name] = xb
        for n in names:
            v = outs[n].astype(np.float64).mean(axis=(2, 3)).sum(axis=0)
            sums[n] = sums.get(n, 0.0) + v
    return {n: s / len(x_nchw) for n, s in sums.items()}


def bias_correct_onnx(src: str | os.PathLike, dst: str | os.PathLike, calib_nchw: np.ndarray) -> list[BiasShift]:
    """Write ``dst``: ``src`` with every Conv/ConvTranspose bias corrected for int8 weight rounding.

    Args:
        src, dst: ONNX files (``dst`` written through a temp file and renamed).
        calib_nchw: (N, 3, S, S) float32 normalised calibration faces (never evaluation faces).
    Returns:
        One :class:`BiasShift` per corrected layer.
    Raises:
        InputError: no calibration faces, or a convolution whose weights are not initialisers.
    """
    import onnx
    from onnx import numpy_helper

    from facelm.fileio import atomic_write_bytes

    x = np.asarray(calib_nchw)
    if x.ndim != 4 or x.shape[0] < 1 or x.shape[1] != 3:
        raise InputError(f"bias correction needs (N, 3, S, S) calibration faces, got {x.shape}")
    model = onnx.load(str(src))
    inits = {i.name: i for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type in CONV_OPS]
    for n in convs:
        if n.input[1] not in inits:
            raise InputError(f"{src}: {n.op_type} {n.name} has weights {n.input[1]!r} that are not an initializer")
    means = input_means(model, sorted({n.input[0] for n in convs}), x)
    shifts = []
    for n in convs:
        w = numpy_helper.to_array(inits[n.input[1]]).astype(np.float64)
        strides = tuple(_attr(n, "strides", [1, 1]))
        d = output_shift(n.op_type, w, means[n.input[0]], int(_attr(n, "group", 1)), strides)
        if len(n.input) > 2 and n.input[2]:
            b_init = inits[n.input[2]]
            b = numpy_helper.to_array(b_init).astype(np.float64)
        else:
            b_init, b = None, np.zeros(d.shape)
        new = (b - d).astype(np.float32)
        t = numpy_helper.from_array(new, b_init.name if b_init is not None else f"{n.name}_bias_corrected")
        if b_init is not None:
            b_init.CopyFrom(t)
        else:
            model.graph.initializer.append(t)
            n.input.append(t.name)
        shifts.append(BiasShift(n.name, n.op_type, float(np.abs(d).max()), float(np.abs(b).max())))
    atomic_write_bytes(Path(dst), model.SerializeToString())
    return shifts
