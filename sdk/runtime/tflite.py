"""Run a ``.tflite`` heatmap model with LiteRT, and read the metadata facelm embeds in it.

Light: needs only numpy and ``ai-edge-litert`` (no TensorFlow).

Embedded metadata: ``facelm convert`` adds an entry named :data:`METADATA_NAME` to the
flatbuffer's ``metadata`` table whose buffer holds the manifest (minus the per-artifact
list) as UTF-8 JSON. The LiteRT interpreter ignores metadata names it does not know.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from facelm.errors import InputError
from facelm.runtime.manifest import Quantization, TensorSpec

METADATA_NAME = "facelm_manifest"


def load_interpreter(path: str | os.PathLike, num_threads: int = 1):
    """A LiteRT interpreter over ``path`` with its tensors allocated (the one loader).

    Raises:
        InputError: no file, or LiteRT rejects it (not a TFLite model, unsupported ops...).
    """
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - ai-edge-litert is a core dependency
        raise InputError("running .tflite files needs the 'ai-edge-litert' package") from exc
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no TFLite model at {path}")
    try:
        it = Interpreter(model_path=str(path), num_threads=num_threads)
        it.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise InputError(f"LiteRT cannot load {path}: {exc}") from None
    return it


def tensor_spec(detail: dict, layout: str = "NHWC") -> TensorSpec:
    """A LiteRT interpreter's input/output detail dict -> :class:`TensorSpec` (the one conversion).

    Integer tensors get their ``(scale, zero_point)``; float tensors get none.
    """
    dtype = np.dtype(detail["dtype"]).name
    scale, zp = detail.get("quantization", (0.0, 0))
    q = Quantization(float(scale), int(zp)) if np.dtype(dtype).kind in "iu" and scale else None
    return TensorSpec(name=str(detail["name"]), shape=tuple(int(s) for s in detail["shape"]),
                      layout=layout, dtype=dtype, quantization=q)


def quantize(x: np.ndarray, q: Quantization, dtype: str) -> np.ndarray:
    """Float ``x`` -> integer ``dtype`` with ``q = round(x / scale) + zero_point``, saturating."""
    info = np.iinfo(np.dtype(dtype))
    return np.clip(np.rint(np.asarray(x, np.float32) / np.float32(q.scale)) + q.zero_point,
                   info.min, info.max).astype(dtype)


def to_model_input(x: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """Normalised float input -> the tensor a model takes: its dtype, quantized for integer inputs.

    Args:
        x: float32 array already in ``spec``'s layout and shape.
    Raises:
        InputError: an integer input without quantization parameters.
    """
    if np.dtype(spec.dtype).kind in "iu":
        if spec.quantization is None:
            raise InputError(f"integer input {spec.name!r} has no quantization scale")
        return quantize(x, spec.quantization, spec.dtype)
    return np.asarray(x, dtype=spec.dtype)


def dequantize(q_values: np.ndarray, q: Quantization | None) -> np.ndarray:
    """Integer tensor -> float32 with ``real = scale * (q - zero_point)``; float input passes through."""
    if q is None:
        return np.asarray(q_values, dtype=np.float32)
    return (np.asarray(q_values, dtype=np.float32) - np.float32(q.zero_point)) * np.float32(q.scale)


OUTPUT_LAYOUTS: tuple[str, ...] = ("NHWC", "NCHW")


def embedded_output_layout(path: str | os.PathLike) -> str | None:
    """The heatmap output's layout recorded in a ``.tflite``'s embedded contract, or ``None``.

    ``facelm convert`` stores each artifact's output spec (``artifact.output.layout``) in the
    file; a file without facelm metadata (or without that field) gives ``None``.

    Raises:
        InputError: the recorded layout is neither ``"NHWC"`` nor ``"NCHW"``.
    """
    meta = read_tflite_metadata(path)
    out = (meta.get("artifact") or {}).get("output") if isinstance(meta, dict) else None
    layout = out.get("layout") if isinstance(out, dict) else None
    if layout is None:
        return None
    if layout not in OUTPUT_LAYOUTS:
        raise InputError(f"{path}: embedded output layout {layout!r} is not one of {OUTPUT_LAYOUTS}")
    return str(layout)


class TfliteRunner:
    """One LiteRT interpreter over a single-input (NHWC), single-output heatmap model.

    The output's layout is the one the file's embedded contract records (``NHWC`` or ``NCHW``:
    :func:`embedded_output_layout`), ``NHWC`` for a file without one, or ``output_layout``
    when given; :attr:`output_spec` carries it, so :func:`facelm.postprocess.output_to_landmarks`
    reads the raw output in its own layout, and :meth:`heatmaps` returns (N, K, h, w) either way.

    Args:
        path: the ``.tflite`` file.
        num_threads: CPU threads (XNNPACK is LiteRT's default CPU delegate).
        output_layout: override the recorded layout (``"NHWC"`` or ``"NCHW"``).
    Raises:
        InputError: not one input and one output, a 4-D output expected, or an unknown layout.
    """

    def __init__(self, path: str | os.PathLike, num_threads: int = 1, output_layout: str | None = None) -> None:
        path = Path(path)
        self._it = load_interpreter(path, num_threads)
        ins, outs = self._it.get_input_details(), self._it.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise InputError(f"{path}: expected one input and one output, got {len(ins)} and {len(outs)}")
        layout = output_layout or embedded_output_layout(path) or "NHWC"
        if layout not in OUTPUT_LAYOUTS:
            raise InputError(f"output layout {layout!r} is not one of {OUTPUT_LAYOUTS}")
        self._in, self._out = ins[0], outs[0]
        if len(self._out["shape"]) != 4:
            raise InputError(f"{path}: expected a 4-D heatmap output, got shape {tuple(self._out['shape'])}")
        self.input_spec = tensor_spec(self._in, "NHWC")
        self.output_spec = tensor_spec(self._out, layout)
        self.path = path

    def invoke(self, x_nhwc: np.ndarray) -> np.ndarray:
        """Run one raw input tensor, already in the model's dtype. Returns the raw output, (1, h, w, K) for an
        NHWC output, (1, K, h, w) for NCHW (``output_spec.layout``)."""
        self._it.set_tensor(self._in["index"], x_nhwc)
        self._it.invoke()
        return self._it.get_tensor(self._out["index"]).copy()

    def prepare(self, x_nchw: np.ndarray) -> np.ndarray:
        """Normalised float (1, 3, H, W) -> the model's (1, H, W, 3) input (quantized for int io)."""
        x = np.ascontiguousarray(np.asarray(x_nchw, dtype=np.float32).transpose(0, 2, 3, 1))
        return to_model_input(x, self.input_spec)

    def run_raw(self, x_nchw: np.ndarray) -> np.ndarray:
        """Normalised float (N, 3, H, W) -> raw outputs in the model's output dtype and layout
        ((N, h, w, K) for NHWC, (N, K, h, w) for NCHW)."""
        x = np.asarray(x_nchw)
        if x.ndim != 4 or x.shape[1] != 3:
            raise InputError(f"expected normalised NCHW input (N, 3, H, W), got {x.shape}")
        return np.concatenate([self.invoke(self.prepare(x[i:i + 1])) for i in range(x.shape[0])], axis=0)

    def heatmaps(self, x_nchw: np.ndarray) -> np.ndarray:
        """Normalised float (N, 3, H, W) -> float32 heatmaps (N, K, h, w), dequantized if needed."""
        hm = dequantize(self.run_raw(x_nchw), self.output_spec.quantization)
        return hm if self.output_spec.layout == "NCHW" else hm.transpose(0, 3, 1, 2)


# ------------------------------------------------------------------------- metadata
def read_tflite_metadata(path: str | os.PathLike, name: str = METADATA_NAME) -> dict[str, Any] | None:
    """The JSON stored under metadata entry ``name`` of a ``.tflite`` file, or ``None``.

    Raises:
        InputError: the file is missing, not a TFLite flatbuffer, or the entry is not JSON.
    """
    from ai_edge_litert import schema_py_generated as schema

    path = Path(path)
    try:
        buf = path.read_bytes()
        if buf[4:8] != b"TFL3":
            raise InputError(f"{path} is not a TFLite flatbuffer (no TFL3 identifier)")
        model = schema.Model.GetRootAsModel(buf, 0)
        for i in range(model.MetadataLength()):
            md = model.Metadata(i)
            if (md.Name() or b"").decode() != name:
                continue
            data = model.Buffers(md.Buffer())
            if data.DataLength():
                raw = data.DataAsNumpy().tobytes()
            else:  # large models keep buffers outside the flatbuffer, addressed by offset
                raw = buf[data.Offset():data.Offset() + data.Size()]
            from facelm.runtime.manifest import parse_manifest_text

            return parse_manifest_text(raw, f"{path}: metadata {name!r}")  # bounded depth, clear errors
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: metadata {name!r} is not valid JSON: {exc}") from exc
    return None
