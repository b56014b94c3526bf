"""The upsampling head: adapter 1x1 conv -> S/D blocks -> 1x1 conv to K heatmaps.

Blocks (F = filters):

* ``S``: 3x3 conv to F + BN + ReLU + PixelShuffle(2) -> F/4 channels at twice the size;
* ``D``: ConvTranspose(kernel 4, stride 2, padding 1, output_padding 0, no bias) to F
  + BN + ReLU. Kernel 4 / padding 1 doubles the size exactly, which converters lower to
  a single transposed conv.

PixelShuffle has two interchangeable formulations with identical outputs and no
parameters (so state dicts are the same):

* ``"native"``: :func:`torch.nn.functional.pixel_shuffle`. It exports to ONNX
  DepthToSpace(CRD), which onnx2tf 1.29 lowers to rank-6 RESHAPE/TRANSPOSE ops that
  the TFLite GPU delegate rejects.
* ``"rank4"``: the same permutation written with rank-4 reshapes and transposes only
  (see :func:`pixel_shuffle_rank4` and ``docs/model_zoo.md``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from facelm.errors import ConfigError
from facelm.model.strategy import Strategy

PIXEL_SHUFFLE_MODES: tuple[str, ...] = ("native", "rank4")


def pixel_shuffle_rank4(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """PixelShuffle written with tensors of rank <= 4.

    (N, C*r*r, H, W) -> (N, C, H*r, W*r), equal to ``F.pixel_shuffle(x, r)``:
    ``out[n, c, h*r + i, w*r + j] = x[n, c*r*r + i*r + j, h, w]``.

    Two rank-4 steps: interleave the column phase j into W, then the row phase i into H.
    """
    n, crr, h, w = x.shape
    r = factor
    c = crr // (r * r)
    # (n*c*r [c, i], r [j], h, w) -> (n*c*r, h, w, r [j]): columns interleaved.
    y = x.reshape(n * c * r, r, h, w).permute(0, 2, 3, 1)
    # (n*c [c], r [i], h, w*r) -> (n*c, h, r [i], w*r): rows interleaved.
    y = y.reshape(n * c, r, h, w * r).permute(0, 2, 1, 3)
    return y.reshape(n, c, h * r, w * r)


class PixelShuffle(nn.Module):
    """PixelShuffle(factor) in the chosen formulation; (N, C*r^2, H, W) -> (N, C, rH, rW)."""

    def __init__(self, factor: int = 2, mode: str = "rank4") -> None:
        super().__init__()
        if mode not in PIXEL_SHUFFLE_MODES:
            raise ConfigError(f"pixel_shuffle mode {mode!r} is not one of {PIXEL_SHUFFLE_MODES}")
        self.factor = factor
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "native":
            return F.pixel_shuffle(x, self.factor)
        return pixel_shuffle_rank4(x, self.factor)

    def extra_repr(self) -> str:
        return f"factor={self.factor}, mode={self.mode!r}"


class ShuffleBlock(nn.Module):
    """``S``: conv(k) to F + BN + ReLU + PixelShuffle(2); (N, C, H, W) -> (N, F/4, 2H, 2W)."""

    def __init__(self, c_in: int, filters: int, kernel: int = 3, mode: str = "rank4") -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, filters, kernel, 1, kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(filters)
        self.relu = nn.ReLU(inplace=True)
        self.shuffle = PixelShuffle(2, mode)
        self.out_channels = filters // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.relu(self.bn(self.conv(x))))


class DeconvBlock(nn.Module):
    """``D``: ConvTranspose(4, 2, 1) to F + BN + ReLU; (N, C, H, W) -> (N, F, 2H, 2W)."""

    def __init__(self, c_in: int, filters: int) -> None:
        super().__init__()
        self.deconv = nn.ConvTranspose2d(c_in, filters, 4, 2, 1, output_padding=0, bias=False)
        self.bn = nn.BatchNorm2d(filters)
        self.relu = nn.ReLU(inplace=True)
        self.out_channels = filters

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.deconv(x)))


class UpsamplingHead(nn.Module):
    """Adapter + strategy blocks + heatmap conv; (N, C, h, w) -> (N, K, h*2^n, w*2^n).

    ``adapter_channels`` = 0 drops the adapter (the first block then reads the
    backbone directly).
    """

    def __init__(self, c_in: int, strategy: Strategy, filters: int, num_keypoints: int,
                 adapter_channels: int = 256, shuffle_kernel: int = 3,
                 pixel_shuffle: str = "rank4") -> None:
        super().__init__()
        if adapter_channels:
            self.adapter: nn.Module = nn.Conv2d(c_in, adapter_channels, 1, bias=False)
            c_in = adapter_channels
        else:
            self.adapter = nn.Identity()
        blocks: list[nn.Module] = []
        for b in strategy.blocks:
            block = ShuffleBlock(c_in, filters, shuffle_kernel, pixel_shuffle) if b.kind == "S" \
                else DeconvBlock(c_in, filters)
            blocks.append(block)
            c_in = block.out_channels
        self.blocks = nn.Sequential(*blocks)
        self.final = nn.Conv2d(c_in, num_keypoints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.final(self.blocks(self.adapter(x)))
