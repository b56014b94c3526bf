"""ONNX -> TFLite through onnx2tf, run in an isolated temporary folder.

onnx2tf downloads a calibration sample file from the internet unless a file of that
name is in its working directory, so :func:`run_onnx2tf` writes it (from our own
calibration crops) into a fresh folder and runs onnx2tf there as a subprocess. One
onnx2tf run gives every variant; :data:`VARIANTS` are the catalogue's entries onnx2tf makes
(:func:`facelm.artifacts.tflite_names`), each with the suffix of the file onnx2tf writes.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from facelm.artifacts import ArtifactKind, artifact_kind, tflite_names
from facelm.errors import ConversionError
from facelm.fileio import atomic_path
from facelm.runtime.tflite import METADATA_NAME

log = logging.getLogger(__name__)

#: onnx2tf downloads this file unless it is in the working directory (docs/toolchain.md).
ONNX2TF_SAMPLE_NAME = "calibration_image_sample_data_20x128x128x3_float32.npy"


#: The TFLite variants onnx2tf makes, in catalogue order (names, precisions, onnx2tf suffixes).
VARIANTS: tuple[ArtifactKind, ...] = tuple(artifact_kind(n) for n in tflite_names())
VARIANT_BY_NAME = {v.name: v for v in VARIANTS}
QUANT_TYPES = ("per-channel", "per-tensor")
#: The ONNX copy onnx2tf converts; it names its outputs ``<stem>_<suffix>.tflite`` after it.
ONNX2TF_INPUT = "model.onnx"


def onnx2tf_file(kind: ArtifactKind) -> str:
    """The file onnx2tf (or the worker) writes for ``kind`` in its output folder (``model_integer_quant.tflite``)."""
    return f"{Path(ONNX2TF_INPUT).stem}_{kind.onnx2tf_suffix}.tflite"


def worker_table(kinds: Sequence[ArtifactKind]) -> list[dict[str, str]]:
    """What :mod:`facelm.converters.onnx2tf_worker` needs of each wanted variant (its spec's ``variants``)."""
    return [{"name": k.name, "file": onnx2tf_file(k), "precision": k.precision, "weight_dtype": k.weight_dtype,
             "io": k.io} for k in kinds]


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def check_onnx2tf_ops(onnx_path: str | os.PathLike) -> None:
    """Fail early, naming op and node, when onnx2tf has no converter for an ONNX op.

    Raises:
        ConversionError: onnx2tf is not installed, or an op type has no ``onnx2tf.ops`` module.
    """
    import onnx

    spec = importlib.util.find_spec("onnx2tf")  # does not import it (that would load TensorFlow)
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError("TFLite conversion needs onnx2tf: pip install -e '.[convert]'")
    ops_dir = Path(list(spec.submodule_search_locations)[0]) / "ops"
    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    for node in graph.node:
        if not (ops_dir / f"{node.op_type}.py").is_file():
            raise ConversionError(
                f"onnx2tf cannot convert ONNX op {node.op_type!r} (node {node.name!r}); "
                "change the model so it does not use this op")


def _node_op_types(onnx_path: str | os.PathLike) -> dict[str, str]:
    import onnx

    return {n.name: n.op_type for n in onnx.load(str(onnx_path), load_external_data=False).graph.node}


def explain_onnx2tf_failure(log_text: str, onnx_path: str | os.PathLike) -> str:
    """One line naming the failing op and node from an onnx2tf log (or its last error line)."""
    text = _strip_ansi(log_text)
    not_impl = re.search(r"(\S+) OP is not yet implemented", text)
    if not_impl:
        return f"onnx2tf has no converter for ONNX op {not_impl.group(1)!r}"
    node = re.search(r"onnx_op_name:\s*(\S+)", text)
    errors = [ln.strip() for ln in text.splitlines() if re.match(r"\s*\w*(Error|Exception):", ln)]
    cause = errors[-1] if errors else "see the onnx2tf log"
    if node:
        name = node.group(1)
        types = _node_op_types(onnx_path)
        if name not in types and name.startswith("wa/"):
            name = name[2:]  # onnx2tf renames "/x" to "wa/x" when it writes quantized models
        op = types.get(name, "?")
        return f"onnx2tf failed on ONNX op {op!r} (node {name!r}): {cause}"
    return f"onnx2tf failed: {cause}"


def same_padding_replacements(onnx_path: str | os.PathLike) -> list[dict[str, Any]]:
    """onnx2tf op replacements that export ConvTranspose nodes as SAME-padded TRANSPOSE_CONV.

    onnx2tf lowers every ConvTranspose with ``pads`` to a VALID TRANSPOSE_CONV followed by a
    STRIDED_SLICE crop (26x26 computed, 24x24 kept for kernel 4, stride 2, padding 1). TF's
    SAME transposed convolution produces ``out = in * stride`` and crops ``total = k - s``
    rows with ``total // 2`` before and the rest after, so when the ONNX node's pads are
    exactly that split (and ``output_padding`` is 0, no dilation, one group) the SAME op
    is the same function with no crop and no wasted rows. Nodes that do not qualify are
    left to onnx2tf's default lowering.

    Returns:
        The ``operations`` list of an onnx2tf parameter-replacement JSON (``-prf``):
        ``output_shape`` is NHWC.
    """
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    g = model.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(g.value_info) + list(g.input) + list(g.output) if v.type.tensor_type.HasField("shape")}
    producers = {o: n for n in g.node for o in n.output}
    consumers: Counter[str] = Counter(i for n in g.node for i in n.input)
    out = []
    for node in g.node:
        if node.op_type != "ConvTranspose":
            continue
        a = {at.name: onnx.helper.get_attribute_value(at) for at in node.attribute}
        k, st = list(a.get("kernel_shape", [])), list(a.get("strides", [1, 1]))
        pads = list(a.get("pads", [0] * 2 * len(k)))
        if (len(k) != 2 or a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1]))
                or any(a.get("output_padding", [0, 0])) or a.get("output_shape") or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            continue
        ishape, oshape = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not ishape or not oshape or len(ishape) != 4 or 0 in ishape or 0 in oshape:
            continue
        ok = True
        for i in range(2):
            total = max(k[i] - st[i], 0)
            if (pads[i], pads[i + 2]) != (total // 2, total - total // 2) or oshape[2 + i] != ishape[2 + i] * st[i]:
                ok = False
        if not ok:
            continue
        src = producers.get(node.input[0])
        if src is not None and src.op_type == "Reshape":
            # onnx2tf keeps a Reshape's output in NCHW order; its default ConvTranspose lowering
            # transposes it back, the replaced one does not, so transpose the Reshape output.
            if consumers.get(node.input[0], 0) != 1:
                continue
            out.append({"op_name": src.name, "param_target": "outputs", "param_name": src.output[0],
                        "post_process_transpose_perm": [0, 2, 3, 1]})
        out.append({"op_name": node.name, "param_target": "op", "padding": "SAME", "strides": st,
                    "dilations": [1, 1], "output_shape": [oshape[0], oshape[2], oshape[3], oshape[1]]})
    return out


def _onnx2tf_command() -> list[str]:
    exe = Path(sys.executable).with_name("onnx2tf")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "onnx2tf"]


