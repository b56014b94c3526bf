"""``manifest.json``: everything a runtime needs to use a converted artifact folder.

``facelm convert`` writes one manifest per output folder; :func:`load_manifest` reads it
and, by default, checks the sha256 of every artifact before anything is used. Readers in
other modules (``android_bench``, :class:`sdk.runtime.Landmarker`) must go through
:func:`load_manifest` / :meth:`Manifest.artifact_path` so that a tampered or truncated file
is never run.

Schema (``schema_version`` 1). All paths are relative to the folder holding the manifest;
coordinates are pixels, ``(x, y)``::

    {
      "schema_version": 1,
      "facelm_version": "0.1.0",
      "created_utc": "2025-01-01T00:00:00Z",
      "model": {
        "name": "tiny",                     # config name (or "custom")
        "config": {...},                    # sdk.model.ModelConfig.to_dict()
        "weights_file": "demo_synth.pt",    # basename of the checkpoint converted
        "weights_sha256": "…",
        "num_keypoints": 106,               # K
        "input_size": [H, W],               # model input, pixels
        "heatmap_size": [h, w],             # heatmap grid, cells
        "stride": 2.0                       # input pixels per heatmap cell
      },
      "preprocess": {                       # sdk.preprocess.Normalization + alignment
        "color": "RGB",                     # channel order the model expects
        "pixel_scale": 0.00392156862745098, # x01 = uint8 * pixel_scale
        "mean": [m_r, m_g, m_b],            # applied to x01: x = (x01 - mean) / std
        "std": [s_r, s_g, s_b],
        "five_point_template": [[x, y] * 5],# reference points in the H x W input crop
        "alignment": "similarity (umeyama) from five points to five_point_template"
      },
      "layout": {
        "name": "jd106", "num_points": 106,
        "flip_permutation": [...],          # K ints, mirrored[k] = flipped[perm[k]]
        "five_point_groups": [[104], ...]   # each alignment point = mean of its group
      },
      "decode": {"method": "dark", "blur_kernel": 11, "layout": "nhwc"},
                                            # sdk.codec.DecodeConfig fields; "layout" is the
                                            # TFLite one, each artifact's output.layout rules
      "tools": {"torch": "2.13.0", "onnx": "…", "onnx2tf": "…", "tensorflow": "…", "tvm": "…"},
      "artifacts": [                        # one entry per file, see ArtifactEntry
        {
          "name": "int8_io",                # fp32 | fp16 | dynamic_int8 | int8 | int8_io |
                                            # int16x8 | onnx | tvm_host | tvm_android
          "file": "int8_io.tflite",
          "format": "tflite",               # tflite | onnx | tvm_so | tvm_tar
          "sha256": "…", "bytes": 123,
          "target": null,                   # TVM target dict, else null
          "input":  {"name": "input", "shape": [1, H, W, 3], "layout": "NHWC",
                     "dtype": "int8", "quantization": {"scale": 0.0186, "zero_point": -14}},
          "output": {"name": "…", "shape": [1, h, w, K], "layout": "NHWC",
                     "dtype": "int8", "quantization": {"scale": 0.001, "zero_point": -119}},
          "op_counts": {"CONV_2D": 20, ...},# per builtin op (TFLite) or per kernel (TVM)
          "max_tensor_rank": 4,
          "parity": {"max_abs": 1e-7} ,     # vs torch fp32 heatmaps (float artifacts)
          "drift": {...},                   # quantization.drift.DriftReport.to_dict()
          "notes": ""
        }
      ],
      "gates": {"passed": true, "failures": [], ...}
    }

``quantization`` is ``null`` for float tensors; for integer tensors
``real = scale * (q - zero_point)``.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from sdk.errors import InputError
from sdk.fileio import atomic_write_text, sha256_file

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"


class ManifestError(InputError):
    """A manifest is missing, malformed, or an artifact does not match its recorded hash."""



@dataclass
class Quantization:
    """Affine quantization of one tensor: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def to_dict(self) -> dict:
        return {"scale": float(self.scale), "zero_point": int(self.zero_point)}


@dataclass
class TensorSpec:
    """One input or output tensor of an artifact.

    Attributes:
        name: tensor name inside the artifact.
        shape: e.g. ``[1, H, W, 3]``.
        layout: ``"NHWC"`` or ``"NCHW"``.
        dtype: numpy dtype name (``"float32"``, ``"int8"``, ``"int16"``).
        quantization: set for integer tensors, else ``None``.
    """

    name: str
    shape: list[int]
    layout: str
    dtype: str
    quantization: Quantization | None = None

    def to_dict(self) -> dict:
        d = {"name": self.name, "shape": [int(s) for s in self.shape], "layout": self.layout,
             "dtype": self.dtype}
        d["quantization"] = self.quantization.to_dict() if self.quantization else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        q = d.get("quantization")
        try:
            return cls(name=str(d["name"]), shape=[int(s) for s in d["shape"]],
                       layout=str(d["layout"]), dtype=str(d["dtype"]),
                       quantization=Quantization(float(q["scale"]), int(q["zero_point"])) if q else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"malformed tensor spec {d!r}: {exc}") from exc


