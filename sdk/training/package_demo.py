"""Package a trained checkpoint as the shipped demo checkpoint and its model card.

    python -m facelm.training.package_demo runs/demo/last.pt --heldout data/synth_heldout

Writes ``sdk/assets/demo_synth.pt`` (weights + config, no optimizer state, labelled
"trained on synthetic faces — demo, not a production model") and ``sdk/assets/demo_checkpoint.json``
(the label, the exact commands, the training log, sha256, and NME / AUC@0.08 / FR on the held-out
synthetic faces with and without the flip test). Refuses checkpoints over 15 MB.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from facelm.assets import DEMO_CARD, DEMO_CHECKPOINT, DEMO_LABEL
from facelm.errors import FacelmError
from facelm.fileio import atomic_write_text, sha256_file

MAX_BYTES = 15 * 1024 * 1024

DEFAULT_COMMANDS = [
    "facelm synth data/synth_train --count 10000 --seed 1000",
    "facelm synth data/synth_heldout --count 1000 --seed 2000",
    "facelm train demo --data data/synth_train --val-data data/synth_heldout --out runs/demo --stop-after 3",
    "python -m facelm.training.package_demo runs/demo/last.pt --heldout data/synth_heldout",
]


def package(checkpoint: str | os.PathLike, heldout: str | os.PathLike, out: Path = DEMO_CHECKPOINT,
            card: Path = DEMO_CARD, commands: list[str] | None = None, progress: bool = True,
            fine_tuned_from: dict | None = None) -> dict:
    """Evaluate ``checkpoint`` on ``heldout``, write the slim labelled checkpoint and the card. Returns the card.

    ``fine_tuned_from``: the card of the checkpoint the run started from (its ``init_checkpoint``);
    its sha256, commands, held-out figures and training log are kept under ``fine_tuned_from``.
    """
    from facelm.model import load_checkpoint, save_checkpoint
    from facelm.training.evaluate import evaluate_checkpoint

    model, mcfg, extra = load_checkpoint(checkpoint)
    trainer = extra.get("trainer", {})
    res = evaluate_checkpoint(checkpoint, heldout, progress=progress)
    summary = res.summary()
    history = trainer.get("history", [])
    save_checkpoint(out, model, mcfg, {"label": DEMO_LABEL, "metrics_heldout_synthetic": summary,
                                       "train_config": trainer.get("train_config", extra.get("train_config", {})),
                                       "epochs": int(trainer.get("epoch", extra.get("epoch", 0)))})
    size = out.stat().st_size
    if size > MAX_BYTES:
        out.unlink()
        raise FacelmError(f"demo checkpoint is {size / 2**20:.1f} MB, over the 15 MB limit")
    doc = {
        "label": DEMO_LABEL,
        "file": out.name,
        "sha256": sha256_file(out),
        "size_bytes": size,
        "model": mcfg.to_dict(),
        "commands": commands or DEFAULT_COMMANDS,
        "heldout": {"data": "facelm synth --count 1000 --seed 2000 (256 px)", "faces": summary["plain"]["count"],
                    "alignment": "five points from the ground truth", "decode": "dark",
                    "no_flip_test": summary["plain"], "flip_test": summary["flip"]},
        "train_log": history,
    }
    if fine_tuned_from is not None:
        doc["fine_tuned_from"] = {k: fine_tuned_from.get(k) for k in ("sha256", "commands", "heldout", "train_log")}
    atomic_write_text(card, json.dumps(doc, indent=2) + "\n")
    return doc


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--heldout", required=True, help="held-out synthetic faces (JD folder)")
    ap.add_argument("--out", type=Path, default=DEMO_CHECKPOINT)
    ap.add_argument("--card", type=Path, default=DEMO_CARD)
    ap.add_argument("--command", action="append", dest="commands",
                    help="a command that made the checkpoint, for the card (repeat; default: the from-scratch demo's)")
    ap.add_argument("--fine-tuned-from", type=Path, help="card (JSON) of the checkpoint the run started from")
    args = ap.parse_args(argv)
    try:
        base = json.loads(args.fine_tuned_from.read_text(encoding="utf-8")) if args.fine_tuned_from else None
        doc = package(args.checkpoint, args.heldout, args.out, args.card, args.commands, fine_tuned_from=base)
    except FacelmError as exc:
        print(f"package_demo: error: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:  # the --fine-tuned-from card: unreadable or not JSON
        print(f"package_demo: error: --fine-tuned-from {args.fine_tuned_from}: {exc}", file=sys.stderr)
        return 2
    h = doc["heldout"]
    print(f"wrote {args.out} ({doc['size_bytes'] / 2**20:.2f} MB) and {args.card}: held-out NME "
          f"{100 * h['no_flip_test']['nme']:.2f}% / flip {100 * h['flip_test']['nme']:.2f}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
