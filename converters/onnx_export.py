"""torch -> ONNX (opset 17, static 1x3xHxW ``input`` -> ``heatmaps``) and onnxruntime parity."""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np

from sdk.errors import ConversionError

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "heatmaps"


def export_onnx(model, path: str | os.PathLike, input_size: int, opset: int = OPSET) -> Path:
    """Export a heatmap model to ONNX with a static batch of one.

    Args:
        model: ``torch.nn.Module`` mapping (1, 3, S, S) float32 to (1, K, h, w) heatmaps.
        path: output ``.onnx`` (written to a temp name, then renamed).
        input_size: S in pixels.
    Returns:
        ``path``.
    Raises:
        ConversionError: the exporter failed or the exported graph does not check.
    """
    import onnx
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    model = model.eval()
    dummy = torch.zeros(1, 3, input_size, input_size, dtype=torch.float32)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(model, (dummy,), str(tmp), opset_version=opset, input_names=[INPUT_NAME],
                              output_names=[OUTPUT_NAME], dynamo=False, do_constant_folding=True)
        onnx.checker.check_model(str(tmp))
    except Exception as exc:  # the exporter raises many types
        tmp.unlink(missing_ok=True)
        raise ConversionError(f"torch -> ONNX export failed: {type(exc).__name__}: {exc}") from exc
    os.replace(tmp, path)
    return path


def torch_heatmaps(model, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """Run the torch model in fp32. (N, 3, S, S) float32 -> (N, K, h, w) float32."""
    import torch

    model = model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))).numpy())
    return np.concatenate(out, axis=0)


def onnx_heatmaps(onnx_path: str | os.PathLike, x: np.ndarray, num_threads: int = 1) -> np.ndarray:
    """Run the ONNX model with onnxruntime (CPU), one image at a time. Same shapes as :func:`torch_heatmaps`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = num_threads
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {INPUT_NAME: x[i:i + 1].astype(np.float32)})[0]
                           for i in range(len(x))], axis=0)


def max_abs_diff(ref: np.ndarray, test: np.ndarray) -> float:
    """Largest absolute element difference of two same-shaped arrays."""
    if ref.shape != test.shape:
        raise ConversionError(f"shape mismatch: reference {ref.shape} vs artifact {test.shape}")
    return float(np.max(np.abs(ref.astype(np.float64) - test.astype(np.float64))))
