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

from facelm.data.augment import AugmentConfig
from facelm.data.dataset import LandmarkDataset, TargetSpec
from facelm.data.sources import load_records
from facelm.errors import ConfigError, InputError
from facelm.fileio import atomic_write_text
from facelm.metrics import plot_ced
from facelm.model import ModelConfig, build_model, load_checkpoint, load_config, save_checkpoint
from facelm.training.config import TrainConfig, save_train_config
from facelm.training.evaluate import evaluate

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
        weights: (N, K): 1 for a labelled point inside the map, 0 otherwise (``facelm.codec.encode``).
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


@dataclass
class _Run:
    """Everything one run's stages share: set up once by :func:`_setup`, advanced per epoch."""

    cfg: TrainConfig
    out: Path
    info: DistInfo
    device: torch.device
    mcfg: ModelConfig
    train_set: LandmarkDataset
    val_set: LandmarkDataset | None
    model: nn.Module
    net: nn.Module  # ``model``, or its DDP wrapper
    opt: torch.optim.Optimizer
    start: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    best_nme: float = math.inf

    @property
    def last_path(self) -> Path:
        return self.out / "last.pt"

    @property
    def best_path(self) -> Path:
        return self.out / "best.pt"

    @property
    def log_path(self) -> Path:
        return self.out / "log.jsonl"


def _setup_device(cfg: TrainConfig) -> tuple[DistInfo, torch.device]:
    """Join the process group (under ``torchrun``), pick the device and the CPU thread count."""
    device_kind = "cuda" if (cfg.device.startswith("cuda") or (cfg.device == "auto" and torch.cuda.is_available())) else "cpu"
    info = _setup_distributed(device_kind)
    device = resolve_device(cfg.device, info)
    if cfg.batch_size % info.world:
        raise ConfigError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {info.world}")
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    return info, device


def _setup_data(cfg: TrainConfig, data: str | os.PathLike,
                mcfg: ModelConfig) -> tuple[LandmarkDataset, LandmarkDataset | None]:
    """Load the records, hold out the validation faces and wrap both sides as datasets.

    Returns:
        ``(train_set, val_set)``; ``val_set`` is None when nothing is held out. The training set
        augments with ``cfg.augment``; the validation set does not augment.
    """
    if mcfg.num_keypoints <= 0:
        raise ConfigError(f"model {mcfg.name} has no keypoints")
    records, layout = load_records(data, cfg.data_format, detector_points=cfg.detector_points)
    if layout.num_points != mcfg.num_keypoints:
        raise ConfigError(f"the data has {layout.num_points} points ({layout.name}) but model {mcfg.name} "
                          f"predicts {mcfg.num_keypoints}")
    if cfg.val_data:
        train_recs = records
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
    return train_set, val_set


def _restore(run: _Run, resume: bool) -> None:
    """Load ``last.pt`` into ``run`` when resuming; refuse to overwrite a run otherwise.

    Raises:
        ConfigError: no checkpoint to resume, a checkpoint of another config, or an existing run
            without ``resume``.
    """
    if resume:
        if not run.last_path.is_file():
            raise ConfigError(f"--resume: no checkpoint {run.last_path} to resume from")
        ckpt_model, ckpt_cfg, extra = load_checkpoint(run.last_path, map_location="cpu")
        state = extra.get("trainer") or {}
        saved = TrainConfig.from_dict(state.get("train_config", {})).to_dict()  # older files: defaults filled in
        if ckpt_cfg != run.mcfg or _comparable(saved) != _comparable(run.cfg.to_dict()):
            raise ConfigError(f"--resume: {run.last_path} was made with a different model or training config; "
                              "use the same CONFIG and --epochs, or a new --out")
        run.model.load_state_dict(ckpt_model.state_dict())
        run.opt.load_state_dict(state["optimizer"])
        run.start, run.history = int(state["epoch"]), list(state["history"])
        best = state.get("best_nme")
        run.best_nme = math.inf if best is None else float(best)
        if run.start >= run.cfg.epochs:
            log.info("nothing to do: %s already finished %d epochs", run.last_path, run.start)
    elif run.info.main and run.last_path.exists():
        raise ConfigError(f"{run.out} already holds a run (last.pt); pass --resume to continue it or choose a new --out")


