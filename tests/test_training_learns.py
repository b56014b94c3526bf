"""Proof that training learns: the tiny config on a few hundred synthetic faces, short budget.

Asserts that the held-out NME is at most half of the NME of always predicting the mean
(aligned) shape of the training faces.
"""
from __future__ import annotations

import json

import pytest

from sdk.data import synth
from sdk.data.augment import AugmentConfig
from sdk.data.dataset import LandmarkDataset, TargetSpec
from sdk.data.sources import load_records
from sdk.model import load_config
from sdk.training import load_train_config
from sdk.training.evaluate import mean_shape_nme
from sdk.training.trainer import split_records, train

FACES = 900
HELD_OUT = 60
EPOCHS = 50
# Clean photometrics (no occluders, glasses, blur or noise; little clutter) so that a model of
# 0.17 M parameters learns within the budget. The geometry (identity, expression, pose) keeps
# its full range except the most extreme yaw and pitch.
CLEAN = synth.SynthConfig(yaw=30.0, pitch=20.0, p_occlusion=0.0, p_glasses=0.0, p_blur=0.0, p_noise=0.0,
                          p_hair_fringe=0.0, clutter=(0, 3))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_tiny_model_beats_mean_shape_by_half(tmp_path):
    data = tmp_path / "faces"
    synth.write_jd_folder(data, FACES, seed=77, size=128, cfg=CLEAN, progress=False)
    cfg = load_train_config("tiny").replace(
        epochs=EPOCHS, lr=3e-3, lr_milestones=(0.7, 0.9), val_fraction=HELD_OUT / FACES,
        workers=1, threads=1, eval_every=10,
        augment=AugmentConfig(flip=0.5, pca_noise=0.0, color_jitter=0.0, erasing=0.0, rotation=10.0),
    )
    result = train(cfg, data, tmp_path / "run", progress=False)
    last = result.history[-1]

    records, layout = load_records(data)
    tr, va = split_records(records, cfg.val_fraction, cfg.seed)
    mcfg = load_config(cfg.model)
    spec = TargetSpec(mcfg.input_size, mcfg.heatmap_size)
    baseline = float(mean_shape_nme(LandmarkDataset(tr, layout, spec), LandmarkDataset(va, layout, spec)).mean())
    report = {"mean_shape_nme": baseline, "nme": last["val"]["nme"], "nme_flip": last["val_flip"]["nme"],
              "ratio": last["val"]["nme"] / baseline}
    print(json.dumps(report))
    assert last["val"]["count"] == HELD_OUT
    assert 0.03 < baseline < 0.2  # the baseline itself is sane
    assert last["val"]["nme"] <= 0.5 * baseline, report
