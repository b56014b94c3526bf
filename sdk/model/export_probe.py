"""Probe what onnx2tf makes of a model's PixelShuffle: count TFLite ops and their ranks.

Run ``python -m sdk.model.export_probe [CONFIG]`` (needs the ``convert`` extra). For each
PixelShuffle formulation it exports the config to ONNX, converts it with onnx2tf in a
temporary directory (with a locally written calibration file, so nothing is
downloaded), and prints the TFLite operator histogram with the highest tensor rank
each operator touches, plus the GPU-delegate compatibility verdict of
``tf.lite.experimental.Analyzer``. The findings are written up in docs/model_zoo.md.

This is a diagnostic tool, not part of the conversion chain (that lives in
``converters/``).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from sdk.model.config import ModelConfig, load_config
from sdk.model.heads import PIXEL_SHUFFLE_MODES
from sdk.model.zoo import HeatmapModel

CALIBRATION_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"


def export_onnx(model: torch.nn.Module, size: int, path: Path, opset: int = 17) -> Path:
    """Export ``model`` (eval mode, input (1, 3, size, size)) to ONNX with the TorchScript exporter."""
    x = torch.zeros(1, 3, size, size)
    torch.onnx.export(model.eval(), (x,), str(path), input_names=["input"], output_names=["heatmaps"],
                      opset_version=opset, dynamo=False)
    return path


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


def tflite_op_ranks(tflite_path: Path) -> dict[str, dict[str, int]]:
    """Histogram of TFLite builtin ops: {op: {"count": n, "max_rank": r}} (rank over inputs/outputs)."""
    from tensorflow.lite.python import schema_py_generated as schema

    buf = tflite_path.read_bytes()
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out: dict[str, dict[str, int]] = {}
    for sg in model.subgraphs:
        for op in sg.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = names.get(max(code.builtinCode, code.deprecatedBuiltinCode), str(code.builtinCode))
            ranks = [len(sg.tensors[i].shape) for i in list(op.inputs) + list(op.outputs)
                     if i >= 0 and sg.tensors[i].shape is not None]
            row = out.setdefault(name, {"count": 0, "max_rank": 0})
            row["count"] += 1
            row["max_rank"] = max(row["max_rank"], max(ranks, default=0))
    return out


def gpu_verdict(tflite_path: Path) -> str:
    """The GPU-compatibility verdict lines of ``tf.lite.experimental.Analyzer``.

    Note: in TF 2.19 this static check passes rank-6 RESHAPE/TRANSPOSE, so the rank
    histogram of :func:`tflite_op_ranks` is the evidence that matters.
    """
    import tensorflow as tf

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_path=str(tflite_path), gpu_compatibility=True)
    return " ".join(ln.strip() for ln in buf.getvalue().splitlines()
                    if "GPU" in ln and ("compatib" in ln or "WARNING" in ln))


def probe(cfg: ModelConfig, workdir: Path) -> dict[str, dict]:
    """Convert ``cfg`` once per PixelShuffle mode in ``workdir``; return per-mode op report."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((1, 3, cfg.input_size, cfg.input_size), dtype=np.float32))
    report: dict[str, dict] = {}
    for mode in PIXEL_SHUFFLE_MODES:
        d = workdir / mode
        d.mkdir(parents=True, exist_ok=True)
        # onnx2tf downloads this file unless it is in the working directory.
        np.save(d / CALIBRATION_FILE, rng.random((20, 128, 128, 3), dtype=np.float32))
        torch.manual_seed(0)
        model = HeatmapModel(dataclasses.replace(cfg, pixel_shuffle=mode)).eval()
        onnx_path = export_onnx(model, cfg.input_size, d / "model.onnx")
        proc = subprocess.run([sys.executable, "-m", "onnx2tf", "-i", "model.onnx", "-o", "tf", "-n"],
                              cwd=d, capture_output=True, text=True)
        tfl = d / "tf" / "model_float32.tflite"
        if proc.returncode or not tfl.is_file():
            report[mode] = {"error": (proc.stdout + proc.stderr)[-2000:]}
            continue
        import onnx

        onnx_ops = Counter(n.op_type for n in onnx.load(str(onnx_path)).graph.node)
        report[mode] = {"onnx_ops": dict(onnx_ops), "tflite_ops": tflite_op_ranks(tfl),
                        "gpu_analyzer": gpu_verdict(tfl),
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
