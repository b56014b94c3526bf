"""Tuned TVM with weight prepacking (all kernels but conv2d_transpose) against torch, and a tuning
database reused without tuning (``--tvm-tuning-db``). A few trials on the tiny config only
(the tuning test is marked slow, like tests/test_converters.py's)."""
from __future__ import annotations

import time

import numpy as np
import pytest

pytest.importorskip("tvm")


@pytest.fixture(scope="module")
def tiny_onnx(tiny_ckpt, tmp_path_factory):
    import torch

    from facelm.converters.onnx_export import export_onnx
    from facelm.model import load_checkpoint

    model, cfg, _ = load_checkpoint(tiny_ckpt)
    final = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        final.weight.mul_(300.0)  # heatmaps of order 1, so a wrong kernel shows clearly
    d = tmp_path_factory.mktemp("tune")
    return model, export_onnx(model, d / "tiny.onnx", cfg.input_size), cfg.input_size


@pytest.mark.slow  # ~4-9 min on a loaded 2-core machine (tuning, then two compiles)
def test_prepacked_tuning_matches_torch_and_database_is_reused(tiny_onnx, tmp_path):
    import torch

    from facelm.converters import tvm as tv

    model, onnx_path, size = tiny_onnx
    shape = (1, 3, size, size)
    # what gets prepacked: every kernel with weights except the transposed convolutions
    prepared = tv._prepare_for_tuning(tv.import_onnx(onnx_path, shape), tv.import_tvm().target.Target(
        tv.host_target(tuned=True)), prepack=True)
    names = [gv.name_hint for gv, f in prepared.functions.items()
             if f.attrs is not None and "layout_free_buffers" in f.attrs]
    assert names and not any("conv2d_transpose" in n for n in names)
    assert any("conv2d_transpose" in gv.name_hint for gv, _ in prepared.functions.items())

    db = tmp_path / "db"
    b = tv.compile_host(onnx_path, tmp_path / "tuned.so", shape, trials=4, work_dir=db, population=16)
    assert b.tuned_kernels >= 1 and (db / "database_tuning_record.json").is_file()
    x = np.random.default_rng(5).normal(size=(2,) + shape[1:]).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert np.abs(ref).max() > 0.3
    got = tv.TvmRunner(b.path).heatmaps(x)
    assert np.abs(got - ref).max() <= 1e-5 * np.abs(ref).max()

    # the same database, applied without tuning: same kernels tuned, same answers, no tuning time
    t0 = time.perf_counter()
    b2 = tv.compile_host(onnx_path, tmp_path / "reused.so", shape, trials=0, work_dir=db)
    reuse_s = time.perf_counter() - t0
    assert b2.tuned_kernels == b.tuned_kernels and b2.trials == 0
    got2 = tv.TvmRunner(b2.path).heatmaps(x)
    assert np.abs(got2 - ref).max() <= 1e-5 * np.abs(ref).max()
    assert reuse_s < 120


def test_missing_database_is_a_clear_error(tiny_onnx, tmp_path):
    from facelm.converters import tvm as tv
    from facelm.errors import InputError

    _, onnx_path, size = tiny_onnx
    with pytest.raises(InputError, match="no MetaSchedule database"):
        tv.compile_host(onnx_path, tmp_path / "x.so", (1, 3, size, size), trials=0, work_dir=tmp_path)
