"""TfliteRunner reads its output layout from the contract embedded in the file (facelm.runtime.tflite)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert")

from ai_edge_litert import schema_py_generated as schema  # noqa: E402

from facelm.converters.tflite import embed_metadata  # noqa: E402
from facelm.errors import InputError  # noqa: E402
from facelm.runtime.tflite import TfliteRunner, embedded_output_layout  # noqa: E402

from test_converters_graph import _Graph  # noqa: E402  (the flatbuffer model builder)

K, H, W = 5, 4, 6


def _nchw_output_model(path) -> str:
    """input (1, H, W, K) NHWC -> TRANSPOSE (0, 3, 1, 2) -> output (1, K, H, W): an NCHW heatmap output."""
    g = _Graph()
    x = g.tensor([1, H, W, K], schema.TensorType.FLOAT32)
    perm = g.tensor([4], schema.TensorType.INT32, np.array([0, 3, 1, 2], np.int32))
    y = g.tensor([1, K, H, W], schema.TensorType.FLOAT32)
    g.op(schema.BuiltinOperator.TRANSPOSE, [x, perm], [y], 1, schema.BuiltinOptions.TransposeOptions,
         schema.TransposeOptionsT())
    return g.save(path, [x], [y])


def _meta(layout: str) -> dict:
    return {"artifact": {"name": "fp32", "output": {"name": "y", "shape": [1, K, H, W], "layout": layout,
                                                    "dtype": "float32"}}}


def test_nchw_output_read_from_the_embedded_contract(tmp_path):
    path = _nchw_output_model(tmp_path / "m.tflite")
    embed_metadata(path, _meta("NCHW"), seal=False)
    assert embedded_output_layout(path) == "NCHW"
    r = TfliteRunner(path)
    assert r.output_spec.layout == "NCHW" and r.output_spec.shape == (1, K, H, W)
    # the model's input is (1, H, W, K) NHWC, so its NCHW form is (1, K, H, W): the output equals the input
    x = np.random.default_rng(0).normal(size=(1, K, H, W)).astype(np.float32)
    np.testing.assert_array_equal(r.invoke(r.prepare(x)), x)


def test_heatmaps_honour_the_layout(tmp_path, monkeypatch):
    path = _nchw_output_model(tmp_path / "m.tflite")
    embed_metadata(path, _meta("NCHW"), seal=False)
    x = np.random.default_rng(1).normal(size=(1, K, H, W)).astype(np.float32)
    r = TfliteRunner(path)
    monkeypatch.setattr(r, "run_raw", lambda a: r.invoke(r.prepare(a)))  # the model has K input channels, not 3
    np.testing.assert_array_equal(r.heatmaps(x), x)
    # the same file read as NHWC (an explicit override) would be transposed: the layout decides
    r2 = TfliteRunner(path, output_layout="NHWC")
    monkeypatch.setattr(r2, "run_raw", lambda a: r2.invoke(r2.prepare(a)))
    assert r2.heatmaps(x).shape == (1, W, K, H)


def test_no_metadata_is_nhwc_and_bad_layouts_are_refused(tmp_path):
    path = _nchw_output_model(tmp_path / "m.tflite")
    assert embedded_output_layout(path) is None
    assert TfliteRunner(path).output_spec.layout == "NHWC"
    with pytest.raises(InputError, match="layout 'NWHC'"):
        TfliteRunner(path, output_layout="NWHC")
    embed_metadata(path, _meta("CHW"), seal=False)
    with pytest.raises(InputError, match="embedded output layout 'CHW'"):
        TfliteRunner(path)