def write_calibration_inputs(workdir: Path, calib01: np.ndarray) -> Path:
    """Write the calibration array and onnx2tf's sample-data file into ``workdir``.

    Args:
        workdir: onnx2tf's working directory.
        calib01: (N, H, W, 3) float32 in [0, 1], aligned RGB crops.
    Returns:
        Path of the calibration ``.npy`` passed with ``-cind``.
    """
    import cv2

    x = np.asarray(calib01, dtype=np.float32)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[0] < 1:
        raise ConversionError(f"calibration data must be (N, H, W, 3) float32, got {x.shape}")
    if float(x.min()) < 0.0 or float(x.max()) > 1.0:
        raise ConversionError("calibration data must lie in [0, 1] (onnx2tf applies mean/std itself)")
    calib_path = workdir / "calibration.npy"
    np.save(calib_path, x)
    # The sample file is only a fallback for onnx2tf; filling it with our own crops
    # (resized to its fixed 128x128) keeps it from ever reaching for the network.
    idx = np.arange(20) % x.shape[0]
    sample = np.stack([cv2.resize(x[i], (128, 128), interpolation=cv2.INTER_AREA) for i in idx])
    np.save(workdir / ONNX2TF_SAMPLE_NAME, sample.astype(np.float32))
    return calib_path


