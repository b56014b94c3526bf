"""How far an artifact drifts from the fp32 torch model, and the gates that fail a conversion.

- Heatmap PSNR as Qualcomm AI Hub reports it: ``20 * log10(max|ref| / RMSE)`` dB over the
  whole evaluation set (above 30 dB is "good" by their rule).
- Landmark drift: per image, the mean distance between the artifact's landmarks and the
  reference landmarks, in crop pixels and as a fraction of :func:`drift_scale` (the inter-pupil
  distance of the contract's five-point template): mean, p95 and max, plus the 10 landmarks
  with the largest mean drift. The scale is fixed by the contract, never taken from a
  prediction, so an untrained model whose landmarks collapse onto one point still gets a
  finite drift.
- Where ground truth exists, the artifact's own NME, AUC@0.08 and FR@0.08 (``facelm.metrics``,
  normalised as the layout says).

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


#: What :attr:`DriftReport.mean` (and p95, max, top landmarks) are fractions of.
NORMALISER = "template_inter_pupil"


def drift_scale(contract: Any) -> float:
    """The drift normaliser: inter-pupil distance of the contract's five-point template, crop pixels.

    The template is fixed by the contract (``preprocess.five_point_template``, made by
    :func:`facelm.alignment.reference_template` from the input size; ArcFace order, the two
    eyes first), so the scale does not depend on any model's prediction.

    Args:
        contract: a :class:`facelm.runtime.manifest.ModelContract`.
    Raises:
        InputError: a template that is not (5, 2) or whose eyes coincide.
    """
    tpl = np.asarray(contract.preprocess.five_point_template, dtype=np.float64)
    if tpl.shape != (5, 2):
        raise InputError(f"the contract's five-point template must be (5, 2), got {tpl.shape}")
    d = float(np.linalg.norm(tpl[0] - tpl[1]))
    if not (np.isfinite(d) and d > 0):
        raise InputError(f"the contract's five-point template has no inter-pupil distance ({d})")
    return d


def landmark_distances(ref_landmarks: np.ndarray, test_landmarks: np.ndarray) -> np.ndarray:
    """Distance of every landmark of ``test`` from ``ref``.

    Args:
        ref_landmarks, test_landmarks: (N, K, 2) pixels in the same frame.
    Returns:
        (N, K) float64 pixels (NaN where a landmark is not finite).
    """
    r = np.asarray(ref_landmarks, dtype=np.float64)
    t = np.asarray(test_landmarks, dtype=np.float64)
    if r.shape != t.shape or r.ndim != 3 or r.shape[-1] != 2:
        raise InputError(f"reference {r.shape} and test {t.shape} landmarks must both be (N, K, 2)")
    return np.linalg.norm(t - r, axis=-1)


def landmark_drift(ref_landmarks: np.ndarray, test_landmarks: np.ndarray, scale_px: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-image and per-landmark drift of ``test`` against ``ref``, as fractions of ``scale_px``.

    Args:
        ref_landmarks, test_landmarks: (N, K, 2) pixels in the same frame.
        scale_px: the normaliser in pixels, :func:`drift_scale` of the contract.
    Returns:
        ``(per_image (N,), per_landmark (K,))``: mean landmark distance / ``scale_px``.
    """
    if not (np.isfinite(scale_px) and scale_px > 0):
        raise InputError(f"drift scale must be a positive number of pixels, got {scale_px}")
    d = landmark_distances(ref_landmarks, test_landmarks) / float(scale_px)
    return d.mean(axis=1), d.mean(axis=0)


def mean_drift(ref_landmarks: np.ndarray, test_landmarks: np.ndarray, contract: Any) -> float:
    """Mean per-image drift of ``test`` vs ``ref`` (fraction of :func:`drift_scale` of ``contract``)."""
    return float(landmark_drift(ref_landmarks, test_landmarks, drift_scale(contract))[0].mean())


@dataclass
class DriftReport:
    """Drift of one artifact against a reference on one evaluation set.

    Attributes:
        reference: what the landmarks are compared with, one of :data:`REFERENCES`.
        psnr_db: heatmap PSNR (dB).
        max_abs: largest heatmap difference.
        mean, p95, max: per-image landmark drift vs the reference, fractions of ``scale_px``.
        mean_px, p95_px, max_px: the same in crop pixels.
        scale_px: the normaliser, :func:`drift_scale` (template inter-pupil distance, crop px).
        normaliser: what ``scale_px`` is (:data:`NORMALISER`).
        top_landmarks: ``[{"index", "region", "drift", "drift_px"}]`` for the most drifting landmarks.
        nme, auc, fr: own accuracy vs ground truth (fractions, the layout's NME), ``None`` without ground truth.
        count: evaluation images.
    """

    reference: str
    psnr_db: float
    max_abs: float
    mean: float
    p95: float
    max: float
    mean_px: float = 0.0
    p95_px: float = 0.0
    max_px: float = 0.0
    scale_px: float = 0.0
    normaliser: str = NORMALISER
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


