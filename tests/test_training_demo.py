"""The shipped demo checkpoint (synthetic faces only) and the packaging step that makes it."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

import facelm.assets as assets
from facelm.data import synth
from facelm.errors import FacelmError
from facelm.model import build_model, load_checkpoint, load_config, save_checkpoint
from facelm.training.package_demo import MAX_BYTES, package


def test_demo_checkpoint_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(assets, "DEMO_CHECKPOINT", tmp_path / "nope.pt")
    with pytest.raises(FacelmError, match="demo checkpoint .* is missing"):
        assets.demo_checkpoint()


def test_package_writes_slim_labelled_checkpoint_and_card(tmp_path):
    data = tmp_path / "heldout"
    synth.write_jd_folder(data, 6, seed=9, size=112, progress=False)
    cfg = load_config("tiny")
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters())
    src = save_checkpoint(tmp_path / "last.pt", model, cfg, {"trainer": {
        "epoch": 3, "optimizer": opt.state_dict(), "history": [{"epoch": 3}], "train_config": {"model": "tiny"}}})
    out, card = tmp_path / "demo.pt", tmp_path / "demo.json"
    doc = package(src, data, out, card, progress=False)
    m2, cfg2, extra = load_checkpoint(out)
    assert cfg2 == cfg and "optimizer" not in json.dumps(list(extra))
    assert extra["label"] == assets.DEMO_LABEL and "synthetic" in extra["label"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k])
    saved = json.loads(card.read_text())
    assert saved == doc and saved["label"] == assets.DEMO_LABEL
    assert saved["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert saved["heldout"]["faces"] == 6 and saved["train_log"] == [{"epoch": 3}]
    assert set(saved["heldout"]["flip_test"]) == {"nme", "auc", "fr", "count"}


@pytest.mark.skipif(not assets.DEMO_CHECKPOINT.is_file(), reason="demo checkpoint not built in this tree")
def test_shipped_demo_checkpoint_is_labelled_small_and_accurate():
    path = assets.demo_checkpoint()
    assert path.stat().st_size <= MAX_BYTES
    card = assets.demo_card()
    assert card["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert card["label"] == assets.DEMO_LABEL and "not a production model" in card["label"]
    assert any(c.startswith("facelm train") for c in card["commands"])
    model, cfg, extra = load_checkpoint(path)
    assert extra["label"] == assets.DEMO_LABEL
    # Real landmarks on fresh synthetic faces (a seed the demo never saw).
    from facelm.alignment import invert_affine, transform_points
    from facelm.codec import stride_for
    from facelm.layouts import JD106
    from facelm.metrics import nme
    from facelm.preprocess import normalize
    from facelm.training.evaluate import predict_input_points

    faces = synth.generate_aligned(12, seed=31337, input_size=cfg.input_size)
    x = torch.from_numpy(normalize(faces["crops"]).transpose(0, 3, 1, 2).copy())
    pts = predict_input_points(model, x, JD106.flip_permutation, cfg.heatmap_size, flip=True)
    pred = transform_points(pts, invert_affine(faces["transforms"]))
    gt = faces["landmarks_image"].astype(np.float64)
    boxes = np.concatenate([gt.min(axis=1), gt.max(axis=1)], axis=1)
    assert float(nme(pred, gt, JD106, boxes).mean()) < 0.04


def test_fine_tune_starts_from_init_checkpoint_and_package_records_the_base(tmp_path):
    """``init_checkpoint``: the run starts from those weights (lr ~0 keeps them); another model's
    checkpoint is refused; the packaged card keeps the base checkpoint's card."""
    from facelm.errors import ConfigError
    from facelm.training import load_train_config
    from facelm.training.trainer import train

    data = tmp_path / "faces"
    synth.write_jd_folder(data, 12, seed=5, size=112, progress=False)
    cfg = load_config("tiny")
    torch.manual_seed(123)
    base = save_checkpoint(tmp_path / "base.pt", build_model(cfg), cfg, {})
    run_cfg = load_train_config("tiny").replace(epochs=1, batch_size=8, val_fraction=0.25, workers=0, threads=1,
                                                lr=1e-12, init_checkpoint=str(base))
    res = train(run_cfg, data, tmp_path / "ft", progress=False)
    tuned, _, extra = load_checkpoint(res.last)
    ref = load_checkpoint(base)[0].state_dict()
    convs = [k for k, v in ref.items() if k.endswith("weight") and v.ndim == 4]
    assert convs and all(torch.allclose(tuned.state_dict()[k], ref[k], atol=1e-8) for k in convs)
    assert extra["trainer"]["train_config"]["init_checkpoint"] == str(base)
    # Without init_checkpoint the trainer starts from build_model under torch.manual_seed(seed=0).
    torch.manual_seed(run_cfg.seed)
    assert not torch.allclose(build_model(cfg).state_dict()[convs[0]], ref[convs[0]])
    other = load_config("mnv2_0.25_dddd256")
    wrong = save_checkpoint(tmp_path / "other.pt", build_model(other), other, {})
    with pytest.raises(ConfigError, match="init_checkpoint"):
        train(run_cfg.replace(init_checkpoint=str(wrong)), data, tmp_path / "bad", progress=False)
    base_card = {"sha256": "ab" * 32, "commands": ["facelm train demo ..."], "heldout": {"faces": 1},
                 "train_log": [{"epoch": 3}], "label": "dropped"}
    doc = package(res.last, data, tmp_path / "demo.pt", tmp_path / "demo.json", progress=False,
                  fine_tuned_from=base_card)
    assert doc["fine_tuned_from"] == {k: base_card[k] for k in ("sha256", "commands", "heldout", "train_log")}
    assert json.loads((tmp_path / "demo.json").read_text())["fine_tuned_from"]["sha256"] == "ab" * 32
