"""``facelm train CONFIG --data DIR [--epochs N] [--out DIR] [--resume]``: the paper's recipe.

CONFIG is a training YAML (see ``sdk/training/recipes/paper.yaml``) or the name of a shipped
recipe (``paper``, ``demo``, ``tiny``). Flags override the YAML; the YAML overrides the
defaults of :class:`facelm.training.config.TrainConfig` (shown as "default" below). Several
GPUs or hosts::

    torchrun --nproc_per_node 4 -m facelm.cli train paper --data DIR --out runs/x
"""
from __future__ import annotations

import argparse

from facelm.training.config import TrainConfig

from ._args import defaults_of

#: TrainConfig fields a flag can override (flag default None: keep the YAML's value).
OVERRIDES = ("epochs", "val_data", "detector_points", "device", "workers", "batch_size", "threads", "seed")


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    from facelm.workflows import train

    d, a = TrainConfig(), defaults_of(train)

    def cfg(text: str, field: str) -> str:
        return f"{text} (default: the recipe's, else {getattr(d, field)})"

    p = sub.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("config", help="training YAML, or a shipped recipe name (paper, demo, tiny)")
    p.add_argument("--data", required=True, help="JD-landmark folder, WFLW annotation file or 300W folder")
    p.add_argument("--out", default=a["out"], help="output folder")
    p.add_argument("--epochs", type=int, help=cfg("number of epochs (the lr schedule scales with it)", "epochs"))
    p.add_argument("--resume", action="store_true", default=a["resume"], help="continue from OUT/last.pt")
    p.add_argument("--stop-after", type=int, default=a["stop_after"],
                   help="stop once this many epochs are done (resume later)")
    p.add_argument("--val-data", help="separate evaluation data (default: hold out val_fraction of --data)")
    p.add_argument("--detector-points", help="file of detector five points per image (default: from the ground truth)")
    p.add_argument("--device", help=cfg("auto, cpu or cuda[:N]", "device"))
    p.add_argument("--workers", type=int, help=cfg("DataLoader workers", "workers"))
    p.add_argument("--batch-size", type=int, help=cfg("global batch size", "batch_size"))
    p.add_argument("--threads", type=int, help=cfg("torch CPU threads per process (0: torch's)", "threads"))
    p.add_argument("--seed", type=int, help=cfg("seed", "seed"))
    p.add_argument("--no-progress", dest="progress", action="store_false", default=a["progress"],
                   help="no progress bar")
    p.set_defaults(func=drive)
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """CONFIG (YAML or recipe) with the given flags applied (:func:`facelm.workflows.train_config`)."""
    from facelm.workflows import train_config

    return train_config(args.config, **{k: getattr(args, k) for k in OVERRIDES})


def drive(args: argparse.Namespace) -> int:
    from facelm.workflows import train

    result = train(args.config, args.data, args.out, resume=args.resume, progress=args.progress,
                   stop_after=args.stop_after, **{k: getattr(args, k) for k in OVERRIDES})
    last = result.history[-1] if result.history else {}
    if "val_flip" in last:
        print(f"done: {result.epochs_done} epochs; held-out NME {100 * last['val']['nme']:.2f}% "
              f"(flip test {100 * last['val_flip']['nme']:.2f}%); checkpoints in {result.out}")
    else:
        print(f"done: {result.epochs_done} epochs; checkpoints in {result.out}")
    return 0
