"""The state the conversion stages share: what was loaded, the fp32 reference, and what stages record.

:class:`StageState` is built once per conversion (:func:`facelm.converters.pipeline.convert`)
and handed to every stage function (:mod:`facelm.converters.stages`,
:mod:`facelm.converters.arm64_check`). Its inputs and the :class:`Reference` are fixed once
built (frozen dataclasses); everything a stage leaves for later stages, the gates or the
report goes into one mutable :class:`StageRecords`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from facelm.converters.config import ConvertConfig
from facelm.postprocess import output_to_landmarks
from facelm.runtime.manifest import ModelContract, TensorSpec


@dataclass
class LoadedModel:
    """A model ready to convert, with where its weights came from."""

    model: Any
    cfg: Any
    weights_file: str
    weights_sha256: str | None
    brought: Any = None  # facelm.converters.sources.BroughtModel for --model

    @property
    def reference_name(self) -> str:
        """What the fp32 reference runs on: ``torch`` or ``onnxruntime``."""
        return self.brought.reference_name if self.brought is not None else "torch"

    def reference(self, x: np.ndarray) -> np.ndarray:
        """fp32 reference heatmaps, (N, 3, S, S) -> (N, K, h, w)."""
        if self.brought is not None:
            return self.brought.reference(x)
        from facelm.converters import onnx_export as ox

        return ox.torch_heatmaps(self.model, x)


@dataclass(frozen=True)
class PreparedInputs:
    """What onnx2tf needs, made before anything else: the contract, the faces and ``model.onnx``."""

    contract: ModelContract
    calib: Any
    evals: Any
    onnx_path: Path


@dataclass(frozen=True)
class Reference:
    """The fp32 reference on the evaluation faces (what every artifact is compared with).

    Attributes:
        name: ``torch`` or ``onnxruntime`` (:attr:`LoadedModel.reference_name`).
        x: (N, 3, S, S) float32 normalised evaluation faces.
        heatmaps: (N, K, h, w) the reference's fp32 heatmaps.
        landmarks: (N, K, 2) their landmarks, crop pixels.
        gt: (N, K, 2) ground truth in crop pixels, or None.
    """

    name: str
    x: np.ndarray
    heatmaps: np.ndarray
    landmarks: np.ndarray
    gt: np.ndarray | None


@dataclass
class StageRecords:
    """What the stages record as they run, for later stages, the gates and the report.

    Attributes:
        latency: artifact (or ``torch``) -> host latency, ms (median, one thread).
        parity: fp32 artifact -> max |heatmap - reference| (the parity gate).
        own_nmes: artifact -> (n,) NME vs ground truth on its first n faces.
        drifts: artifact -> (n,) landmark drift vs the reference on its first n faces
            (fraction of the template inter-pupil distance).
        warnings: lines for the report and the CLI.
        pending_latency: latencies measured once no background conversion competes for the
            CPU: name -> (fn, x, runs).
        artifact_lms, artifact_hm: (N, K, 2) landmarks and (N, K, h, w) float heatmaps of a
            TFLite artifact, where a later stage compares with it.
        tvm_int8_check: (tvm_int8 drift mean, int8 TFLite drift mean) on the same faces.
        relax_module: the TVM relax module imported from ``model.onnx`` (host and Android builds).
    """

    latency: dict[str, float] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    own_nmes: dict[str, np.ndarray] = field(default_factory=dict)
    drifts: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    pending_latency: dict[str, tuple[Callable[[np.ndarray], Any], np.ndarray, int]] = field(default_factory=dict)
    artifact_lms: dict[str, np.ndarray] = field(default_factory=dict)
    artifact_hm: dict[str, np.ndarray] = field(default_factory=dict)
    tvm_int8_check: tuple[float, float] | None = None
    relax_module: Any = None


@dataclass(frozen=True)
class StageState:
    """Everything the stages of one conversion share.

    Attributes:
        cfg: the conversion's :class:`ConvertConfig`.
        tmp: the temporary output folder (renamed into place at the end).
        lm: the loaded model.
        contract: the manifest sections every artifact shares.
        tools: tool versions (manifest ``tools``).
        calib, evals: calibration and evaluation faces (:class:`facelm.quantization.calibration.FaceSet`).
        ref: the fp32 reference on the evaluation faces.
        rec: what the stages record (the only mutable part).
    """

    cfg: ConvertConfig
    tmp: Path
    lm: LoadedModel
    contract: ModelContract
    tools: dict[str, str | None]
    calib: Any
    evals: Any
    ref: Reference
    rec: StageRecords = field(default_factory=StageRecords)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """(1, 3, H, W): the model input, NCHW."""
        h, w = self.contract.model.input_size
        return (1, 3, h, w)

    def landmarks(self, raw: np.ndarray, output: TensorSpec) -> np.ndarray:
        """Raw outputs -> (N, K, 2) crop-pixel landmarks (the shared post-processor)."""
        return output_to_landmarks(raw, output, self.contract.model, self.contract.decode).crop

    def drift(self, name: str, heatmaps: np.ndarray, landmarks: np.ndarray) -> dict:
        """Drift of artifact ``name`` vs the fp32 reference (manifest key ``drift_vs_torch``), normalised
        by the contract's template (:func:`facelm.quantization.drift.drift_scale`); records the
        per-image drift and own NME for the report.

        Args:
            heatmaps: (n, K, h, w) float, landmarks: (n, K, 2) crop px, on the first n evaluation faces.
        """
        from facelm.quantization.drift import drift_report, drift_scale, landmark_drift

        ref = self.ref
        n = len(heatmaps)  # an artifact may be evaluated on the first n faces only (untuned TVM)
        gt = None if ref.gt is None else ref.gt[:n]
        rep, own = drift_report(ref.heatmaps[:n], heatmaps, ref.landmarks[:n], landmarks, self.contract,
                                gt, reference=f"{ref.name}_fp32")
        self.rec.drifts[name] = landmark_drift(ref.landmarks[:n], landmarks, drift_scale(self.contract))[0]
        if own is not None:
            self.rec.own_nmes[name] = own
        d = rep.to_dict()
        if n != len(ref.heatmaps):
            d["faces"] = n
        return d
