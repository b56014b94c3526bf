"""``manifest.json``: the typed contract between conversion, the runtime and the bench harness.

``facelm convert`` writes one manifest per output folder; :func:`load_manifest` reads it
once, into typed sections, and by default checks the sha256 of every artifact before
anything is used. Every reader (``Landmarker``, ``android_bench``, drift, reports) takes
these sections; none re-parses the JSON or keeps fallback defaults of its own: a missing
or malformed field is a :class:`ManifestError` that names the field.

Schema (``schema_version`` 2). Paths are relative to the folder holding the manifest;
coordinates are pixels, ``(x, y)``::

    {
      "schema_version": 2,
      "facelm_version": "0.2.0",
      "created_utc": "2025-01-01T00:00:00Z",
      "model": {                            # ModelSpec
        "name": "tiny",                     # zoo config name, or the model file's stem
        "source": "zoo",                    # zoo | onnx | pt2 | factory
        "config": {...} | null,             # facelm.model.ModelConfig.to_dict() for zoo models
        "weights_file": "demo_synth.pt", "weights_sha256": "…" | null,
        "num_keypoints": 106,               # K
        "input_size": [H, W],               # model input, pixels
        "heatmap_size": [h, w],             # heatmap grid, cells
        "stride": [sx, sy],                 # input pixels per heatmap cell (= W/w, H/h)
        "input_name": "input", "input_layout": "NCHW",     # the source (ONNX) model's tensors
        "output_name": "heatmaps", "output_layout": "NCHW"
      },
      "preprocess": {                       # PreprocessSpec
        "color": "RGB", "pixel_scale": 0.00392156862745098,
        "mean": [m0, m1, m2], "std": [s0, s1, s2],          # x = (pixel * pixel_scale - mean) / std
        "five_point_template": [[x, y] * 5] # reference points in the H x W input crop
      },
      "layout": {                           # LayoutSpec
        "name": "jd106", "num_points": 106,
        "flip_permutation": [...], "five_point_groups": [[104], ...]
      },
      "decode": {"method": "dark", "blur_kernel": 11},      # facelm.codec.DecodeConfig
      "tools": {"torch": "2.13.0", ...},
      "artifacts": [                        # ArtifactEntry, one per file
        {"name": "int8_io", "file": "int8_io.tflite", "format": "tflite",
         "precision": "int8", "weight_dtype": "int8", "io": "int8", "platform": "any",
         "sha256": "…", "bytes": 123, "target": null,
         "input":  {"name": "input", "shape": [1, H, W, 3], "layout": "NHWC", "dtype": "int8",
                    "quantization": {"scale": 0.0186, "zero_point": -14}},
         "output": {...},
         "op_counts": {...}, "max_tensor_rank": 4,
         "parity": {"max_abs": 1e-7},       # fp32 artifacts: heatmaps vs torch fp32
         "drift_vs_torch": {...},           # facelm.quantization.drift.DriftReport.to_dict()
         "checks": {...},                   # extra verifications (arm64 emulation, ...)
         "notes": ""}
      ],
      "gates": {"passed": true, "failures": [], ...},
      "data": {"calibration": {"source": "synthetic", "count": 200},   # how to rebuild the faces
               "evaluation": {"source": "synthetic", "count": 200}}
    }

``quantization`` is ``null`` for float tensors; for integer tensors
``real = scale * (q - zero_point)``. Artifact kinds (names, files, formats, precisions,
platforms) come from :mod:`facelm.artifacts`.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

from facelm.errors import InputError
from facelm.fileio import atomic_write_text, sha256_file

SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
#: A manifest larger than this is refused before parsing (a real one is a few tens of KB).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
TENSOR_LAYOUTS = ("NCHW", "NHWC")
COLOR_ORDERS = ("RGB", "BGR")
#: |mean| and std must lie in these ranges (after ``pixel_scale``); anything else is a broken manifest.
MAX_ABS_MEAN = 1e3
STD_RANGE = (1e-6, 1e6)


class ManifestError(InputError):
    """A manifest is missing or malformed, or an artifact does not match its recorded hash."""


# ------------------------------------------------------------------------ field reading
class _Fields:
    """Typed access to one JSON object; every error names the dotted field path."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ManifestError(f"manifest field {where}: expected an object, got {_kind(data)}")
        self.d, self.where = data, where

    def _get(self, key: str) -> Any:
        if key not in self.d:
            raise ManifestError(f"manifest field {self.where}.{key} is missing")
        return self.d[key]

    def fail(self, key: str, expected: str) -> ManifestError:
        return ManifestError(f"manifest field {self.where}.{key}: expected {expected}, got "
                             f"{_short(self.d.get(key))}")

    def has(self, key: str) -> bool:
        return key in self.d and self.d[key] is not None

    def str(self, key: str, choices: Iterable[str] | None = None, optional: bool = False) -> Any:
        if optional and self.d.get(key) is None:
            return None
        v = self._get(key)
        choices = tuple(choices) if choices is not None else None
        if not isinstance(v, str) or (choices is not None and v not in choices):
            raise self.fail(key, f"one of {list(choices)}" if choices else "a string")
        return v

    def int(self, key: str, lo: int | None = None, optional: bool = False, hi: int = 1 << 62) -> Any:
        if optional and self.d.get(key) is None:
            return None
        v = self._get(key)
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or v > hi:
            raise self.fail(key, "an integer" + (f" in [{lo}, {hi}]" if lo is not None else f" <= {hi}"))
        return v

    def float(self, key: str, positive: bool = False) -> float:
        v = self._get(key)
        if not _finite(v) or (positive and v <= 0):
            raise self.fail(key, "a finite" + (" positive" if positive else "") + " number")
        return float(v)

    def numbers(self, key: str, n: int, positive: bool = False, integer: bool = False) -> tuple:
        v = self._get(key)
        ok = isinstance(v, list) and len(v) == n and all(
            _finite(x) and (isinstance(x, int) or not integer) and (not positive or x > 0)
            and (not integer or x <= MAX_SIDE) for x in v)
        if not ok:
            what = f"integers up to {MAX_SIDE}" if integer else "finite numbers"
            raise self.fail(key, f"a list of {n} {'positive ' if positive else ''}{what}")
        return tuple(int(x) if integer else float(x) for x in v)

    def obj(self, key: str, optional: bool = False) -> Any:
        if optional and self.d.get(key) is None:
            return {}
        v = self._get(key)
        if not isinstance(v, dict):
            raise self.fail(key, "an object")
        return v


