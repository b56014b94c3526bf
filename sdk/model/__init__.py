"""The model zoo: MobileNetV2 / ResNet backbones with the paper's S/D upsampling heads.

Public API::

    from facelm.model import (ModelConfig, load_config, list_configs, build_model,
                           parse_strategy, count_complexity, save_checkpoint, load_checkpoint)
"""
from facelm.model.checkpoint import load_checkpoint, save_checkpoint
from facelm.model.config import ALIASES, ModelConfig, list_configs, load_config
from facelm.model.flops import Complexity, count_complexity, measure
from facelm.model.strategy import Strategy, UpBlock, parse_strategy
from facelm.model.zoo import HeatmapModel, build_model

__all__ = [
    "ALIASES", "Complexity", "HeatmapModel", "ModelConfig", "Strategy", "UpBlock",
    "build_model", "count_complexity", "list_configs", "load_checkpoint", "load_config",
    "measure", "parse_strategy", "save_checkpoint",
]