@dataclass
class ArtifactEntry:
    """One file of an output folder (see the module docstring for the fields)."""

    name: str
    file: str
    format: str
    sha256: str
    bytes: int
    input: TensorSpec | None = None
    output: TensorSpec | None = None
    target: dict | None = None
    op_counts: dict[str, int] = field(default_factory=dict)
    max_tensor_rank: int | None = None
    parity: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["input"] = self.input.to_dict() if self.input else None
        d["output"] = self.output.to_dict() if self.output else None
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ArtifactEntry":
        try:
            return cls(
                name=str(d["name"]), file=str(d["file"]), format=str(d["format"]),
                sha256=str(d["sha256"]), bytes=int(d["bytes"]),
                input=TensorSpec.from_dict(d["input"]) if d.get("input") else None,
                output=TensorSpec.from_dict(d["output"]) if d.get("output") else None,
                target=d.get("target"), op_counts=dict(d.get("op_counts") or {}),
                max_tensor_rank=d.get("max_tensor_rank"), parity=dict(d.get("parity") or {}),
                drift=dict(d.get("drift") or {}), notes=str(d.get("notes") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(f"malformed artifact entry {d.get('name', d)!r}: {exc}") from exc


def artifact_entry_for(root: str | os.PathLike, name: str, file: str, fmt: str, **kw: Any) -> ArtifactEntry:
    """Build an :class:`ArtifactEntry` for ``root/file``, hashing and sizing it now."""
    path = Path(root) / file
    return ArtifactEntry(name=name, file=file, format=fmt, sha256=sha256_file(path),
                         bytes=path.stat().st_size, **kw)


_REQUIRED = ("schema_version", "facelm_version", "model", "preprocess", "layout", "decode",
             "tools", "artifacts")


@dataclass
class Manifest:
    """A parsed ``manifest.json``. ``root`` is the folder it lives in (not serialised)."""

    facelm_version: str
    model: dict[str, Any]
    preprocess: dict[str, Any]
    layout: dict[str, Any]
    decode: dict[str, Any]
    tools: dict[str, str]
    artifacts: list[ArtifactEntry] = field(default_factory=list)
    gates: dict[str, Any] = field(default_factory=dict)
    created_utc: str = ""
    schema_version: int = SCHEMA_VERSION
    root: Path | None = None

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
        """Absolute path of artifact ``name``, after checking its sha256 (unless ``verify=False``)."""
        if self.root is None:
            raise ManifestError("this manifest has no folder (root); load it with load_manifest")
        entry = self.artifact(name)
        path = self.root / entry.file
        if verify:
            verify_artifact(self.root, entry)
        return path

    # -- (de)serialisation -------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "facelm_version": self.facelm_version,
            "created_utc": self.created_utc,
            "model": self.model,
            "preprocess": self.preprocess,
            "layout": self.layout,
            "decode": self.decode,
            "tools": self.tools,
            "artifacts": [a.to_dict() for a in self.artifacts],
            "gates": self.gates,
        }

    @classmethod
    def from_dict(cls, d: dict, root: str | os.PathLike | None = None) -> "Manifest":
        if not isinstance(d, dict):
            raise ManifestError("a manifest must be a JSON object")
        missing = [k for k in _REQUIRED if k not in d]
        if missing:
            raise ManifestError(f"manifest lacks the fields {missing}")
        if d["schema_version"] != SCHEMA_VERSION:
            raise ManifestError(
                f"manifest schema_version {d['schema_version']!r} is not supported "
                f"(this facelm reads {SCHEMA_VERSION})")
        return cls(
            facelm_version=str(d["facelm_version"]), model=dict(d["model"]),
            preprocess=dict(d["preprocess"]), layout=dict(d["layout"]), decode=dict(d["decode"]),
            tools=dict(d["tools"]), artifacts=[ArtifactEntry.from_dict(a) for a in d["artifacts"]],
            gates=dict(d.get("gates") or {}), created_utc=str(d.get("created_utc", "")),
            schema_version=int(d["schema_version"]), root=Path(root) if root is not None else None,
        )

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False)


def verify_artifact(root: str | os.PathLike, entry: ArtifactEntry) -> None:
    """Check that ``root/entry.file`` exists and has the recorded size and sha256.

    Raises:
        ManifestError: missing file, wrong size or wrong hash (tampered or truncated).
    """
    path = Path(root) / entry.file
    if Path(entry.file).is_absolute() or ".." in Path(entry.file).parts:
        raise ManifestError(f"artifact {entry.name!r} points outside its folder: {entry.file!r}")
    if not path.is_file():
        raise ManifestError(f"artifact {entry.name!r}: file {path} is missing")
    size = path.stat().st_size
    if size != entry.bytes:
        raise ManifestError(
            f"artifact {entry.name!r}: {path} has {size} bytes, the manifest records {entry.bytes}")
    digest = sha256_file(path)
    if digest != entry.sha256:
        raise ManifestError(
            f"artifact {entry.name!r}: sha256 of {path} is {digest}, the manifest records "
            f"{entry.sha256}; the file was modified after conversion")


def verify_manifest(manifest: Manifest, names: Iterable[str] | None = None) -> None:
    """Verify the hashes of ``names`` (default: every artifact) of a loaded manifest."""
    if manifest.root is None:
        raise ManifestError("this manifest has no folder (root); load it with load_manifest")
    wanted = list(names) if names is not None else manifest.names()
    for name in wanted:
        verify_artifact(manifest.root, manifest.artifact(name))


def load_manifest(path: str | os.PathLike, verify: bool = True) -> Manifest:
    """Read ``manifest.json`` (``path`` is the file or its folder).

    Args:
        path: the manifest file, or the folder that holds ``manifest.json``.
        verify: check every artifact's size and sha256 now.
    Raises:
        ManifestError: missing/malformed manifest, unsupported schema, or a hash mismatch.
    """
    p = Path(path)
    if p.is_dir():
        p = p / MANIFEST_NAME
    if not p.is_file():
        raise ManifestError(f"no manifest at {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"cannot read manifest {p}: {exc}") from exc
    manifest = Manifest.from_dict(data, root=p.parent)
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