#: Largest integer accepted for sizes and counts (a 65536-pixel image side is already absurd here).
MAX_SIDE = 1 << 16


def _finite(x: Any) -> bool:
    """True for a real (non-bool) int or float that is finite as a float64; never raises."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    try:
        return math.isfinite(float(x))
    except OverflowError:  # an int beyond float64
        return False


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
        type(v), "a number" if isinstance(v, (int, float)) else type(v).__name__)


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


# ----------------------------------------------------------------------------- tensors
@dataclass(frozen=True)
class Quantization:
    """Affine quantization of one tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "zero_point": int(self.zero_point)}


@dataclass(frozen=True)
class TensorSpec:
    """One input or output tensor of an artifact.

    Attributes:
        name: tensor name inside the artifact.
        shape: e.g. ``(1, H, W, 3)``.
        layout: ``"NHWC"`` or ``"NCHW"``.
        dtype: numpy dtype name (``"float32"``, ``"int8"``, ``"int16"``).
        quantization: set for integer tensors, else ``None``.
    """

    name: str
    shape: tuple[int, ...]
    layout: str
    dtype: str
    quantization: Quantization | None = None

    @property
    def nbytes(self) -> int:
        """Bytes of one tensor of this shape and dtype."""
        import numpy as np

        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": [int(s) for s in self.shape], "layout": self.layout,
                "dtype": self.dtype, "quantization": self.quantization.to_dict() if self.quantization else None}

    @classmethod
    def from_dict(cls, d: Any, where: str = "tensor") -> "TensorSpec":
        f = _Fields(d, where)
        shape = f._get("shape")
        if not (isinstance(shape, list) and 1 <= len(shape) <= 8
                and all(isinstance(s, int) and not isinstance(s, bool) and 1 <= s <= MAX_SIDE for s in shape)):
            raise f.fail("shape", "a list of 1 to 8 positive integers")
        dtype = f.str("dtype", ("float32", "float16", "int8", "uint8", "int16", "int32"))
        q = None
        if f.has("quantization"):
            from facelm.codec.core import SCALE_RANGE

            qf = _Fields(d["quantization"], f"{where}.quantization")
            scale = qf.float("scale", positive=True)
            if not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
                raise qf.fail("scale", f"a number in [{SCALE_RANGE[0]:g}, {SCALE_RANGE[1]:g}]")
            zp = qf.int("zero_point", lo=-(1 << 31), hi=(1 << 31) - 1)
            if dtype in ("int8", "uint8", "int16"):
                import numpy as np

                info = np.iinfo(dtype)
                if not info.min <= zp <= info.max:
                    raise qf.fail("zero_point", f"an integer within {dtype}'s range [{info.min}, {info.max}]")
            q = Quantization(scale, zp)
        if dtype.startswith(("int", "uint")) and q is None:
            raise f.fail("quantization", f"scale and zero_point for the {dtype} tensor")
        return cls(name=f.str("name"), shape=tuple(shape), layout=f.str("layout", TENSOR_LAYOUTS), dtype=dtype,
                   quantization=q)


