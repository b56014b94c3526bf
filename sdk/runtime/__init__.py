"""Run a converted artifact folder: ``manifest.json`` (typed sections + hash checks) and ``Landmarker``.

``facelm.runtime.manifest`` is light (stdlib only). :class:`Landmarker` is imported lazily
so that reading a manifest never pulls in the interpreter.
"""
from facelm.fileio import sha256_file  # noqa: F401
from facelm.runtime.manifest import (  # noqa: F401
    MANIFEST_NAME,
    SCHEMA_VERSION,
    ArtifactEntry,
    LayoutSpec,
    Manifest,
    ManifestError,
    ModelContract,
    ModelSpec,
    PreprocessSpec,
    Quantization,
    TensorSpec,
    load_manifest,
    verify_manifest,
    write_manifest,
)


def __getattr__(name):  # lazy: Landmarker pulls in numpy/cv2/LiteRT
    if name in ("Landmarker", "LandmarkerOptions", "LandmarkerResult"):
        from facelm.runtime import landmarker

        return getattr(landmarker, name)
    raise AttributeError(name)
