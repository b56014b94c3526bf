"""On-device drift: the same aligned faces through the device artifact and the host fp32 reference.

Needs the artifact folder's ``manifest.json`` (read with :func:`sdk.runtime.load_manifest`,
hashes checked): input spec (NHWC, dtype, quantization), output spec (layout, K),
stride, normalisation (``preprocess``) and decode parameters. Heatmap PSNR and
landmark NME drift come from :func:`quantization.drift.drift_report`; landmarks are
decoded with :func:`sdk.codec.decode` and mapped to crop pixels with the stride.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sdk.errors import InputError

from .runners import TensorInfo

REFERENCE_NAMES = ("fp32", "float32")


@dataclass
class DriftPlan:
    """Inputs and host reference for the drift of one manifest artifact.

    Attributes:
        manifest: the loaded :class:`sdk.runtime.Manifest`.
        artifact: the entry being measured.
        reference: the host fp32 ``.tflite`` entry.
        crops: (N, S, S, 3) uint8 aligned faces; x: (N, 3, S, S) float32 normalised.
        gt: (N, K, 2) ground-truth landmarks in crop pixels, or None.
        source: where the faces came from.
    """

    manifest: object
    artifact: object
    reference: object
    crops: np.ndarray
    x: np.ndarray
    gt: np.ndarray | None
    source: str

    # -- inputs ------------------------------------------------------------------
    def samples(self, inputs: list[TensorInfo]) -> list[list[bytes]]:
        """Raw device input tensors, one list per face (NHWC, quantized for integer inputs)."""
        if len(inputs) != 1:
            raise InputError(f"drift needs a single-input model, this one has {len(inputs)}")
        info = inputs[0]
        spec = self.artifact.input
        nhwc = np.ascontiguousarray(self.x.transpose(0, 2, 3, 1))
        if spec is not None and spec.layout.upper() == "NCHW":
            nhwc = np.ascontiguousarray(self.x)
        out = []
        for i in range(nhwc.shape[0]):
            v = nhwc[i:i + 1]
            if np.dtype(info.dtype).kind in "iu":
                scale = info.scale or (spec.quantization.scale if spec and spec.quantization else 0.0)
                zp = info.zero_point if info.scale else (spec.quantization.zero_point if spec and spec.quantization else 0)
                if not scale:
                    raise InputError(f"integer input {info.name} has no quantization scale")
                ii = np.iinfo(np.dtype(info.dtype))
                v = np.clip(np.rint(v / scale) + zp, ii.min, ii.max)
            v = v.astype(info.dtype)
            if v.size * v.itemsize != info.nbytes:
                raise InputError(f"drift input shape {v.shape} does not fit the model input {info.shape}")
            out.append([v.tobytes()])
        return out

    # -- evaluation --------------------------------------------------------------
    def _heatmaps_nchw(self, raw: np.ndarray, info: TensorInfo) -> np.ndarray:
        h = raw.astype(np.float32)
        if np.dtype(info.dtype).kind in "iu":
            scale = info.scale or (self.artifact.output.quantization.scale if self.artifact.output.quantization else 0)
            zp = info.zero_point if info.scale else self.artifact.output.quantization.zero_point
            h = (h - np.float32(zp)) * np.float32(scale)
        layout = (self.artifact.output.layout if self.artifact.output else "NHWC").upper()
        return h if layout == "NCHW" else h.transpose(0, 3, 1, 2)

    def decode(self, heatmaps_nchw: np.ndarray) -> np.ndarray:
        """(N, K, h, w) -> (N, K, 2) landmarks in crop pixels, with the manifest's decode settings."""
        from sdk.codec import DecodeConfig, decode, heatmap_to_input

        cfg = dict(self.manifest.decode)
        cfg["layout"] = "nchw"
        cfg = DecodeConfig.from_dict(cfg)
        coords, _ = decode(np.ascontiguousarray(heatmaps_nchw, dtype=np.float32), **cfg.as_kwargs())
        stride = self.manifest.model.get("stride")
        if stride is None:
            ih, iw = self.manifest.model["input_size"]
            hh, hw = self.manifest.model["heatmap_size"]
            stride = (iw / hw, ih / hh)
        return heatmap_to_input(coords, stride if isinstance(stride, (int, float)) else tuple(stride))

    def reference_heatmaps(self) -> np.ndarray:
        """Host fp32 heatmaps (N, K, h, w) from the reference artifact."""
        from sdk.runtime.tflite import TfliteRunner

        runner = TfliteRunner(self.manifest.artifact_path(self.reference.name), num_threads=1)
        return runner.heatmaps(self.x)

    def evaluate(self, outputs: list[list[np.ndarray]], output_infos: list[TensorInfo]) -> dict:
        """Drift figures of the device outputs (one list of output arrays per face)."""
        from quantization.drift import drift_report

        test = np.concatenate([self._heatmaps_nchw(o[0], output_infos[0]) for o in outputs], axis=0)
        ref = self.reference_heatmaps()
        if ref.shape != test.shape:
            raise InputError(f"device heatmaps {test.shape} and reference {ref.shape} differ in shape")
        layout = self.manifest.layout.get("name", "jd106")
        rep, _ = drift_report(ref, test, self.decode(ref), self.decode(test), layout,
                              gt_landmarks=self.gt)
        d = rep.to_dict()
        d.update(reference=self.reference.name, samples=int(test.shape[0]), source=self.source)
        return d


def _normalise(crops: np.ndarray, preprocess: dict) -> np.ndarray:
    """uint8 RGB (N, S, S, 3) -> (N, 3, S, S) float32 with the manifest's normalisation."""
    x = crops.astype(np.float32)
    if str(preprocess.get("color", "RGB")).upper() == "BGR":
        x = x[..., ::-1]
    scale = float(preprocess.get("pixel_scale", 1.0 / 255.0))
    mean = np.asarray(preprocess.get("mean", (0.0, 0.0, 0.0)), np.float32)
    std = np.asarray(preprocess.get("std", (1.0, 1.0, 1.0)), np.float32)
    return np.ascontiguousarray(((x * scale - mean) / std).transpose(0, 3, 1, 2), dtype=np.float32)


def plan_drift(manifest_dir: Path, artifact_name: str, samples: int, source: str = "synthetic") -> DriftPlan:
    """Load the manifest (hashes checked) and build ``samples`` evaluation faces.

    ``source`` is ``"synthetic"`` or a face folder, as in :func:`quantization.calibration.build_sets`.
    """
    from quantization.calibration import EVAL_SEED, build_sets, synthetic_faces
    from sdk.runtime import load_manifest

    manifest = load_manifest(manifest_dir, verify=True)
    entry = manifest.artifact(artifact_name)
    refs = [a for a in manifest.artifacts if a.format == "tflite" and a.name in REFERENCE_NAMES]
    if not refs:
        raise InputError(f"{manifest_dir}: no fp32 .tflite artifact to serve as the drift reference")
    size = int(manifest.model["input_size"][0])
    if source == "synthetic":
        faces = synthetic_faces(samples, size, EVAL_SEED)
    else:
        _, faces = build_sets(source, input_size=size, layout=manifest.layout.get("name", "jd106"),
                              num_calib=1, num_eval=samples)
    gt = faces.landmarks if faces.landmarks is not None and faces.landmarks.shape[1] == int(
        manifest.model.get("num_keypoints", -1)) else None
    return DriftPlan(manifest, entry, refs[0], faces.crops, _normalise(faces.crops, manifest.preprocess), gt,
                     faces.source)
