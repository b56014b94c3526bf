"""``facelm.quant_debug``: which layer breaks int8, what it costs in landmarks, what the GPU takes
(and optionally an ``int8_mixed`` model): the flow behind ``facelm quant-debug``.

It chains :func:`facelm.quantization.debug.debug_artifacts`,
:func:`facelm.quantization.mixed.mixed_for_artifacts` and
:func:`facelm.quantization.debug.write_outputs`. Needs ``facelm[convert]`` (TensorFlow's quantizer).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from facelm.errors import ConfigError
from facelm.quantization.debug import DEFAULT_TOP_K
from facelm.quantization.mixed import DEFAULT_DRIFT_TARGET

#: the catalogue name of the model ``keep_float`` builds
MIXED_ARTIFACT = "int8_mixed"


@dataclass
class QuantDebugResult:
    """What :func:`quant_debug` found and wrote.

    Attributes:
        report: the :class:`facelm.quantization.debug.DebugReport` (``report.mixed`` holds the
            int8_mixed search record when one was built).
        mixed: the :class:`facelm.quantization.mixed.MixedResult`, or None.
        paths: what was written into ``out``: ``report``, ``json``, ``plot`` [, ``int8_mixed``].
    """

    report: Any
    mixed: Any = None
    paths: dict[str, Path] = field(default_factory=dict)


def quant_debug(artifacts: str | os.PathLike, artifact: str | None = None, *, top_k: int = DEFAULT_TOP_K,
                calib: str | None = None, num_calib: int | None = None, num_eval: int | None = None,
                keep_float: str | Sequence[str] | None = None, drift_target: float = DEFAULT_DRIFT_TARGET,
                chain: bool = True, out: str | os.PathLike | None = None) -> QuantDebugResult:
    """Per-layer int8 error, landmark sensitivity and GPU readiness of an artifact folder.

    Example::

        res = facelm.quant_debug("artifacts", top_k=3, keep_float="auto", out="qd")
        res.report.worst().name, res.mixed.kept      # qd/report.md, layers.json, sqnr.png, int8_mixed.tflite

    Args:
        artifacts: a ``facelm convert`` output folder (``manifest.json``).
        artifact: the int8 TFLite artifact to debug (default: the folder's ``int8``, else its first int8 one).
        top_k: lowest-SQNR layers whose landmark drift is measured with only them float.
        calib, num_calib, num_eval: the faces, when the manifest does not record them.
        keep_float: also build ``int8_mixed``: ``"auto"`` (greedy to ``drift_target``), layer names,
            or ``"NAME,NAME"``; None: do not.
        chain: compare ONNX with the fp32 TFLite op by op.
        out: write ``report.md``, ``layers.json``, ``sqnr.png`` (and ``int8_mixed.tflite``) here.
    Raises:
        ConfigError: a negative ``top_k``, a bad ``keep_float`` or target.
        ManifestError, InputError, DataRebuildError: see :func:`facelm.quantization.debug.debug_artifacts`.
    """
    from facelm.quantization import debug as qd
    from facelm.quantization.mixed import mixed_for_artifacts, parse_keep_float

    if top_k < 0:
        raise ConfigError("--top-k must be >= 0")
    if isinstance(keep_float, str):
        keep_float = parse_keep_float(keep_float)
    rep = qd.debug_artifacts(artifacts, artifact, k=top_k, calib=calib, num_calib=num_calib, num_eval=num_eval,
                             chain=chain)
    mixed = None
    if keep_float:
        mixed = mixed_for_artifacts(artifacts, keep_float, drift_target, rep.per_channel, calib, num_calib, num_eval)
        rep.mixed = mixed.record()
    result = QuantDebugResult(rep, mixed)
    if out is not None:
        result.paths = qd.write_outputs(rep, out)
        if mixed is not None:
            from facelm.artifacts import artifact_kind
            from facelm.fileio import atomic_write_bytes

            result.paths[MIXED_ARTIFACT] = atomic_write_bytes(Path(out) / artifact_kind(MIXED_ARTIFACT).file,
                                                              mixed.model)
    return result
