"""Graph passes on converted ``.tflite`` files (facelm.converters.tflite): each keeps the function.

The models are built op by op with the flatbuffer schema (no TensorFlow), a few KB each.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from ai_edge_litert import schema_py_generated as schema  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from facelm.converters.tflite import count_ops, fuse_activations  # noqa: E402

RNG = np.random.default_rng(0)
RELU_STEP = 0.0057  # int8 RELU output scale (zero point -128): 255 steps = 1.45, inside the conv's 1.47


def _q(scale: float, zp: int) -> schema.QuantizationParametersT:
    q = schema.QuantizationParametersT()
    q.scale, q.zeroPoint = [float(scale)], [int(zp)]
    return q


class _Graph:
    """A one-subgraph TFLite model under construction."""

    def __init__(self) -> None:
        self.m = schema.ModelT()
        self.m.version, self.m.buffers, self.m.operatorCodes = 3, [schema.BufferT()], []
        self.sg = schema.SubGraphT()
        self.sg.tensors, self.sg.operators = [], []

    def tensor(self, shape, ttype, data: np.ndarray | None = None, q=None) -> int:
        buf = schema.BufferT()
        if data is not None:
            buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        self.m.buffers.append(buf)
        t = schema.TensorT()
        t.shape, t.type, t.buffer, t.name = list(shape), ttype, len(self.m.buffers) - 1, f"t{len(self.sg.tensors)}"
        t.quantization = q
        self.sg.tensors.append(t)
        return len(self.sg.tensors) - 1

    def op(self, code: int, inputs, outputs, version: int = 1, opt_type: int = 0, opt=None) -> None:
        idx = next((i for i, c in enumerate(self.m.operatorCodes) if c.builtinCode == code), None)
        if idx is None:
            c = schema.OperatorCodeT()
            c.builtinCode, c.deprecatedBuiltinCode, c.version = code, min(code, 127), version
            self.m.operatorCodes.append(c)
            idx = len(self.m.operatorCodes) - 1
        o = schema.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs, o.builtinOptionsType, o.builtinOptions = idx, list(inputs), list(outputs), \
            opt_type, opt
        self.sg.operators.append(o)

    def save(self, path, inputs, outputs) -> str:
        import flatbuffers

        self.sg.inputs, self.sg.outputs = list(inputs), list(outputs)
        self.m.subgraphs = [self.sg]
        b = flatbuffers.Builder(1024)
        b.Finish(self.m.Pack(b), file_identifier=b"TFL3")
        path.write_bytes(bytes(b.Output()))
        return str(path)


def _deconv_relu(path, int8: bool, relu_code: int = schema.BuiltinOperator.RELU, also_output: bool = False) -> str:
    """input (1,4,4,2) -> TRANSPOSE_CONV (k2, s2, VALID, 3 filters) -> (1,8,8,3) -> RELU[6] -> output."""
    g = _Graph()
    w = RNG.normal(size=(3, 2, 2, 2)).astype(np.float32)
    shape = g.tensor([4], schema.TensorType.INT32, np.array([1, 8, 8, 3], np.int32))
    if int8:
        t_in = g.tensor([1, 4, 4, 2], schema.TensorType.INT8, q=_q(0.05, 3))
        wq = np.clip(np.rint(w / 0.02), -127, 127).astype(np.int8)
        t_w = g.tensor([3, 2, 2, 2], schema.TensorType.INT8, wq, q=_q(0.02, 0))
        t_mid = g.tensor([1, 8, 8, 3], schema.TensorType.INT8, q=_q(0.011, -7))
        # as calibration gives: the RELU's range [0, max] within the convolution's [min, max]
        t_out = g.tensor([1, 8, 8, 3], schema.TensorType.INT8, q=_q(RELU_STEP, -128))
    else:
        t_in = g.tensor([1, 4, 4, 2], schema.TensorType.FLOAT32)
        t_w = g.tensor([3, 2, 2, 2], schema.TensorType.FLOAT32, w)
        t_mid = g.tensor([1, 8, 8, 3], schema.TensorType.FLOAT32)
        t_out = g.tensor([1, 8, 8, 3], schema.TensorType.FLOAT32)
    opt = schema.TransposeConvOptionsT()
    opt.padding, opt.strideH, opt.strideW = schema.Padding.VALID, 2, 2
    g.op(schema.BuiltinOperator.TRANSPOSE_CONV, [shape, t_w, t_in], [t_mid], 2 if int8 else 1,
         schema.BuiltinOptions.TransposeConvOptions, opt)
    g.op(relu_code, [t_mid], [t_out], 2 if int8 else 1)
    return g.save(path, [t_in], [t_out, t_mid] if also_output else [t_out])


def _run(path: str, x: np.ndarray, xnnpack: bool = True) -> tuple[np.ndarray, list[str]]:
    """Output 0 as float (dequantized) and the node list after delegation."""
    from ai_edge_litert.interpreter import OpResolverType

    kind = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    it = Interpreter(model_path=path, num_threads=1, experimental_op_resolver_type=kind)
    it.allocate_tensors()
    d_in, d_out = it.get_input_details()[0], it.get_output_details()[0]
    if np.dtype(d_in["dtype"]) == np.int8:
        s, z = d_in["quantization"]
        x = np.clip(np.rint(x / s) + z, -128, 127).astype(np.int8)
    it.set_tensor(d_in["index"], x)
    it.invoke()
    y = it.get_tensor(d_out["index"])
    if np.dtype(y.dtype) == np.int8:
        s, z = d_out["quantization"]
        y = (y.astype(np.float32) - z) * s
    return y, [o["op_name"] for o in it._get_ops_details()]


@pytest.mark.parametrize("relu", [schema.BuiltinOperator.RELU, schema.BuiltinOperator.RELU6])
def test_fuse_activations_float_is_exact(tmp_path, relu):
    path = _deconv_relu(tmp_path / "f.tflite", int8=False, relu_code=relu)
    x = RNG.normal(size=(1, 4, 4, 2)).astype(np.float32) * 3
    before, _ = _run(path, x, xnnpack=False)
    assert (before == 0).any() and (before > 0).any()  # the activation matters on this input
    assert fuse_activations(path) == 1
    ops, _ = count_ops(path)
    assert ops == {"TRANSPOSE_CONV": 1}
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    codes = fbu.read_model(str(path)).operatorCodes  # no leftover RELU entry (TF's calibrator resolves each)
    assert [max(c.builtinCode, c.deprecatedBuiltinCode) for c in codes] == [schema.BuiltinOperator.TRANSPOSE_CONV]
    for xnnpack in (False, True):
        after, _ = _run(path, x, xnnpack)
        np.testing.assert_allclose(after, before, rtol=0, atol=1e-5)
    assert fuse_activations(path) == 0  # nothing left to fuse: the file is not rewritten


def test_fuse_activations_int8_one_partition_within_one_step(tmp_path):
    path = _deconv_relu(tmp_path / "q.tflite", int8=True)
    x = RNG.normal(size=(1, 4, 4, 2)).astype(np.float32) * 2
    before, nodes_before = _run(path, x, xnnpack=False)
    _, delegated_before = _run(path, x)
    assert "RELU" in nodes_before
    assert fuse_activations(path) == 1
    after_ref, _ = _run(path, x, xnnpack=False)
    after, nodes = _run(path, x)
    step = RELU_STEP  # the RELU output's scale, which the fused convolution now writes
    assert (before == 0).any() and (before > 0).any()
    assert np.abs(after_ref - before).max() <= step + 1e-7  # one requantization instead of two: <= 1 step apart
    assert np.abs(after - before).max() <= step + 1e-7
    assert after.min() >= 0.0  # the fused activation clamps at the RELU's zero point
    # XNNPACK takes no int8 RELU: before, the RELU ran outside the delegate; after, one DELEGATE node runs all
    assert delegated_before.count("DELEGATE") == 1 and len(delegated_before) == 3 and nodes.count("DELEGATE") == 1
    assert len(nodes) == 2  # TRANSPOSE_CONV (delegated) + its DELEGATE node; before: + the RELU


def test_fuse_activations_leaves_a_shared_output(tmp_path):
    path = _deconv_relu(tmp_path / "s.tflite", int8=False, also_output=True)
    data = open(path, "rb").read()
    assert fuse_activations(path) == 0
    assert open(path, "rb").read() == data


# ---- export rewrites (facelm.converters.onnx_export): the same function, fewer TFLite ops ----

def _tiny_shuffle_model(strategy: str = "SSD", mode: str = "rank4"):
    """The test config with ``S`` blocks and non-trivial BatchNorm statistics (eval mode)."""
    import dataclasses

    import torch

    from facelm.model import build_model
    from facelm.model.config import load_config

    cfg = dataclasses.replace(load_config("tiny"), strategy=strategy, pixel_shuffle=mode)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(1 + 0.3 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
    return model, cfg


def test_crd_to_dcr_permutation():
    from facelm.converters.onnx_export import crd_to_dcr_permutation

    perm = crd_to_dcr_permutation(8, 2)
    assert sorted(perm) == list(range(8))
    assert perm == [0, 4, 1, 5, 2, 6, 3, 7]  # new q*C + c <- old c*4 + q, C = 2


@pytest.mark.parametrize("mode", ["rank4", "native"])
def test_shuffle_to_depth_to_space_same_outputs_original_untouched(mode):
    import torch

    from facelm.converters.onnx_export import shuffle_to_depth_to_space

    model, cfg = _tiny_shuffle_model("SSD", mode)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    rewritten, n = shuffle_to_depth_to_space(model)
    assert n == 2
    x = torch.randn(2, 3, cfg.input_size, cfg.input_size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref, out = model(x), rewritten(x)
    assert float(ref.abs().max()) > 1e-2  # outputs carry signal
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_export_onnx_depth_to_space_dcr_matches_torch(tmp_path):
    import onnx
    import torch

    from facelm.converters.onnx_export import export_onnx, onnx_heatmaps, torch_heatmaps

    model, cfg = _tiny_shuffle_model("SSD")
    path = export_onnx(model, tmp_path / "m.onnx", cfg.input_size)
    nodes = onnx.load(str(path)).graph.node
    d2s = [n for n in nodes if n.op_type == "DepthToSpace"]
    assert len(d2s) == 2
    assert all(onnx.helper.get_attribute_value(next(a for a in n.attribute if a.name == "mode")) == b"DCR"
               for n in d2s)
    assert not {"Reshape", "Transpose"} & {n.op_type for n in nodes}
    x = torch.randn(2, 3, cfg.input_size, cfg.input_size, generator=torch.Generator().manual_seed(3)).numpy()
    np.testing.assert_allclose(onnx_heatmaps(path, x), torch_heatmaps(model, x), rtol=0, atol=1e-5)
    plain = export_onnx(model, tmp_path / "p.onnx", cfg.input_size, depth_to_space=False)
    assert "DepthToSpace" not in {n.op_type for n in onnx.load(str(plain)).graph.node}