def _load_init_weights(model: nn.Module, mcfg: ModelConfig, path: str | os.PathLike) -> None:
    """Fine-tuning: copy the weights of checkpoint ``path`` into ``model``.

    Raises:
        ConfigError: the checkpoint is of another model configuration.
    """
    init_model, init_cfg, _ = load_checkpoint(path, map_location="cpu")
    if init_cfg != mcfg:
        raise ConfigError(f"init_checkpoint {path} holds model {init_cfg.name}, not the configured {mcfg.name}")
    model.load_state_dict(init_model.state_dict())


def _setup(cfg: TrainConfig, data: str | os.PathLike, out: str | os.PathLike, resume: bool) -> _Run:
    """Device, data, model, optimiser and (when resuming) their saved state; writes the config."""
    info, device = _setup_device(cfg)
    mcfg = _model_config(cfg.model)
    train_set, val_set = _setup_data(cfg, data, mcfg)
    torch.manual_seed(cfg.seed)
    model = build_model(mcfg)
    if cfg.init_checkpoint and not resume:
        _load_init_weights(model, mcfg, cfg.init_checkpoint)
    model = model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    run = _Run(cfg, Path(out), info, device, mcfg, train_set, val_set, model, model, opt)
    _restore(run, resume)
    if info.main:
        run.out.mkdir(parents=True, exist_ok=True)
        save_train_config(cfg, run.out / "train_config.yaml")
        _write_jsonl(run.log_path, run.history)
    if info.world > 1:
        run.net = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return run


@dataclass
class _Clock:
    """Run-wide step timing for the progress bar's ETA."""

    stop: int
    t_run: float = field(default_factory=time.perf_counter)
    steps_done: int = 0


def _train_epoch(run: _Run, epoch: int, clock: _Clock, progress: bool) -> dict[str, Any]:
    """One pass over this process's batches of ``epoch`` (0-based) at the scheduled rate.

    Returns:
        the epoch's log row so far: ``epoch`` (1-based), ``lr``, ``train_loss`` (mean over all
        processes' images), ``train_images`` and ``world_size``.
    """
    from tqdm import tqdm

    cfg, info = run.cfg, run.info
    torch.manual_seed(cfg.seed * 100003 + epoch)
    lr = cfg.lr_at(epoch)
    for g in run.opt.param_groups:
        g["lr"] = lr
    run.train_set.set_epoch(epoch)
    batches = epoch_batches(len(run.train_set), cfg.batch_size, epoch, cfg.seed, info)
    loader = DataLoader(run.train_set, batch_sampler=batches, num_workers=cfg.workers,
                        pin_memory=run.device.type == "cuda")
    run.net.train()
    total, count = 0.0, 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", unit="batch", disable=not (progress and info.main),
               dynamic_ncols=True)
    for batch in bar:
        x = batch["image"].to(run.device, non_blocking=True)
        target = batch["heatmaps"].to(run.device, non_blocking=True)
        w = batch["weights"].to(run.device, non_blocking=True)
        loss = heatmap_loss(run.net(x), target, w)
        run.opt.zero_grad(set_to_none=True)
        loss.backward()
        run.opt.step()
        total += float(loss.detach()) * len(x)
        count += len(x)
        clock.steps_done += 1
        per_step = (time.perf_counter() - clock.t_run) / clock.steps_done
        left = (len(batches) - bar.n - 1) + (clock.stop - epoch - 1) * len(batches)
        bar.set_postfix(loss=f"{total / count:.3e}", lr=f"{lr:.0e}", run_eta=_fmt_s(per_step * left))
    bar.close()
    train_loss = total / max(1, count)
    if info.world > 1:
        t = torch.tensor([total, float(count)], dtype=torch.float64)
        dist.all_reduce(t)
        train_loss = float(t[0] / max(1.0, float(t[1])))
    return {"epoch": epoch + 1, "lr": lr, "train_loss": train_loss,
            "train_images": int(count) * info.world, "world_size": info.world}


