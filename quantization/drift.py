"""How far an artifact drifts from the fp32 torch model, and the gates that fail a conversion.

- Heatmap PSNR as Qualcomm AI Hub reports it: ``20 * log10(max|ref| / RMSE)`` dB over the
  whole evaluation set (above 30 dB is "good" by their rule).
- Landmark drift: per-image NME between the artifact's landmarks and the torch fp32 landmarks
  (the torch landmarks play ground truth, so the layout's normaliser is taken from them):
  mean, p95 and max, plus the 10 landmarks with the largest mean drift.
- Where ground truth exists, the artifact's own NME, AUC@0.08 and FR@0.08 (``facelm.metrics``).

Landmarks are in the aligned crop's pixels (the model input frame).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from facelm.errors import InputError
from facelm.layouts import Layout, get_layout

TOP_DRIFTING = 10


def psnr(ref: np.ndarray, test: np.ndarray) -> float:
    """Qualcomm AI Hub PSNR in dB: ``20 * log10(max|ref| / RMSE(ref, test))``; ``inf`` if identical."""
    r = np.asarray(ref, dtype=np.float64)
    t = np.asarray(test, dtype=np.float64)
    if r.shape != t.shape:
        raise InputError(f"psnr: shapes differ, {r.shape} vs {t.shape}")
    rmse = float(np.sqrt(np.mean((r - t) ** 2)))
    peak = float(np.max(np.abs(r)))
    if rmse == 0.0:
        return float("inf")
    if peak == 0.0:
        return float("-inf")
    return 20.0 * float(np.log10(peak / rmse))


#: What a drift is measured against. Conversion drift (manifest key ``drift_vs_torch``)
#: compares an artifact with the fp32 source model (torch, or onnxruntime for a brought ONNX file); on-device drift (bench record key
#: ``drift_vs_host``) compares the device's output with the host fp32 TFLite artifact.
REFERENCES = ("torch_fp32", "onnxruntime_fp32", "host_fp32_tflite")


@dataclass
class DriftReport:
    """Drift of one artifact against a reference on one evaluation set.

    Attributes:
        reference: what the landmarks are compared with, one of :data:`REFERENCES`.
        psnr_db: heatmap PSNR (dB).
        max_abs: largest heatmap difference.
        mean, p95, max: per-image landmark NME vs the reference (fractions).
        top_landmarks: ``[{"index", "region", "drift"}]`` for the most drifting landmarks.
        nme, auc, fr: own accuracy vs ground truth (fractions), ``None`` without ground truth.
        count: evaluation images.
    """

    reference: str
    psnr_db: float
    max_abs: float
    mean: float
    p95: float
    max: float
    top_landmarks: list[dict[str, Any]] = field(default_factory=list)
    nme: float | None = None
    auc: float | None = None
    fr: float | None = None
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # JSON has no inf; a lossless artifact reports psnr_db = null.
        if not np.isfinite(self.psnr_db):
            d["psnr_db"] = None
        return d


def _region_of(layout: Layout, index: int) -> str:
    for name, idx in layout.regions.items():
        if index in idx:
            return name
    return ""


def most_drifting(per_landmark: np.ndarray, layout: Layout, k: int = TOP_DRIFTING) -> list[dict[str, Any]]:
    """The ``k`` landmarks with the largest mean normalised drift.

    Args:
        per_landmark: (K,) mean drift of each landmark.
    """
    order = np.argsort(-per_landmark, kind="stable")[:k]
    return [{"index": int(i), "region": _region_of(layout, int(i)), "drift": float(per_landmark[i])} for i in order]


def landmark_drift(
    ref_landmarks: np.ndarray, test_landmarks: np.ndarray, layout: str | Layout
) -> tuple[np.ndarray, np.ndarray]:
    """Per-image and per-landmark drift of ``test`` against ``ref``.

    Args:
        ref_landmarks, test_landmarks: (N, K, 2) pixels in the same frame.
    Returns:
        ``(per_image (N,), per_landmark (K,))`` normalised by the layout's normaliser of ``ref``.
    """
    from facelm.metrics import landmark_errors

    err = landmark_errors(test_landmarks, ref_landmarks, layout)
    return err.mean(axis=1), err.mean(axis=0)


def drift_report(
    ref_heatmaps: np.ndarray,
    test_heatmaps: np.ndarray,
    ref_landmarks: np.ndarray,
    test_landmarks: np.ndarray,
    layout: str | Layout,
    gt_landmarks: np.ndarray | None = None,
    reference: str = "torch_fp32",
) -> tuple[DriftReport, np.ndarray | None]:
    """Every drift figure of one artifact.

    Args:
        reference: one of :data:`REFERENCES`.
        ref_heatmaps, test_heatmaps: (N, K, h, w) float (dequantized for integer outputs).
        ref_landmarks, test_landmarks: (N, K, 2) decoded landmarks, crop pixels.
        gt_landmarks: (N, K, 2) ground truth in crop pixels, or ``None``.
    Returns:
        ``(report, own per-image NME (N,) or None)``.
    """
    from facelm.metrics import nme, summarize

    if reference not in REFERENCES:
        raise InputError(f"drift reference must be one of {REFERENCES}, got {reference!r}")
    lay = get_layout(layout)
    per_img, per_lm = landmark_drift(ref_landmarks, test_landmarks, lay)
    rep = DriftReport(
        reference=reference,
        psnr_db=psnr(ref_heatmaps, test_heatmaps),
        max_abs=float(np.max(np.abs(np.asarray(ref_heatmaps, np.float64) - test_heatmaps))),
        mean=float(per_img.mean()),
        p95=float(np.percentile(per_img, 95)),
        max=float(per_img.max()),
        top_landmarks=most_drifting(per_lm, lay),
        count=int(per_img.size),
    )
    own = None
    if gt_landmarks is not None:
        own = nme(test_landmarks, gt_landmarks, lay)
        s = summarize(own)
        rep.nme, rep.auc, rep.fr = s["nme"], s["auc"], s["fr"]
    return rep, own


# --------------------------------------------------------------------------- gates
@dataclass(frozen=True)
class GateConfig:
    """Bounds that fail a conversion (non-zero exit; the report is still written).

    Which artifacts each gate covers comes from the catalogue (:mod:`facelm.artifacts`):
    the parity gate covers fp32 artifacts with float32 weights (ONNX, fp32 TFLite, TVM
    host), the drift gate every artifact with int8 weights. dynamic_int8 is gated too: with
    ``--quant-type per-tensor`` onnx2tf's dynamic-range model of the final config drifted
    89% (NME) while int8 drifted 0.13%.

    Attributes:
        parity_max_abs: largest heatmap difference allowed for fp32 artifacts against torch.
        int8_drift_mean: largest mean landmark drift (NME fraction vs torch) for artifacts
            with int8 weights.
    """

    parity_max_abs: float = 1e-4
    int8_drift_mean: float = 0.002


def check_gates(parity: dict[str, float], drift_means: dict[str, float], gates: GateConfig) -> list[str]:
    """Messages for every gate that fails (empty when all pass).

    Args:
        parity: artifact name -> max abs heatmap difference vs torch (fp32 artifacts).
        drift_means: artifact name -> mean landmark drift (int8 artifacts are gated).
    """
    from facelm.artifacts import artifact_kind

    failures = []
    for name, value in parity.items():
        if artifact_kind(name).float_reference and not value <= gates.parity_max_abs:
            failures.append(f"{name}: fp32 parity {value:.3g} exceeds {gates.parity_max_abs:g} (max abs heatmap difference vs torch)")
    for name, value in drift_means.items():
        if artifact_kind(name).int8_weights and not value <= gates.int8_drift_mean:
            failures.append(f"{name}: mean landmark drift {value:.4g} exceeds {gates.int8_drift_mean:g} (NME vs torch fp32)")
    return failures