# ----------------------------------------------------------------------------- sections
@dataclass(frozen=True)
class ModelSpec:
    """What the network is: sizes, stride, K and its source tensors (the ``model`` section).

    Attributes:
        name: zoo config name, or the model file's stem for a brought model.
        num_keypoints: K.
        input_size: (H, W) model input, pixels.
        heatmap_size: (h, w) heatmap grid, cells.
        stride: (sx, sy) input pixels per heatmap cell, ``(W / w, H / h)``.
        input_name, input_layout, output_name, output_layout: the source (ONNX) model's
            tensors; each artifact's :class:`TensorSpec` describes its own.
        source: ``zoo`` | ``onnx`` | ``pt2`` | ``factory``.
        config: the zoo ``ModelConfig.to_dict()``, or ``None``.
        weights_file, weights_sha256: the weights converted (basename and hash, if a file).
    """

    name: str
    num_keypoints: int
    input_size: tuple[int, int]
    heatmap_size: tuple[int, int]
    stride: tuple[float, float]
    input_name: str = "input"
    input_layout: str = "NCHW"
    output_name: str = "heatmaps"
    output_layout: str = "NCHW"
    source: str = "zoo"
    config: dict | None = None
    weights_file: str = ""
    weights_sha256: str | None = None

    SOURCES = ("zoo", "onnx", "pt2", "factory")

    @property
    def input_side(self) -> int:
        """The side of the square input crop (the runtime aligns square crops)."""
        return int(self.input_size[0])

    def to_dict(self) -> dict:
        return {"name": self.name, "source": self.source, "config": self.config,
                "weights_file": self.weights_file, "weights_sha256": self.weights_sha256,
                "num_keypoints": int(self.num_keypoints), "input_size": list(self.input_size),
                "heatmap_size": list(self.heatmap_size), "stride": [float(s) for s in self.stride],
                "input_name": self.input_name, "input_layout": self.input_layout,
                "output_name": self.output_name, "output_layout": self.output_layout}

    @classmethod
    def from_dict(cls, d: Any, where: str = "model") -> "ModelSpec":
        f = _Fields(d, where)
        h, w = f.numbers("input_size", 2, positive=True, integer=True)
        hh, hw = f.numbers("heatmap_size", 2, positive=True, integer=True)
        stride = f.numbers("stride", 2, positive=True)
        if abs(stride[0] - w / hw) > 1e-6 or abs(stride[1] - h / hh) > 1e-6:
            raise ManifestError(f"manifest field {where}.stride {list(stride)} does not match input_size "
                                f"{[h, w]} / heatmap_size {[hh, hw]}")
        if h != w:
            raise ManifestError(f"manifest field {where}.input_size: facelm aligns square crops, got {[h, w]}")
        cfg = d.get("config")
        if cfg is not None and not isinstance(cfg, dict):
            raise f.fail("config", "an object or null")
        return cls(name=f.str("name"), num_keypoints=f.int("num_keypoints", lo=1), input_size=(h, w),
                   heatmap_size=(hh, hw), stride=stride, input_name=f.str("input_name"),
                   input_layout=f.str("input_layout", TENSOR_LAYOUTS), output_name=f.str("output_name"),
                   output_layout=f.str("output_layout", TENSOR_LAYOUTS), source=f.str("source", cls.SOURCES),
                   config=cfg, weights_file=f.str("weights_file"),
                   weights_sha256=f.str("weights_sha256", optional=True))


