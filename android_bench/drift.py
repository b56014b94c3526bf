"""On-device drift: the same aligned faces through the device artifact and the host fp32 reference.

Everything comes from the artifact folder's typed manifest (:func:`facelm.runtime.load_manifest`,
hashes checked): input/output tensor specs, the model spec (stride, K), the normalisation and
the decode parameters. Landmarks come from :func:`facelm.postprocess.output_to_landmarks`, the
same function conversion and the runtime use. The figures are stored under the record key
``drift_vs_host`` (reference ``host_fp32_tflite``), distinct from the conversion's
``drift_vs_torch``; like it, the landmark drift is in pixels and in fractions of the template
inter-pupil distance (:func:`facelm.quantization.drift.drift_scale`), never of a prediction.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from facelm.artifacts import FP32_REFERENCE
from facelm.errors import InputError
from facelm.runtime.manifest import ArtifactEntry, Manifest, TensorSpec


@dataclass
class DriftPlan:
    """Inputs and host reference for the drift of one manifest artifact.

    Attributes:
        manifest: the loaded :class:`facelm.runtime.Manifest`.
        artifact: the entry being measured.
        reference: the host fp32 ``.tflite`` entry.
        crops: (N, S, S, 3) uint8 aligned faces; x: (N, 3, S, S) float32 normalised.
        gt: (N, K, 2) ground-truth landmarks in crop pixels, or None.
        source: where the faces came from.
    """

    manifest: Manifest
    artifact: ArtifactEntry
    reference: ArtifactEntry
    crops: np.ndarray
    x: np.ndarray
    gt: np.ndarray | None
    source: str

    # -- inputs ------------------------------------------------------------------
    def samples(self, inputs: list[TensorSpec]) -> list[list[bytes]]:
        """Raw device input tensors, one list per face (in the artifact's layout, quantized for integer inputs)."""
        from facelm.runtime.tflite import to_model_input

        if len(inputs) != 1:
            raise InputError(f"drift needs a single-input model, this one has {len(inputs)}")
        info = inputs[0]
        spec = self.artifact.input
        x = self.x if spec is not None and spec.layout == "NCHW" else self.x.transpose(0, 2, 3, 1)
        if info.quantization is None and spec is not None and spec.quantization is not None:
            info = replace(info, quantization=spec.quantization)
        out = []
        for i in range(x.shape[0]):
            v = to_model_input(np.ascontiguousarray(x[i:i + 1]), info)
            if v.nbytes != info.nbytes:
                raise InputError(f"drift input shape {v.shape} does not fit the model input {info.shape}")
            out.append([v.tobytes()])
        return out

    # -- evaluation --------------------------------------------------------------
    def _output_spec(self, info: TensorSpec) -> TensorSpec:
        """The device output as a spec: the runner's dtype/quantization, the manifest's layout."""
        entry = self.artifact.output
        layout = entry.layout if entry is not None else "NHWC"
        q = info.quantization or (entry.quantization if entry is not None else None)
        return replace(info, layout=layout, quantization=q)

    def landmarks(self, raw: np.ndarray, spec: TensorSpec) -> np.ndarray:
        """Raw outputs -> (N, K, 2) landmarks in crop pixels (the shared post-processor)."""
        from facelm.postprocess import output_to_landmarks

        return output_to_landmarks(raw, spec, self.manifest.model, self.manifest.decode).crop

    def evaluate(self, outputs: list[list[np.ndarray]], output_infos: list[TensorSpec]) -> dict:
        """Drift figures (device vs host fp32 TFLite) of the device outputs, one list of arrays per face."""
        from facelm.quantization.drift import drift_report
        from facelm.runtime.tflite import TfliteRunner, dequantize

        spec = self._output_spec(output_infos[0])
        raw = np.concatenate([o[0] for o in outputs], axis=0)
        runner = TfliteRunner(self.manifest.artifact_path(self.reference.name), num_threads=1)
        ref_raw = runner.run_raw(self.x)
        ref_spec = runner.output_spec
        to_nchw = lambda a, s: dequantize(a, s.quantization) if s.layout == "NCHW" else \
            dequantize(a, s.quantization).transpose(0, 3, 1, 2)  # noqa: E731
        test_hm, ref_hm = to_nchw(raw, spec), to_nchw(ref_raw, ref_spec)
        if ref_hm.shape != test_hm.shape:
            raise InputError(f"device heatmaps {test_hm.shape} and reference {ref_hm.shape} differ in shape")
        rep, _ = drift_report(ref_hm, test_hm, self.landmarks(ref_raw, ref_spec), self.landmarks(raw, spec),
                              self.manifest.contract, gt_landmarks=self.gt, reference="host_fp32_tflite")
        d = rep.to_dict()
        d.update(reference_artifact=self.reference.name, samples=int(test_hm.shape[0]), source=self.source)
        return d


def plan_drift(manifest_dir: Path, artifact_name: str, samples: int, source: str = "synthetic") -> DriftPlan:
    """Load the manifest (hashes checked) and build ``samples`` evaluation faces.

    ``source`` is ``"synthetic"`` or a face folder, as in :func:`facelm.quantization.calibration.build_sets`.
    """
    from facelm.quantization.calibration import EVAL_SEED, build_sets, synthetic_faces
    from facelm.runtime import load_manifest

    manifest = load_manifest(manifest_dir, verify=True)
    entry = manifest.artifact(artifact_name)
    if FP32_REFERENCE not in manifest.names():
        raise InputError(f"{manifest_dir}: no {FP32_REFERENCE} .tflite artifact to serve as the drift reference")
    size = manifest.model.input_side
    if source == "synthetic":
        faces = synthetic_faces(samples, size, EVAL_SEED)
    else:
        _, faces = build_sets(source, input_size=size, layout=manifest.layout.name, num_calib=1, num_eval=samples)
    gt = faces.landmarks if faces.landmarks is not None and faces.landmarks.shape[1] == \
        manifest.model.num_keypoints else None
    return DriftPlan(manifest, entry, manifest.artifact(FP32_REFERENCE), faces.crops,
                     faces.inputs(manifest.preprocess.normalization), gt, faces.source)
