"""FLOPs and size in the paper's units.

The paper's "GFLOPS" are multiply-adds (MACs) of convolutions and transposed
convolutions only; its "Size (MB)" is learnable parameters x 4 bytes / 2^20, with no
BN running statistics (see ``docs/model_zoo.md`` for how this was established).

* conv: H_out * W_out * C_out * (C_in / groups) * k_h * k_w MACs;
* transposed conv: H_in * W_in * C_in * (C_out / groups) * k_h * k_w MACs (every input
  pixel scatters a full kernel).

Counting runs the real model on the ``meta`` device: shapes only, no arithmetic, so
the counter cannot drift from the architecture and costs milliseconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from facelm.model.config import ModelConfig, load_config

BYTES_PER_PARAM_FP32 = 4
MB = 2 ** 20


@dataclass(frozen=True)
class LayerCost:
    """One conv-like layer: module path, type, output shape (C, H, W), MACs and parameters."""

    name: str
    kind: str
    out_shape: tuple[int, int, int]
    macs: int
    params: int


@dataclass(frozen=True)
class Complexity:
    """Totals of a model: MACs of convs/deconvs, learnable parameters, and per-layer rows."""

    macs: int
    params: int
    layers: tuple[LayerCost, ...]

    @property
    def gflops(self) -> float:
        """Paper "GFLOPS": 10^9 multiply-adds."""
        return self.macs / 1e9

    @property
    def size_mb(self) -> float:
        """Paper "Size (MB)": float32 learnable parameters in 2^20 bytes."""
        return self.params * BYTES_PER_PARAM_FP32 / MB

    def size_mb_at(self, bytes_per_param: float) -> float:
        """Size in 2^20 bytes at another precision (1 for int8)."""
        return self.params * bytes_per_param / MB


def _conv_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    k = int(m.weight.shape[2] * m.weight.shape[3])
    if isinstance(m, nn.ConvTranspose2d):
        _, c_in, h, w = inp.shape
        return h * w * c_in * (m.out_channels // m.groups) * k
    _, c_out, h, w = out.shape
    return h * w * c_out * (m.in_channels // m.groups) * k


def measure(cfg: ModelConfig | str | nn.Module, input_size: int | None = None) -> Complexity:
    """Count MACs and learnable parameters of a config (or built model) at its input size.

    Returns a :class:`Complexity` with one :class:`LayerCost` per conv/deconv.
    """
    if isinstance(cfg, nn.Module):
        model, size = cfg, input_size or cfg.cfg.input_size  # type: ignore[union-attr]
    else:
        from facelm.model.zoo import HeatmapModel

        cfg = load_config(cfg)
        size = input_size or cfg.input_size
        with torch.device("meta"):
            model = HeatmapModel(cfg)
    rows: list[LayerCost] = []

    def hook(name: str):
        def fn(m: nn.Module, args: tuple, out: torch.Tensor) -> None:
            params = sum(p.numel() for p in m.parameters(recurse=False))
            rows.append(LayerCost(name, type(m).__name__, tuple(out.shape[1:]), _conv_macs(m, args[0], out), params))
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules()
               if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model.eval()(torch.empty(1, 3, size, size, device=device))
    finally:
        for h in handles:
            h.remove()
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return Complexity(sum(r.macs for r in rows), params, tuple(rows))


def count_complexity(cfg: ModelConfig | str) -> tuple[float, float]:
    """(GFLOPs as 10^9 multiply-adds, size in MB = fp32 params / 2^20) in the paper's units."""
    c = measure(cfg)
    return c.gflops, c.size_mb