@dataclass(frozen=True)
class PreprocessSpec:
    """How an image becomes the model input (the ``preprocess`` section).

    Attributes:
        normalization: :class:`facelm.preprocess.Normalization` (colour order, mean, std).
        five_point_template: (5, 2) reference points in the input crop, pixels.
    """

    normalization: Any
    five_point_template: tuple[tuple[float, float], ...]

    def to_dict(self) -> dict:
        return dict(self.normalization.to_dict(), five_point_template=[list(p) for p in self.five_point_template])

    @classmethod
    def from_dict(cls, d: Any, where: str = "preprocess") -> "PreprocessSpec":
        from facelm.preprocess import PIXEL_SCALE, Normalization

        f = _Fields(d, where)
        color = f.str("color", COLOR_ORDERS)
        scale = f.float("pixel_scale", positive=True)
        if abs(scale - PIXEL_SCALE) > 1e-12:
            raise f.fail("pixel_scale", f"{PIXEL_SCALE} (1/255)")
        mean = f.numbers("mean", 3)
        std = f.numbers("std", 3, positive=True)
        if any(abs(m) > MAX_ABS_MEAN for m in mean):
            raise f.fail("mean", f"values within ±{MAX_ABS_MEAN:g}")
        if any(not STD_RANGE[0] <= s <= STD_RANGE[1] for s in std):
            raise f.fail("std", f"values in [{STD_RANGE[0]:g}, {STD_RANGE[1]:g}]")
        tpl = f._get("five_point_template")
        if not (isinstance(tpl, list) and len(tpl) == 5 and all(
                isinstance(p, list) and len(p) == 2 and all(_finite(c) and abs(c) <= MAX_SIDE for c in p)
                for p in tpl)):
            raise f.fail("five_point_template", f"5 [x, y] pairs of numbers within ±{MAX_SIDE}")
        return cls(Normalization(mean=mean, std=std, color=color),
                   tuple((float(p[0]), float(p[1])) for p in tpl))


@dataclass(frozen=True)
class LayoutSpec:
    """Which landmark markup the model predicts (the ``layout`` section).

    The name must be a layout :mod:`facelm.layouts` knows, and the recorded flip
    permutation and five-point groups must be that layout's, so a model trained with
    another pairing is refused rather than silently mirrored wrong.
    """

    name: str
    num_points: int
    flip_permutation: tuple[int, ...]
    five_point_groups: tuple[tuple[int, ...], ...]

    @property
    def layout(self):
        """The :class:`facelm.layouts.Layout` object."""
        from facelm.layouts import get_layout

        return get_layout(self.name)

    @classmethod
    def of(cls, layout) -> "LayoutSpec":
        """The spec of a :class:`facelm.layouts.Layout`."""
        return cls(layout.name, int(layout.num_points), tuple(int(i) for i in layout.flip_permutation),
                   tuple(tuple(int(i) for i in g) for g in layout.five_point_groups))

    def to_dict(self) -> dict:
        return {"name": self.name, "num_points": self.num_points, "flip_permutation": list(self.flip_permutation),
                "five_point_groups": [list(g) for g in self.five_point_groups]}

    @classmethod
    def from_dict(cls, d: Any, where: str = "layout") -> "LayoutSpec":
        from facelm.errors import ConfigError
        from facelm.layouts import get_layout

        f = _Fields(d, where)
        name = f.str("name")
        try:
            known = cls.of(get_layout(name))
        except ConfigError as exc:
            raise ManifestError(f"manifest field {where}.name: {exc}") from None
        n = f.int("num_points", lo=1)
        perm = d.get("flip_permutation")
        groups = d.get("five_point_groups")
        if n != known.num_points or not isinstance(perm, list) or tuple(perm) != known.flip_permutation:
            raise ManifestError(f"manifest field {where}: num_points/flip_permutation do not match facelm's "
                                f"{known.name} layout")
        if not isinstance(groups, list) or tuple(tuple(g) if isinstance(g, list) else g for g in groups) \
                != known.five_point_groups:
            raise ManifestError(f"manifest field {where}.five_point_groups does not match facelm's {known.name} layout")
        return known


