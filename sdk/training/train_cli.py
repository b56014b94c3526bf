"""``facelm train CONFIG --data DIR [--epochs N] [--out DIR] [--resume]``: the paper's recipe.

CONFIG is a training YAML (see ``sdk/training/recipes/paper.yaml``) or the name of a shipped
recipe (``paper``, ``demo``, ``tiny``). Flags override the YAML; the YAML overrides the
defaults of :class:`sdk.training.TrainConfig`. Several GPUs or hosts::

    torchrun --nproc_per_node 4 -m sdk.cli train paper --data DIR --out runs/x
"""
from __future__ import annotations

import argparse

from sdk.training.config import TrainConfig, load_train_config

_D = TrainConfig()


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="training YAML, or a shipped recipe name (paper, demo, tiny)")
    p.add_argument("--data", required=True, help="JD-landmark folder, WFLW annotation file or 300W folder")
    p.add_argument("--out", default="runs/train", help="output folder (default runs/train)")
    p.add_argument("--epochs", type=int, help="number of epochs (the lr schedule scales with it)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--stop-after", type=int, help="stop once this many epochs are done (resume later)")
    p.add_argument("--val-data", help="separate evaluation data (default: hold out val_fraction of --data)")
    p.add_argument("--detector-points", help="file of detector five points per image (default: from the ground truth)")
    p.add_argument("--device", help=f"auto, cpu or cuda[:N] (default {_D.device})")
    p.add_argument("--workers", type=int, help=f"DataLoader workers (default {_D.workers})")
    p.add_argument("--batch-size", type=int, help=f"global batch size (default {_D.batch_size})")
    p.add_argument("--threads", type=int, help="torch CPU threads per process (default: torch's)")
    p.add_argument("--seed", type=int, help=f"seed (default {_D.seed})")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from sdk.training.trainer import train

    cfg = load_train_config(args.config)
    overrides = {"epochs": args.epochs, "val_data": args.val_data, "detector_points": args.detector_points,
                 "device": args.device, "workers": args.workers, "batch_size": args.batch_size,
                 "threads": args.threads, "seed": args.seed}
    cfg = cfg.replace(**{k: v for k, v in overrides.items() if v is not None})
    result = train(cfg, args.data, args.out, resume=args.resume, progress=not args.no_progress,
                   stop_after=args.stop_after)
    last = result.history[-1] if result.history else {}
    if "val_flip" in last:
        print(f"done: {result.epochs_done} epochs; held-out NME {100 * last['val']['nme']:.2f}% "
              f"(flip test {100 * last['val_flip']['nme']:.2f}%); checkpoints in {result.out}")
    else:
        print(f"done: {result.epochs_done} epochs; checkpoints in {result.out}")
    return 0
