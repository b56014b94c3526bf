"""The conversion chain as typed Python functions: checkpoint -> ONNX -> TFLite / TVM, verified.

``convert(ConvertConfig(...))`` runs every stage, writes ``manifest.json`` and ``report.md``
into a temporary sibling of the output folder and renames it into place at the end. The
CLI (``facelm convert``) is a thin shell over it; :class:`ConvertConfig` gives both their
defaults.

Stages: load weights -> calibration/evaluation faces -> fp32 reference -> ONNX (+
onnxruntime parity) -> TFLite variants via onnx2tf (+ metadata, op counts) -> TVM host /
Android -> drift of every artifact -> latency -> gates -> manifest + report -> rename.

The stage functions are :mod:`facelm.converters.stages` (and :mod:`facelm.converters.arm64_check`);
they share one :class:`facelm.converters.state.StageState`. This module decides which run, in
which order, with onnx2tf working in the background.

A zoo checkpoint's reference is the torch model. A brought model (``model=``, see
:mod:`facelm.converters.sources`) is a ``.pt2`` / factory (reference: torch) or an ONNX file
(reference: onnxruntime running that file; the manifest's ``drift_vs_torch`` entries then
say ``reference: onnxruntime_fp32``).
"""
from __future__ import annotations

import logging
import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from facelm import __version__
from facelm.artifacts import CATALOGUE, artifact_kind
from facelm.converters.config import DEFAULT_TARGETS, TARGETS, TVM_INT8_DRIFT_RATIO, ConvertConfig
from facelm.converters.stages.mixed import mixed_stage
from facelm.converters.stages.onnx import onnx_stage
from facelm.converters.stages.publish import measure_pending_latencies, publish_manifest
from facelm.converters.stages.tflite import start_tflite, tflite_entries, wanted_variants
from facelm.converters.stages.tvm import tvm_android_stage, tvm_host_stage, tvm_int8_stage
from facelm.converters.state import LoadedModel, PreparedInputs, Reference, StageState
from facelm.errors import ConfigError, InputError
from facelm.fileio import sha256_file
from facelm.postprocess import output_to_landmarks
from facelm.runtime.manifest import (ArtifactEntry, LayoutSpec, Manifest, ModelContract, ModelSpec, PreprocessSpec,
                                     TensorSpec)

log = logging.getLogger("facelm.convert")

__all__ = ["DEFAULT_TARGETS", "TARGETS", "TVM_INT8_DRIFT_RATIO", "ConvertConfig", "ConvertResult", "LoadedModel",
           "convert", "load_model", "model_contract", "prepare_inputs", "prepare_state", "tool_versions",
           "wanted_variants"]

_CATALOGUE_ORDER = {k.name: i for i, k in enumerate(CATALOGUE)}


@dataclass
class ConvertResult:
    """What :func:`convert` produced."""

    out: Path
    manifest: Manifest
    gate_failures: list[str]
    timings: dict[str, float]
    warnings: list[str]

    @property
    def passed(self) -> bool:
        return not self.gate_failures


