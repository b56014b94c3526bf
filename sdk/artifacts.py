"""The artifact catalogue: every file ``facelm convert`` can write, described once.

Conversion, drift gates, the bench harness and the runtime derive what they need from
:data:`CATALOGUE` (names, files, formats, precisions, platforms, the file onnx2tf writes).
No other module keeps a table of artifacts: the TFLite converter's variants
(:data:`facelm.converters.tflite.VARIANTS`) are these entries, and its onnx2tf worker process
gets their fields in its spec. Code that means one particular artifact names it through
:func:`artifact_kind` or the constants below; nothing chooses an artifact by a substring of
its name.

Fields of one :class:`ArtifactKind`:

- ``name``: the manifest name (``"int8"``);
- ``file``: path inside the artifact folder (``"int8.tflite"``; TVM objects live in ``tvm/``);
- ``format``: ``tflite`` | ``onnx`` | ``tvm_so`` (a loadable shared library) | ``tvm_tar``
  (object files to link later);
- ``precision``: what the activations are computed in: ``fp32`` | ``fp16`` | ``int8`` | ``int16``;
- ``weight_dtype``: ``float32`` | ``float16`` | ``int8``;
- ``io``: dtype of the model's input and output tensors: ``float32`` | ``int8``;
- ``platform``: where the file runs: ``any`` (TFLite/ONNX interpreters), ``host`` (this
  machine's CPU), ``linux-arm64`` (glibc aarch64), ``android-arm64``;
- ``target_group``: what produces it: a ``facelm convert --targets`` value (``tflite``, ``tvm``, ``tvm_int8``...) or ``keep_float`` (``--keep-float``);
- ``optional``: written only when asked for;
- ``onnx2tf_suffix``: for the variants onnx2tf makes, the suffix of the file it writes
  (``model_<suffix>.tflite``); empty for every other artifact.
"""
from __future__ import annotations

from dataclasses import dataclass

from facelm.errors import ConfigError

FORMATS = ("tflite", "onnx", "tvm_so", "tvm_tar")
PRECISIONS = ("fp32", "fp16", "int8", "int16")
PLATFORMS = ("any", "host", "linux-arm64", "android-arm64")
#: Formats whose files are native code (loading them executes them).
NATIVE_FORMATS = ("tvm_so",)


@dataclass(frozen=True)
class ArtifactKind:
    """One kind of artifact (see the module docstring for the fields)."""

    name: str
    file: str
    format: str
    precision: str
    weight_dtype: str
    io: str
    platform: str
    target_group: str
    optional: bool = False
    onnx2tf_suffix: str = ""
    #: other (file, format) pairs the same artifact may take (a linked Android library).
    alternatives: tuple[tuple[str, str], ...] = ()

    @property
    def int8_weights(self) -> bool:
        """True when the weights are int8 (the drift gate applies)."""
        return self.weight_dtype == "int8"

    @property
    def float_reference(self) -> bool:
        """True for fp32 artifacts that must match torch to the parity bound."""
        return self.precision == "fp32" and self.weight_dtype == "float32"

    @property
    def native(self) -> bool:
        """True when using the file means loading native code."""
        return self.format in NATIVE_FORMATS

    def to_dict(self) -> dict:
        return {"precision": self.precision, "weight_dtype": self.weight_dtype, "io": self.io,
                "platform": self.platform}


CATALOGUE: tuple[ArtifactKind, ...] = (
    ArtifactKind("onnx", "model.onnx", "onnx", "fp32", "float32", "float32", "any", "onnx"),
    ArtifactKind("fp32", "fp32.tflite", "tflite", "fp32", "float32", "float32", "any", "tflite",
                 onnx2tf_suffix="float32"),
    ArtifactKind("fp16", "fp16.tflite", "tflite", "fp16", "float16", "float32", "any", "tflite",
                 onnx2tf_suffix="float16"),
    ArtifactKind("dynamic_int8", "dynamic_int8.tflite", "tflite", "fp32", "int8", "float32", "any", "tflite",
                 onnx2tf_suffix="dynamic_range_quant"),
    ArtifactKind("int8", "int8.tflite", "tflite", "int8", "int8", "float32", "any", "tflite",
                 onnx2tf_suffix="integer_quant"),
    ArtifactKind("int8_io", "int8_io.tflite", "tflite", "int8", "int8", "int8", "any", "tflite",
                 onnx2tf_suffix="full_integer_quant"),
    ArtifactKind("int16x8", "int16x8.tflite", "tflite", "int16", "int8", "float32", "any", "tflite",
                 optional=True, onnx2tf_suffix="integer_quant_with_int16_act"),
    ArtifactKind("int8_mixed", "int8_mixed.tflite", "tflite", "int8", "int8", "float32", "any", "keep_float",
                 optional=True),
    ArtifactKind("tvm_host", "tvm/host.so", "tvm_so", "fp32", "float32", "float32", "host", "tvm"),
    ArtifactKind("tvm_android", "tvm/android.tar", "tvm_tar", "fp32", "float32", "float32", "android-arm64",
                 "tvm", alternatives=(("tvm/android.so", "tvm_so"),)),
    ArtifactKind("tvm_int8", "tvm/int8_host.so", "tvm_so", "int8", "int8", "float32", "host", "tvm_int8",
                 optional=True),
    ArtifactKind("tvm_int8_android", "tvm/int8_android.tar", "tvm_tar", "int8", "int8", "float32", "android-arm64",
                 "tvm_int8", optional=True, alternatives=(("tvm/int8_android.so", "tvm_so"),)),
    ArtifactKind("tvm_linux_arm64", "tvm/linux_arm64.so", "tvm_so", "fp32", "float32", "float32", "linux-arm64", "tvm",
                 optional=True),
)

#: The host fp32 TFLite artifact: the reference of on-device drift.
FP32_REFERENCE = "fp32"
#: The artifact a runtime picks when none is named.
DEFAULT_RUNTIME_ARTIFACT = "int8"
#: The TVM libraries the arm64 check relates: the host build, the Android objects it links, and
#: the glibc aarch64 library it writes.
TVM_HOST, TVM_ANDROID, TVM_LINUX_ARM64 = "tvm_host", "tvm_android", "tvm_linux_arm64"

_BY_NAME = {k.name: k for k in CATALOGUE}


def artifact_kind(name: str) -> ArtifactKind:
    """The catalogue entry called ``name``.

    Raises:
        ConfigError: ``name`` is not a known artifact.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ConfigError(f"unknown artifact {name!r}; known: {', '.join(_BY_NAME)}") from None


def artifact_names(*, format: str | None = None, target_group: str | None = None,
                   include_optional: bool = True) -> tuple[str, ...]:
    """Names in catalogue order, filtered by ``format`` and ``target_group``."""
    return tuple(k.name for k in CATALOGUE
                 if (format is None or k.format == format)
                 and (target_group is None or k.target_group == target_group)
                 and (include_optional or not k.optional))


def tflite_names(include_optional: bool = True) -> tuple[str, ...]:
    """The TFLite variants onnx2tf writes (``fp32``, ``fp16``, ``dynamic_int8``, ``int8``, ``int8_io`` [, ``int16x8``]).

    ``int8_mixed`` is a TFLite file too, but ``--keep-float`` makes it (target group ``keep_float``).
    """
    return artifact_names(format="tflite", target_group="tflite", include_optional=include_optional)
