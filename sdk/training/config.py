"""Training configuration: the paper's recipe as a dataclass, read from and written to YAML.

The defaults are the paper's (sections 3.3 and 5.1): Adam at 1e-3, divided by 10 at 50% and
75% of the epochs (epochs 20 and 30 of 40), batch 16, heatmap MSE with keypoint weights,
flip / PCA colour noise / colour jitter / random erasing / rotation augmentation, and the
final model MNetV2_1.0 SDD-128. The CLI takes its defaults from here.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from facelm.codec import DecodeConfig
from facelm.data.augment import AugmentConfig
from facelm.errors import ConfigError

RECIPES_PACKAGE = "facelm.training"


@dataclass(frozen=True)
class TrainConfig:
    """One training run.

    Attributes:
        model: zoo config name (``facelm.model.load_config``) or a model YAML path.
        epochs: number of epochs.
        batch_size: images per optimiser step (over all processes with DDP).
        lr: Adam learning rate.
        lr_milestones: fractions of ``epochs`` at which the rate is multiplied by ``lr_gamma``.
        lr_gamma: the factor.
        weight_decay: Adam weight decay.
        sigma: target Gaussian sigma in heatmap pixels (``facelm.codec.EncodeConfig``).
        augment: augmentation switches (``facelm.data.augment.AugmentConfig``).
        val_fraction: share of the data held out for per-epoch evaluation when no ``val_data``.
        val_data: separate evaluation data set (same formats as the training data), or None.
        val_limit: evaluate on at most this many held-out faces (0 = all).
        eval_every: evaluate every N epochs (1 = every epoch, the default); the last epoch of a run
            is always evaluated.
        data_format: ``auto``, ``jd``, ``wflw`` or ``300w``.
        detector_points: file of detector five points per training image, or None (ground truth).
        workers: DataLoader worker processes.
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda[:N]``.
        seed: seed of initialisation, shuffling, augmentation and the validation split.
        decode: heatmap decoding for evaluation (``facelm.codec.DecodeConfig``; YAML: a mapping such
            as ``{method: dark, blur_kernel: 11}``; the older ``decode_method: NAME`` is read as
            ``DecodeConfig(method=NAME)``).
        threads: torch CPU threads per process (0 = torch's default).
        init_checkpoint: weights to start from (fine-tuning: a checkpoint of the same model), or
            None (random initialisation). The optimiser and the schedule start afresh.
    """

    model: str = "mnv2_1.0_sdd128"
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    lr_milestones: tuple[float, ...] = (0.5, 0.75)
    lr_gamma: float = 0.1
    weight_decay: float = 0.0
    sigma: float = 2.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    val_fraction: float = 0.05
    val_data: str | None = None
    val_limit: int = 0
    eval_every: int = 1
    data_format: str = "auto"
    detector_points: str | None = None
    workers: int = 2
    device: str = "auto"
    seed: int = 0
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    threads: int = 0
    init_checkpoint: str | None = None

    def __post_init__(self) -> None:
        if int(self.epochs) < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if int(self.batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {self.batch_size}")
        if not float(self.lr) > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if any(not 0 < float(m) < 1 for m in self.lr_milestones):
            raise ConfigError(f"lr_milestones are fractions of the epochs in (0, 1), got {self.lr_milestones}")
        if not 0 <= float(self.val_fraction) < 1:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")
        if int(self.workers) < 0 or int(self.val_limit) < 0 or int(self.threads) < 0:
            raise ConfigError("workers, val_limit and threads must be >= 0")
        if int(self.eval_every) < 1:
            raise ConfigError(f"eval_every must be >= 1, got {self.eval_every}")
        if not (self.device in ("auto", "cpu") or str(self.device).startswith("cuda")):
            raise ConfigError(f"device must be auto, cpu or cuda[:N], got {self.device!r}")
        if not isinstance(self.augment, AugmentConfig):
            raise ConfigError("augment must be an AugmentConfig")
        if not isinstance(self.decode, DecodeConfig):
            raise ConfigError("decode must be a DecodeConfig")

    def milestone_epochs(self) -> list[int]:
        """Epoch indices (0-based) from which each decay applies: 40 epochs -> [20, 30]."""
        return [int(round(float(m) * int(self.epochs))) for m in self.lr_milestones]

    def lr_at(self, epoch: int) -> float:
        """Learning rate of 0-based ``epoch``."""
        n = sum(1 for m in self.milestone_epochs() if epoch >= m)
        return float(self.lr) * float(self.lr_gamma) ** n

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["augment"] = self.augment.to_dict()
        d["decode"] = self.decode.to_dict()
        d["lr_milestones"] = [float(m) for m in self.lr_milestones]
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        if not isinstance(data, dict):
            raise ConfigError("a training config must be a YAML mapping")
        names = {f.name for f in fields(cls)}
        d = dict(data)
        if "decode_method" in d:  # configs and checkpoints written before ``decode``
            if "decode" in d:
                raise ConfigError("give either decode or the older decode_method, not both")
            d["decode"] = {"method": d.pop("decode_method")}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown training options {sorted(unknown)}; known: {sorted(names)}")
        if "augment" in d:
            d["augment"] = AugmentConfig.from_dict(d["augment"])
        if "lr_milestones" in d:
            d["lr_milestones"] = tuple(float(m) for m in d["lr_milestones"])
        if "decode" in d:
            if not isinstance(d["decode"], dict):
                raise ConfigError(f"decode must be a mapping such as {{method: dark}}, got {d['decode']!r}")
            d["decode"] = DecodeConfig.from_dict(d["decode"])
        try:
            return cls(**d)
        except TypeError as exc:
            raise ConfigError(f"invalid training config: {exc}") from None


def list_recipes() -> list[str]:
    """Names of the recipes shipped in ``sdk/training/recipes``."""
    root = resources.files(RECIPES_PACKAGE) / "recipes"
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def load_train_config(name_or_path: str | os.PathLike) -> TrainConfig:
    """Read a training YAML: a path, or the name of a shipped recipe (``paper``, ``demo``, ``tiny``)."""
    p = Path(name_or_path)
    if not p.is_file():
        shipped = resources.files(RECIPES_PACKAGE) / "recipes" / f"{name_or_path}.yaml"
        if not shipped.is_file():
            raise ConfigError(f"training config {name_or_path!r} is neither a file nor a shipped recipe "
                              f"({', '.join(list_recipes())})")
        text = shipped.read_text(encoding="utf-8")
    else:
        text = p.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{name_or_path}: invalid YAML ({exc})") from None
    return TrainConfig.from_dict(data)


def save_train_config(cfg: TrainConfig, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as YAML atomically."""
    from facelm.fileio import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
