"""Shipped TVM tuning databases (``facelm/assets/tvm_tuning``): lookup, default application, parity.

The lookup matches a module's MetaSchedule workloads (kernel structure) against each shipped
database: the untrained tiny_track model has the structure of the shipped ``tiny_track``
database, a two-kernel graph matches nothing and gets a note. Applying the shipped database
must keep the output of the untuned build (same maths, different loop order).
"""
from __future__ import annotations

import shutil

import numpy as np
import pytest

pytest.importorskip("tvm")

from facelm.converters import tvm as tv  # noqa: E402

SHIPPED = tv.shipped_db_dir("tiny_track")
needs_db = pytest.mark.skipif(not (SHIPPED / tv.DB_FILES[1]).is_file() or not tv.host_runs_shipped_target(),
                              reason="no shipped tiny_track database, or this CPU cannot run its target")


@pytest.fixture(scope="module")
def tiny_track(tmp_path_factory):
    """(torch model, ONNX path, input side) of the untrained tiny_track config."""
    import torch

    from facelm.converters.onnx_export import export_onnx
    from facelm.model import build_model, load_config

    torch.manual_seed(0)
    cfg = load_config("tiny_track")
    model = build_model(cfg).eval()
    d = tmp_path_factory.mktemp("tt")
    return model, export_onnx(model, d / "tt.onnx", cfg.input_size), cfg.input_size


@pytest.fixture(scope="module")
def small_onnx(tmp_path_factory):
    """ONNX of conv2d 3->8 + ReLU on a 16x16 input: kernels no shipped database holds."""
    import torch
    from torch import nn

    from facelm.converters.onnx_export import export_onnx

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU()).eval()
    return export_onnx(model, tmp_path_factory.mktemp("small") / "s.onnx", 16, fold_bn=False)


@needs_db
def test_shipped_db_matches_its_config(tiny_track):
    _, onnx_path, s = tiny_track
    mod = tv.import_onnx(onnx_path, (1, 3, s, s))
    db, note = tv.find_shipped_db(mod)
    assert db == SHIPPED
    hits, n = tv.shipped_matches(mod, db)
    assert hits >= tv.MIN_MATCH * n and n > 10
    assert f"{hits} of {n} kernels" in note


def test_unmatched_model_gets_no_db_and_a_note(small_onnx):
    mod = tv.import_onnx(small_onnx, (1, 3, 16, 16))
    db, note = tv.find_shipped_db(mod)
    assert db is None
    assert "untuned" in note


def test_no_database_folder_gives_a_note(small_onnx, tmp_path):
    mod = tv.import_onnx(small_onnx, (1, 3, 16, 16))
    db, note = tv.find_shipped_db(mod, root=tmp_path / "none")
    assert db is None and note.startswith("no shipped TVM tuning database")


@needs_db
def test_lookup_picks_the_best_of_several(tiny_track, small_onnx, tmp_path):
    """A copy of the tiny_track database under another name is found by workload, not by name."""
    _, onnx_path, s = tiny_track
    shutil.copytree(SHIPPED, tmp_path / "renamed")
    db, _ = tv.find_shipped_db(tv.import_onnx(onnx_path, (1, 3, s, s)), root=tmp_path)
    assert db == tmp_path / "renamed"


@needs_db
def test_compile_host_applies_shipped_db_with_parity(tiny_track, tmp_path):
    """By default the matching database is applied (its card's target); the output keeps torch parity."""
    from facelm.converters.onnx_export import torch_heatmaps

    model, onnx_path, s = tiny_track
    b = tv.compile_host(onnx_path, tmp_path / "tuned.so", (1, 3, s, s))
    assert b.database == "tiny_track" and b.tuned_kernels > 0
    assert b.target == tv.read_card(SHIPPED)["target"]
    x = np.random.default_rng(0).standard_normal((2, 3, s, s)).astype(np.float32)
    ref = torch_heatmaps(model, x)
    got = tv.TvmRunner(b.path).heatmaps(x)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, float(np.abs(ref).max()))


def test_compile_host_opt_out_is_untuned(small_onnx, tmp_path):
    b = tv.compile_host(small_onnx, tmp_path / "u.so", (1, 3, 16, 16), shipped_db=False)
    assert b.database == "" and b.tuned_kernels == 0 and b.note == ""
