"""The paper's training loop: CPU or CUDA, DataLoader workers, atomic checkpoints, exact resume, DDP.

Outputs in ``OUT``:

- ``last.pt``: model + trainer state (optimizer, epoch, history), written atomically after every
  epoch; ``--resume`` continues from it.
- ``best.pt``: the weights with the lowest flip-test NME so far (no optimizer state).
- ``log.jsonl``: one JSON object per epoch (lr, loss, NME/AUC/FR with and without flip test).
- ``ced.png``: the CED of the latest evaluation, with and without flip test.
- ``train_config.yaml``: the resolved training config.

Exact resume: every random draw is a function of ``(seed, epoch)`` (shuffling, augmentation,
``torch`` RNG), the learning rate a function of the epoch, and the checkpoint holds the model,
BatchNorm statistics and Adam state; so a run interrupted after epoch e and resumed gives the
same weights as an uninterrupted one (on the same device and thread count).

Several processes (GPUs or hosts) through ``torchrun``: each process takes ``batch_size /
world_size`` images of every global batch; DDP averages the gradients; rank 0 evaluates, logs
and writes checkpoints. The backend is NCCL on CUDA and gloo on CPU.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from sdk.data.augment import AugmentConfig
from sdk.data.dataset import LandmarkDataset, TargetSpec
from sdk.data.sources import load_records
from sdk.errors import ConfigError, InputError
from sdk.fileio import atomic_write_text
from sdk.metrics import plot_ced
from sdk.model import ModelConfig, build_model, load_checkpoint, load_config, save_checkpoint
from sdk.training.config import TrainConfig, save_train_config
from sdk.training.evaluate import evaluate

log = logging.getLogger(__name__)

#: Trainer-state keys that may differ between an interrupted run and its resumption.
RESUMABLE_CHANGES = ("workers", "device", "threads", "eval_every")


@dataclass
class TrainResult:
    """What a run produced."""

    out: Path
    epochs_done: int
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def last(self) -> Path:
        return self.out / "last.pt"

    @property
    def best(self) -> Path:
        return self.out / "best.pt"


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Keypoint-weighted heatmap MSE.

    Args:
        pred, target: (N, K, H, W).
        weights: (N, K): 1 for a labelled point inside the map, 0 otherwise (``sdk.codec.encode``).
    Returns:
        scalar: mean over N, K, H, W of ``w * (pred - target)^2``.
    """
    return ((pred - target) ** 2 * weights[:, :, None, None]).mean()


# ---------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_distributed(device_kind: str) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device_kind == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def resolve_device(name: str, info: DistInfo) -> torch.device:
    """``auto`` -> CUDA when available else CPU; under DDP each process takes GPU ``LOCAL_RANK``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("device cuda was asked for but torch sees no CUDA device")
        if info.world > 1:
            name = f"cuda:{info.local_rank}"
        dev = torch.device(name)
        if dev.index is not None:
            torch.cuda.set_device(dev)
        return dev
    return torch.device(name)


# ---------------------------------------------------------------------------- data


def split_records(records: list, fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic hold-out split: ``(train, val)``; val gets ``round(fraction * n)`` faces (>= 1 if fraction > 0)."""
    n = len(records)
    n_val = 0 if fraction <= 0 else max(1, int(round(fraction * n)))
    if n_val >= n:
        raise InputError(f"{n} faces are too few to hold out {fraction:.0%} for validation")
    order = np.random.default_rng([seed, 12345]).permutation(n)
    val_idx = set(order[:n_val].tolist())
    return [r for i, r in enumerate(records) if i not in val_idx], [records[i] for i in sorted(val_idx)]


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, info: DistInfo) -> list[list[int]]:
    """This process's index batches of one epoch: a (seed, epoch) permutation cut into global
    batches of ``batch_size`` (the last partial batch dropped), each split evenly over processes."""
    order = np.random.default_rng([seed, epoch, 7]).permutation(n)
    per = batch_size // info.world
    steps = n // batch_size
    return [order[s * batch_size + info.rank * per: s * batch_size + (info.rank + 1) * per].tolist()
            for s in range(steps)]