def _decode_from_dict(d: Any, where: str = "decode"):
    from facelm.codec import DecodeConfig
    from facelm.errors import ConfigError

    f = _Fields(d, where)
    try:
        return DecodeConfig(method=f.str("method"), blur_kernel=f.int("blur_kernel"))
    except ConfigError as exc:
        raise ManifestError(f"manifest field {where}: {exc}") from None


def decode_to_dict(cfg) -> dict:
    """The ``decode`` section: :meth:`facelm.codec.DecodeConfig.to_dict` (the heatmap layout belongs to each artifact)."""
    return cfg.to_dict()


@dataclass(frozen=True)
class ModelContract:
    """The four sections every artifact of a folder shares (also embedded in each ``.tflite``)."""

    model: ModelSpec
    preprocess: PreprocessSpec
    layout: LayoutSpec
    decode: Any  # facelm.codec.DecodeConfig

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "preprocess": self.preprocess.to_dict(),
                "layout": self.layout.to_dict(), "decode": decode_to_dict(self.decode)}

    @classmethod
    def build(cls, name: str, layout: str, input_size: int, heatmap_size: tuple[int, int] | int,
              normalization: Any = None, decode: Any = None, **model_fields: Any) -> "ModelContract":
        """A contract from declared facts, with facelm's template and stride derived from the sizes.

        Args:
            name: model name.
            layout: ``jd106`` | ``wflw98`` | ``ibug68`` (K follows from it).
            input_size: side of the square input crop, pixels.
            heatmap_size: (h, w) or a side, cells.
            normalization: :class:`facelm.preprocess.Normalization` (default: ImageNet RGB).
            decode: :class:`facelm.codec.DecodeConfig` (default: DARK, k=11).
            model_fields: other :class:`ModelSpec` fields (``source``, tensor names/layouts, weights).
        """
        from facelm.alignment import reference_template
        from facelm.codec import DecodeConfig
        from facelm.layouts import get_layout
        from facelm.preprocess import DEFAULT_NORMALIZATION

        lay = get_layout(layout)
        hh, hw = (heatmap_size, heatmap_size) if isinstance(heatmap_size, int) else tuple(heatmap_size)
        size = int(input_size)
        model = ModelSpec(name=name, num_keypoints=lay.num_points, input_size=(size, size), heatmap_size=(hh, hw),
                          stride=(size / hw, size / hh), **model_fields)
        template = tuple((float(x), float(y)) for x, y in reference_template(size))
        return cls(model, PreprocessSpec(normalization or DEFAULT_NORMALIZATION, template), LayoutSpec.of(lay),
                   decode or DecodeConfig())

    @classmethod
    def from_dict(cls, d: Any) -> "ModelContract":
        f = _Fields(d, "manifest")
        model = ModelSpec.from_dict(f.obj("model"))
        layout = LayoutSpec.from_dict(f.obj("layout"))
        if layout.num_points != model.num_keypoints:
            raise ManifestError(f"manifest: model.num_keypoints {model.num_keypoints} differs from the "
                                f"{layout.name} layout's {layout.num_points} points")
        return cls(model, PreprocessSpec.from_dict(f.obj("preprocess")), layout, _decode_from_dict(f.obj("decode")))


