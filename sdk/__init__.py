"""facelm: sub-pixel face landmarks from PyTorch to phones.

The public API (imported lazily, so ``import facelm`` is cheap and works on the light
install without torch, TensorFlow, ONNX or TVM)::

    import facelm
    with facelm.Landmarker.create_from_model_path("artifacts") as lm:   # runtime (light)
        result = lm.detect(image_rgb, five_points)
    coords, scores = facelm.decode(heatmaps)                             # DARK codec (light)
    manifest = facelm.load_manifest("artifacts")                         # typed contract (light)
    facelm.convert(facelm.ConvertConfig(config="tiny", random_init=True))  # needs facelm[convert]
    facelm.bench("artifacts", facelm.BenchOptions(runs=20))              # adb / local benchmark
    facelm.detect_path("clip.mp4", "artifacts", "out", smooth=True)      # JSONL + overlays (light)
    facelm.train("tiny", "faces/", "runs/x", epochs=2)                   # needs facelm[torch]
    facelm.evaluate("runs/x/best.pt", "faces/", ced="ced.png")           # needs facelm[torch]
    facelm.build_kit("artifacts", "kit")                                 # app kit: C, JNI, golden vectors
    facelm.quant_debug("artifacts", out="qd", keep_float="auto")         # needs facelm[convert]

Each of these is what the command of the same name (``facelm bench``, ``facelm detect``,
``facelm train``, ``facelm evaluate``, ``facelm app-kit``, ``facelm quant-debug``) calls; the
command line only parses its flags.

The pipeline, stage by stage (one folder each in the repository):

- ``facelm.layouts``     landmark layouts (JD-106, WFLW-98, iBUG-68) — sdk/layouts.py
- ``facelm.alignment``   five-point similarity alignment to the reference template
- ``facelm.preprocess``  align + normalise an image into the model input
- ``facelm.model``       backbones, S/D heads, zoo configs, FLOPs/size (torch)
- ``facelm.codec``       heatmap encode / DARK decode (numpy reference + C twin)
- ``facelm.postprocess`` raw model output -> landmarks (the one implementation)
- ``facelm.metrics``     NME, CED, AUC@0.08, failure rate
- ``facelm.data``        synthetic faces, dataset loaders, augmentation
- ``facelm.training``    the paper's training recipe (torch)
- ``facelm.artifacts``   the artifact catalogue (names, formats, precisions, platforms)
- ``facelm.runtime``     manifest.json (typed contract) and ``Landmarker``
- ``facelm.converters``  torch -> ONNX -> TFLite / TVM (converters/; facelm[convert], facelm[tvm])
- ``facelm.quantization`` calibration sets, drift and gates (quantization/)
- ``facelm.android_bench`` adb devices, runners, records, virtual device (android_bench/)
"""
from __future__ import annotations

import importlib

__version__ = "0.2.0"

# public name -> module that defines it
_EXPORTS = {
    "Landmarker": "facelm.runtime.landmarker",
    "LandmarkerOptions": "facelm.runtime.landmarker",
    "LandmarkerResult": "facelm.runtime.landmarker",
    "load_manifest": "facelm.runtime.manifest",
    "Manifest": "facelm.runtime.manifest",
    "ManifestError": "facelm.runtime.manifest",
    "ModelSpec": "facelm.runtime.manifest",
    "PreprocessSpec": "facelm.runtime.manifest",
    "LayoutSpec": "facelm.runtime.manifest",
    "TensorSpec": "facelm.runtime.manifest",
    "decode": "facelm.codec",
    "encode": "facelm.codec",
    "DecodeConfig": "facelm.codec",
    "EncodeConfig": "facelm.codec",
    "Layout": "facelm.layouts",
    "get_layout": "facelm.layouts",
    "JD106": "facelm.layouts",
    "WFLW98": "facelm.layouts",
    "IBUG68": "facelm.layouts",
    "Normalization": "facelm.preprocess",
    "output_to_landmarks": "facelm.postprocess",
    "convert": "facelm.converters.pipeline",
    "ConvertConfig": "facelm.converters.pipeline",
    "bench": "facelm.android_bench.bench",
    "BenchOptions": "facelm.android_bench.config",
    "BenchRequest": "facelm.android_bench.config",
    "detect_path": "facelm.detect_flow",
    "LandmarkStream": "facelm.detect_flow",
    "OneEuroConfig": "facelm.smoothing",
    "train": "facelm.workflows",
    "TrainConfig": "facelm.training.config",
    "evaluate": "facelm.workflows",
    "build_kit": "facelm.appkit.kit",
    "quant_debug": "facelm.quantization.flow",
    "mixed_precision": "facelm.quantization.mixed",
    "FacelmError": "facelm.errors",
    "ConfigError": "facelm.errors",
    "InputError": "facelm.errors",
    "ConversionError": "facelm.errors",
    "DeviceError": "facelm.errors",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'facelm' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
