"""The conversion chain as typed Python functions: checkpoint -> ONNX -> TFLite / TVM, verified.

``convert(ConvertConfig(...))`` runs every stage, writes ``manifest.json`` and ``report.md``
into a temporary sibling of the output folder and renames it into place at the end. The
CLI (``facelm convert``) is a thin shell over it; :class:`ConvertConfig` gives both their
defaults.

Stages: load weights -> calibration/evaluation faces -> fp32 reference -> ONNX (+
onnxruntime parity) -> TFLite variants via onnx2tf (+ metadata, op counts) -> TVM host /
Android -> drift of every artifact -> latency -> gates -> manifest + report -> rename.

A zoo checkpoint's reference is the torch model. A brought model (``model=``, see
:mod:`facelm.converters.sources`) is a ``.pt2`` / factory (reference: torch) or an ONNX file
(reference: onnxruntime running that file; the manifest's ``drift_vs_torch`` entries then
say ``reference: onnxruntime_fp32``).
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from facelm import __version__
from facelm.errors import ConfigError, ConversionError, InputError
from facelm.artifacts import CATALOGUE, artifact_kind
from facelm.fileio import sha256_file
from facelm.postprocess import output_to_landmarks
from facelm.runtime.manifest import (ArtifactEntry, LayoutSpec, Manifest, ModelContract, ModelSpec, PreprocessSpec,
                                     TensorSpec, artifact_entry_for, write_manifest)

from facelm.quantization.drift import GateConfig
from facelm.quantization.mixed import DEFAULT_DRIFT_TARGET

log = logging.getLogger("facelm.convert")

TARGETS = ("tflite", "tvm", "tvm_int8")
#: targets a plain ``facelm convert`` produces (``tvm_int8`` is asked for by name)
DEFAULT_TARGETS = ("tflite", "tvm")
#: tvm_int8's landmark drift vs the fp32 reference may be at most this multiple of int8 TFLite's
TVM_INT8_DRIFT_RATIO = 1.5
_CATALOGUE_ORDER = {k.name: i for i, k in enumerate(CATALOGUE)}


@dataclass
class ConvertConfig:
    """Everything ``facelm convert`` can be told. Defaults = ``make demo``.

    Attributes:
        config: model config name/path; ``None`` = the checkpoint's own config. When given
            with a checkpoint, they must agree (else :class:`ConfigError`).
        weights: checkpoint path; ``None`` = the shipped demo checkpoint.
        random_init: convert freshly initialised weights of ``config`` (explicit opt-in,
            for benchmarks of architectures without trained weights).
        out: output folder.
        calib: ``"synthetic"`` or a folder of annotated faces (JD format or sidecar files).
        targets: subset of :data:`TARGETS` (catalogue ``target_group`` values).
        force: replace an existing output folder.
        quant_type: ``"per-channel"`` (default) or ``"per-tensor"`` int8 weights.
        int16x8: also ship ``int16x8.tflite`` (int8 weights, int16 activations).
        num_calib, num_eval: calibration and evaluation faces (disjoint).
        tvm_trials: MetaSchedule budget for the host library; 0 = untuned.
        gates: parity and int8-drift bounds.
        latency_runs: timed runs per artifact for the report's host latency (median).
        model: a brought model instead of a zoo checkpoint: ``.onnx``, ``.pt2`` or
            ``package.module:function`` (with ``weights``); see :mod:`facelm.converters.sources`.
        contract: the brought model's declared contract (a mapping of
            :data:`facelm.converters.sources.CONTRACT_KEYS`); required with ``model``.
        variants: TFLite artifacts to write (catalogue names); ``None`` = every non-optional
            one (plus ``int16x8`` when ``int16x8``).
        tvm_eval_faces: evaluation faces run through the *untuned* TVM host module (it is
            slow; parity is still gated on them). Tuned modules run every evaluation face.
        tvm_tuning_db: a MetaSchedule database folder: with ``tvm_trials`` 0 its records are
            applied without tuning; with trials, tuning continues it (and it is kept).
    """

    config: str | None = None
    weights: str | None = None
    random_init: bool = False
    out: str = "artifacts"
    calib: str = "synthetic"
    targets: tuple[str, ...] = DEFAULT_TARGETS
    force: bool = False
    quant_type: str = "per-channel"
    int16x8: bool = False
    num_calib: int = 200
    num_eval: int = 200
    tvm_trials: int = 0
    gates: GateConfig = field(default_factory=GateConfig)
    latency_runs: int = 20
    model: str | None = None
    contract: dict | None = None
    variants: tuple[str, ...] | None = None
    tvm_eval_faces: int = 8
    tvm_tuning_db: str | None = None
    keep_float: str | None = None  # int8_mixed: "auto" or NAME,NAME (facelm.quantization.mixed)
    drift_target: float = DEFAULT_DRIFT_TARGET  # int8_mixed: mean drift vs torch "auto" aims for (template-IPD fraction)
    arm64_check: bool = False  # run the artifacts on aarch64 under qemu + write tvm_linux_arm64 (converters.arm64_check)

    def validate(self) -> None:
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ConfigError(f"targets must be a non-empty subset of {TARGETS}, got {list(self.targets)}")
        if self.model is not None:
            if self.config or self.random_init:
                raise ConfigError("--model brings its own network: it does not take --config or --random-init")
            if not self.contract:
                raise ConfigError("--model needs a declared contract (--layout and --input-size, or --contract FILE)")
        if self.variants is not None:
            from facelm.artifacts import tflite_names

            unknown = [v for v in self.variants if v not in tflite_names()]
            if unknown or not self.variants:
                raise ConfigError(f"variants must be a non-empty subset of {', '.join(tflite_names())}, "
                                  f"got {list(self.variants)}")
        if "tvm_int8" in self.targets and "tflite" not in self.targets:
            raise ConfigError("the tvm_int8 target is compiled from int8.tflite: give --targets tflite,tvm_int8[,tvm]")
        if self.tvm_eval_faces < 1:
            raise ConfigError("tvm_eval_faces must be >= 1")
        from facelm.converters.tflite import QUANT_TYPES

        if self.quant_type not in QUANT_TYPES:
            raise ConfigError(f"quant_type must be one of {QUANT_TYPES}, got {self.quant_type!r}")
        if self.tvm_trials < 0 or self.latency_runs < 1:
            raise ConfigError("tvm_trials must be >= 0 and latency_runs >= 1")
        if self.random_init and (self.weights or not self.config):
            raise ConfigError("random_init needs --config and no --weights")


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


@dataclass
class LoadedModel:
    """A model ready to convert, with where its weights came from."""

    model: Any
    cfg: Any
    weights_file: str
    weights_sha256: str | None
    brought: Any = None  # facelm.converters.sources.BroughtModel for --model

    @property
    def reference_name(self) -> str:
        """What the fp32 reference runs on: ``torch`` or ``onnxruntime``."""
        return self.brought.reference_name if self.brought is not None else "torch"

    def reference(self, x: np.ndarray) -> np.ndarray:
        """fp32 reference heatmaps, (N, 3, S, S) -> (N, K, h, w)."""
        if self.brought is not None:
            return self.brought.reference(x)
        from facelm.converters import onnx_export as ox

        return ox.torch_heatmaps(self.model, x)


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


def _median_latency_ms(fn, x: np.ndarray, runs: int) -> float:
    for _ in range(2):
        fn(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


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


@dataclass
class _Run:
    """State shared by the conversion stages (one conversion).

    Attributes:
        x_eval: (N, 3, S, S) float32 normalised evaluation faces.
        ref_hm: (N, K, h, w) torch fp32 heatmaps; ref_lms: (N, K, 2) their landmarks, crop pixels.
        gt: (N, K, 2) ground truth in crop pixels, or None.
    """

    cfg: ConvertConfig
    tmp: Path
    lm: LoadedModel
    contract: ModelContract
    tools: dict[str, Any]
    calib: Any
    evals: Any
    x_eval: np.ndarray
    ref_hm: np.ndarray
    ref_lms: np.ndarray
    gt: np.ndarray | None
    latency: dict[str, float] = field(default_factory=dict)
    parity: dict[str, float] = field(default_factory=dict)
    #: (n,) own NME vs ground truth and (n,) drift vs the reference per artifact, on its first n faces
    own_nmes: dict[str, np.ndarray] = field(default_factory=dict)
    drifts: dict[str, np.ndarray] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: latencies measured once no background conversion competes for the CPU: name -> (fn, x, runs)
    pending_latency: dict[str, tuple[Any, np.ndarray, int]] = field(default_factory=dict)
    #: (N, K, 2) landmarks and (N, K, h, w) float heatmaps of each TFLite artifact (comparisons between artifacts)
    artifact_lms: dict[str, np.ndarray] = field(default_factory=dict)
    artifact_hm: dict[str, np.ndarray] = field(default_factory=dict)
    #: (tvm_int8 drift mean, int8 TFLite drift mean) on the same faces
    tvm_int8_check: tuple[float, float] | None = None
    #: the TVM relax module imported from ``model.onnx`` (shared by the host and Android builds)
    relax_module: Any = None

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        h, w = self.contract.model.input_size
        return (1, 3, h, w)

    def landmarks(self, raw: np.ndarray, output: TensorSpec) -> np.ndarray:
        """Raw outputs -> (N, K, 2) crop-pixel landmarks (the shared post-processor)."""
        return output_to_landmarks(raw, output, self.contract.model, self.contract.decode).crop

    def drift(self, name: str, heatmaps: np.ndarray, landmarks: np.ndarray) -> dict:
        """Drift of artifact ``name`` vs the fp32 reference (manifest key ``drift_vs_torch``), normalised
        by the contract's template (:func:`facelm.quantization.drift.drift_scale`); keeps the per-image
        drift and own NME for the report."""
        from facelm.quantization.drift import drift_report, drift_scale, landmark_drift

        n = len(heatmaps)  # an artifact may be evaluated on the first n faces only (untuned TVM)
        gt = None if self.gt is None else self.gt[:n]
        rep, own = drift_report(self.ref_hm[:n], heatmaps, self.ref_lms[:n], landmarks, self.contract,
                                gt, reference=f"{self.lm.reference_name}_fp32")
        self.drifts[name] = landmark_drift(self.ref_lms[:n], landmarks, drift_scale(self.contract))[0]
        if own is not None:
            self.own_nmes[name] = own
        d = rep.to_dict()
        if n != len(self.ref_hm):
            d["faces"] = n
        return d


def _convert_into(cfg: ConvertConfig, tmp: Path, out: Path) -> ConvertResult:
    do_tflite, do_tvm, do_tvm8 = "tflite" in cfg.targets, "tvm" in cfg.targets, "tvm_int8" in cfg.targets
    stages = _Stages(4 + 2 * do_tflite + 2 * do_tvm + do_tvm8 + cfg.arm64_check * (1 + do_tvm))
    with stages.stage("load weights" if cfg.model is None else f"load {cfg.model}"):
        lm = load_model(cfg)
        if do_tvm or do_tvm8:  # fail before any long work when TVM is missing
            from facelm.runtime.tvm import import_tvm

            import_tvm()
        if cfg.arm64_check:  # fail before any long work when qemu, the cross compilers or the aarch64 root are missing
            from facelm.converters.arm64_check import require_root

            require_root()
    source = "torch" if lm.model is not None else "the source ONNX"
    with stages.stage(f"calibration ({cfg.num_calib}) and evaluation ({cfg.num_eval}) faces from {cfg.calib}"
                      f" + ONNX from {source}"):
        prep = _prepare_inputs(cfg, tmp, lm)
    onnx_path = prep.onnx_path
    entries: list[ArtifactEntry] = []
    with tempfile.TemporaryDirectory(prefix="facelm-onnx2tf-") as work:
        job = None
        # onnx2tf runs in its own process from here on, while this one does the rest: each gets half
        # the cores (on 2 cores, oversubscribed thread pools made both slower than running in turn)
        share = max(1, (os.cpu_count() or 2) // 2)
        if do_tflite:
            with stages.stage("start onnx2tf (background)"):
                job = _start_tflite(cfg, prep, Path(work), threads=share)
        threads_before = _set_torch_threads(share if job is not None else None)
        try:
            with stages.stage(f"{lm.reference_name} fp32 reference" + (" + onnxruntime parity" if lm.model is not None else "")):
                run = _prepare_run(cfg, tmp, lm, prep)
                entries += _onnx_stage(run, onnx_path)
            if do_tvm:
                with stages.stage(f"ONNX -> TVM host ({'untuned' if not cfg.tvm_trials else f'{cfg.tvm_trials} trials'})"
                                  " + drift"):
                    entries += _tvm_host_stage(run, onnx_path)
                with stages.stage("ONNX -> TVM Android arm64"):
                    entries += _tvm_android_stage(run, onnx_path)
                if cfg.arm64_check:
                    from facelm.converters.arm64_check import _tvm_linux_arm64_stage

                    with stages.stage("TVM linux-arm64 (the Android objects linked with aarch64-linux-gnu-g++)"):
                        entries += _tvm_linux_arm64_stage(run, entries)
            if job is not None:
                with stages.stage(f"TFLite variants as onnx2tf ({cfg.quant_type}) writes them: metadata, op counts, "
                                  "drift"):
                    entries += _tflite_entries(run, job)
                    stages.timings["onnx2tf (background, total)"] = float(job.elapsed_s or 0.0)
                    if cfg.keep_float:
                        entries += _mixed_stage(run)
                if do_tvm8:
                    with stages.stage("int8.tflite -> TVM int8 host + Android arm64 (relax TFLite frontend) + drift"):
                        entries += _tvm_int8_stage(run)
        finally:
            _set_torch_threads(threads_before)
            if job is not None:
                job.kill()
    entries.sort(key=lambda e: _CATALOGUE_ORDER.get(e.name, 99))
    if cfg.arm64_check:
        from facelm.converters.arm64_check import _arm64_check_stage

        with stages.stage("arm64 (emulated, qemu-user): TFLite and tvm_linux_arm64 on aarch64"):
            entries = _arm64_check_stage(run, entries)
    with stages.stage("gates, deferred latencies, manifest and report"):
        for name, (fn, x, runs) in run.pending_latency.items():
            run.latency[name] = _median_latency_ms(fn, x, runs)
        manifest, failures = _publish_manifest(run, entries, stages.timings)
    for f in failures:
        log.error("GATE FAILED: %s", f)
    return ConvertResult(out=out, manifest=manifest, gate_failures=failures, timings=stages.timings,
                         warnings=run.warnings)


@dataclass
class _Inputs:
    """What onnx2tf needs, made before anything else: the contract, the faces and ``model.onnx``."""

    contract: ModelContract
    calib: Any
    evals: Any
    onnx_path: Path


def _prepare_inputs(cfg: ConvertConfig, tmp: Path, lm: LoadedModel) -> _Inputs:
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
    return _Inputs(contract, calib, evals, path)


def _prepare_run(cfg: ConvertConfig, tmp: Path, lm: LoadedModel, prep: _Inputs) -> _Run:
    """The fp32 reference on the evaluation faces (heatmaps, landmarks); its latency is measured at the end."""
    import torch

    from facelm.converters import onnx_export as ox

    contract, evals = prep.contract, prep.evals
    x_eval = evals.inputs(contract.preprocess.normalization)
    ref_hm = lm.reference(x_eval)
    torch_out = TensorSpec(ox.OUTPUT_NAME, (1,) + tuple(ref_hm.shape[1:]), "NCHW", "float32")
    run = _Run(cfg=cfg, tmp=tmp, lm=lm, contract=contract, tools=tool_versions(), calib=prep.calib, evals=evals,
               x_eval=x_eval, ref_hm=ref_hm, ref_lms=np.empty(0), gt=evals.landmarks)
    run.ref_lms = run.landmarks(ref_hm, torch_out)
    if lm.model is None:  # an ONNX source: its onnxruntime reference is the ONNX artifact itself
        return run

    def torch_once(a: np.ndarray) -> None:
        prev = torch.get_num_threads()
        torch.set_num_threads(1)  # the report's latencies are all single-thread
        try:
            with torch.no_grad():
                lm.model(torch.from_numpy(a))
        finally:
            torch.set_num_threads(prev)

    run.pending_latency["torch"] = (torch_once, x_eval[:1], cfg.latency_runs)
    return run


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


def _onnx_stage(run: _Run, onnx_path: Path) -> list[ArtifactEntry]:
    """``model.onnx``: onnxruntime parity and drift against torch. An ONNX source's reference *is*
    onnxruntime running this file: nothing is compared with itself (no parity, no drift)."""
    from facelm.converters import onnx_export as ox

    m = run.contract.model
    out = TensorSpec(m.output_name, (1, m.num_keypoints) + tuple(m.heatmap_size), "NCHW", "float32")
    common = dict(input=TensorSpec(m.input_name, run.input_shape, "NCHW", "float32"), output=out,
                  op_counts=_onnx_op_counts(onnx_path), max_tensor_rank=_onnx_max_rank(onnx_path))
    if run.lm.model is None:
        log.info("  onnx: the source ONNX file is the fp32 reference (onnxruntime): no parity or drift against itself")
        return [artifact_entry_for(run.tmp, "onnx", **common,
                                   notes="the fp32 reference (onnxruntime runs this file): no parity or drift against itself")]
    ort_hm = ox.onnx_heatmaps(onnx_path, run.x_eval)
    run.parity["onnx"] = ox.max_abs_diff(run.ref_hm, ort_hm)
    log.info("  onnx parity: max |torch - onnxruntime| = %.3g on %d faces", run.parity["onnx"], len(ort_hm))
    return [artifact_entry_for(run.tmp, "onnx", **common, parity={"max_abs": run.parity["onnx"]},
                               drift_vs_torch=run.drift("onnx", ort_hm, run.landmarks(ort_hm, out)))]


def _tvm_host_stage(run: _Run, onnx_path: Path) -> list[ArtifactEntry]:
    """ONNX -> ``tvm/host.so`` (untuned or tuned) with parity, drift and latency."""
    from facelm.converters import onnx_export as ox
    from facelm.converters import tvm as tv

    cfg, m = run.cfg, run.contract.model
    kind = artifact_kind("tvm_host")
    run.relax_module = tv.import_onnx(onnx_path, run.input_shape)
    b = tv.compile_host(onnx_path, run.tmp / kind.file, run.input_shape, trials=cfg.tvm_trials,
                        mod=run.relax_module, work_dir=cfg.tvm_tuning_db)
    tuned = bool(cfg.tvm_trials or cfg.tvm_tuning_db or b.database)
    runner = tv.TvmRunner(b.path)
    # an untuned module is slow (~1.5 s a face on the paper model): a few faces give its parity
    # (still gated) and drift; a tuned one runs every evaluation face
    n = len(run.x_eval) if tuned else min(cfg.tvm_eval_faces, len(run.x_eval))
    tvm_hm = runner.heatmaps(run.x_eval[:n])
    out = TensorSpec("output", (1, m.num_keypoints) + tuple(m.heatmap_size), "NCHW", "float32")
    run.parity["tvm_host"] = ox.max_abs_diff(run.ref_hm[:n], tvm_hm)
    # measured after onnx2tf finishes; an untuned module (~1.5 s a run on the paper model) gets 3 runs
    run.pending_latency["tvm_host"] = (runner.invoke, run.x_eval[:1],
                                       cfg.latency_runs if tuned else min(3, cfg.latency_runs))
    return [artifact_entry_for(
        run.tmp, "tvm_host", target=b.target, input=TensorSpec("input", run.input_shape, "NCHW", "float32"),
        output=out, op_counts=b.op_counts,
        parity={"max_abs": run.parity["tvm_host"]},
        drift_vs_torch=run.drift("tvm_host", tvm_hm, run.landmarks(tvm_hm, out)),
        notes=(f"MetaSchedule trials: {cfg.tvm_trials}{f', database {Path(cfg.tvm_tuning_db).name if cfg.tvm_tuning_db else b.database}' if cfg.tvm_tuning_db or b.database else ''}; "
               f"{b.tuned_kernels} kernels with tuned schedules; weights prepacked except conv2d_transpose"
               if tuned else f"untuned ({b.note}); parity and drift on {n} of {len(run.x_eval)} evaluation faces"))]


def _tvm_android_stage(run: _Run, onnx_path: Path) -> list[ArtifactEntry]:
    """ONNX -> Android arm64 library (linked with $TVM_NDK_CC) or object archive."""
    from facelm.converters import tvm as tv

    m = run.contract.model
    a = tv.compile_android(onnx_path, run.tmp / "tvm", run.input_shape, mod=run.relax_module)
    if not a.linked:
        run.warnings.append(a.note)
        log.warning("WARNING: %s", a.note)
    return [artifact_entry_for(
        run.tmp, "tvm_android", f"tvm/{a.path.name}", "tvm_so" if a.linked else "tvm_tar", target=a.target,
        input=TensorSpec("input", run.input_shape, "NCHW", "float32"),
        output=TensorSpec("output", (1, m.num_keypoints) + tuple(m.heatmap_size), "NCHW", "float32"),
        op_counts=tv.object_counts(a.path) if not a.linked else {},
        notes="linked with $TVM_NDK_CC" if a.linked else a.note)]


def _tvm_int8_stage(run: _Run) -> list[ArtifactEntry]:
    """``int8.tflite`` -> ``tvm/int8_host.so`` + the Android arm64 archive/library, with drift and parity.

    The module is untuned (its parity and drift use the first ``tvm_eval_faces`` faces); its
    drift vs the fp32 reference must stay within :data:`TVM_INT8_DRIFT_RATIO` x int8 TFLite's
    on the same faces (a gate), and its parity against int8 TFLite is reported.
    """
    from facelm.converters import tvm as tv
    from facelm.quantization.drift import drift_scale, landmark_drift

    cfg, m = run.cfg, run.contract.model
    mod = tv.import_tflite_int8(run.tmp / artifact_kind("int8").file)
    s, (hh, hw), k = m.input_side, m.heatmap_size, m.num_keypoints
    nhwc_in = (1, s, s, 3)
    b = tv.compile_host(None, run.tmp / artifact_kind("tvm_int8").file, nhwc_in, mod=mod)
    runner = tv.TvmRunner(b.path)
    n = min(cfg.tvm_eval_faces, len(run.x_eval))
    x = np.ascontiguousarray(run.x_eval[:n].transpose(0, 2, 3, 1))
    raw = runner.run_raw(x)
    out = TensorSpec("output", (1, hh, hw, k), "NHWC", "float32")
    hm = raw.transpose(0, 3, 1, 2)
    lms = run.landmarks(raw, out)
    drift = run.drift("tvm_int8", hm, lms)
    ref8 = run.artifact_lms["int8"][:n]
    scale = drift_scale(run.contract)
    int8_drift = float(landmark_drift(run.ref_lms[:n], ref8, scale)[0].mean())
    vs_tflite = landmark_drift(ref8, lms, scale)[0]
    parity = {"vs_int8_tflite_heatmap_max_abs": float(np.abs(hm - run.artifact_hm["int8"][:n]).max()),
              "vs_int8_tflite_landmark_drift_mean": float(vs_tflite.mean()),
              "vs_int8_tflite_landmark_drift_max": float(vs_tflite.max()),
              "int8_tflite_drift_mean_same_faces": int8_drift,
              "drift_ratio_vs_int8_tflite": float(drift["mean"]) / int8_drift if int8_drift > 0 else None,
              "faces": n}
    run.tvm_int8_check = (float(drift["mean"]), int8_drift)
    run.pending_latency["tvm_int8"] = (runner.invoke, x[:1], min(3, cfg.latency_runs))
    entries = [artifact_entry_for(
        run.tmp, "tvm_int8", target=b.target, input=TensorSpec("input", nhwc_in, "NHWC", "float32"), output=out,
        op_counts=b.op_counts or {}, parity=parity, drift_vs_torch=drift,
        notes=f"int8.tflite through the relax TFLite frontend (QDQ), untuned; parity and drift on {n} faces")]
    a = tv.compile_android(None, run.tmp / "tvm", nhwc_in, mod=mod, stem="int8_android")
    if not a.linked and a.note not in run.warnings:
        run.warnings.append(a.note)
    entries.append(artifact_entry_for(
        run.tmp, "tvm_int8_android", f"tvm/{a.path.name}", "tvm_so" if a.linked else "tvm_tar", target=a.target,
        input=TensorSpec("input", nhwc_in, "NHWC", "float32"), output=out,
        op_counts=tv.object_counts(a.path) if not a.linked else {},
        notes="int8.tflite through the relax TFLite frontend; " + ("linked with $TVM_NDK_CC" if a.linked else a.note)))
    return entries


def _publish_manifest(run: _Run, entries: list[ArtifactEntry], timings: dict[str, float]) -> tuple[Manifest, list[str]]:
    """Gates, ``manifest.json`` and ``report.md`` in the temp folder."""
    from facelm.converters.report import write_report
    from facelm.quantization.drift import check_gates

    cfg = run.cfg
    drift_means = {e.name: float(e.drift_vs_torch["mean"]) for e in entries if e.drift_vs_torch}
    failures = check_gates(run.parity, drift_means, cfg.gates)
    if run.tvm_int8_check is not None:
        got, int8 = run.tvm_int8_check
        if got > TVM_INT8_DRIFT_RATIO * int8 + 1e-12:
            failures.append(f"tvm_int8: mean landmark drift {got:.4g} exceeds {TVM_INT8_DRIFT_RATIO}x int8 TFLite's "
                            f"{int8:.4g} on the same faces")
    manifest = Manifest(
        facelm_version=__version__, contract=run.contract, tools=run.tools, artifacts=entries,
        created_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        gates={"passed": not failures, "failures": failures, "parity_max_abs": cfg.gates.parity_max_abs,
               "int8_drift_mean": cfg.gates.int8_drift_mean},
        data={"calibration": {"source": str(cfg.calib), "count": len(run.calib)},
              "evaluation": {"source": str(cfg.calib), "count": len(run.evals)}})
    write_report(run.tmp, manifest, run.latency, run.own_nmes, run.drifts, timings, run.warnings,
                 eval_source=run.evals.source, calib_source=run.calib.source, ref_own_nme=_ref_own(run),
                 reference=f"{run.lm.reference_name} fp32")
    write_manifest(manifest, run.tmp)
    return manifest, failures


def _ref_own(run: _Run) -> np.ndarray | None:
    from facelm.metrics import nme

    return None if run.gt is None else nme(run.ref_lms, run.gt, run.contract.layout.name)


def _onnx_op_counts(path: Path) -> dict[str, int]:
    import onnx
    from collections import Counter

    return dict(sorted(Counter(n.op_type for n in onnx.load(str(path)).graph.node).items()))


def _onnx_max_rank(path: Path) -> int:
    import onnx

    m = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    ranks = [len(v.type.tensor_type.shape.dim) for v in list(m.graph.value_info) + list(m.graph.output)
             + list(m.graph.input) if v.type.tensor_type.HasField("shape")]
    return max(ranks) if ranks else 0


def wanted_variants(cfg: ConvertConfig) -> list[str]:
    """The TFLite artifacts to write, in catalogue order (see :attr:`ConvertConfig.variants`)."""
    from facelm.artifacts import tflite_names

    need = {"int8"} if "tvm_int8" in cfg.targets else set()  # tvm_int8 is compiled from int8.tflite
    if cfg.variants is not None:
        return [n for n in tflite_names() if n in cfg.variants or n in need]
    return [n for n in tflite_names() if not artifact_kind(n).optional or (n == "int16x8" and cfg.int16x8)]


def _start_tflite(cfg: ConvertConfig, prep: _Inputs, work: Path, threads: int | None = None):
    """Start onnx2tf on a copy of ``model.onnx`` for the wanted variants (one calibration)."""
    from facelm.converters.tflite import start_onnx2tf

    norm = prep.contract.preprocess.normalization
    return start_onnx2tf(prep.onnx_path, prep.calib.unit_nhwc(norm), norm.mean, norm.std, work,
                         quant_type=cfg.quant_type, variants=wanted_variants(cfg), threads=threads)


def _set_torch_threads(n: int | None) -> int | None:
    """Set torch's intra-op threads to ``n`` (None: leave them); returns the previous count."""
    if n is None:
        return None
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(n)
    return prev