# --------------------------------------------------------------------------- artifacts
@dataclass
class ArtifactEntry:
    """One file of an output folder (see the module docstring for the fields)."""

    name: str
    file: str
    format: str
    precision: str
    weight_dtype: str
    io: str
    platform: str
    sha256: str
    bytes: int
    input: TensorSpec | None = None
    output: TensorSpec | None = None
    target: dict | None = None
    op_counts: dict[str, int] = field(default_factory=dict)
    max_tensor_rank: int | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    drift_vs_torch: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "file": self.file, "format": self.format, "precision": self.precision,
                "weight_dtype": self.weight_dtype, "io": self.io, "platform": self.platform,
                "sha256": self.sha256, "bytes": self.bytes, "target": self.target,
                "input": self.input.to_dict() if self.input else None,
                "output": self.output.to_dict() if self.output else None,
                "op_counts": dict(self.op_counts), "max_tensor_rank": self.max_tensor_rank,
                "parity": self.parity, "drift_vs_torch": self.drift_vs_torch, "checks": self.checks,
                "notes": self.notes}

    @classmethod
    def from_dict(cls, d: Any, where: str = "artifacts[?]") -> "ArtifactEntry":
        from facelm.artifacts import FORMATS, PLATFORMS, PRECISIONS

        f = _Fields(d, where)
        file = f.str("file")
        _check_relative(file, f"{where}.file")
        sha = f.str("sha256")
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            raise f.fail("sha256", "64 lowercase hex digits")
        target = d.get("target")
        if target is not None and not isinstance(target, dict):
            raise f.fail("target", "an object or null")
        rank = f.int("max_tensor_rank", lo=0, optional=True)
        ops = f.obj("op_counts", optional=True)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in ops.values()):
            raise f.fail("op_counts", "op name -> integer count")
        return cls(
            name=f.str("name"), file=file, format=f.str("format", FORMATS),
            precision=f.str("precision", PRECISIONS), weight_dtype=f.str("weight_dtype", ("float32", "float16", "int8")),
            io=f.str("io", ("float32", "int8")), platform=f.str("platform", PLATFORMS), sha256=sha,
            bytes=f.int("bytes", lo=0),
            input=TensorSpec.from_dict(d["input"], f"{where}.input") if f.has("input") else None,
            output=TensorSpec.from_dict(d["output"], f"{where}.output") if f.has("output") else None,
            target=target, op_counts=dict(ops), max_tensor_rank=rank, parity=dict(f.obj("parity", optional=True)),
            drift_vs_torch=dict(f.obj("drift_vs_torch", optional=True)),
            checks=dict(f.obj("checks", optional=True)), notes=str(d.get("notes") or ""))


def _check_relative(file: str, where: str) -> None:
    p = Path(file)
    if not file or p.is_absolute() or ".." in p.parts or "\\" in file or "\x00" in file:
        raise ManifestError(f"manifest field {where}: {file!r} points outside the artifact folder")


def artifact_entry_for(root: str | os.PathLike, name: str, file: str | None = None, fmt: str | None = None,
                       **kw: Any) -> ArtifactEntry:
    """Build an :class:`ArtifactEntry` for catalogue artifact ``name``, hashing ``root/file`` now.

    ``file`` and ``fmt`` default to the catalogue's; they may be one of its alternatives.
    """
    from facelm.artifacts import artifact_kind

    kind = artifact_kind(name)
    file = file or kind.file
    fmt = fmt or kind.format
    if (file, fmt) != (kind.file, kind.format) and (file, fmt) not in kind.alternatives:
        raise ManifestError(f"artifact {name!r} cannot be {file} ({fmt}); the catalogue says {kind.file} ({kind.format})")
    path = Path(root) / file
    return ArtifactEntry(name=name, file=file, format=fmt, precision=kind.precision, weight_dtype=kind.weight_dtype,
                         io=kind.io, platform=kind.platform, sha256=sha256_file(path), bytes=path.stat().st_size,
                         **kw)


