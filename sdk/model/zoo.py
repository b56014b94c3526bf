"""Build a heatmap model from a :class:`ModelConfig`."""
from __future__ import annotations

import torch
from torch import nn

from sdk.model.backbones import build_backbone
from sdk.model.config import ModelConfig, load_config
from sdk.model.heads import UpsamplingHead


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def build_model(cfg: ModelConfig | str) -> HeatmapModel:
    """Build an untrained model (PyTorch default init) for a config or a config name."""
    return HeatmapModel(load_config(cfg))
