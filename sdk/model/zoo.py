"""Build a heatmap model from a :class:`ModelConfig`."""
from __future__ import annotations

import torch
from torch import nn

from facelm.model.backbones import build_backbone
from facelm.model.config import ModelConfig, load_config
from facelm.model.heads import UpsamplingHead


class HeatmapModel(nn.Module):
    """Backbone + upsampling head; (N, 3, S, S) normalised RGB -> (N, K, H, H) heatmaps.

    S = ``cfg.input_size``, H = ``cfg.heatmap_size``, K = ``cfg.num_keypoints``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone = build_backbone(cfg.backbone, cfg.width, cfg.backbone_last_conv)
        self.head = UpsamplingHead(
            self.backbone.out_channels, cfg.parsed_strategy, cfg.filters, cfg.num_keypoints,
            adapter_channels=cfg.adapter_channels, shuffle_kernel=cfg.shuffle_kernel,
            pixel_shuffle=cfg.pixel_shuffle,
        )
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def init_weights(model: HeatmapModel) -> None:
    """Training-from-scratch init: He (fan-out) for convs/deconvs, BN = identity, and a
    small N(0, 0.001) heatmap conv with zero bias (as in SimpleBaselines), so initial
    heatmaps are near zero rather than random."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    nn.init.normal_(model.head.final.weight, std=0.001)
    nn.init.zeros_(model.head.final.bias)


def build_model(cfg: ModelConfig | str) -> HeatmapModel:
    """Build an untrained model (PyTorch default init) for a config or a config name."""
    return HeatmapModel(load_config(cfg))
