"""Bias correction of int8 weight rounding (facelm.quantization.bias_correction).

On spatially constant inputs without padding every layer's input mean is exact, so the
corrected model with int8-rounded weights must reproduce the float model's outputs."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from facelm.errors import InputError
from facelm.quantization.bias_correction import bias_correct_onnx, output_shift, quantize_per_channel


def _tiny(path, rng, bias_on_second: bool = True):
    """input (1,3,8,8) -> Conv 3->6 k3 -> depthwise Conv 6 k3 (group 6) -> Conv 6->4 k1."""
    w1 = rng.normal(0, 0.5, (6, 3, 3, 3)).astype(np.float32)
    b1 = rng.normal(0, 0.1, 6).astype(np.float32)
    w2 = rng.normal(0, 0.5, (6, 1, 3, 3)).astype(np.float32)
    b2 = rng.normal(0, 0.1, 6).astype(np.float32)
    w3 = rng.normal(0, 0.5, (4, 6, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"), (w3, "w3"))]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["h1"], name="c1", kernel_shape=[3, 3]),
             helper.make_node("Conv", ["h1", "w2"] + (["b2"] if bias_on_second else []), ["h2"], name="c2",
                              kernel_shape=[3, 3], group=6),
             helper.make_node("Conv", ["h2", "w3"], ["out"], name="c3", kernel_shape=[1, 1])]
    g = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return np.concatenate([s.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])


def _with_int8_weights(model: onnx.ModelProto) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for init in m.graph.initializer:
        if init.name.startswith("w"):
            init.CopyFrom(numpy_helper.from_array(quantize_per_channel(numpy_helper.to_array(init), 0), init.name))
    return m


def test_quantize_per_channel_is_symmetric_int8_per_output_channel():
    w = np.random.default_rng(0).normal(0, 1, (5, 3, 3, 3))
    w[2] = 0.0
    q = quantize_per_channel(w, 0)
    s = np.abs(w).max(axis=(1, 2, 3)) / 127
    for o in (0, 1, 3, 4):
        steps = q[o] / s[o]
        assert np.allclose(steps, np.round(steps), atol=1e-3) and np.abs(steps).max() == pytest.approx(127, abs=1e-3)
        assert np.abs(q[o] - w[o]).max() <= s[o] / 2 + 1e-6
    assert np.all(q[2] == 0)
    assert quantize_per_channel(np.moveaxis(w, 0, 1), 1) == pytest.approx(np.moveaxis(q, 0, 1))


def test_corrected_int8_weights_reproduce_the_float_outputs_on_constant_inputs(tmp_path):
    rng = np.random.default_rng(1)
    _tiny(tmp_path / "a.onnx", rng, bias_on_second=False)
    x = np.ones((4, 3, 8, 8), np.float32) * rng.normal(0.5, 1.0, (4, 3, 1, 1)).astype(np.float32)
    shifts = bias_correct_onnx(tmp_path / "a.onnx", tmp_path / "b.onnx", x[:1])
    assert [s.node for s in shifts] == ["c1", "c2", "c3"] and all(s.max_shift > 0 for s in shifts)
    ref = _run(onnx.load(str(tmp_path / "a.onnx")), x[:1])
    plain = _run(_with_int8_weights(onnx.load(str(tmp_path / "a.onnx"))), x[:1])
    fixed = _run(_with_int8_weights(onnx.load(str(tmp_path / "b.onnx"))), x[:1])
    assert np.abs(plain - ref).max() > 1e-3  # the rounding error that is corrected
    assert np.abs(fixed - ref).max() < 1e-4
    assert "c3_bias_corrected" in {i.name for i in onnx.load(str(tmp_path / "b.onnx")).graph.initializer}


def test_correction_lowers_the_mean_output_error_on_varied_inputs(tmp_path):
    rng = np.random.default_rng(2)
    _tiny(tmp_path / "a.onnx", rng)
    x = rng.normal(0.5, 1.0, (24, 3, 8, 8)).astype(np.float32)  # calibration and test faces alike
    bias_correct_onnx(tmp_path / "a.onnx", tmp_path / "b.onnx", x[:12])
    ref = _run(onnx.load(str(tmp_path / "a.onnx")), x[12:])
    plain = _run(_with_int8_weights(onnx.load(str(tmp_path / "a.onnx"))), x[12:])
    fixed = _run(_with_int8_weights(onnx.load(str(tmp_path / "b.onnx"))), x[12:])
    bias_plain = np.abs((plain - ref).mean(axis=(0, 2, 3))).mean()
    bias_fixed = np.abs((fixed - ref).mean(axis=(0, 2, 3))).mean()
    assert bias_fixed < 0.5 * bias_plain


def test_conv_transpose_shift_is_spread_over_the_stride_phases():
    rng = np.random.default_rng(3)
    w = rng.normal(0, 1, (4, 2, 4, 4))  # (I, O, kh, kw)
    m = rng.normal(0, 1, 4)
    dw = quantize_per_channel(w, 1).astype(np.float64) - w
    expect = np.einsum("iokl,i->o", dw, m) / 4
    assert output_shift("ConvTranspose", w, m, 1, (2, 2)) == pytest.approx(expect, rel=1e-9)


def test_bad_calibration_faces_are_refused(tmp_path):
    _tiny(tmp_path / "a.onnx", np.random.default_rng(4))
    with pytest.raises(InputError, match="calibration faces"):
        bias_correct_onnx(tmp_path / "a.onnx", tmp_path / "b.onnx", np.zeros((0, 3, 8, 8), np.float32))
