"""Training: the paper's recipe (``TrainConfig``), the loop (``train``), evaluation (``evaluate``).

    from facelm.training import load_train_config, train
    result = train(load_train_config("paper"), "data/jd_train", "runs/final")

Recipes shipped in ``sdk/training/recipes``: ``paper`` (MNetV2_1.0 SDD-128, 40 epochs),
``demo`` (the recipe of the shipped demo checkpoint), ``tiny`` (tests).
"""
from facelm.training.config import TrainConfig, list_recipes, load_train_config, save_train_config

__all__ = ["TrainConfig", "list_recipes", "load_train_config", "save_train_config", "train"]


def train(*args, **kwargs):
    """See :func:`facelm.training.trainer.train` (imported lazily: it needs torch)."""
    from facelm.training.trainer import train as _train

    return _train(*args, **kwargs)
