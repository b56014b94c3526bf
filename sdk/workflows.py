"""Training and evaluation as a user runs them: ``facelm.train`` and ``facelm.evaluate``.

These are what ``facelm train`` and ``facelm evaluate`` call (the command line only parses its
flags); they sit on :func:`facelm.training.trainer.train` and
:func:`facelm.training.evaluate.evaluate_checkpoint` and need ``facelm[torch]``.
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from facelm.codec.config import DecodeConfig
from facelm.errors import ConfigError

#: where ``facelm.train`` writes when no ``out`` is given
DEFAULT_TRAIN_OUT = "runs/train"
#: ``evaluate(checkpoint="demo")``: the shipped demo checkpoint
DEMO_CHECKPOINT = "demo"


def train_config(config: Any, **overrides: Any):
    """A :class:`~facelm.training.config.TrainConfig` from a config, a YAML path or a shipped
    recipe name (``paper``, ``demo``, ``tiny``), with ``overrides`` (TrainConfig fields; None: keep).

    Raises:
        ConfigError: an unknown recipe, invalid YAML, or an override that is no TrainConfig field.
    """
    from facelm.training.config import TrainConfig, load_train_config

    cfg = config if isinstance(config, TrainConfig) else load_train_config(config)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(f"no TrainConfig field {unknown[0]!r} (fields: {', '.join(sorted(known))})")
    return cfg.replace(**{k: v for k, v in overrides.items() if v is not None})


def train(config: Any, data: str | os.PathLike, out: str | os.PathLike = DEFAULT_TRAIN_OUT, *,
          resume: bool = False, progress: bool = True, stop_after: int | None = None, **overrides: Any):
    """Train with the paper's recipe (what ``facelm train`` runs).

    Example::

        result = facelm.train("tiny", "faces/", "runs/x", epochs=2, device="cpu")
        result.best, result.history[-1]["val"]["nme"]

    Args:
        config: a :class:`~facelm.training.config.TrainConfig`, a training YAML or a shipped recipe name.
        data: JD-landmark folder, WFLW annotation file or 300W folder.
        out: output folder (checkpoints ``last.pt``, ``best.pt``, logs).
        resume: continue from ``out/last.pt``; stop_after: stop once this many epochs are done.
        overrides: TrainConfig fields (``epochs``, ``device``, ``batch_size``...); None keeps the config's.
    Returns:
        :class:`facelm.training.trainer.TrainResult`.
    """
    from facelm.training.trainer import train as run  # torch: an ImportError here names the extra

    return run(train_config(config, **overrides), data, out, resume=resume, progress=progress,
               stop_after=stop_after)


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, *, limit: int = 0,
             detector_points: str | os.PathLike | None = None, decode: DecodeConfig = DecodeConfig(),
             device: str = "cpu", ced: str | os.PathLike | None = None, json_out: str | os.PathLike | None = None,
             progress: bool = True):
    """NME / AUC@0.08 / FR of a checkpoint, without and with the flip test (what ``facelm evaluate`` runs).

    Example::

        res = facelm.evaluate("demo", "faces/", ced="ced.png", json_out="metrics.json")
        res.summary()["flip"]["nme"]

    Args:
        checkpoint: a facelm checkpoint (.pt), or ``"demo"`` for the shipped demo checkpoint.
        data: JD-landmark folder, WFLW annotation file or 300W folder.
        limit: the first N faces only (0: all); detector_points: file of detector five points per image.
        decode: heatmap decoding; device: ``cpu`` or ``cuda[:N]``.
        ced: write the CED plot (PNG) here; json_out: write the summary (JSON) here (atomically).
    Returns:
        :class:`facelm.training.evaluate.EvalResult`.
    """
    from facelm.training.evaluate import evaluate_checkpoint

    ckpt = checkpoint
    if str(ckpt) == DEMO_CHECKPOINT:
        from facelm.assets import demo_checkpoint

        ckpt = demo_checkpoint()
    res = evaluate_checkpoint(ckpt, data, limit=limit, detector_points=detector_points, decode=decode,
                              device=device, progress=progress)
    if ced is not None:
        from facelm.metrics import plot_ced

        plot_ced({"no flip test": res.nme_plain, "flip test": res.nme_flip}, ced, title=Path(str(ckpt)).name)
    if json_out is not None:
        from facelm.fileio import atomic_write_text

        atomic_write_text(json_out, json.dumps(res.summary(), indent=2) + "\n")
    return res
