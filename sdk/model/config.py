"""Model configurations: the :class:`ModelConfig` dataclass and the named YAML zoo.

Named configs are YAML files shipped in ``sdk/model/configs/`` (package data). Each
file is a flat mapping of :class:`ModelConfig` fields; the file stem is the name.
``load_config`` also accepts a path to a YAML file of the same form.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import yaml

from facelm.errors import ConfigError
from facelm.layouts import get_layout
from facelm.model.backbones import BACKBONES, MOBILENETV2_WIDTHS
from facelm.model.heads import PIXEL_SHUFFLE_MODES
from facelm.model.strategy import Strategy, parse_strategy

#: Other names for zoo entries. The loaded config keeps the name it was asked for.
ALIASES: dict[str, str] = {
    "baseline": "mnv2_0.25_dddd256",  # paper section 4.1
    "final": "mnv2_1.0_sdd128",       # paper sections 4.3 / 5
}
BACKBONE_STRIDE = 32


@dataclass(frozen=True)
class ModelConfig:
    """One model of the zoo. Defaults describe the paper's final model (MNetV2_1.0 SDD-128).

    Attributes:
        name: identifier (file stem of a zoo YAML).
        backbone: ``"mobilenetv2"``, ``"resnet18"`` or ``"resnet50"``.
        width: MobileNetV2 width multiplier (0.25, 0.5, 0.75, 1.0); must be 1.0 for ResNets.
        strategy: upsampling strategy over ``S``/``D``, backbone first (e.g. ``"SDD"``).
        filters: F, output channels of every S conv / D deconv.
        input_size: square input side in pixels (multiple of 32).
        num_keypoints: K heatmaps.
        layout: landmark layout name (``"jd106"``...); its K must equal ``num_keypoints``.
        adapter_channels: 1x1 conv (no BN, no bias) between backbone and head; 0 = none.
        backbone_last_conv: keep MobileNetV2's final 1x1 conv to 1280 channels.
        shuffle_kernel: kernel of the conv in an ``S`` block (odd).
        pixel_shuffle: ``"rank4"`` (export-friendly) or ``"native"``; same outputs and weights.
        description: free text.
    """

    name: str
    backbone: str = "mobilenetv2"
    width: float = 1.0
    strategy: str = "SDD"
    filters: int = 128
    input_size: int = 192
    num_keypoints: int = 106
    layout: str = "jd106"
    adapter_channels: int = 256
    backbone_last_conv: bool = True
    shuffle_kernel: int = 3
    pixel_shuffle: str = "rank4"
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_types(self)
        if self.backbone not in BACKBONES:
            raise ConfigError(f"{self.name}: unknown backbone {self.backbone!r}; known: {list(BACKBONES)}")
        if self.backbone == "mobilenetv2" and self.width not in MOBILENETV2_WIDTHS:
            raise ConfigError(f"{self.name}: MobileNetV2 width {self.width} is not one of {MOBILENETV2_WIDTHS}")
        if self.backbone != "mobilenetv2" and self.width != 1.0:
            raise ConfigError(f"{self.name}: width applies to mobilenetv2 only; {self.backbone} needs width 1.0")
        strategy = parse_strategy(self.strategy)
        if self.filters <= 0 or (strategy.num_pixel_shuffle and self.filters % 4):
            raise ConfigError(f"{self.name}: filters={self.filters} must be positive and, with 'S' blocks, a multiple of 4")
        if self.input_size < BACKBONE_STRIDE or self.input_size % BACKBONE_STRIDE:
            raise ConfigError(f"{self.name}: input_size={self.input_size} must be a positive multiple of {BACKBONE_STRIDE}")
        if self.heatmap_size > self.input_size:
            raise ConfigError(
                f"{self.name}: strategy {self.strategy!r} makes {self.heatmap_size}px heatmaps, "
                f"larger than the {self.input_size}px input")
        layout = get_layout(self.layout)
        if layout.num_points != self.num_keypoints:
            raise ConfigError(f"{self.name}: layout {self.layout} has {layout.num_points} points, "
                              f"num_keypoints is {self.num_keypoints}")
        if self.adapter_channels < 0:
            raise ConfigError(f"{self.name}: adapter_channels must be >= 0, got {self.adapter_channels}")
        if self.shuffle_kernel < 1 or self.shuffle_kernel % 2 == 0:
            raise ConfigError(f"{self.name}: shuffle_kernel must be odd and positive, got {self.shuffle_kernel}")
        if self.pixel_shuffle not in PIXEL_SHUFFLE_MODES:
            raise ConfigError(f"{self.name}: pixel_shuffle {self.pixel_shuffle!r} is not one of {PIXEL_SHUFFLE_MODES}")

    @property
    def parsed_strategy(self) -> Strategy:
        return parse_strategy(self.strategy)

    @property
    def feature_size(self) -> int:
        """Side of the backbone's output feature map (input_size / 32)."""
        return self.input_size // BACKBONE_STRIDE

    @property
    def heatmap_size(self) -> int:
        """Side of the output heatmaps in pixels."""
        return self.feature_size * 2 ** len(self.strategy)

    @property
    def stride(self) -> int:
        """Input pixels per heatmap pixel (input_size // heatmap_size)."""
        return self.input_size // self.heatmap_size

    @property
    def label(self) -> str:
        """Paper-style label, e.g. ``MNetV2_1.0 SDD-128``."""
        bb = f"MNetV2_{self.width}" if self.backbone == "mobilenetv2" else {
            "resnet18": "ResNet18", "resnet50": "ResNet50"}[self.backbone]
        return f"{bb} {self.strategy}-{self.filters}"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (YAML/JSON-safe)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "ModelConfig":
        """Build from a mapping of fields; unknown keys or a missing name raise ConfigError."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"a model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys {unknown}; known: {sorted(known)}")
        if "name" not in data:
            raise ConfigError("model config has no 'name'")
        return cls(**dict(data))


_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,), "backbone": (str,), "width": (float, int), "strategy": (str,), "filters": (int,),
    "input_size": (int,), "num_keypoints": (int,), "layout": (str,), "adapter_channels": (int,),
    "backbone_last_conv": (bool,), "shuffle_kernel": (int,), "pixel_shuffle": (str,), "description": (str,),
}


def _check_types(cfg: ModelConfig) -> None:
    for name, types in _FIELD_TYPES.items():
        value = getattr(cfg, name)
        # bool is an int subclass: refuse it where a number is meant.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"model config field {name!r} must be {types[0].__name__}, got {value!r}")
    if isinstance(cfg.width, int):
        object.__setattr__(cfg, "width", float(cfg.width))


def _zoo_dir():
    return resources.files("facelm.model").joinpath("configs")


def list_configs(include_aliases: bool = True) -> list[str]:
    """Names of the shipped configs (sorted), with the aliases of :data:`ALIASES` if asked."""
    names = sorted(p.name[:-5] for p in _zoo_dir().iterdir() if p.name.endswith(".yaml"))
    return sorted(names + list(ALIASES)) if include_aliases else names


def _read_yaml(text: str, origin: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{origin}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{origin}: a model config must be a YAML mapping")
    return data


def load_config(name_or_path: str | os.PathLike) -> ModelConfig:
    """Load a zoo config by name (see :func:`list_configs`) or a YAML file by path.

    A ModelConfig passes through unchanged. Raises ConfigError for an unknown name,
    an unreadable file or invalid contents.
    """
    if isinstance(name_or_path, ModelConfig):
        return name_or_path
    text_name = os.fspath(name_or_path)
    is_path = isinstance(name_or_path, os.PathLike) or text_name.endswith((".yaml", ".yml")) or os.sep in text_name
    if is_path:
        path = Path(text_name)
        try:
            data = _read_yaml(path.read_text(encoding="utf-8"), str(path))
        except OSError as exc:
            raise ConfigError(f"cannot read model config {path}: {exc.strerror or exc}") from None
        data.setdefault("name", path.stem)
        return ModelConfig.from_dict(data)
    canonical = ALIASES.get(text_name, text_name)
    res = _zoo_dir().joinpath(f"{canonical}.yaml")
    if not res.is_file():
        raise ConfigError(f"unknown model config {text_name!r}; known: {', '.join(list_configs())}")
    data = _read_yaml(res.read_text(encoding="utf-8"), f"config {canonical}")
    data["name"] = text_name
    return ModelConfig.from_dict(data)
