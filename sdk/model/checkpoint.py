"""Checkpoints: a state_dict plus the model config, written atomically.

File format (a ``torch.save`` dict that ``torch.load(weights_only=True)`` reads)::

    {"format": "facelm-checkpoint", "version": 1,
     "config": ModelConfig.to_dict(), "state_dict": {...}, "extra": {...}}

``extra`` holds caller data (epoch, metrics, optimizer state...) made only of
dicts, lists, tuples, str, int, float, bool, None and tensors, so that loading never
needs to unpickle arbitrary objects.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from facelm.errors import ConfigError
from facelm.fileio import atomic_open
from facelm.model.config import ModelConfig
from facelm.model.zoo import HeatmapModel

FORMAT = "facelm-checkpoint"
VERSION = 1
_SAFE_SCALARS = (str, int, float, bool, type(None), torch.Tensor)


def _check_safe(value: Any, where: str) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            if not isinstance(k, (str, int)):
                raise ConfigError(f"checkpoint extra: key {k!r} at {where} must be str or int")
            _check_safe(v, f"{where}.{k}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _check_safe(v, f"{where}[{i}]")
    elif not isinstance(value, _SAFE_SCALARS):
        raise ConfigError(f"checkpoint extra: {where} is a {type(value).__name__}; only dict/list/tuple/"
                          "str/int/float/bool/None/Tensor can be loaded with weights_only=True")


def save_checkpoint(path: str | os.PathLike, model: nn.Module, cfg: ModelConfig,
                    extra: dict[str, Any] | None = None) -> Path:
    """Save ``model``'s state_dict with ``cfg`` (and ``extra``) to ``path`` atomically.

    The weights are checked against ``cfg`` first, so a checkpoint that cannot be
    loaded is never written. Returns the path.
    """
    path = Path(path)
    extra = dict(extra or {})
    _check_safe(extra, "extra")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with torch.device("meta"):
        reference = HeatmapModel(cfg)
    check_state_dict(reference, state, f"model for config {cfg.name!r}")
    payload = {"format": FORMAT, "version": VERSION, "config": cfg.to_dict(), "state_dict": state, "extra": extra}
    with atomic_open(path, "wb") as fh:
        torch.save(payload, fh)
    return path


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str = "weights") -> None:
    """Raise ConfigError unless ``state_dict`` has exactly ``model``'s keys and shapes."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [f"{k}: {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape (weights vs config)", wrong)):
            if items:
                more = f" (+{len(items) - 3} more)" if len(items) > 3 else ""
                parts.append(f"{len(items)} {label}: {', '.join(items[:3])}{more}")
        raise ConfigError(f"{origin} do not match the config: " + "; ".join(parts))


def load_weights(model: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str = "weights") -> nn.Module:
    """Load ``state_dict`` into ``model`` strictly, with a ConfigError on any mismatch."""
    check_state_dict(model, state_dict, origin)
    model.load_state_dict(state_dict, strict=True)
    return model


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                    ) -> tuple[HeatmapModel, ModelConfig, dict[str, Any]]:
    """Load a checkpoint written by :func:`save_checkpoint`.

    Returns ``(model in eval mode, config, extra)``. Raises ConfigError when the file
    is missing, not a facelm checkpoint, corrupt, or its weights do not fit its config.
    """
    path = Path(path)
    _check_checkpoint_file(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated/foreign files
        raise ConfigError(f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a facelm checkpoint (no format={FORMAT!r} header)")
    if payload.get("version") != VERSION:
        raise ConfigError(f"{path}: checkpoint version {payload.get('version')!r} is not supported (expected {VERSION})")
    for key in ("config", "state_dict", "extra"):
        if key not in payload:
            raise ConfigError(f"{path}: checkpoint has no {key!r}")
    if not isinstance(payload["config"], dict) or not isinstance(payload["state_dict"], Mapping):
        raise ConfigError(f"{path}: checkpoint 'config' and 'state_dict' must be dicts")
    cfg = ModelConfig.from_dict(payload["config"])
    model = HeatmapModel(cfg)
    load_weights(model, payload["state_dict"], f"weights in {path}")
    check_finite(payload["state_dict"], f"weights in {path}")
    return model.eval(), cfg, payload["extra"]


def check_finite(state_dict: Mapping[str, Any], origin: str = "weights") -> None:
    """Raise ConfigError if any floating-point tensor of ``state_dict`` holds NaN or Inf.

    A diverged training run saves NaN weights; converting them would only fail later
    (or silently, as all-NaN heatmaps), so they are refused at load.
    """
    bad = []
    for k, v in state_dict.items():
        if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all()):
            n = int((~torch.isfinite(v)).sum())
            bad.append(f"{k} ({n} of {v.numel()})")
    if bad:
        more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
        raise ConfigError(f"{origin} hold non-finite values (NaN/Inf) in {len(bad)} tensors: "
                          f"{', '.join(bad[:3])}{more}; the training run that saved them diverged")


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default (zip) format
_PICKLE_MAGIC = b"\x80"  # torch.save's legacy format starts with a pickle protocol opcode


def _check_checkpoint_file(path: Path) -> None:
    """ConfigError saying what ``path`` is, when it cannot be a ``torch.save`` checkpoint."""
    import stat

    try:
        st = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"checkpoint not found: {path}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"cannot read checkpoint {path}: it is a directory, not a checkpoint file (a .pt written by facelm train)")
    if not stat.S_ISREG(st.st_mode):
        what = ("a character device" if stat.S_ISCHR(st.st_mode) else "a block device" if stat.S_ISBLK(st.st_mode)
                else "a pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "not a regular file")
        raise ConfigError(f"cannot read checkpoint {path}: it is {what}, not a checkpoint file (a .pt written by facelm train)")
    if st.st_size == 0:
        raise ConfigError(f"cannot read checkpoint {path}: it is empty (0 bytes)")
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError as exc:
        raise ConfigError(f"cannot read checkpoint {path}: {exc.strerror or exc}") from None
    if head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_MAGIC):
        return
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a character cut by the 512-byte read still counts as text
        text = head[:exc.start].decode("utf-8") if exc.start >= len(head) - 3 and len(head) == 512 else "\x00"
    is_text = "\x00" not in text
    if is_text:
        first = text.strip().splitlines()[0][:40] if text.strip() else ""
        raise ConfigError(f"cannot read checkpoint {path}: it is a text file (starts with {first!r}), not a torch.save checkpoint "
                          "(a zip archive written by facelm train)")
    raise ConfigError(f"cannot read checkpoint {path}: it is not a torch.save file; it starts with bytes {head[:8].hex(' ')}, "
                      "not a zip archive (504b0304) or a pickle")