def _evaluate_epoch(run: _Run, row: dict[str, Any], progress: bool) -> None:
    """Rank 0: score the held-out faces into ``row`` (``val``, ``val_flip``), draw the CED and
    write ``best.pt`` when the flip-test NME improved."""
    cfg = run.cfg
    res = evaluate(run.model, run.val_set, run.device, batch_size=max(cfg.batch_size, 32), workers=cfg.workers,
                   decode=cfg.decode, progress=progress)
    summ = res.summary()
    row["val"], row["val_flip"] = summ["plain"], summ["flip"]
    plot_ced({"no flip test": res.nme_plain, "flip test": res.nme_flip}, run.out / "ced.png",
             title=f"{run.mcfg.name} epoch {row['epoch']}")
    if summ["flip"]["nme"] < run.best_nme:
        run.best_nme = summ["flip"]["nme"]
        save_checkpoint(run.best_path, run.model, run.mcfg, {"epoch": row["epoch"], "metrics": summ,
                                                             "train_config": cfg.to_dict()})


def _checkpoint_epoch(run: _Run, row: dict[str, Any]) -> None:
    """Rank 0: append ``row`` to the history and write ``last.pt`` and ``log.jsonl``."""
    run.history.append(row)
    trainer_state = {"epoch": row["epoch"], "train_config": run.cfg.to_dict(), "optimizer": run.opt.state_dict(),
                     "history": run.history, "best_nme": run.best_nme if math.isfinite(run.best_nme) else None}
    save_checkpoint(run.last_path, run.model, run.mcfg, {"trainer": trainer_state})
    _write_jsonl(run.log_path, run.history)


def _epoch_message(row: dict[str, Any], epochs: int) -> str:
    """One log line: loss, and NME / AUC / FR without and with the flip test when evaluated."""
    msg = f"epoch {row['epoch']}/{epochs} loss {row['train_loss']:.4e}"
    if "val" in row:
        v, f = row["val"], row["val_flip"]
        msg += (f" | NME {100 * v['nme']:.2f}% AUC {100 * v['auc']:.2f} FR {100 * v['fr']:.2f}%"
                f" | flip: NME {100 * f['nme']:.2f}% AUC {100 * f['auc']:.2f} FR {100 * f['fr']:.2f}%")
    return msg


def train(
    cfg: TrainConfig,
    data: str | os.PathLike,
    out: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    on_epoch: Callable[[dict[str, Any]], bool | None] | None = None,
) -> TrainResult:
    """Train a heatmap model with the paper's recipe.

    Stages: :func:`_setup` (device, data, model, resume), then per epoch :func:`_train_epoch`,
    :func:`_evaluate_epoch` (every ``cfg.eval_every`` epochs and the last) and
    :func:`_checkpoint_epoch`.

    Args:
        cfg: the recipe (``TrainConfig``; ``load_train_config`` reads YAML).
        data: training data (JD folder, WFLW annotation file or 300W folder).
        out: output folder (see module docstring).
        resume: continue from ``out/last.pt``.
        progress: show a tqdm bar with loss and ETA.
        stop_after: stop (cleanly, checkpoint written) once this many epochs are done in total,
            e.g. to train in chunks of wall time; the schedule still spans ``cfg.epochs``.
        on_epoch: called on rank 0 with each epoch's log row, after its checkpoint is written;
            returning True stops the run there (single process only), as ``stop_after`` would.
    Returns:
        :class:`TrainResult`.
    """
    run = _setup(cfg, data, out, resume)
    info = run.info
    stop = cfg.epochs if stop_after is None else min(cfg.epochs, int(stop_after))
    clock = _Clock(stop)
    done = max(run.start, stop)
    for epoch in range(run.start, stop):
        t0 = time.perf_counter()
        row = _train_epoch(run, epoch, clock, progress)
        halt = False
        if info.main:
            if run.val_set is not None and ((epoch + 1) % cfg.eval_every == 0 or epoch + 1 == stop):
                _evaluate_epoch(run, row, progress)
            row["time_s"] = round(time.perf_counter() - t0, 2)
            _checkpoint_epoch(run, row)
            log.info(_epoch_message(row, cfg.epochs))
            if on_epoch:
                halt = bool(on_epoch(row))
        if info.world > 1:
            dist.barrier()
        elif halt:
            done = epoch + 1
            break
    return TrainResult(run.out, done, run.history)


def _fmt_s(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"