def run_onnx2tf(onnx_path: str | os.PathLike, calib01: np.ndarray, mean: Sequence[float], std: Sequence[float],
                workdir: str | os.PathLike, **kwargs: Any) -> dict[str, Path]:
    """Convert one ONNX model to TFLite variants and wait (see :func:`start_onnx2tf` for the arguments).

    Returns:
        Variant name -> path of the ``.tflite`` written (inside ``workdir``).
    """
    return start_onnx2tf(onnx_path, calib01, mean, std, workdir, **kwargs).wait()


def start_onnx2tf(
    onnx_path: str | os.PathLike,
    calib01: np.ndarray,
    mean: Sequence[float],
    std: Sequence[float],
    workdir: str | os.PathLike,
    quant_type: str = "per-channel",
    input_name: str = "input",
    timeout_s: float = 3600.0,
    same_padding_deconv: bool = True,
    variants: Sequence[str] | None = None,
    progress_every_s: float = 30.0,
    one_calibration: bool = True,
    threads: int | None = None,
) -> "Onnx2tfJob":
    """Start converting one ONNX model to TFLite variants in a subprocess; :meth:`Onnx2tfJob.wait` collects them.

    The caller may do other work meanwhile (the pipeline compiles TVM): a thread logs
    ``onnx2tf: k/n models written (+name), t s elapsed`` as files appear and at least every
    ``progress_every_s``.

    Args:
        onnx_path: static-shape ONNX model with one NCHW input ``input_name``. It is copied
            into ``workdir`` first: onnx2tf rewrites its input file in place.
        calib01: (N, H, W, 3) float32 calibration crops in [0, 1].
        mean, std: per-channel normalisation applied to ``calib01``.
        workdir: an empty folder; onnx2tf runs with it as working directory.
        quant_type: ``"per-channel"`` or ``"per-tensor"``.
        same_padding_deconv: lower qualifying ConvTranspose nodes to SAME TRANSPOSE_CONV
            with no crop (:func:`same_padding_replacements`); callers check parity.
        variants: the variant names wanted (default: every non-optional one).
        one_calibration: run :mod:`facelm.converters.onnx2tf_worker` (onnx2tf as a library,
            only the wanted variants, calibration data run once; the int8 models are
            identical to onnx2tf's); ``False`` runs the stock ``onnx2tf -oiqt`` CLI (every
            variant, one calibration per integer variant).
        threads: cap TensorFlow's (and OpenMP's) thread pools in the onnx2tf process
            (``None``: their defaults). The pipeline gives it 1 of the machine's cores when it
            works in parallel, so the two processes do not oversubscribe the CPU.
    Raises:
        ConversionError: onnx2tf missing, an op it cannot convert (before starting).
    """
    import json

    if quant_type not in QUANT_TYPES:
        raise ConversionError(f"quant_type must be one of {QUANT_TYPES}, got {quant_type!r}")
    check_onnx2tf_ops(onnx_path)
    wanted = list(variants) if variants is not None else [v.name for v in VARIANTS if not v.optional]
    unknown = [w for w in wanted if w not in VARIANT_BY_NAME]
    if unknown or not wanted:
        raise ConversionError(f"unknown TFLite variant(s) {unknown or wanted}; known: {[v.name for v in VARIANTS]}")
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    model_copy = work / ONNX2TF_INPUT
    shutil.copyfile(onnx_path, model_copy)
    calib_path = write_calibration_inputs(work, calib01)
    extra: list[str] = []
    replacements = same_padding_replacements(model_copy) if same_padding_deconv else []
    if replacements:
        (work / "param_replacement.json").write_text(
            json.dumps({"format_version": 1, "operations": replacements}, indent=1), encoding="utf-8")
        extra = ["-prf", "param_replacement.json"]
    if one_calibration:
        spec = {"onnx": model_copy.name, "out": "out", "variants": worker_table([VARIANT_BY_NAME[w] for w in wanted]),
                "calib": calib_path.name,
                "mean": [float(a) for a in mean], "std": [float(a) for a in std], "quant_type": quant_type,
                "param_replacement": "param_replacement.json" if replacements else ""}
        (work / "worker.json").write_text(json.dumps(spec), encoding="utf-8")
        cmd = [sys.executable, "-m", "facelm.converters.onnx2tf_worker", "worker.json"]
    else:  # the stock onnx2tf CLI: every variant, one calibration per integer variant
        as_list = lambda v: "[[[[" + ",".join(f"{float(a):.8g}" for a in v) + "]]]]"  # noqa: E731 (1,1,1,C) NHWC
        cmd = _onnx2tf_command() + ["-i", model_copy.name, "-o", "out", "-v", "error"] + extra
        if any(VARIANT_BY_NAME[w].int8_weights for w in wanted):
            cmd += ["-oiqt", "-qt", quant_type, "-cind", input_name, calib_path.name, as_list(mean), as_list(std)]
    return Onnx2tfJob(cmd, work, [VARIANT_BY_NAME[w] for w in wanted], Path(onnx_path), timeout_s, progress_every_s,
                      threads)


