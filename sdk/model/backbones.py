"""Backbones written in the project (no torchvision): MobileNetV2 and ResNet v1b.

The layouts follow GluonCV, whose MobilePose/SimplePose models the paper trained
(MXNet + GluonCV, paper section 3.3); that is the reading that reproduces the
paper's GFLOPs and size tables (see ``docs/model_zoo.md``):

* MobileNetV2: channels are ``int(c * width)`` with no rounding to multiples of 8,
  a t=1 block has no expansion conv, and the final 1x1 conv to 1280 channels
  (``int(1280 * width)`` above width 1) is kept; the classifier is dropped.
* ResNet v1b: the stride of a bottleneck sits on its 3x3 conv; the stem is
  7x7/2 conv + 3x3/2 max pool; the classifier is dropped.

Every backbone maps (N, 3, S, S) to (N, C, S/32, S/32) and exposes ``out_channels``
and ``stride`` (= 32).
"""
from __future__ import annotations

import torch
from torch import nn

from facelm.errors import ConfigError

# (expansion t, output channels c, repeats n, first stride s) of MobileNetV2, Sandler et al. 2018, Table 2.
MOBILENETV2_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
MOBILENETV2_WIDTHS: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)


def conv_bn_act(c_in: int, c_out: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                act: type[nn.Module] | None = nn.ReLU6) -> nn.Sequential:
    """Conv (no bias, 'same' padding for odd kernels) + BN (+ activation)."""
    layers: list[nn.Module] = [
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
    ]
    if act is not None:
        layers.append(act(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 linear bottleneck: [1x1 expand] -> 3x3 depthwise -> 1x1 project (+ shortcut)."""

    def __init__(self, c_in: int, c_out: int, expansion: int, stride: int) -> None:
        super().__init__()
        hidden = c_in * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_act(c_in, hidden, 1))
        layers.append(conv_bn_act(hidden, hidden, 3, stride, groups=hidden))
        layers.append(conv_bn_act(hidden, c_out, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.use_shortcut = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.use_shortcut else y


class MobileNetV2(nn.Module):
    """MobileNetV2 features (GluonCV layout), (N, 3, S, S) -> (N, C, S/32, S/32).

    ``width`` scales every channel count by ``int(c * width)``. ``last_conv`` keeps
    the final 1x1 conv to 1280 channels (the paper's models keep it).
    """

    stride = 32

    def __init__(self, width: float = 1.0, last_conv: bool = True) -> None:
        super().__init__()
        if width not in MOBILENETV2_WIDTHS:
            raise ConfigError(f"MobileNetV2 width {width!r} is not one of {MOBILENETV2_WIDTHS}")
        c_in = int(32 * width)
        layers: list[nn.Module] = [conv_bn_act(3, c_in, 3, 2)]
        for t, c, n, s in MOBILENETV2_SETTINGS:
            c_out = int(c * width)
            for i in range(n):
                layers.append(InvertedResidual(c_in, c_out, t, s if i == 0 else 1))
                c_in = c_out
        if last_conv:
            c_last = int(1280 * width) if width > 1.0 else 1280
            layers.append(conv_bn_act(c_in, c_last, 1))
            c_in = c_last
        self.features = nn.Sequential(*layers)
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class BasicBlockV1b(nn.Module):
    """ResNet basic block: 3x3 (stride) -> 3x3, with a 1x1 projection when the shape changes."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + identity)


class BottleneckV1b(nn.Module):
    """ResNet v1b bottleneck: 1x1 -> 3x3 (stride here, the "b" variant) -> 1x1 (x4 channels)."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int) -> None:
        super().__init__()
        c_out = planes * self.expansion
        self.conv1 = nn.Conv2d(c_in, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = _projection(c_in, c_out, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return self.relu(y + identity)


def _projection(c_in: int, c_out: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and c_in == c_out:
        return None
    return nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))


RESNET_LAYOUTS: dict[str, tuple[type[nn.Module], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlockV1b, (2, 2, 2, 2)),
    "resnet50": (BottleneckV1b, (3, 4, 6, 3)),
}


class ResNetV1b(nn.Module):
    """ResNet v1b features without pooling/classifier, (N, 3, S, S) -> (N, C, S/32, S/32)."""

    stride = 32

    def __init__(self, name: str) -> None:
        super().__init__()
        if name not in RESNET_LAYOUTS:
            raise ConfigError(f"unknown ResNet {name!r}; known: {sorted(RESNET_LAYOUTS)}")
        block, repeats = RESNET_LAYOUTS[name]
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c_in = 64
        stages = []
        for i, (planes, n) in enumerate(zip((64, 128, 256, 512), repeats)):
            blocks = []
            for j in range(n):
                blocks.append(block(c_in, planes, 2 if (j == 0 and i > 0) else 1))
                c_in = planes * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.out_channels = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


BACKBONES: tuple[str, ...] = ("mobilenetv2", "resnet18", "resnet50")


def build_backbone(name: str, width: float = 1.0, last_conv: bool = True) -> nn.Module:
    """Build a backbone by name. ``width``/``last_conv`` apply to MobileNetV2 only."""
    if name == "mobilenetv2":
        return MobileNetV2(width, last_conv)
    if name in RESNET_LAYOUTS:
        return ResNetV1b(name)
    raise ConfigError(f"unknown backbone {name!r}; known: {list(BACKBONES)}")
