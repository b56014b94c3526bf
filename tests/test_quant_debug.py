"""facelm quant-debug: per-layer own error, landmark ranking, a model built to break, GPU readiness, CLI errors.

The model built to break is a tiny float Keras heatmap net made here (seconds): its last
conv has one output channel with a ~1000x wider range, so per-tensor int8 activations crush
every other heatmap. The ranking must name that layer first, and keeping it float must
bring the landmarks back.
"""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

pytest.importorskip("tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from facelm.quantization import debug as qd  # noqa: E402
from facelm.quantization import delegates  # noqa: E402
from facelm.runtime.manifest import ModelContract  # noqa: E402

S, K = 24, 106
HOSTILE = "hostile"


def _heatmap_net(hostile: bool) -> bytes:
    """(1, S, S, 3) -> (1, S, S, K) float TFLite: conv-relu, conv-relu, 1x1 conv 'hostile' to K heatmaps."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = tf.keras.Input((S, S, 3), batch_size=1)
    h = tf.keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    h = tf.keras.layers.Conv2D(16, 3, padding="same", activation="relu", name="c2")(h)
    out = tf.keras.layers.Conv2D(K, 1, name=HOSTILE)(h)
    model = tf.keras.Model(x, out)
    for layer in model.layers[1:]:
        w, b = layer.get_weights()
        w = rng.normal(0, 1 / math.sqrt(np.prod(w.shape[:-1])), w.shape).astype(np.float32)
        if layer.name == HOSTILE and hostile:
            w[..., 0] *= 1000.0  # one heatmap with a ~1000x range: the int8-hostile activation
        layer.set_weights([w, b])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _contract():
    return ModelContract.build("hostile-test", "jd106", S, S)


@pytest.fixture(scope="module")
def faces():
    rng = np.random.default_rng(1)
    calib = rng.normal(0, 1, (16, S, S, 3)).astype(np.float32)
    evals = rng.normal(0, 1, (6, 3, S, S)).astype(np.float32)
    return calib, evals


@pytest.fixture(scope="module")
def hostile(faces, tmp_path_factory):
    calib, evals = faces
    fp32 = _heatmap_net(hostile=True)
    path = tmp_path_factory.mktemp("hostile") / "fp32.tflite"
    path.write_bytes(fp32)
    calibrated = qd.calibrate(fp32, calib)
    rows = qd.layer_statistics(qd.quantize(calibrated, debug=True), np.ascontiguousarray(evals.transpose(0, 2, 3, 1)),
                               calibrated=calibrated)
    ref = qd.model_landmarks(path, evals, _contract())
    return fp32, calibrated, rows, ref


def test_rows_in_execution_order_with_sane_figures(hostile):
    _, _, rows, _ = hostile
    assert [r.index for r in rows] == list(range(len(rows)))
    assert [r.op for r in rows] == ["CONV_2D", "CONV_2D", "CONV_2D"]
    for r in rows:
        assert r.scale > 0 and -128 <= r.zero_point <= 127
        assert 0 <= r.clipped <= 1
        assert r.rmse_over_scale < 1.0  # own error is rounding-sized (0.29 steps ideal), not accumulated
    # the calibration faces and the evaluation faces come from one distribution: a tensor's
    # own SQNR is tens of dB for ordinary layers
    assert all(r.sqnr_db > 25 for r in rows[:2]), [r.sqnr_db for r in rows]


def test_hostile_layer_shows_in_worst_channel_sqnr_and_is_ranked_first(hostile, faces):
    _, calibrated, rows, ref = hostile
    _, evals = faces
    by_name = {r.name: r for r in rows}
    hostile_row = rows[-1]  # the third conv; its tensor is named after the model output
    others = [r for r in rows if r is not hostile_row]
    # the wide channel keeps the whole-tensor SQNR high; the crushed channels do not
    assert hostile_row.worst_channel_sqnr_db < min(r.worst_channel_sqnr_db for r in others) - 10
    ranking = qd.sensitivity(calibrated, rows, ref, evals, _contract(), k=len(rows))
    assert ranking[0].name == hostile_row.name
    base = qd.mean_drift(ref, qd.model_landmarks(qd.quantize(calibrated), evals, _contract()), _contract())
    assert ranking[0].drift_if_float < base / 3, (ranking[0].drift_if_float, base)
    assert by_name[ranking[0].name].drift_if_float == ranking[0].drift_if_float


def test_sane_model_drifts_less_than_hostile(faces, tmp_path):
    calib, evals = faces
    fp32 = _heatmap_net(hostile=False)
    (tmp_path / "m.tflite").write_bytes(fp32)
    ref = qd.model_landmarks(tmp_path / "m.tflite", evals, _contract())
    sane = qd.mean_drift(ref, qd.model_landmarks(qd.quantize(qd.calibrate(fp32, calib)), evals, _contract()), _contract())
    fp32_h = _heatmap_net(hostile=True)
    (tmp_path / "h.tflite").write_bytes(fp32_h)
    ref_h = qd.model_landmarks(tmp_path / "h.tflite", evals, _contract())
    bad = qd.mean_drift(ref_h, qd.model_landmarks(qd.quantize(qd.calibrate(fp32_h, calib)), evals, _contract()),
                        _contract())
    assert bad > 3 * sane


def test_mixed_auto_keeps_the_hostile_layer_and_meets_the_target(hostile, faces):
    from facelm.quantization.mixed import mixed_precision

    fp32, _, _, ref = hostile
    calib, evals = faces
    base = mixed_precision(fp32, calib, evals, ref, _contract(), keep_float=[], reference="fp32_tflite")
    target = base.baseline_drift / 3
    res = mixed_precision(fp32, calib, evals, ref, _contract(), keep_float="auto", drift_target=target,
                          candidates=3, reference="fp32_tflite")
    assert res.reached and res.drift <= target
    _, _, rows, _ = hostile
    assert res.kept == [rows[-1].name]
    assert res.baseline_drift == pytest.approx(base.baseline_drift)
    rec = res.record()
    assert "model" not in rec and rec["bytes"] == len(res.model) > res.baseline_bytes
    json.dumps(rec)  # JSON-ready


def test_keep_float_unknown_name_is_one_clear_error(hostile, faces):
    from facelm.errors import ConfigError
    from facelm.quantization.mixed import mixed_precision

    fp32, _, _, ref = hostile
    calib, evals = faces
    with pytest.raises(ConfigError, match="no quantized layer named 'nope'"):
        mixed_precision(fp32, calib, evals, ref, _contract(), keep_float=["nope"])


def test_onnx_module_path():
    assert qd.onnx_module_path("/backbone/features/features.1/block/block.0/block.0.0/Conv") == \
        "backbone.features.1.block.0.0"
    assert qd.onnx_module_path("/head/head.0/ConvTranspose") == "head.0"


# ----------------------------------------------------------------------------- GPU readiness
def _rank6_model() -> bytes:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 6, 6, 16], tf.float32)])
    def f(x):
        y = tf.transpose(tf.reshape(x, [1, 6, 6, 4, 2, 2]), [0, 1, 4, 2, 5, 3])
        return tf.nn.relu(tf.reshape(y, [1, 12, 12, 4]))

    return tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()


def test_gpu_readiness_rejects_rank6_and_accepts_plain_convs(tmp_path):
    (tmp_path / "r6.tflite").write_bytes(_rank6_model())
    (tmp_path / "ok.tflite").write_bytes(_heatmap_net(hostile=False))
    bad = delegates.readiness(tmp_path / "r6.tflite")
    assert not bad.ready
    assert {o.op for o in bad.rejected} == {"RESHAPE", "TRANSPOSE"}
    assert all("rank-6" in o.reason for o in bad.rejected)
    good = delegates.readiness(tmp_path / "ok.tflite")
    assert good.ready and not good.rejected and good.summary()["ops"] == 3


def test_parse_analyzer_warnings():
    text = ("Subgraph#0 main(T#0) -> [T#2]\n  Op#0 CONV_2D(T#0, T#1) -> [T#2]\n  Op#1 FlexCosh(T#2) -> [T#3]\n"
            "GPU COMPATIBILITY WARNING: Not supported custom op FlexCosh\n")
    rep = delegates.parse_analyzer(text)
    assert rep["verdict"] == "incompatible"
    assert rep["warnings"] == [{"op_index": 1, "op": "FlexCosh", "message": "Not supported custom op FlexCosh"}]
    assert delegates.parse_analyzer("Your model looks compatible with GPU delegate on TFLite")["verdict"] == "compatible"


def test_transpose_conv_v4_is_flagged():
    assert any(op == "TRANSPOSE_CONV" and v == 4 for op, v in delegates.VERSION_FLAGS)