class Onnx2tfJob:
    """A running onnx2tf conversion (see :func:`start_onnx2tf`)."""

    def __init__(self, cmd: list[str], work: Path, expect: Sequence[ArtifactKind], onnx_path: Path, timeout_s: float,
                 every_s: float, threads: int | None = None) -> None:
        import threading
        import time

        self.work, self.expect, self.onnx_path, self.timeout_s = work, list(expect), onnx_path, timeout_s
        self.t0 = time.perf_counter()
        self.elapsed_s: float | None = None
        self._end: float | None = None  # when the progress thread saw the process end
        self._logf = tempfile_log(work)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
        if threads is not None:  # the caller works in parallel: no more threads than the CPU share given
            env.update(TF_NUM_INTRAOP_THREADS=str(threads), TF_NUM_INTEROP_THREADS=str(threads),
                       OMP_NUM_THREADS=str(threads))
        log.debug("running %s in %s", " ".join(cmd), work)
        self.proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=self._logf, stderr=subprocess.STDOUT, text=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._progress, args=(every_s,), daemon=True)
        self._thread.start()

    def _written(self) -> list[str]:
        return [v.name for v in self.expect if (self.work / "out" / onnx2tf_file(v)).is_file()]

    def _progress(self, every_s: float) -> None:
        import time

        seen: list[str] = []
        last = self.t0
        while not self._stop.wait(1.0):
            if self.proc.poll() is not None:
                self._end = time.perf_counter()
                break
            now = time.perf_counter()
            new = [n for n in self._written() if n not in seen]
            if new or now - last >= every_s:
                seen += new
                log.info("  onnx2tf: %d/%d models written%s, %.0f s elapsed", len(seen), len(self.expect),
                         f" (+{', '.join(new)})" if new else "", now - self.t0)
                last = now

    def ready(self) -> dict[str, Path]:
        """Variants complete so far (name -> file), while the process may still run.

        A variant is complete when the worker has left its ``.NAME.done`` marker; fp32 also
        when the fp16 file exists (onnx2tf writes float32, closes it, then converts float16).
        """
        out = self.work / "out"
        done = {v.name: out / onnx2tf_file(v) for v in self.expect if (out / f".{v.name}.done").is_file()}
        fp32, fp16 = artifact_kind("fp32"), artifact_kind("fp16")
        if fp32.name not in done and fp32 in self.expect and (out / onnx2tf_file(fp16)).is_file():
            done[fp32.name] = out / onnx2tf_file(fp32)
        return {n: p for n, p in done.items() if p.is_file()}

    def expired(self) -> bool:
        """True once the run has taken longer than its timeout."""
        import time

        return time.perf_counter() - self.t0 > self.timeout_s

    def wait(self) -> dict[str, Path]:
        """Block until onnx2tf ends; variant name -> written ``.tflite``.

        Raises:
            ConversionError: a crash (naming the failing op and node when onnx2tf says), a
                missing variant or a timeout (the process is killed).
        """
        import time

        try:
            remaining = max(1.0, self.timeout_s - (time.perf_counter() - self.t0))
            try:
                self.proc.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                raise ConversionError(f"onnx2tf did not finish in {self.timeout_s:.0f} s") from None
        finally:
            self.kill()
        self.elapsed_s = (self._end or time.perf_counter()) - self.t0
        self._logf.seek(0)
        log_text = self._logf.read()
        self._logf.close()
        (self.work / "onnx2tf.log").write_text(log_text, encoding="utf-8")
        if self.proc.returncode != 0:
            raise ConversionError(f"{explain_onnx2tf_failure(log_text, self.onnx_path)} "
                                  f"(full log: {self.work / 'onnx2tf.log'})")
        found = {v.name: self.work / "out" / onnx2tf_file(v) for v in self.expect}
        missing = [n for n, p in found.items() if not p.is_file()]
        if missing:
            raise ConversionError(f"onnx2tf finished but wrote no {missing} model; log: {self.work / 'onnx2tf.log'}")
        log.info("  onnx2tf: %d/%d models written in %.1f s", len(found), len(self.expect), self.elapsed_s)
        return found

    def kill(self) -> None:
        """Stop the process (if running) and the progress thread."""
        self._stop.set()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(timeout=5)