def most_drifting(per_landmark: np.ndarray, layout: Layout, k: int = TOP_DRIFTING,
                  scale_px: float | None = None) -> list[dict[str, Any]]:
    """The ``k`` landmarks with the largest mean normalised drift.

    Args:
        per_landmark: (K,) mean drift of each landmark (fraction of ``scale_px``).
        scale_px: when given, each entry also has ``drift_px`` (pixels).
    """
    order = np.argsort(-per_landmark, kind="stable")[:k]
    out = [{"index": int(i), "region": _region_of(layout, int(i)), "drift": float(per_landmark[i])} for i in order]
    if scale_px is not None:
        for t in out:
            t["drift_px"] = t["drift"] * float(scale_px)
    return out


def drift_report(
    ref_heatmaps: np.ndarray,
    test_heatmaps: np.ndarray,
    ref_landmarks: np.ndarray,
    test_landmarks: np.ndarray,
    contract: Any,
    gt_landmarks: np.ndarray | None = None,
    reference: str = "torch_fp32",
) -> tuple[DriftReport, np.ndarray | None]:
    """Every drift figure of one artifact.

    Args:
        ref_heatmaps, test_heatmaps: (N, K, h, w) float (dequantized for integer outputs).
        ref_landmarks, test_landmarks: (N, K, 2) decoded landmarks, crop pixels.
        contract: the :class:`facelm.runtime.manifest.ModelContract` (layout; template -> scale).
        gt_landmarks: (N, K, 2) ground truth in crop pixels, or ``None``.
        reference: one of :data:`REFERENCES`.
    Returns:
        ``(report, own per-image NME (N,) or None)``.
    """
    from facelm.metrics import nme, summarize

    if reference not in REFERENCES:
        raise InputError(f"drift reference must be one of {REFERENCES}, got {reference!r}")
    lay = get_layout(contract.layout.name)
    scale = drift_scale(contract)
    per_img, per_lm = landmark_drift(ref_landmarks, test_landmarks, scale)
    mean, p95, mx = float(per_img.mean()), float(np.percentile(per_img, 95)), float(per_img.max())
    rep = DriftReport(
        reference=reference,
        psnr_db=psnr(ref_heatmaps, test_heatmaps),
        max_abs=float(np.max(np.abs(np.asarray(ref_heatmaps, np.float64) - test_heatmaps))),
        mean=mean, p95=p95, max=mx, mean_px=mean * scale, p95_px=p95 * scale, max_px=mx * scale, scale_px=scale,
        top_landmarks=most_drifting(per_lm, lay, scale_px=scale),
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
        int8_drift_mean: largest mean landmark drift vs the fp32 reference for artifacts with
            int8 weights, a fraction of :func:`drift_scale` (template inter-pupil distance).
            0.0045 is the former bound of 0.002 in JD-106 NME (face-box normaliser) times 2.2,
            the mean ratio of the face box's sqrt(w*h) to the template inter-pupil distance on
            the synthetic evaluation faces (range 1.9-2.6): the same bound in pixels.
    """

    parity_max_abs: float = 1e-4
    int8_drift_mean: float = 0.0045


def check_gates(parity: dict[str, float], drift_means: dict[str, float], gates: GateConfig) -> list[str]:
    """Messages for every gate that fails (empty when all pass).

    Args:
        parity: artifact name -> max abs heatmap difference vs torch (fp32 artifacts).
        drift_means: artifact name -> mean landmark drift, fraction of :func:`drift_scale`
            (int8 artifacts are gated).
    """
    from facelm.artifacts import artifact_kind

    failures = []
    for name, value in parity.items():
        if artifact_kind(name).float_reference and not value <= gates.parity_max_abs:
            failures.append(f"{name}: fp32 parity {value:.3g} exceeds {gates.parity_max_abs:g} (max abs heatmap difference vs torch)")
    for name, value in drift_means.items():
        if artifact_kind(name).int8_weights and not value <= gates.int8_drift_mean:
            failures.append(f"{name}: mean landmark drift {value:.4g} exceeds {gates.int8_drift_mean:g} "
                            f"(fraction of the template inter-pupil distance, vs the fp32 reference)")
    return failures
