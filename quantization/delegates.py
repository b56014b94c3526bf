"""Delegate readiness: which ops of a ``.tflite`` the TFLite GPU delegate would take, and why not.

Two sources, both static (no phone needed):

1. ``tf.lite.experimental.Analyzer.analyze(..., gpu_compatibility=True)``, parsed: its
   ``GPU COMPATIBILITY WARNING`` lines and its verdict. In TensorFlow 2.19's pip build it
   passes models the delegate cannot run (a rank-6 TRANSPOSE, a Flex op), so it is not
   enough on its own.
2. Our rules, from the delegate's published op checks (TensorFlow's
   ``lite/tools/versioning/gpu_compatibility.cc``) and the GPU backend's tensor limits:
   builtin ops outside :data:`GPU_OPS` and custom/Flex ops are rejected; any op touching a
   tensor of rank > 4 is rejected (the GPU backend works on BHWC tensors);
   :data:`VERSION_FLAGS` flags op versions that some delegate builds reject (warnings, not
   rejections).

``ready`` is True when no op is rejected: the whole graph can run on the GPU delegate.
"""
from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("facelm.delegates")

#: Builtin ops the GPU delegate's compatibility check accepts (subject to per-op conditions).
GPU_OPS = frozenset("""
ABS ADD ADD_N AVERAGE_POOL_2D BATCH_MATMUL CAST CEIL CONCATENATION CONV_2D COS CUMSUM DENSIFY DEPTH_TO_SPACE
DEPTHWISE_CONV_2D DEQUANTIZE DIV DYNAMIC_UPDATE_SLICE ELU EMBEDDING_LOOKUP EQUAL EXP FLOOR FLOOR_DIV FLOOR_MOD
FULLY_CONNECTED GATHER GELU GREATER GREATER_EQUAL HARD_SWISH LEAKY_RELU LESS LESS_EQUAL LOG LOGICAL_AND LOGISTIC
LSTM MAXIMUM MAX_POOL_2D MEAN MINIMUM MIRROR_PAD MUL NEG NOT_EQUAL ONE_HOT PACK PAD PADV2 POW PRELU QUANTIZE
REDUCE_MAX REDUCE_MIN REDUCE_PROD RELU RELU6 RELU_N1_TO_1 RESHAPE RESIZE_BILINEAR RESIZE_NEAREST_NEIGHBOR RSQRT
SELECT SELECT_V2 SIGN SIN SLICE SOFTMAX SPACE_TO_DEPTH SPLIT SPLIT_V SQRT SQUARE SQUARED_DIFFERENCE
STABLEHLO_CLAMP STRIDED_SLICE SUB SUM TANH TILE TRANSPOSE TRANSPOSE_CONV ATAN2
""".split())
#: Custom ops the GPU delegate knows.
GPU_CUSTOM_OPS = frozenset({"Convolution2DTransposeBias", "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "Resampler"})
#: (op, lowest version) -> why some delegate builds reject it (flagged, not counted as rejected).
VERSION_FLAGS: dict[tuple[str, int], str] = {
    ("TRANSPOSE_CONV", 4): "TRANSPOSE_CONV v4 (fused activation) is rejected by GPU delegates built before it "
                           "existed (older LiteRT/TFLite GPU and some vendor GPU/NNAPI paths)",
}
MAX_GPU_RANK = 4


@dataclass
class OpVerdict:
    """One op of the model: its place, name, version and what the GPU delegate would do."""

    index: int
    op: str
    version: int
    accepted: bool
    reason: str = ""
    flag: str = ""


@dataclass
class Readiness:
    """GPU delegate readiness of one ``.tflite``.

    Attributes:
        ready: True when every op would be delegated.
        ops: per-op verdicts (execution order).
        analyzer: TensorFlow's Analyzer verdict (``compatible`` / ``incompatible`` / ``unavailable``)
            and its warning lines.
    """

    file: str
    ready: bool
    ops: list[OpVerdict]
    analyzer: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected(self) -> list[OpVerdict]:
        return [o for o in self.ops if not o.accepted]

    @property
    def flagged(self) -> list[OpVerdict]:
        return [o for o in self.ops if o.flag]

    def summary(self) -> dict[str, Any]:
        """The compact form kept in the manifest's ``checks`` and the reports."""
        rej: dict[str, str] = {}
        for o in self.rejected:
            rej.setdefault(o.op, o.reason)
        return {"gpu_ready": self.ready, "ops": len(self.ops), "rejected": len(self.rejected),
                "rejected_ops": rej, "flags": sorted({o.flag for o in self.flagged}),
                "analyzer": self.analyzer.get("verdict", "unavailable")}

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, **self.summary(), "per_op": [asdict(o) for o in self.ops]}


def op_codes(m) -> list[tuple[str, str | None, int]]:
    """``[(builtin op name, custom code or None, version)]`` of a parsed ``schema.Model``'s op-code table."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for i in range(m.OperatorCodesLength()):
        oc = m.OperatorCodes(i)
        custom = oc.CustomCode()
        out.append((names.get(max(oc.BuiltinCode(), oc.DeprecatedBuiltinCode()), "?"),
                    custom.decode() if custom else None, int(oc.Version())))
    return out


def _ops(model: bytes) -> list[tuple[int, str, int, bool, int]]:
    """``[(index, op name, version, is_custom, max tensor rank)]`` of subgraph 0."""
    from ai_edge_litert import schema_py_generated as schema

    m = schema.Model.GetRootAsModel(model, 0)
    codes = [((custom or "?") if name == "CUSTOM" else name, ver, name == "CUSTOM") for name, custom, ver in op_codes(m)]
    out = []
    sg = m.Subgraphs(0)
    for i in range(sg.OperatorsLength()):
        o = sg.Operators(i)
        name, ver, custom = codes[o.OpcodeIndex()]
        ids = [t for t in list(o.InputsAsNumpy()) + list(o.OutputsAsNumpy()) if t >= 0]
        rank = max((sg.Tensors(int(t)).ShapeLength() for t in ids), default=0)
        out.append((i, name, ver, custom, rank))
    return out


def rules(model: bytes) -> list[OpVerdict]:
    """Our static GPU rules (see the module docstring) applied to every op."""
    out = []
    for i, op, ver, custom, rank in _ops(model):
        reason = ""
        if custom:
            if op not in GPU_CUSTOM_OPS:
                reason = f"custom op {op} ({'TF Select/Flex' if op.startswith('Flex') else 'not a GPU custom op'})"
        elif op not in GPU_OPS:
            reason = f"{op} is not an op the GPU delegate implements"
        if not reason and rank > MAX_GPU_RANK:
            reason = f"rank-{rank} tensor (the GPU delegate takes rank <= {MAX_GPU_RANK})"
        flag = next((why for (name, v), why in VERSION_FLAGS.items() if name == op and ver >= v), "")
        out.append(OpVerdict(i, op, ver, not reason, reason, flag))
    return out


_WARN = re.compile(r"GPU COMPATIBILITY WARNING:?\s*(.*)")
_OP_LINE = re.compile(r"^\s*Op#(\d+)\s+(\w+)")


def analyzer_report(model: bytes) -> dict[str, Any]:
    """TensorFlow's Analyzer with ``gpu_compatibility=True``, parsed.

    Returns ``{"verdict": "compatible"|"incompatible"|"unavailable", "warnings": [{"op_index", "op", "message"}]}``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError:
        return {"verdict": "unavailable", "warnings": []}
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        tf.lite.experimental.Analyzer.analyze(model_content=model, gpu_compatibility=True)
    return parse_analyzer(buf.getvalue())


def parse_analyzer(text: str) -> dict[str, Any]:
    """Parse the Analyzer's printed report (op lines, their GPU warnings, the verdict)."""
    warnings, last = [], None
    for line in text.splitlines():
        m = _OP_LINE.match(line)
        if m:
            last = (int(m.group(1)), m.group(2))
            continue
        w = _WARN.search(line)
        if w:
            warnings.append({"op_index": last[0] if last else None, "op": last[1] if last else None,
                             "message": w.group(1).strip()})
    if "looks compatible with GPU delegate" in text and not warnings:
        verdict = "compatible"
    elif warnings or "not be compatible" in text or "isn't compatible" in text:
        verdict = "incompatible"
    else:
        verdict = "unknown"
    return {"verdict": verdict, "warnings": warnings}


def readiness(path: str | os.PathLike, analyzer: bool = True) -> Readiness:
    """GPU delegate readiness of one ``.tflite`` file (our rules + the Analyzer's warnings)."""
    model = Path(path).read_bytes()
    ops = rules(model)
    an = analyzer_report(model) if analyzer else {"verdict": "unavailable", "warnings": []}
    for w in an.get("warnings", []):
        idx = w.get("op_index")
        if idx is not None and 0 <= idx < len(ops) and ops[idx].accepted:
            ops[idx].accepted, ops[idx].reason = False, f"Analyzer: {w['message']}"
    return Readiness(Path(path).name, all(o.accepted for o in ops), ops, an)


def folder_readiness(manifest, analyzer: bool = True) -> dict[str, dict[str, Any]]:
    """``{artifact: Readiness.summary()}`` for every TFLite artifact of a loaded manifest."""
    from facelm.artifacts import artifact_kind
    from facelm.errors import ConfigError

    out = {}
    for e in manifest.artifacts:
        try:
            if artifact_kind(e.name).format != "tflite":
                continue
        except ConfigError:
            continue
        out[e.name] = readiness(manifest.artifact_path(e.name, verify=False), analyzer).summary()
    return out


def gpu_check(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest ``checks`` entry for one artifact: ``{"gpu_delegate": summary}`` (rules only, fast)."""
    return {"gpu_delegate": readiness(path, analyzer=False).summary()}


def render_markdown(per_artifact: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: one row per artifact."""
    out = ["## GPU delegate readiness (static)", "",
           "Rules from the TFLite GPU delegate's op checks plus rank <= 4; the Analyzer column is "
           "TensorFlow's own check, which passes some graphs the delegate rejects.", "",
           "| artifact | GPU ready | ops rejected | why | version flags | Analyzer |", "|---|---|---|---|---|---|"]
    for name, s in per_artifact.items():
        why = "; ".join(f"{op}: {r}" for op, r in s["rejected_ops"].items()) or "–"
        out.append(f"| {name} | {'yes' if s['gpu_ready'] else '**no**'} | {s['rejected']}/{s['ops']} | {why} | "
                   f"{'; '.join(s['flags']) or '–'} | {s['analyzer']} |")
    out.append("")
    return out