# ---------------------------------------------------------------------------- manifest
_REQUIRED = ("schema_version", "facelm_version", "model", "preprocess", "layout", "decode", "tools", "artifacts")


@dataclass
class Manifest:
    """A parsed ``manifest.json``. ``root`` is the folder it lives in (not serialised)."""

    facelm_version: str
    contract: ModelContract
    tools: dict[str, Any]
    artifacts: list[ArtifactEntry] = field(default_factory=list)
    gates: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    created_utc: str = ""
    schema_version: int = SCHEMA_VERSION
    root: Path | None = None

    # -- the typed sections ------------------------------------------------------------
    @property
    def model(self) -> ModelSpec:
        return self.contract.model

    @property
    def preprocess(self) -> PreprocessSpec:
        return self.contract.preprocess

    @property
    def layout(self) -> LayoutSpec:
        return self.contract.layout

    @property
    def decode(self):
        """The :class:`facelm.codec.DecodeConfig`."""
        return self.contract.decode

    # -- access ------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Artifact names in manifest order."""
        return [a.name for a in self.artifacts]

    def artifact(self, name: str) -> ArtifactEntry:
        """The entry called ``name`` (e.g. ``"int8"``); :class:`ManifestError` if absent."""
        for a in self.artifacts:
            if a.name == name:
                return a
        raise ManifestError(f"no artifact {name!r} in the manifest; it has {self.names()}")

    def artifact_path(self, name: str, verify: bool = True) -> Path:
        """Absolute path of artifact ``name`` inside the folder, after checking its sha256 (unless ``verify=False``)."""
        if self.root is None:
            raise ManifestError("this manifest has no folder (root); load it with load_manifest")
        entry = self.artifact(name)
        path = resolve_inside(self.root, entry)
        if verify:
            verify_artifact(self.root, entry)
        return path

    def with_artifacts(self, artifacts: list[ArtifactEntry]) -> "Manifest":
        return replace(self, artifacts=list(artifacts))

    # -- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"schema_version": self.schema_version, "facelm_version": self.facelm_version,
                "created_utc": self.created_utc, **self.contract.to_dict(), "tools": self.tools,
                "artifacts": [a.to_dict() for a in self.artifacts], "gates": self.gates, "data": self.data}

    @classmethod
    def from_dict(cls, d: Any, root: str | os.PathLike | None = None) -> "Manifest":
        f = _Fields(d, "manifest")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise ManifestError(f"manifest lacks the fields {missing}")
        if d["schema_version"] != SCHEMA_VERSION:
            raise ManifestError(f"manifest schema_version {_short(d['schema_version'])} is not supported "
                                f"(this facelm reads {SCHEMA_VERSION}; convert the model again)")
        arts = d["artifacts"]
        if not isinstance(arts, list):
            raise f.fail("artifacts", "a list of artifact objects")
        entries = [ArtifactEntry.from_dict(a, f"artifacts[{i}]") for i, a in enumerate(arts)]
        seen: set[str] = set()
        for e in entries:
            if e.name in seen:
                raise ManifestError(f"manifest lists artifact {e.name!r} twice")
            seen.add(e.name)
        return cls(facelm_version=f.str("facelm_version"), contract=ModelContract.from_dict(d),
                   tools=dict(f.obj("tools")), artifacts=entries, gates=dict(f.obj("gates", optional=True)),
                   data=_data_section(d.get("data")),
                   created_utc=str(d.get("created_utc") or ""), schema_version=SCHEMA_VERSION,
                   root=Path(root) if root is not None else None)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def _data_section(d: Any) -> dict[str, Any]:
    """The optional ``data`` section: ``{"calibration"|"evaluation": {"source": str, "count": int}}``."""
    if d is None:
        return {}
    f = _Fields(d, "data")
    for key in d:
        if key not in ("calibration", "evaluation"):
            raise ManifestError(f"manifest field data.{key}: unknown (expected calibration, evaluation)")
        g = _Fields(d[key], f"data.{key}")
        g.str("source")
        g.int("count", lo=0)
    return dict(f.d)


