"""Trainer: the paper's recipe, checkpoints, exact resume, CLI, evaluation outputs, DDP on gloo."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from facelm.cli import main as cli_main
from facelm.codec import DecodeConfig
from facelm.data import synth
from facelm.errors import ConfigError
from facelm.model import build_model, load_checkpoint, load_config
from facelm.training import TrainConfig, load_train_config
from facelm.training.trainer import DistInfo, epoch_batches, heatmap_loss, split_records, train


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    root = tmp_path_factory.mktemp("train") / "faces"
    synth.write_jd_folder(root, 40, seed=3, size=112, progress=False)
    return root


def _small(**over) -> TrainConfig:
    base = load_train_config("tiny").replace(epochs=2, batch_size=8, val_fraction=0.2, workers=0, threads=1)
    return base.replace(**over)


def test_recipe_defaults_are_the_papers():
    cfg = TrainConfig()
    assert (cfg.lr, cfg.batch_size, cfg.epochs, cfg.model) == (1e-3, 16, 40, "mnv2_1.0_sdd128")
    assert cfg.milestone_epochs() == [20, 30]
    assert [cfg.lr_at(e) for e in (0, 19, 20, 29, 30, 39)] == pytest.approx([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5])
    a = cfg.augment
    assert (a.pca_noise, a.color_jitter, a.rotation, a.scale, a.shift) == (0.05, 0.4, 15.0, 0.0, 0.0)
    assert a.flip > 0 and a.erasing > 0
    paper = load_train_config("paper")
    assert paper.replace(workers=cfg.workers) == cfg


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown training options"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match="unknown augment"):
        TrainConfig.from_dict({"augment": {"mixup": 1}})
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match="eval_every"):
        TrainConfig(eval_every=0)
    with pytest.raises(ConfigError, match="neither a file nor a shipped recipe"):
        load_train_config("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_train_config(bad)


def test_decode_config_round_trips_and_reads_the_older_decode_method():
    cfg = TrainConfig.from_dict({"decode": {"method": "quarter", "blur_kernel": 7}})
    assert cfg.decode == DecodeConfig(method="quarter", blur_kernel=7)
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert TrainConfig().decode == DecodeConfig()
    # Configs and checkpoints written before ``decode`` existed.
    assert TrainConfig.from_dict({"decode_method": "argmax"}).decode == DecodeConfig(method="argmax")
    with pytest.raises(ConfigError, match="decode method"):
        TrainConfig.from_dict({"decode": {"method": "soft"}})
    with pytest.raises(ConfigError, match="not both"):
        TrainConfig.from_dict({"decode": {"method": "dark"}, "decode_method": "dark"})
    with pytest.raises(ConfigError, match="decode must be a mapping"):
        TrainConfig.from_dict({"decode": "dark"})


def test_heatmap_loss_ignores_zero_weight_keypoints():
    pred, target = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    pred[:, 1] = 5.0
    w = torch.ones(2, 3)
    assert heatmap_loss(pred, target, w) > 0
    w[:, 1] = 0
    assert heatmap_loss(pred, target, w) == 0


def test_epoch_batches_split_global_batches_over_processes():
    single = epoch_batches(50, 8, epoch=3, seed=1, info=DistInfo())
    assert len(single) == 6 and all(len(b) == 8 for b in single)
    assert single == epoch_batches(50, 8, epoch=3, seed=1, info=DistInfo())
    assert single != epoch_batches(50, 8, epoch=4, seed=1, info=DistInfo())
    r0 = epoch_batches(50, 8, 3, 1, DistInfo(0, 2))
    r1 = epoch_batches(50, 8, 3, 1, DistInfo(1, 2))
    assert [a + b for a, b in zip(r0, r1)] == single


def test_split_is_deterministic_and_disjoint():
    recs = list(range(100))
    tr, va = split_records(recs, 0.1, seed=5)
    assert len(va) == 10 and not set(tr) & set(va) and split_records(recs, 0.1, seed=5) == (tr, va)


def _state(path):
    model, _, extra = load_checkpoint(path)
    return model.state_dict(), extra["trainer"]


def test_interrupted_and_resumed_equals_uninterrupted(faces, tmp_path):
    cfg = _small()
    full = train(cfg, faces, tmp_path / "full", progress=False)
    part = train(cfg, faces, tmp_path / "part", progress=False, stop_after=1)
    assert part.epochs_done == 1 and len(part.history) == 1
    with pytest.raises(ConfigError, match="--resume"):
        train(cfg, faces, tmp_path / "part", progress=False)
    with pytest.raises(ConfigError, match="different model or training config"):
        train(cfg.replace(lr=2e-3), faces, tmp_path / "part", resume=True, progress=False)
    resumed = train(cfg, faces, tmp_path / "part", resume=True, progress=False)
    a, ta = _state(full.last)
    b, tb = _state(resumed.last)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after resume"
    strip = lambda h: [{k: v for k, v in r.items() if k != "time_s"} for r in h]  # noqa: E731
    assert strip(ta["history"]) == strip(tb["history"])
    rows = [json.loads(l) for l in (tmp_path / "part" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    # Training changed the weights (the equality above is not trivially true).
    torch.manual_seed(cfg.seed)
    init = build_model(load_config(cfg.model)).state_dict()
    assert sum(not torch.equal(init[k], a[k]) for k in a) > len(a) // 2
    assert ta["epoch"] == 2 and tb["epoch"] == 2


def test_cli_train_writes_checkpoints_log_and_ced(faces, tmp_path):
    out = tmp_path / "run"
    rc = cli_main(["train", "tiny", "--data", str(faces), "--epochs", "1", "--out", str(out),
                   "--batch-size", "8", "--workers", "1", "--no-progress"])
    assert rc == 0
    for name in ("last.pt", "best.pt", "log.jsonl", "ced.png", "train_config.yaml"):
        assert (out / name).is_file(), name
    row = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    for key in ("val", "val_flip"):
        assert set(row[key]) == {"nme", "auc", "fr", "count"} and row[key]["count"] == 4
        assert 0 < row[key]["nme"] < 1
    _, _, extra = load_checkpoint(out / "best.pt")
    assert extra["metrics"]["flip"]["nme"] == pytest.approx(row["val_flip"]["nme"])
    assert load_train_config(out / "train_config.yaml").epochs == 1
    assert cli_main(["train", "tiny", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2


@pytest.mark.timeout(300)
def test_ddp_two_cpu_processes_on_gloo(faces, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "facelm.cli", "train", "tiny", "--data", str(faces), "--epochs", "1", "--out", str(out),
           "--batch-size", "8", "--workers", "0", "--device", "cpu", "--threads", "1", "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    row = json.loads((out / "log.jsonl").read_text().splitlines()[-1])
    assert row["world_size"] == 2
    assert row["train_images"] == 32  # 36 training faces -> 4 global batches of 8 (4 per process)
    assert "val_flip" in row
    model, _, _ = load_checkpoint(out / "last.pt")
    assert all(torch.isfinite(p).all() for p in model.state_dict().values())