def _tflite_entries(run: _Run, job) -> list[ArtifactEntry]:
    """Every wanted TFLite variant, each handled as soon as onnx2tf has written it (while it works
    on the next): metadata, op counts, drift; latency is measured at the end."""
    pending = wanted_variants(run.cfg)
    entries = []
    while pending:  # variants that are complete while onnx2tf still runs
        ready = job.ready()
        names = [n for n in pending if n in ready]
        if not names:
            if job.proc.poll() is not None or job.expired():
                break
            time.sleep(1.0)
            continue
        for name in names:
            entries.append(_tflite_entry(run, name, ready[name]))
            pending.remove(name)
    produced = job.wait()  # errors, timeouts and missing variants are raised here
    if len(pending) > 1:  # onnx2tf is done: its core is free, evaluate the rest side by side
        from concurrent.futures import ThreadPoolExecutor  # (LiteRT and numpy release the GIL)

        with ThreadPoolExecutor(max_workers=min(len(pending), os.cpu_count() or 1)) as pool:
            entries += list(pool.map(lambda n: _tflite_entry(run, n, produced[n]), pending))
    elif pending:
        entries.append(_tflite_entry(run, pending[0], produced[pending[0]]))
    return entries


def _tflite_entry(run: _Run, name: str, src: Path) -> ArtifactEntry:
    """One TFLite variant: copied in, made NHWC, metadata embedded, evaluated as shipped."""
    from facelm.converters.tflite import count_ops, embed_metadata, ensure_nhwc_output, fuse_activations
    from facelm.runtime.tflite import TfliteRunner, dequantize

    cfg = run.cfg
    kind = artifact_kind(name)
    dst = run.tmp / kind.file
    shutil.copyfile(src, dst)
    m = run.contract.model
    if ensure_nhwc_output(dst, (1, m.num_keypoints) + tuple(m.heatmap_size)):
        log.info("  %s: onnx2tf left the heatmaps NCHW; appended one TRANSPOSE to NHWC", name)
    if fuse_activations(dst):  # a lone int8 RELU splits the XNNPACK graph (converters/tflite.py)
        log.info("  %s: fused RELU ops into the convolutions before them", name)
    runner = TfliteRunner(dst, num_threads=1)
    meta = dict(run.contract.to_dict(), tools=run.tools,
                artifact=dict(kind.to_dict(), name=name, quant_type=cfg.quant_type,
                              input=runner.input_spec.to_dict(), output=runner.output_spec.to_dict()))
    embed_metadata(dst, meta)
    runner = TfliteRunner(dst, num_threads=1)  # evaluate the file as shipped
    raw = runner.run_raw(run.x_eval)
    q = runner.output_spec.quantization
    hm = dequantize(raw, q).transpose(0, 3, 1, 2)
    # int8 outputs are decoded directly on the integers (the phone's path)
    lms = run.landmarks(raw, runner.output_spec)
    run.artifact_lms[name] = lms
    if name == "int8" and "tvm_int8" in cfg.targets:  # (N, K, h, w) float: kept only where it is compared
        run.artifact_hm[name] = hm
    drift = run.drift(name, hm, lms)
    ops, rank = count_ops(dst)
    p = {}
    if kind.float_reference:  # its max_abs is the heatmap difference vs torch
        run.parity[name] = float(drift["max_abs"])
        p = {"max_abs": run.parity[name]}
    run.pending_latency[name] = (runner.invoke, runner.prepare(run.x_eval[:1]), cfg.latency_runs)
    notes = f"{kind.weight_dtype} weights, {kind.precision} activations, {kind.io} input/output; {cfg.quant_type}"
    if rank > 4:
        notes += f"; WARNING: rank-{rank} tensors (the TFLite GPU delegate accepts rank <= 4)"
    log.info("  %s.tflite: drift mean %.4g on %d faces", name, float(drift["mean"]), len(run.x_eval))
    return artifact_entry_for(
        run.tmp, name, input=runner.input_spec, output=runner.output_spec, op_counts=ops,
        max_tensor_rank=rank, parity=p, drift_vs_torch=drift, notes=notes, checks=_gpu_checks(dst))


