"""Shared session fixtures: a tiny checkpoint and its converted artifact folder (one onnx2tf run per session)."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    import torch

    from facelm.model import build_model, load_config, save_checkpoint

    torch.manual_seed(3)
    cfg = load_config("tiny")
    model = build_model(cfg).eval()
    # BN statistics of a trained net, so heatmaps are not all ~0 (stronger parity/drift checks)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model, cfg)


@pytest.fixture(scope="session")
def converted(tiny_ckpt, tmp_path_factory):
    """(exit code, folder) of ``facelm convert`` on the tiny checkpoint: every TFLite variant, and TVM when installed."""
    pytest.importorskip("onnx2tf")
    from facelm.cli import main

    import importlib.util

    out = tmp_path_factory.mktemp("conv") / "artifacts"
    targets = ["--targets", "tflite"] if importlib.util.find_spec("tvm") is None else []
    rc = main(["convert", "--config", "tiny", "--weights", str(tiny_ckpt), "--out", str(out),
               "--num-calib", "16", "--num-eval", "12", "--latency-runs", "2", "--int16x8",
               "--int8-drift-max", "1e-12", *targets])
    return rc, out