def tempfile_log(folder: Path):
    """A text temp file in ``folder`` for a subprocess's output (deleted on close)."""
    import tempfile

    return tempfile.TemporaryFile(mode="w+", dir=folder, encoding="utf-8", errors="replace")


# ---------------------------------------------------------------------- inspection
def count_ops(path: str | os.PathLike) -> tuple[dict[str, int], int]:
    """Builtin-op histogram and the largest tensor rank of a ``.tflite`` file.

    Returns:
        ``({"CONV_2D": n, ...}, max_rank)``; ``max_rank > 4`` flags ops the GPU delegate rejects.
    """
    from ai_edge_litert import schema_py_generated as schema

    buf = Path(path).read_bytes()
    model = schema.Model.GetRootAsModel(buf, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    codes = []
    for i in range(model.OperatorCodesLength()):
        oc = model.OperatorCodes(i)
        code = max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode())
        name = names.get(code, str(code))
        codes.append(oc.CustomCode().decode() if name == "CUSTOM" and oc.CustomCode() else name)
    counts: Counter[str] = Counter()
    max_rank = 0
    for s in range(model.SubgraphsLength()):
        sg = model.Subgraphs(s)
        for o in range(sg.OperatorsLength()):
            counts[codes[sg.Operators(o).OpcodeIndex()]] += 1
        for t in range(sg.TensorsLength()):
            max_rank = max(max_rank, sg.Tensors(t).ShapeLength())
    return dict(sorted(counts.items())), max_rank


