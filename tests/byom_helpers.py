"""Models that are not in the zoo, for the bring-your-own-model tests.

- :func:`ibug68_onnx`: an iBUG-68 heatmap model built with ``onnx.helper`` (no torch): 256 px
  NCHW input, 64x64 NCHW (or NHWC) heatmaps, a few convolutions with seeded weights.
- :func:`factory`: the same architecture as a torch ``nn.Module`` (``--model byom_helpers:factory``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

K, SIZE, HM = 68, 256, 64
#: the model adds 0.05 * (image term) to Gaussian peaks at these heatmap cells (x, y): the
#: landmarks of any face are known to within a cell, which tests stride and layout mapping.
PEAKS = np.array([(8 + (k % 10) * 5, 8 + (k // 10) * 6) for k in range(K)], np.float64)
IMAGE_GAIN = 0.05


def prior(hm: int = HM) -> np.ndarray:
    """(1, K, hm, hm) float32 Gaussian peaks (sigma 1.5 cells) at :data:`PEAKS` (scaled to ``hm``)."""
    yy, xx = np.mgrid[0:hm, 0:hm].astype(np.float64)
    pk = PEAKS * hm / HM
    g = np.exp(-((xx[None] - pk[:, 0, None, None]) ** 2 + (yy[None] - pk[:, 1, None, None]) ** 2) / (2 * 1.5 ** 2))
    return g[None].astype(np.float32)


def _weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "w1": (rng.standard_normal((16, 3, 4, 4)) * 0.2).astype(np.float32),   # 256 -> 64, stride 4
        "b1": (rng.standard_normal(16) * 0.1).astype(np.float32),
        "w2": (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32),  # 64 -> 64
        "b2": (rng.standard_normal(16) * 0.1).astype(np.float32),
        "w3": (rng.standard_normal((K, 16, 1, 1)) * 0.3 * IMAGE_GAIN).astype(np.float32),  # 16 -> K heatmaps
        "b3": np.zeros(K, np.float32),
    }


def ibug68_onnx(path: str | Path, nhwc: bool = False, hm: int = HM, seed: int = 0,
                dynamic_batch: bool = True, names: tuple[str, str] = ("image", "logits")) -> Path:
    """Write the model; ``hm`` != 64 makes a stride that disagrees with a declared stride of 4."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = _weights(seed)
    stride1 = SIZE // hm
    w["w1"] = w["w1"] if stride1 == 4 else (np.random.default_rng(seed).standard_normal((16, 3, stride1, stride1))
                                            * 0.2).astype(np.float32)
    inp, out = names
    nodes = [
        helper.make_node("Conv", [inp, "w1", "b1"], ["c1"], kernel_shape=[stride1] * 2, strides=[stride1] * 2),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Clip", ["c2", "zero", "six"], ["r2"]),
        helper.make_node("Conv", ["r2", "w3", "b3"], ["c3"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["c3", "prior"], ["hm" if nhwc else out]),
    ]
    if nhwc:
        nodes.append(helper.make_node("Transpose", ["hm"], [out], perm=[0, 2, 3, 1]))
    batch = "N" if dynamic_batch else 1
    oshape = [batch, hm, hm, K] if nhwc else [batch, K, hm, hm]
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()] + [numpy_helper.from_array(prior(hm), "prior")]
    inits += [numpy_helper.from_array(np.array(0, np.float32), "zero"),
              numpy_helper.from_array(np.array(6, np.float32), "six")]
    graph = helper.make_graph(nodes, "ibug68_heatmaps",
                              [helper.make_tensor_value_info(inp, TensorProto.FLOAT, [batch, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, oshape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def factory():
    """The same network in torch (random init; the tests load weights with --weights)."""
    import torch
    from torch import nn

    class Ibug68(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1 = nn.Conv2d(3, 16, 4, stride=4)
            self.c2 = nn.Conv2d(16, 16, 3, padding=1)
            self.c3 = nn.Conv2d(16, K, 1)
            self.register_buffer("prior", torch.from_numpy(prior()))

        def forward(self, x):
            return self.c3(torch.clamp(self.c2(torch.relu(self.c1(x))), 0.0, 6.0)) + self.prior

    return Ibug68().eval()


def factory_state(seed: int = 0) -> dict:
    """A state dict for :func:`factory` holding the ONNX model's weights."""
    import torch

    w = _weights(seed)
    return {"c1.weight": torch.from_numpy(w["w1"]), "c1.bias": torch.from_numpy(w["b1"]),
            "c2.weight": torch.from_numpy(w["w2"]), "c2.bias": torch.from_numpy(w["b2"]),
            "c3.weight": torch.from_numpy(w["w3"]), "c3.bias": torch.from_numpy(w["b3"]),
            "prior": torch.from_numpy(prior())}
