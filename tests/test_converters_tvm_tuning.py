"""Tuned TVM with weight prepacking (all kernels but conv2d_transpose) against torch, and a tuning
database reused without tuning (``--tvm-tuning-db``).

Which kernels get prepacked is checked on the tiny config (no tuning: a pass pipeline). Tuning
itself runs on a two-kernel graph (conv2d + ReLU, then conv2d_transpose: one kernel that is
prepacked and one that must not be) with 4 trials, 2 per kernel, so every kernel gets a tuned
schedule in seconds instead of the minutes that tuning the tiny config's ~35 kernels took. The
fixed cost left is MetaSchedule's own start (``TuneContext`` imports every tensor intrinsic,
~17 s CPU on a 2-core machine, once per process).
"""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("tvm")

#: input side of the two-kernel graph (its heatmaps are twice that: the transposed conv upsamples)
SMALL_SIZE = 16
TRIALS = 4


@pytest.fixture(scope="module")
def tiny_onnx(tiny_ckpt, tmp_path_factory):
    from facelm.converters.onnx_export import export_onnx
    from facelm.model import load_checkpoint

    model, cfg, _ = load_checkpoint(tiny_ckpt)
    d = tmp_path_factory.mktemp("tune")
    return export_onnx(model, d / "tiny.onnx", cfg.input_size), cfg.input_size


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """(torch model, ONNX path): conv2d 3->8 + ReLU, conv2d_transpose 8->4 (x2), outputs of order 1."""
    import torch
    from torch import nn

    from facelm.converters.onnx_export import export_onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(),
                          nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1)).eval()
    d = tmp_path_factory.mktemp("tune_small")
    return model, export_onnx(model, d / "small.onnx", SMALL_SIZE)


def _prepared(onnx_path, size):
    from facelm.converters import tvm as tv

    target = tv.import_tvm().target.Target(tv.host_target(tuned=True))
    return tv._prepare_for_tuning(tv.import_onnx(onnx_path, (1, 3, size, size)), target, prepack=True)


def _prepacked_names(prepared) -> list[str]:
    return [gv.name_hint for gv, f in prepared.functions.items()
            if f.attrs is not None and "layout_free_buffers" in f.attrs]


def test_every_weighted_kernel_but_conv2d_transpose_is_prepacked(tiny_onnx):
    onnx_path, size = tiny_onnx
    prepared = _prepared(onnx_path, size)
    names = _prepacked_names(prepared)
    assert names and not any("conv2d_transpose" in n for n in names)
    assert any("conv2d_transpose" in gv.name_hint for gv, _ in prepared.functions.items())
    # depthwise and pointwise convolutions of the backbone are all prepacked
    assert sum("conv2d" in n for n in names) >= 10


@pytest.mark.slow  # MetaSchedule's start, then 4 trials and three small compiles
def test_prepacked_tuning_matches_torch_and_database_is_reused(small_onnx, tmp_path):
    import torch

    from facelm.converters import tvm as tv

    model, onnx_path = small_onnx
    shape = (1, 3, SMALL_SIZE, SMALL_SIZE)
    prepared = _prepared(onnx_path, SMALL_SIZE)
    kernels = [gv.name_hint for gv, f in prepared.functions.items() if "conv2d" in gv.name_hint]
    assert len(kernels) == 2 and _prepacked_names(prepared) == [k for k in kernels if "transpose" not in k]
    assert tv.scheduled_kernels(prepared) == 0  # nothing is scheduled before a database is applied

    db = tmp_path / "db"
    b = tv.compile_host(onnx_path, tmp_path / "tuned.so", shape, trials=TRIALS, work_dir=db, population=16)
    assert b.target.get("num-cores") == 1 and b.trials == TRIALS
    records = (db / "database_tuning_record.json").read_text().splitlines()
    # the budget bounds what was measured; 2 trials per task reach both kernels
    assert 2 <= len(records) <= TRIALS
    # applying the database schedules both kernels, the prepacked conv2d and the plain conv2d_transpose
    applied = tv.apply_database(prepared, b.target, db, prepared=True)
    tuned = [gv.name_hint for gv, f in applied.functions.items()
             if f.attrs is not None and "tirx.is_scheduled" in f.attrs]
    assert any("conv2d_transpose" in n for n in tuned) and any("conv2d" in n and "transpose" not in n for n in tuned)
    assert b.tuned_kernels == tv.scheduled_kernels(applied) >= 2

    x = np.random.default_rng(5).normal(size=(2,) + shape[1:]).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(ref).max() > 0.3  # a non-trivial output, so the comparison means something
    got = tv.TvmRunner(b.path).heatmaps(x)
    assert got.shape == ref.shape == (2, 4, 2 * SMALL_SIZE, 2 * SMALL_SIZE)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()

    # the same database, applied without tuning: same kernels tuned, same answers, nothing measured
    before = (db / "database_tuning_record.json").read_bytes()
    t0 = time.perf_counter()
    b2 = tv.compile_host(onnx_path, tmp_path / "reused.so", shape, trials=0, work_dir=db)
    reuse_s = time.perf_counter() - t0
    assert b2.tuned_kernels == b.tuned_kernels and b2.trials == 0
    assert (db / "database_tuning_record.json").read_bytes() == before  # no new measurements
    got2 = tv.TvmRunner(b2.path).heatmaps(x)
    assert np.abs(got2 - ref).max() <= 1e-5 * np.abs(ref).max()
    assert reuse_s < 120  # hang guard: a compile of two kernels, no tuning


def test_missing_database_is_a_clear_error(small_onnx, tmp_path):
    from facelm.converters import tvm as tv
    from facelm.errors import InputError

    _, onnx_path = small_onnx
    with pytest.raises(InputError, match="no MetaSchedule database"):
        tv.compile_host(onnx_path, tmp_path / "x.so", (1, 3, SMALL_SIZE, SMALL_SIZE), trials=0, work_dir=tmp_path)