def ensure_nhwc_output(path: str | os.PathLike, nchw_shape: Sequence[int]) -> bool:
    """Make a ``.tflite`` file's heatmap output NHWC, in place, when onnx2tf left it NCHW.

    onnx2tf usually ends a heatmap model in NHWC, but not always: a graph that ends in an
    elementwise op with a constant NCHW operand (an ``Add`` of a prior, say) comes out
    NCHW. facelm's runtime reads TFLite heatmaps as NHWC, so such a file gets one
    ``TRANSPOSE`` (perm 0, 2, 3, 1) appended, keeping the output's name, dtype and
    quantization (a transpose moves values only: int8 stays exact).

    Args:
        path: the ``.tflite`` file (rewritten through a temp file when changed).
        nchw_shape: (1, K, h, w) of the model's heatmaps.
    Returns:
        True when a TRANSPOSE was added; False when the output was NHWC already (or K == h == w,
        where the two layouts cannot be told apart).
    Raises:
        ConversionError: the output is neither (1, K, h, w) nor (1, h, w, K).
    """
    import copy

    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    _, k, h, w = (int(v) for v in nchw_shape)
    path = Path(path)
    model = fbu.read_model(str(path))
    sg = model.subgraphs[0]
    out_idx = int(sg.outputs[0])
    t = sg.tensors[out_idx]
    shape = [int(v) for v in t.shape]
    if shape == [1, h, w, k]:
        return False
    if shape != [1, k, h, w]:
        raise ConversionError(f"{path.name}: output shape {tuple(shape)} is neither NHWC {(1, h, w, k)} nor "
                              f"NCHW {(1, k, h, w)}")
    perm_buf = schema.BufferT()
    perm_buf.data = np.frombuffer(np.array([0, 2, 3, 1], "<i4").tobytes(), np.uint8)
    model.buffers.append(perm_buf)
    perm = schema.TensorT()
    perm.shape, perm.type, perm.buffer, perm.name = [4], schema.TensorType.INT32, len(model.buffers) - 1, b"facelm_to_nhwc_perm"
    empty = schema.BufferT()
    model.buffers.append(empty)
    new = schema.TensorT()
    new.shape, new.type, new.buffer = [1, h, w, k], t.type, len(model.buffers) - 1
    new.name = t.name
    new.quantization = copy.deepcopy(t.quantization)
    t.name = (t.name.decode() if isinstance(t.name, bytes) else str(t.name)) + "_nchw"
    sg.tensors += [perm, new]
    perm_idx, new_idx = len(sg.tensors) - 2, len(sg.tensors) - 1
    codes = model.operatorCodes
    version = 1 if t.type == schema.TensorType.FLOAT32 else 2
    op_code = next((i for i, c in enumerate(codes) if max(c.builtinCode, c.deprecatedBuiltinCode) ==
                    schema.BuiltinOperator.TRANSPOSE), None)
    if op_code is None:
        c = schema.OperatorCodeT()
        c.builtinCode = schema.BuiltinOperator.TRANSPOSE
        c.deprecatedBuiltinCode = schema.BuiltinOperator.TRANSPOSE
        c.version = version
        codes.append(c)
        op_code = len(codes) - 1
    else:
        codes[op_code].version = max(codes[op_code].version, version)
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = op_code, [out_idx, perm_idx], [new_idx]
    op.builtinOptionsType, op.builtinOptions = schema.BuiltinOptions.TransposeOptions, schema.TransposeOptionsT()
    sg.operators.append(op)
    sg.outputs = [new_idx]
    for sd in model.signatureDefs or []:
        for tm in sd.outputs or []:
            if int(tm.tensorIndex) == out_idx:
                tm.tensorIndex = new_idx
    with atomic_path(path, suffix=".tflite") as tmp:
        fbu.write_model(model, str(tmp))
    return True


#: Activation ops a convolution can carry as its fused activation (TFLite op -> ActivationFunctionType name).
FUSABLE_ACTIVATIONS = {"RELU": "RELU", "RELU6": "RELU6", "RELU_N1_TO_1": "RELU_N1_TO_1"}
#: Ops whose options hold a fused activation, with the op version that allows a non-NONE one.
FUSING_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "TRANSPOSE_CONV": 4}


