"""tvm_int8 computes in integers: int8 weight constants, integer convolutions, parity with int8 TFLite.

A three-layer Keras model (conv + ReLU, depthwise conv, transposed conv) is quantized to int8 by
the TFLite converter (float32 in/out, per-channel int8 weights), then imported with
:func:`facelm.converters.tvm.import_tflite_int8`: with ``integer=True`` every weight is an int8
constant and every conv accumulates in int32; with ``integer=False`` (the dequantizing frontend)
the weights are float32. The compiled output must match LiteRT's int8 kernels to about one
output quantization step.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tvm")
pytest.importorskip("tflite")
tf = pytest.importorskip("tensorflow")

from facelm.converters import tvm as tv  # noqa: E402

SIZE = 12


@pytest.fixture(scope="module")
def int8_tflite(tmp_path_factory):
    """Path of a small full-int8 ``.tflite`` (float32 input and output)."""
    tf.random.set_seed(0)
    k = tf.keras
    inp = k.Input((SIZE, SIZE, 3), batch_size=1)
    x = k.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    x = k.layers.DepthwiseConv2D(3, strides=2, padding="same")(x)
    x = k.layers.Conv2DTranspose(4, 4, strides=2, padding="same")(x)
    model = k.Model(inp, x)
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(16):
            yield [rng.uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path = tmp_path_factory.mktemp("i8") / "m.tflite"
    path.write_bytes(conv.convert())
    return path


def _tflite_run(path, x):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    i, o = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(i["index"], x)
    it.invoke()
    return it.get_tensor(o["index"]), o["quantization"]


@pytest.fixture(scope="module")
def integer_mod(int8_tflite):
    """The integer import (``integer=True``, the default) of :func:`int8_tflite`."""
    return tv.import_tflite_int8(int8_tflite)


def test_integer_import_keeps_weights_int8(int8_tflite, integer_mod):
    integer = integer_mod
    dequant = tv.import_tflite_int8(int8_tflite, integer=False)
    b_int, b_float = tv.int8_constant_bytes(integer), tv.int8_constant_bytes(dequant)
    n_weights = 3 * 3 * 3 * 8 + 3 * 3 * 8 + 4 * 4 * 8 * 4
    assert b_int.get("int8", 0) >= n_weights
    assert b_float.get("float32", 0) >= 4 * n_weights and b_float.get("int8", 0) < n_weights
    ops = tv.relax_op_counts(integer)
    assert ops.get("nn.conv2d", 0) + ops.get("nn.conv2d_transpose", 0) == 3


def test_integer_convs_have_int32_accumulators(integer_mod):
    tvm = tv.import_tvm()
    from tvm import relax

    mod = integer_mod
    dtypes = []

    @relax.expr_functor.visitor
    class _Convs(relax.PyExprVisitor):
        def visit_call_(self, call):  # noqa: N802
            if isinstance(call.op, tvm.ir.Op) and call.op.name.startswith("relax.nn.conv2d"):
                dtypes.append((str(call.args[0].ty.dtype), str(call.args[1].ty.dtype), str(call.ty.dtype)))
            for a in call.args:
                self.visit_expr(a)

    _Convs().visit_expr(mod["main"])
    # conv2d: int8 x int8 (zero point folded into a per-channel constant); transposed: int16 x int8
    assert sorted(dtypes) == [("int16", "int8", "int32")] + [("int8", "int8", "int32")] * 2, dtypes


def test_integer_build_matches_int8_tflite(int8_tflite, integer_mod, tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, (1, SIZE, SIZE, 3)).astype(np.float32)
    ref, (scale, _) = _tflite_run(int8_tflite, x)
    b = tv.compile_host(None, tmp_path / "i8.so", x.shape, mod=integer_mod,
                        shipped_db=False)
    got = tv.TvmRunner(b.path).invoke(x)
    assert got.shape == ref.shape
    # same integer sums; only the float rescale's rounding can move a value by one step
    assert np.abs(got - ref).max() <= 1.01 * scale
    assert np.mean(np.abs(got - ref) < 1e-6) > 0.95
