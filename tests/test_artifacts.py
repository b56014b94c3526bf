"""The artifact catalogue: one description per artifact, and the rules derived from it."""
from __future__ import annotations

import pytest

from facelm.artifacts import CATALOGUE, FORMATS, PLATFORMS, PRECISIONS, artifact_kind, artifact_names, tflite_names
from facelm.errors import ConfigError


def test_names_unique_and_fields_valid():
    names = [k.name for k in CATALOGUE]
    assert len(names) == len(set(names))
    assert len({k.file for k in CATALOGUE}) == len(CATALOGUE)
    for k in CATALOGUE:
        assert k.format in FORMATS and k.precision in PRECISIONS and k.platform in PLATFORMS
        assert k.file.endswith({"tflite": ".tflite", "onnx": ".onnx", "tvm_so": ".so", "tvm_tar": ".tar"}[k.format])


def test_gate_membership_follows_precision_and_weights():
    assert {k.name for k in CATALOGUE if k.float_reference} >= {"onnx", "fp32", "tvm_host"}
    assert "fp16" not in {k.name for k in CATALOGUE if k.float_reference}
    assert {k.name for k in CATALOGUE if k.int8_weights} >= {"dynamic_int8", "int8", "int8_io", "int16x8"}
    assert tflite_names(include_optional=False) == ("fp32", "fp16", "dynamic_int8", "int8", "int8_io")
    assert artifact_names(target_group="tvm", format="tvm_so", include_optional=False) == ("tvm_host",)
    assert "int8_mixed" not in tflite_names() and "int8_mixed" in artifact_names(format="tflite")


def test_unknown_name_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown artifact 'int4'"):
        artifact_kind("int4")


def test_converter_variants_cover_exactly_the_tflite_catalogue():
    pytest.importorskip("onnx2tf")
    from facelm.converters.tflite import VARIANT_BY_NAME

    assert set(VARIANT_BY_NAME) == set(tflite_names())