def resolve_inside(root: str | os.PathLike, entry: ArtifactEntry) -> Path:
    """``root/entry.file`` with symlinks resolved; :class:`ManifestError` if it leaves ``root``."""
    _check_relative(entry.file, f"artifact {entry.name!r} file")
    base = Path(root).resolve()
    path = (base / entry.file).resolve()
    if not path.is_relative_to(base):
        raise ManifestError(f"artifact {entry.name!r}: {entry.file} resolves outside its folder {base}")
    return path


def verify_artifact(root: str | os.PathLike, entry: ArtifactEntry) -> None:
    """Check that ``root/entry.file`` exists inside ``root`` with the recorded size and sha256.

    The size is checked first, so a huge substituted file is refused without hashing it.

    Raises:
        ManifestError: outside the folder, missing, wrong size or wrong hash.
    """
    path = resolve_inside(root, entry)
    if not path.is_file():
        raise ManifestError(f"artifact {entry.name!r}: file {path} is missing")
    size = path.stat().st_size
    if size != entry.bytes:
        raise ManifestError(f"artifact {entry.name!r}: {path} has {size} bytes, the manifest records {entry.bytes}")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise ManifestError(f"artifact {entry.name!r}: sha256 of {path} is {digest}, the manifest records "
                            f"{entry.sha256}; the file was modified after conversion")


def verify_manifest(manifest: Manifest, names: Iterable[str] | None = None) -> None:
    """Verify the hashes of ``names`` (default: every artifact) of a loaded manifest."""
    if manifest.root is None:
        raise ManifestError("this manifest has no folder (root); load it with load_manifest")
    for name in (list(names) if names is not None else manifest.names()):
        verify_artifact(manifest.root, manifest.artifact(name))


#: Deepest JSON nesting a manifest (or embedded metadata) may have; real ones have about 5.
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(r'"(?:\\.|[^"\\])*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """Deepest bracket nesting of JSON ``text`` (strings ignored), without parsing it.

    ``json.loads`` recurses in C: a deeply nested document overflows the C stack (a crash, not
    a ``RecursionError``) once a library has raised the recursion limit, so depth is checked first.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = best = 0
    for c in brackets:
        depth += 1 if c in "[{" else -1
        best = max(best, depth)
    return best


def parse_manifest_text(text: str | bytes, where: str) -> Any:
    """JSON text -> Python objects; :class:`ManifestError` for bad, huge or absurdly nested JSON."""
    if len(text) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where} is {len(text)} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if json_depth(text) > MAX_JSON_DEPTH:
            raise ManifestError(f"{where} is nested too deeply to be a manifest (over {MAX_JSON_DEPTH} levels)")
        return json.loads(text)
    except RecursionError:
        raise ManifestError(f"{where} is nested too deeply to be a manifest") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{where} is not valid JSON: {exc}") from None


def load_manifest(path: str | os.PathLike, verify: bool = True) -> Manifest:
    """Read ``manifest.json`` (``path`` is the file or its folder) into typed sections.

    Args:
        path: the manifest file, or the folder that holds ``manifest.json``.
        verify: check every artifact's size and sha256 now.
    Raises:
        ManifestError: missing/malformed manifest (naming the field), unsupported schema,
            an artifact outside its folder, or a hash mismatch.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise ManifestError(f"no manifest at {p}")
    try:
        if p.stat().st_size > MAX_MANIFEST_BYTES:
            raise ManifestError(f"{p} is {p.stat().st_size} bytes; a manifest is at most {MAX_MANIFEST_BYTES}")
        raw = p.read_bytes()
    except OSError as exc:
        raise ManifestError(f"cannot read manifest {p}: {exc}") from None
    manifest = Manifest.from_dict(parse_manifest_text(raw, str(p)), root=p.parent)
    if verify:
        verify_manifest(manifest)
    return manifest


def write_manifest(manifest: Manifest, folder: str | os.PathLike) -> Path:
    """Write ``folder/manifest.json`` atomically (temp file + rename). Returns its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MANIFEST_NAME
    atomic_write_text(target, manifest.to_json() + "\n")
    manifest.root = folder
    return target
