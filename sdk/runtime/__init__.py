"""Run a converted artifact folder: ``manifest.json`` (schema + hash checks) and ``Landmarker``.

``sdk.runtime.manifest`` is light (stdlib only). :class:`Landmarker` is imported lazily
so that reading a manifest never pulls in the interpreter.
"""
from sdk.runtime.manifest import (  # noqa: F401
    MANIFEST_NAME,
    SCHEMA_VERSION,
    ArtifactEntry,
    Manifest,
    ManifestError,
    Quantization,
    TensorSpec,
    load_manifest,
    sha256_file,
    verify_manifest,
    write_manifest,
)


def __getattr__(name):  # lazy: Landmarker pulls in numpy/cv2/LiteRT
    if name in ("Landmarker", "LandmarkerOptions", "LandmarkerResult"):
        from sdk.runtime import landmarker

        return getattr(landmarker, name)
    raise AttributeError(name)