# ---------------------------------------------------------------------------- stages
class _Stages:
    """Logs each stage with its wall time; keeps the timings for the report."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.timings = total, 0, {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self.n += 1
        log.info("[%d/%d] %s ...", self.n, self.total, name)
        t0 = time.perf_counter()
        yield
        dt = time.perf_counter() - t0
        self.timings[name] = dt
        log.info("[%d/%d] %s done in %.1f s", self.n, self.total, name, dt)


def load_model(cfg: ConvertConfig) -> LoadedModel:
    """Resolve weights and config (see :class:`ConvertConfig`). Never falls back to random weights."""
    from facelm.model import build_model, load_checkpoint, load_config

    if cfg.model is not None:
        from facelm.converters.sources import DeclaredContract, load_source

        declared = DeclaredContract.from_mapping(dict(cfg.contract or {}))
        b = load_source(cfg.model, declared, cfg.weights)
        return LoadedModel(b.module, None, b.weights_file, b.weights_sha256, brought=b)
    if cfg.random_init:
        import torch

        torch.manual_seed(0)
        mcfg = load_config(cfg.config)
        return LoadedModel(build_model(mcfg).eval(), mcfg, "random-init (torch seed 0)", None)
    if cfg.weights is None:
        from facelm.assets import demo_checkpoint

        path = demo_checkpoint()  # FacelmError with a clear message when it is missing
    else:
        path = Path(cfg.weights)
        if not path.exists():
            raise InputError(f"weights file {path} does not exist")
    model, mcfg, _extra = load_checkpoint(path)  # says what a directory, device or foreign file is
    if cfg.config is not None:
        wanted = load_config(cfg.config)
        skip = {"name", "description"}
        diff = {k: (v, getattr(mcfg, k)) for k, v in wanted.to_dict().items()
                if k not in skip and getattr(mcfg, k) != v}
        if diff:
            details = ", ".join(f"{k}: config {a!r} vs weights {b!r}" for k, (a, b) in diff.items())
            raise ConfigError(f"weights {path} do not match config {cfg.config!r} ({details})")
    return LoadedModel(model.eval(), mcfg, Path(path).name, sha256_file(path))


def tool_versions() -> dict[str, str | None]:
    """Versions of the conversion toolchain (None for a tool that is not installed)."""
    from importlib import metadata

    out: dict[str, str | None] = {"facelm": __version__}
    for key, dist in (("torch", "torch"), ("onnx", "onnx"), ("onnxruntime", "onnxruntime"),
                      ("onnx2tf", "onnx2tf"), ("tensorflow", "tensorflow"), ("ai_edge_litert", "ai-edge-litert"),
                      ("tvm", "apache-tvm")):
        try:
            out[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[key] = None
    return out


def convert(cfg: ConvertConfig) -> ConvertResult:
    """Run the whole chain; see the module docstring.

    Returns:
        :class:`ConvertResult` (``gate_failures`` empty when every gate passed; the CLI turns a
        failure into exit code 1 — the folder and report are written either way).
    Raises:
        FacelmError subclasses for user-caused problems (bad weights/config, existing output
        folder, unconvertible op, missing TVM, ...). The output folder is left untouched.
    """
    from facelm.fileio import atomic_dir

    cfg.validate()
    out = Path(cfg.out)
    with atomic_dir(out, cfg.force) as tmp:
        result = _convert_into(cfg, tmp, out)
    result.manifest.root = out
    return result


@dataclass(frozen=True)
class _Plan:
    """Which stage groups a conversion runs (from its targets and flags)."""

    tflite: bool
    tvm: bool
    tvm_int8: bool
    arm64: bool

    @classmethod
    def of(cls, cfg: ConvertConfig) -> "_Plan":
        return cls("tflite" in cfg.targets, "tvm" in cfg.targets, "tvm_int8" in cfg.targets, cfg.arm64_check)

    @property
    def stage_count(self) -> int:
        """Stages the log numbers ([i/n])."""
        return 4 + 2 * self.tflite + 2 * self.tvm + self.tvm_int8 + self.arm64 * (1 + self.tvm)


def _convert_into(cfg: ConvertConfig, tmp: Path, out: Path) -> ConvertResult:
    """Every stage, in order, into the temp folder ``tmp`` (renamed to ``out`` by :func:`convert`)."""
    plan = _Plan.of(cfg)
    stages = _Stages(plan.stage_count)
    with stages.stage("load weights" if cfg.model is None else f"load {cfg.model}"):
        lm = _load_checked(cfg, plan)
    source = "torch" if lm.model is not None else "the source ONNX"
    with stages.stage(f"calibration ({cfg.num_calib}) and evaluation ({cfg.num_eval}) faces from {cfg.calib}"
                      f" + ONNX from {source}"):
        prep = prepare_inputs(cfg, tmp, lm)
    state, entries = _artifact_stages(cfg, plan, stages, prep, lm, tmp)
    entries.sort(key=lambda e: _CATALOGUE_ORDER.get(e.name, 99))
    if plan.arm64:
        from facelm.converters.arm64_check import arm64_check_stage

        with stages.stage("arm64 (emulated, qemu-user): TFLite and tvm_linux_arm64 on aarch64"):
            entries = arm64_check_stage(state, entries)
    with stages.stage("gates, deferred latencies, manifest and report"):
        measure_pending_latencies(state)
        manifest, failures = publish_manifest(state, entries, stages.timings)
    for f in failures:
        log.error("GATE FAILED: %s", f)
    return ConvertResult(out=out, manifest=manifest, gate_failures=failures, timings=stages.timings,
                         warnings=state.rec.warnings)


def _load_checked(cfg: ConvertConfig, plan: _Plan) -> LoadedModel:
    """:func:`load_model`, then fail before any long work when TVM, or (``--arm64-check``) qemu, the
    cross compilers or the aarch64 root are missing."""
    lm = load_model(cfg)
    if plan.tvm or plan.tvm_int8:
        from facelm.runtime.tvm import import_tvm

        import_tvm()
    if plan.arm64:
        from facelm.converters.arm64_check import require_root

        require_root()
    return lm


def _artifact_stages(cfg: ConvertConfig, plan: _Plan, stages: _Stages, prep: PreparedInputs, lm: LoadedModel,
                     tmp: Path) -> tuple[StageState, list[ArtifactEntry]]:
    """Every artifact's stage: onnx2tf starts in its own process first; the reference, ONNX and
    TVM stages run meanwhile; the TFLite variants are taken as onnx2tf writes them."""
    entries: list[ArtifactEntry] = []
    with tempfile.TemporaryDirectory(prefix="facelm-onnx2tf-") as work:
        job = None
        # onnx2tf runs in its own process from here on, while this one does the rest: each gets half
        # the cores (on 2 cores, oversubscribed thread pools made both slower than running in turn)
        share = max(1, (os.cpu_count() or 2) // 2)
        if plan.tflite:
            with stages.stage("start onnx2tf (background)"):
                job = start_tflite(cfg, prep, Path(work), threads=share)
        threads_before = _set_torch_threads(share if job is not None else None)
        try:
            with stages.stage(f"{lm.reference_name} fp32 reference" + (" + onnxruntime parity" if lm.model is not None else "")):
                state = prepare_state(cfg, tmp, lm, prep)
                entries += onnx_stage(state, prep.onnx_path)
            if plan.tvm:
                entries += _tvm_stages(state, stages, prep.onnx_path, entries)
            if job is not None:
                entries += _tflite_stages(state, plan, stages, job)
        finally:
            _set_torch_threads(threads_before)
            if job is not None:
                job.kill()
    return state, entries


def _tvm_stages(state: StageState, stages: _Stages, onnx_path: Path, before: list[ArtifactEntry]) -> list[ArtifactEntry]:
    """TVM host and Android from ``model.onnx`` (+ ``tvm_linux_arm64`` with ``--arm64-check``)."""
    cfg = state.cfg
    new: list[ArtifactEntry] = []
    how = (f"{cfg.tvm_trials} trials" if cfg.tvm_trials else f"database {cfg.tvm_tuning_db}" if cfg.tvm_tuning_db
           else "a shipped tuning database where one matches, else untuned")
    with stages.stage(f"ONNX -> TVM host ({how}) + drift"):
        new += tvm_host_stage(state, onnx_path)
    with stages.stage("ONNX -> TVM Android arm64"):
        new += tvm_android_stage(state, onnx_path)
    if cfg.arm64_check:
        from facelm.converters.arm64_check import tvm_linux_arm64_stage

        with stages.stage("TVM linux-arm64 (the Android objects linked with aarch64-linux-gnu-g++)"):
            new += tvm_linux_arm64_stage(state, before + new)
    return new


def _tflite_stages(state: StageState, plan: _Plan, stages: _Stages, job) -> list[ArtifactEntry]:
    """The TFLite variants as onnx2tf writes them (+ ``int8_mixed``), then ``tvm_int8`` from ``int8.tflite``."""
    cfg = state.cfg
    new: list[ArtifactEntry] = []
    with stages.stage(f"TFLite variants as onnx2tf ({cfg.quant_type}) writes them: metadata, op counts, "
                      "drift"):
        new += tflite_entries(state, job)
        stages.timings["onnx2tf (background, total)"] = float(job.elapsed_s or 0.0)
        if cfg.keep_float:
            new += mixed_stage(state)
    if plan.tvm_int8:
        with stages.stage("int8.tflite -> TVM int8 host + Android arm64 (relax TFLite frontend) + drift"):
            new += tvm_int8_stage(state)
    return new


def prepare_inputs(cfg: ConvertConfig, tmp: Path, lm: LoadedModel) -> PreparedInputs:
    """Contract, calibration/evaluation faces and ``model.onnx`` (exported, or the normalised source)."""
    from facelm.converters import onnx_export as ox
    from facelm.quantization.calibration import build_sets

    contract = model_contract(lm)
    calib, evals = build_sets(cfg.calib, contract.model.input_side, contract.layout.layout, cfg.num_calib,
                              cfg.num_eval, synthetic_any_layout=lm.brought is not None)
    path = tmp / artifact_kind("onnx").file
    if lm.brought is not None:
        lm.brought.write_onnx(path)
    else:
        ox.export_onnx(lm.model, path, contract.model.input_side)
    return PreparedInputs(contract, calib, evals, path)


def prepare_state(cfg: ConvertConfig, tmp: Path, lm: LoadedModel, prep: PreparedInputs) -> StageState:
    """The stages' shared state: the fp32 reference on the evaluation faces (heatmaps, landmarks);
    the torch reference's latency is measured at the end."""
    from facelm.converters import onnx_export as ox

    contract, evals = prep.contract, prep.evals
    x = evals.inputs(contract.preprocess.normalization)
    hm = lm.reference(x)
    spec = TensorSpec(ox.OUTPUT_NAME, (1,) + tuple(hm.shape[1:]), "NCHW", "float32")
    lms = output_to_landmarks(hm, spec, contract.model, contract.decode).crop
    state = StageState(cfg=cfg, tmp=tmp, lm=lm, contract=contract, tools=tool_versions(), calib=prep.calib,
                       evals=evals, ref=Reference(lm.reference_name, x, hm, lms, evals.landmarks))
    if lm.model is not None:  # an ONNX source: its onnxruntime reference is the ONNX artifact itself
        state.rec.pending_latency["torch"] = (_single_thread_torch(lm.model), x[:1], cfg.latency_runs)
    return state


