"""Probe what onnx2tf makes of a model's PixelShuffle: count TFLite ops and their ranks.

Run ``python -m facelm.converters.export_probe [CONFIG]`` (needs the ``convert`` extra). For each
PixelShuffle formulation it exports the config to ONNX and converts it with onnx2tf in a
temporary directory, with the conversion chain's own functions
(``facelm.converters.onnx_export.export_onnx``, ``facelm.converters.tflite.run_onnx2tf``;
nothing is downloaded), and prints the TFLite operator histogram and the highest tensor rank
in the graph (``facelm.converters.tflite.count_ops``), plus the GPU-delegate compatibility
verdict of ``tf.lite.experimental.Analyzer``. The findings are written up in docs/model_zoo.md.

This is a diagnostic tool, not part of the conversion chain. It lives in ``converters/``
(it was ``facelm.model.export_probe``): the model package does not import the converters.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from facelm.errors import ConversionError
from facelm.model.config import ModelConfig, load_config
from facelm.model.heads import PIXEL_SHUFFLE_MODES
from facelm.model.zoo import HeatmapModel

#: Calibration crops handed to onnx2tf (it quantizes too; the probe reads only the fp32 model).
CALIBRATION_CROPS = 4


def tflite_max_error(tflite_path: Path, model: torch.nn.Module, x: torch.Tensor) -> float:
    """Max |TFLite - PyTorch| on ``x`` (N, 3, S, S); TFLite I/O are NHWC after onnx2tf."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(tflite_path))
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.set_tensor(inp["index"], x.permute(0, 2, 3, 1).numpy())
    it.invoke()
    y = it.get_tensor(out["index"])
    with torch.no_grad():
        ref = model(x).permute(0, 2, 3, 1).numpy()
    return float(np.abs(y - ref).max())


def gpu_verdict(tflite_path: Path) -> str:
    """The GPU-compatibility verdict lines of ``tf.lite.experimental.Analyzer``.

    Note: in TF 2.19 this static check passes rank-6 RESHAPE/TRANSPOSE, so the tensor rank
    from :func:`facelm.converters.tflite.count_ops` is the evidence that matters.
    """
    import tensorflow as tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_path=str(tflite_path), gpu_compatibility=True)
    return " ".join(ln.strip() for ln in buf.getvalue().splitlines()
                    if "GPU" in ln and ("compatib" in ln or "WARNING" in ln))


def probe(cfg: ModelConfig, workdir: Path) -> dict[str, dict]:
    """Convert ``cfg`` once per PixelShuffle mode in ``workdir``; return per-mode op report.

    The conversion is the product's: :func:`facelm.converters.onnx_export.export_onnx` (with its
    ConvTranspose+BN folding) and :func:`facelm.converters.tflite.run_onnx2tf` (which writes the
    calibration and sample-data files, so nothing is downloaded), on random calibration crops
    with mean 0 and std 1. The fp32 TFLite model is inspected.

    Returns:
        mode -> ``{"onnx_ops", "tflite_ops", "max_tensor_rank", "gpu_analyzer",
        "max_abs_error_vs_torch"}``, or ``{"error": message}`` when the conversion failed.
    """
    import onnx

    from facelm.converters.onnx_export import export_onnx
    from facelm.converters.tflite import count_ops, run_onnx2tf

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((1, 3, cfg.input_size, cfg.input_size), dtype=np.float32))
    calib01 = rng.random((CALIBRATION_CROPS, cfg.input_size, cfg.input_size, 3), dtype=np.float32)
    report: dict[str, dict] = {}
    for mode in PIXEL_SHUFFLE_MODES:
        d = workdir / mode
        d.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        model = HeatmapModel(dataclasses.replace(cfg, pixel_shuffle=mode)).eval()
        try:
            # each formulation as written (the conversion chain itself rewrites S blocks to one
            # DepthToSpace, which would make every mode export alike)
            onnx_path = export_onnx(model, d / "model.onnx", cfg.input_size, depth_to_space=False)
            tfl = run_onnx2tf(onnx_path, calib01, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                              workdir=d / "onnx2tf")["fp32"]
        except ConversionError as exc:
            report[mode] = {"error": str(exc)}
            continue
        ops, max_rank = count_ops(tfl)
        report[mode] = {"onnx_ops": dict(Counter(n.op_type for n in onnx.load(str(onnx_path)).graph.node)),
                        "tflite_ops": ops, "max_tensor_rank": max_rank, "gpu_analyzer": gpu_verdict(tfl),
                        "max_abs_error_vs_torch": tflite_max_error(tfl, model, x)}
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default="tiny", help="zoo name or YAML path (default: tiny)")
    parser.add_argument("--workdir", help="keep the conversion files here (default: a temp dir)")
    args = parser.parse_args(argv)
    cfg = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        rep = probe(cfg, Path(args.workdir or tmp))
    print(json.dumps(rep, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