def _gpu_checks(path: Path) -> dict:
    """Manifest ``checks`` of a ``.tflite``: static GPU delegate readiness (facelm.quantization.delegates)."""
    from facelm.quantization.delegates import gpu_check

    return gpu_check(path)


def _mixed_stage(run: _Run) -> list[ArtifactEntry]:
    """``int8_mixed.tflite``: fp32.tflite re-quantized with the fewest layers float (facelm.quantization.mixed)."""
    from facelm.converters.tflite import count_ops, embed_metadata
    from facelm.fileio import atomic_write_bytes
    from facelm.quantization.mixed import mixed_precision, parse_keep_float
    from facelm.runtime.tflite import TfliteRunner, dequantize

    cfg, norm = run.cfg, run.contract.preprocess.normalization
    kind = artifact_kind("int8_mixed")
    fp32 = run.tmp / artifact_kind("fp32").file
    calib = np.ascontiguousarray(run.calib.inputs(norm).transpose(0, 2, 3, 1))
    res = mixed_precision(fp32.read_bytes(), calib, run.x_eval, run.ref_lms, run.contract,
                          parse_keep_float(cfg.keep_float), cfg.drift_target, cfg.quant_type == "per-channel")
    dst = atomic_write_bytes(run.tmp / kind.file, res.model)
    runner = TfliteRunner(dst, num_threads=1)
    embed_metadata(dst, dict(run.contract.to_dict(), tools=run.tools,
                             artifact=dict(kind.to_dict(), name=kind.name, quant_type=cfg.quant_type,
                                           input=runner.input_spec.to_dict(), output=runner.output_spec.to_dict())))
    runner = TfliteRunner(dst, num_threads=1)
    raw = runner.run_raw(run.x_eval)
    hm = dequantize(raw, runner.output_spec.quantization).transpose(0, 3, 1, 2)
    drift = run.drift(kind.name, hm, run.landmarks(raw, runner.output_spec))
    run.latency[kind.name] = _median_latency_ms(runner.invoke, runner.prepare(run.x_eval[:1]), cfg.latency_runs)
    ops, rank = count_ops(dst)
    if not res.reached:
        run.warnings.append(f"int8_mixed: drift target {cfg.drift_target:g} not reached ({res.drift:.4g} with "
                            f"{len(res.kept)} float layers)")
    kept = ", ".join(res.kept) or "none"
    return [artifact_entry_for(run.tmp, kind.name, input=runner.input_spec, output=runner.output_spec,
                               op_counts=ops, max_tensor_rank=rank, drift_vs_torch=drift,
                               checks=dict(_gpu_checks(dst), mixed_search=res.record()),
                               notes=f"int8 with float layers: {kept}; {cfg.quant_type}")]
