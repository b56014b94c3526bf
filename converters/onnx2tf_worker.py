"""One process that runs onnx2tf and writes only the TFLite variants asked for, calibrating once.

``python -m facelm.converters.onnx2tf_worker SPEC.json`` runs in onnx2tf's working folder
(:func:`facelm.converters.tflite.run_onnx2tf` prepares it). Why not ``onnx2tf -oiqt``:

- ``-oiqt`` writes every quantized variant (dynamic range, int8, int8 in/out, two int16
  ones) and runs the calibration data through the model once per integer variant
  (four times). TensorFlow's converter calibrates and then quantizes
  (``lite.TFLiteConverterBase._quantize``: ``Calibrator.calibrate`` then ``_mlir_quantize``
  with the wanted input/output types); so calibrating once
  (``_experimental_calibrate_only``) and quantizing the calibrated model for each wanted
  input/output type gives the same int8 models as onnx2tf's separate conversions, for one
  calibration;
- only the variants asked for are written.

Converter settings are onnx2tf 1.29's own (``TFLITE_BUILTINS_INT8`` + ``SELECT_TF_OPS``, the
saved model onnx2tf writes, ``-qt`` as ``_experimental_disable_per_channel``). The int16x8
variant goes through TensorFlow's older quantizer (which calibrates by itself), as in onnx2tf.

SPEC keys: ``onnx`` (file in the working folder), ``out`` (folder), ``variants`` (one dict per
wanted variant: ``name``, ``file``, ``precision``, ``weight_dtype``, ``io``, from the artifact
catalogue through :func:`facelm.converters.tflite.worker_table`; this module restates none of
it, and :func:`plan` decides how each is made from those fields alone), ``calib`` (``.npy``, NHWC float32 in [0, 1]), ``mean``/``std`` (3 floats each),
``quant_type``, ``param_replacement`` (file or ""). Each complete file is reported on stdout
as ``facelm-variant NAME PATH SECONDS`` and by an empty marker file ``out/.NAME.done``, so
the caller can use it while the other variants are still being made.
"""
from __future__ import annotations

import json
import os
import sys
import time

from facelm.fileio import atomic_write_bytes

#: How a variant is made: onnx2tf itself (float weights), dynamic-range quantization (int8
#: weights, float activations), calibrated int8 (input/output of dtype ``io``), calibrated int16x8.
KINDS = ("float", "dynamic", "calibrated", "int16")


def _how(v: dict) -> str:
    if v["weight_dtype"] != "int8":
        return "float"
    return {"fp32": "dynamic", "int8": "calibrated", "int16": "int16"}.get(v["precision"], "")


def plan(variants: list[dict]) -> dict[str, list[dict]]:
    """The wanted variants grouped by how they are made (:data:`KINDS`), in the order given.

    Raises:
        ValueError: a variant whose precision and weight dtype no group makes.
    """
    groups: dict[str, list[dict]] = {k: [] for k in KINDS}
    for v in variants:
        how = _how(v)
        if not how:
            raise ValueError(f"no way to make {v['name']!r} ({v['precision']} activations, "
                             f"{v['weight_dtype']} weights)")
        groups[how].append(v)
    return groups


def _say(name: str, path: str, t0: float) -> None:
    """Report a complete variant: a line on stdout and a marker file ``.NAME.done`` beside it."""
    print(f"facelm-variant {name} {path} {time.perf_counter() - t0:.1f}", flush=True)
    open(os.path.join(os.path.dirname(path), f".{name}.done"), "w").close()


def main(spec_path: str) -> int:
    t0 = time.perf_counter()
    spec = json.loads(open(spec_path, encoding="utf-8").read())
    groups = plan(spec["variants"])
    out = spec["out"]
    import numpy as np
    import onnx2tf

    onnx2tf.convert(input_onnx_file_path=spec["onnx"], output_folder_path=out, output_signaturedefs=True,
                    param_replacement_file=spec.get("param_replacement") or "", verbosity="error")
    for v in groups["float"]:
        path = os.path.join(out, v["file"])
        if os.path.isfile(path):
            _say(v["name"], path, t0)
    if not any(groups[k] for k in KINDS if k != "float"):
        return 0
    import tensorflow as tf
    from tensorflow.lite.python import lite as tflite_lite

    per_tensor = spec.get("quant_type", "per-channel") == "per-tensor"
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.SELECT_TF_OPS]

    def converter(int8: bool):
        c = tf.lite.TFLiteConverter.from_saved_model(out)
        c.optimizations = [tf.lite.Optimize.DEFAULT]
        c.target_spec.supported_ops = ops if int8 else [tf.lite.OpsSet.TFLITE_BUILTINS, tf.lite.OpsSet.SELECT_TF_OPS]
        if not int8:
            c.target_spec.supported_types = []
        c._experimental_disable_per_channel = per_tensor  # noqa: SLF001 (onnx2tf's own setting)
        return c

    def write(v: dict, data: bytes) -> None:
        path = os.path.join(out, v["file"])
        atomic_write_bytes(path, data)
        _say(v["name"], path, t0)

    for v in groups["dynamic"]:
        write(v, converter(False).convert())
    if not groups["calibrated"] and not groups["int16"]:
        return 0
    calib = np.load(spec["calib"]).astype(np.float32)
    mean = np.asarray(spec["mean"], np.float32).reshape(1, 1, 1, 3)
    std = np.asarray(spec["std"], np.float32).reshape(1, 1, 1, 3)
    sig = tf.saved_model.load(out).signatures["serving_default"]
    key = list(sig.structured_input_signature[1].keys())[0]

    def dataset():
        for i in range(calib.shape[0]):
            yield {key: tf.convert_to_tensor((calib[i:i + 1] - mean) / std, tf.float32)}

    if groups["calibrated"]:
        c = converter(True)
        c.representative_dataset = dataset
        c._experimental_calibrate_only = True  # noqa: SLF001 (TensorFlow's calibrate-once hook)
        calibrated = c.convert()
        print(f"facelm-calibrated {calib.shape[0]} {time.perf_counter() - t0:.1f}", flush=True)
        for v in groups["calibrated"]:
            io = tf.int8 if v["io"] == "int8" else tf.float32
            q = tflite_lite._mlir_quantize(calibrated, per_tensor, input_data_type=io, output_data_type=io)  # noqa: SLF001
            write(v, tflite_lite._deduplicate_readonly_buffers(q))  # noqa: SLF001 (as convert() does)
    for v in groups["int16"]:
        c = converter(True)
        c.target_spec.supported_types = []
        c.target_spec.supported_ops = [tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                                       tf.lite.OpsSet.SELECT_TF_OPS]
        c.representative_dataset = dataset
        c.inference_input_type = tf.float32
        c.inference_output_type = tf.float32
        write(v, c.convert())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