def _model_config(name: str) -> ModelConfig:
    return load_config(name)


# ---------------------------------------------------------------------------- checkpoints


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _comparable(cfg_dict: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in cfg_dict.items() if k not in RESUMABLE_CHANGES}


# ---------------------------------------------------------------------------- the loop


def train(
    cfg: TrainConfig,
    data: str | os.PathLike,
    out: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a heatmap model with the paper's recipe.

    Args:
        cfg: the recipe (``TrainConfig``; ``load_train_config`` reads YAML).
        data: training data (JD folder, WFLW annotation file or 300W folder).
        out: output folder (see module docstring).
        resume: continue from ``out/last.pt``.
        progress: show a tqdm bar with loss and ETA.
        stop_after: stop (cleanly, checkpoint written) once this many epochs are done in total,
            e.g. to train in chunks of wall time; the schedule still spans ``cfg.epochs``.
        on_epoch: called on rank 0 with each epoch's log row.
    Returns:
        :class:`TrainResult`.
    """
    from tqdm import tqdm

    out = Path(out)
    device_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
    info = _setup_distributed(device_kind)
    device = resolve_device(cfg.device, info)
    if cfg.batch_size % info.world:
        raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {info.world}")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))

    mcfg = _model_config(cfg.model)
    if mcfg.num_keypoints <= 0:
        raise ConfigError(f"model {mcfg.name} has no keypoints")
    records, layout = load_records(data, cfg.data_format, detector_points=cfg.detector_points)
    if layout.num_points != mcfg.num_keypoints:
        raise ConfigError(f"the data has {layout.num_points} points ({layout.name}) but model {mcfg.name} "
                          f"predicts {mcfg.num_keypoints}")
    if cfg.val_data:
        train_recs, _ = records, None
        val_recs, val_layout = load_records(cfg.val_data, cfg.data_format)
        if val_layout != layout:
            raise ConfigError(f"validation data is {val_layout.name} but training data is {layout.name}")
    else:
        train_recs, val_recs = split_records(records, cfg.val_fraction, cfg.seed)
    if cfg.val_limit and val_recs:
        val_recs = val_recs[: cfg.val_limit]
    if len(train_recs) < cfg.batch_size:
        raise InputError(f"{len(train_recs)} training faces are fewer than one batch of {cfg.batch_size}")

    spec = TargetSpec(mcfg.input_size, mcfg.heatmap_size, cfg.sigma)
    train_set = LandmarkDataset(train_recs, layout, spec, cfg.augment, seed=cfg.seed)
    val_set = LandmarkDataset(val_recs, layout, spec, AugmentConfig.off()) if val_recs else None

    torch.manual_seed(cfg.seed)
    model = build_model(mcfg).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start, history, best_nme = 0, [], math.inf
    last_path, best_path, log_path = out / "last.pt", out / "best.pt", out / "log.jsonl"

    if resume:
        if not last_path.is_file():
            raise ConfigError(f"--resume: no checkpoint {last_path} to resume from")
        ckpt_model, ckpt_cfg, extra = load_checkpoint(last_path, map_location="cpu")
        state = extra.get("trainer") or {}
        saved = TrainConfig.from_dict(state.get("train_config", {})).to_dict()  # older files: defaults filled in
        if ckpt_cfg != mcfg or _comparable(saved) != _comparable(cfg.to_dict()):
            raise ConfigError(f"--resume: {last_path} was made with a different model or training config; "
                              "use the same CONFIG and --epochs, or a new --out")
        model.load_state_dict(ckpt_model.state_dict())
        opt.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), list(state["history"])
        best_nme = float(state.get("best_nme", math.inf))
        if start >= cfg.epochs:
            log.info("nothing to do: %s already finished %d epochs", last_path, start)
    elif info.main and last_path.exists():
        raise ConfigError(f"{out} already holds a run (last.pt); pass --resume to continue it or choose a new --out")

    if info.main:
        out.mkdir(parents=True, exist_ok=True)
        save_train_config(cfg, out / "train_config.yaml")
        _write_jsonl(log_path, history)

    net: nn.Module = model
    if info.world > 1:
        net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    stop = cfg.epochs if stop_after is None else min(cfg.epochs, int(stop_after))
    t_run, steps_done = time.perf_counter(), 0
    for epoch in range(start, stop):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 100003 + epoch)
        lr = cfg.lr_at(epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        train_set.set_epoch(epoch)
        batches = epoch_batches(len(train_set), cfg.batch_size, epoch, cfg.seed, info)
        loader = DataLoader(train_set, batch_sampler=batches, num_workers=cfg.workers,
                            pin_memory=device.type == "cuda")
        net.train()
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not (progress and info.main),
                   dynamic_ncols=True)
        for batch in bar:
            x = batch["image"].to(device, non_blocking=True)
            target = batch["heatmaps"].to(device, non_blocking=True)
            w = batch["weights"].to(device, non_blocking=True)
            loss = heatmap_loss(net(x), target, w)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(x)
            count += len(x)
            steps_done += 1
            per_step = (time.perf_counter() - t_run) / steps_done
            left = (len(batches) - bar.n - 1) + (stop - epoch - 1) * len(batches)
            bar.set_postfix(loss=f"{total / count:.3e}", lr=f"{lr:.0e}", run_eta=_fmt_s(per_step * left))
        bar.close()
        train_loss = total / max(1, count)
        if info.world > 1:
            t = torch.tensor([total, float(count)], dtype=torch.float64)
            dist.all_reduce(t)
            train_loss = float(t[0] / max(1.0, float(t[1])))
        row: dict[str, Any] = {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
                               "train_images": int(count) * info.world, "world_size": info.world}
        if info.main:
            if val_set is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == stop):
                res = evaluate(model, val_set, device, batch_size=max(cfg.batch_size, 32), workers=cfg.workers,
                               method=cfg.decode_method, progress=progress)
                summ = res.summary()
                row["val"], row["val_flip"] = summ["plain"], summ["flip"]
                plot_ced({"no flip test": res.nme_plain, "flip test": res.nme_flip}, out / "ced.png",
                         title=f"{mcfg.name} epoch {epoch + 1}")
                if summ["flip"]["nme"] < best_nme:
                    best_nme = summ["flip"]["nme"]
                    save_checkpoint(best_path, model, mcfg, {"epoch": epoch + 1, "metrics": summ,
                                                             "train_config": cfg.to_dict()})
            row["time_s"] = round(time.perf_counter() - t0, 2)
            history.append(row)
            trainer_state = {"epoch": epoch + 1, "train_config": cfg.to_dict(), "optimizer": opt.state_dict(),
                             "history": history, "best_nme": best_nme if math.isfinite(best_nme) else None}
            save_checkpoint(last_path, model, mcfg, {"trainer": trainer_state})
            _write_jsonl(log_path, history)
            msg = f"epoch {epoch + 1}/{cfg.epochs} loss {train_loss:.4e}"
            if "val" in row:
                msg += (f" | NME {100 * row['val']['nme']:.2f}% AUC {100 * row['val']['auc']:.2f} "
                        f"FR {100 * row['val']['fr']:.2f}% | flip: NME {100 * row['val_flip']['nme']:.2f}% "
                        f"AUC {100 * row['val_flip']['auc']:.2f} FR {100 * row['val_flip']['fr']:.2f}%")
            log.info(msg)
            if on_epoch:
                on_epoch(row)
        if info.world > 1:
            dist.barrier()
    return TrainResult(out, max(start, stop), history)


def _fmt_s(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