def _single_thread_torch(model):
    """``fn(x)`` running ``model`` on one thread (the report's latencies are all single-thread)."""
    import torch

    def torch_once(a: np.ndarray) -> None:
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                model(torch.from_numpy(a))
        finally:
            torch.set_num_threads(prev)

    return torch_once


def model_contract(lm: LoadedModel) -> ModelContract:
    """The manifest sections shared by every artifact (also embedded in each ``.tflite``)."""
    from facelm.alignment import reference_template
    from facelm.codec import DecodeConfig
    from facelm.converters import onnx_export as ox
    from facelm.layouts import get_layout
    from facelm.preprocess import DEFAULT_NORMALIZATION

    if lm.brought is not None:
        b, d = lm.brought, lm.brought.declared
        return ModelContract.build(
            b.name, d.layout, d.input_size, b.heatmap_size, normalization=d.normalization(),
            decode=d.decode_config(), input_name=ox.INPUT_NAME, input_layout="NCHW", output_name=ox.OUTPUT_NAME,
            output_layout="NCHW", source=b.kind, config={"declared": d.to_dict(), "reference": b.reference_name},
            weights_file=b.weights_file, weights_sha256=b.weights_sha256)
    mcfg = lm.cfg
    size, hm = int(mcfg.input_size), int(mcfg.heatmap_size)
    model = ModelSpec(
        name=mcfg.name, num_keypoints=int(mcfg.num_keypoints), input_size=(size, size), heatmap_size=(hm, hm),
        stride=(size / hm, size / hm), input_name=ox.INPUT_NAME, input_layout="NCHW",
        output_name=ox.OUTPUT_NAME, output_layout="NCHW", source="zoo", config=mcfg.to_dict(),
        weights_file=lm.weights_file, weights_sha256=lm.weights_sha256)
    preprocess = PreprocessSpec(DEFAULT_NORMALIZATION,
                                tuple(map(tuple, np.asarray(reference_template(size)).tolist())))
    return ModelContract(model, preprocess, LayoutSpec.of(get_layout(mcfg.layout)), DecodeConfig())


def _set_torch_threads(n: int | None) -> int | None:
    """Set torch's intra-op threads to ``n`` (None: leave them); returns the previous count."""
    if n is None:
        return None
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    return prev
