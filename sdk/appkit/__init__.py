"""The app kit: what an app developer receives with a converted model.

``facelm app-kit ARTIFACTS --out KIT`` (:func:`build_kit`) writes a self-contained folder:
the ``.tflite`` artifact and its manifest, the pre- and post-processing in portable C
(alignment, OpenCV-exact bilinear warp, normalisation/quantization, DARK decoding with the
codec's own C core, mapping back to image pixels, One Euro filter), JNI glue with a Java
class ``FaceLandmarks``, golden vectors from the Python runtime, and a Makefile whose
``test``, ``test-arm64`` and ``test-jni`` targets check the C and Java code against them.
See docs/app_kit.md.
"""
from facelm.appkit.kit import (  # noqa: F401
    GOLDEN_LANDMARK_TOL_PX,
    KitError,
    KitResult,
    build_kit,
    golden_case,
    input_tolerance,
    model_params_header,
)
