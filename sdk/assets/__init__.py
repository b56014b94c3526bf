"""Files shipped inside the package: the demo checkpoint and its model card.

The demo checkpoint is a heatmap model **trained on synthetic faces only — a demo, not
a production model**. It exists so that conversion, quantisation drift and the on-device
demo run on weights that produce real landmarks. ``demo_checkpoint.json`` next to it records
the exact command that made it and its accuracy on held-out synthetic faces.
"""
from __future__ import annotations

import json
from pathlib import Path

from facelm.errors import FacelmError

ASSETS_DIR = Path(__file__).resolve().parent
DEMO_CHECKPOINT = ASSETS_DIR / "demo_synth.pt"
DEMO_CARD = ASSETS_DIR / "demo_checkpoint.json"
DEMO_LABEL = "trained on synthetic faces — demo, not a production model"


def demo_checkpoint() -> Path:
    """Path of the shipped demo checkpoint (load it with ``facelm.model.load_checkpoint``).

    Raises:
        FacelmError: the file is missing (a broken install or a source tree without it).
    """
    if not DEMO_CHECKPOINT.is_file():
        raise FacelmError(
            f"the demo checkpoint {DEMO_CHECKPOINT} is missing; reinstall facelm or rebuild it "
            f"with the command in {DEMO_CARD.name} (see README, 'Training')"
        )
    return DEMO_CHECKPOINT


def demo_card() -> dict:
    """The demo checkpoint's model card: command, config, data and accuracy (a dict).

    Raises:
        FacelmError: the card is missing or unreadable.
    """
    try:
        return json.loads(DEMO_CARD.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FacelmError(f"cannot read the demo checkpoint card {DEMO_CARD}: {exc}") from exc