def fuse_activations(path: str | os.PathLike) -> int:
    """Fold a lone RELU/RELU6 after a convolution into that convolution's fused activation, in place.

    The TFLite converter fuses ``TRANSPOSE_CONV + bias + RELU`` but leaves the RELU as an op
    of its own when the bias was dropped (an all-zero folded bias, as in a freshly initialised
    model). XNNPACK takes float RELUs but not int8 ones, so in an int8 model each such RELU
    splits the graph into separate delegate partitions with a reference kernel between them.
    Fusing is exact in float (``relu(conv(x))`` either way). In int8 the convolution then writes
    straight to the RELU's output scale and zero point and clamps at that zero point: one
    requantization instead of two (at most one step of rounding apart).

    Only a convolution whose output feeds that one activation op, and is no graph output, with
    no fused activation yet, is changed. Written to a temp file and renamed when anything changed.

    Args:
        path: the ``.tflite`` file.
    Returns:
        The number of activation ops removed.
    """
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    path = Path(path)
    model = fbu.read_model(str(path))
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    op_name = lambda op: names.get(max(model.operatorCodes[op.opcodeIndex].builtinCode,  # noqa: E731
                                       model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode), "")
    act_code = {k: getattr(schema.ActivationFunctionType, v) for k, v in FUSABLE_ACTIVATIONS.items()}
    removed = 0
    for sg in model.subgraphs:
        graph_io = {int(i) for i in list(sg.outputs) + list(sg.inputs)}
        consumers: Counter[int] = Counter(int(i) for op in sg.operators
                                          for i in (op.inputs if op.inputs is not None else []) if i >= 0)
        producer = {int(o): op for op in sg.operators for o in op.outputs}
        dead = []
        for act in sg.operators:
            kind = op_name(act)
            if kind not in act_code or len(act.inputs) != 1:
                continue
            src = int(act.inputs[0])
            conv = producer.get(src)
            if (conv is None or op_name(conv) not in FUSING_OPS or conv.builtinOptions is None
                    or conv.builtinOptions.fusedActivationFunction != schema.ActivationFunctionType.NONE
                    or consumers[src] != 1 or src in graph_io
                    or sg.tensors[src].type != sg.tensors[int(act.outputs[0])].type):
                continue
            conv.builtinOptions.fusedActivationFunction = act_code[kind]
            conv.outputs = [int(act.outputs[0])]  # the conv now writes the activation's tensor (and its quantization)
            code = model.operatorCodes[conv.opcodeIndex]
            code.version = max(code.version, FUSING_OPS[op_name(conv)])
            dead.append(act)
        if dead:
            sg.operators = [op for op in sg.operators if all(op is not d for d in dead)]
            removed += len(dead)
    if removed:
        _drop_unused_op_codes(model)
        with atomic_path(path, suffix=".tflite") as tmp:
            fbu.write_model(model, str(tmp))
    return removed


def _drop_unused_op_codes(model) -> None:
    """Remove operator codes no operator uses any more (renumbering ``opcodeIndex``), in place.

    TensorFlow's calibrator (quant-debug) resolves every entry of the op-code table, and a
    leftover RELU entry after :func:`fuse_activations` made it fail with "Didn't find op for
    builtin opcode 'RELU'"; LiteRT itself ignores unused entries.
    """
    used = sorted({int(op.opcodeIndex) for sg in model.subgraphs for op in sg.operators})
    new_index = {old: new for new, old in enumerate(used)}
    model.operatorCodes = [model.operatorCodes[i] for i in used]
    for sg in model.subgraphs:
        for op in sg.operators:
            op.opcodeIndex = new_index[int(op.opcodeIndex)]


def embed_metadata(path: str | os.PathLike, payload: dict[str, Any], name: str = METADATA_NAME,
                   seal: bool = True) -> None:
    """Store ``payload`` as UTF-8 JSON in metadata entry ``name`` of a ``.tflite`` file, in place.

    The entry goes into the flatbuffer's ``Model.metadata`` table with its own buffer;
    LiteRT ignores unknown metadata names. Written to a temp file and renamed. With ``seal``
    the file's own sha256 is embedded too (:mod:`facelm.runtime.tflite_seal`), so a lone
    ``.tflite`` that changed after conversion is refused by the runtime and the bench harness.
    """
    import json

    from facelm.runtime.tflite_seal import SEAL_KEY, SEAL_PLACEHOLDER, seal_tflite

    if seal:
        payload = dict(payload, **{SEAL_KEY: SEAL_PLACEHOLDER})
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    path = Path(path)
    model = fbu.read_model(str(path))
    # compact separators: the same bytes go into every artifact, int8 and fp32 alike
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, dtype=np.uint8)
    model.metadata = list(model.metadata or [])
    existing = [m for m in model.metadata if (m.name.decode() if isinstance(m.name, bytes) else m.name) == name]
    if existing:  # replace in place: no orphaned old payload left in the file
        model.buffers[existing[0].buffer] = buffer
        model.metadata = [m for m in model.metadata if m not in existing[1:]]
    else:
        model.buffers.append(buffer)
        md = schema.MetadataT()
        md.name = name
        md.buffer = len(model.buffers) - 1
        model.metadata.append(md)
    with atomic_path(path, suffix=".tflite") as tmp:
        fbu.write_model(model, str(tmp))
    if seal:
        seal_tflite(path)
