"""The conversion chain as typed Python functions: checkpoint -> ONNX -> TFLite / TVM, verified.

``convert(ConvertConfig(...))`` runs every stage, writes ``manifest.json`` and ``report.md``
into a temporary sibling of the output folder and renames it into place at the end. The
CLI (``facelm convert``) is a thin shell over it; :class:`ConvertConfig` gives both their
defaults.

Stages: load weights -> calibration/evaluation faces -> torch fp32 reference -> ONNX (+
onnxruntime parity) -> TFLite variants via onnx2tf (+ metadata, op counts) -> TVM host /
Android -> drift of every artifact -> latency -> gates -> manifest + report -> rename.
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

from sdk import __version__
from sdk.errors import ConfigError, ConversionError, InputError
from sdk.runtime.manifest import ArtifactEntry, Manifest, TensorSpec, artifact_entry_for, sha256_file, write_manifest

from quantization.drift import GateConfig

log = logging.getLogger("facelm.convert")

TARGETS = ("tflite", "tvm")


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
        targets: subset of ``("tflite", "tvm")``.
        force: replace an existing output folder.
        quant_type: ``"per-channel"`` (default) or ``"per-tensor"`` int8 weights.
        int16x8: also ship ``int16x8.tflite`` (int8 weights, int16 activations).
        num_calib, num_eval: calibration and evaluation faces (disjoint).
        tvm_trials: MetaSchedule budget for the host library; 0 = untuned.
        gates: parity and int8-drift bounds.
        latency_runs: timed runs per artifact for the report's host latency (median).
    """

    config: str | None = None
    weights: str | None = None
    random_init: bool = False
    out: str = "artifacts"
    calib: str = "synthetic"
    targets: tuple[str, ...] = TARGETS
    force: bool = False
    quant_type: str = "per-channel"
    int16x8: bool = False
    num_calib: int = 200
    num_eval: int = 200
    tvm_trials: int = 0
    gates: GateConfig = field(default_factory=GateConfig)
    latency_runs: int = 20

    def validate(self) -> None:
        bad = [t for t in self.targets if t not in TARGETS]
        if bad or not self.targets:
            raise ConfigError(f"targets must be a non-empty subset of {TARGETS}, got {list(self.targets)}")
        from converters.tflite import QUANT_TYPES

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


def load_model(cfg: ConvertConfig) -> LoadedModel:
    """Resolve weights and config (see :class:`ConvertConfig`). Never falls back to random weights."""
    from sdk.model import build_model, load_checkpoint, load_config

    if cfg.random_init:
        import torch

        torch.manual_seed(0)
        mcfg = load_config(cfg.config)
        return LoadedModel(build_model(mcfg).eval(), mcfg, "random-init (torch seed 0)", None)
    if cfg.weights is None:
        from sdk.assets import demo_checkpoint

        path = demo_checkpoint()  # FacelmError with a clear message when it is missing
    else:
        path = Path(cfg.weights)
        if not path.is_file():
            raise InputError(f"weights file {path} does not exist")
    model, mcfg, _extra = load_checkpoint(path)
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


def decode_landmarks(raw: np.ndarray, tensor_layout: str, stride: float, quant: Any = None,
                     decode_cfg: Any = None) -> np.ndarray:
    """Decode model outputs to landmarks in input (crop) pixels with :func:`sdk.codec.decode`.

    Args:
        raw: (N, K, h, w) float heatmaps (``tensor_layout="nchw"``) or the raw (N, h, w, K) output of a
            TFLite model (``tensor_layout="nhwc"``), int8 when ``quant`` is given.
        stride: input pixels per heatmap pixel.
        quant: :class:`Quantization` of an integer output, decoded directly on the integers.
    Returns:
        (N, K, 2) float64 in input pixels.
    """
    from sdk.codec import DecodeConfig, decode, heatmap_to_input

    dc = decode_cfg or DecodeConfig()
    kwargs = dict(dc.as_kwargs(), layout=tensor_layout)
    if quant is not None:
        kwargs.update(scale=quant.scale, zero_point=quant.zero_point)
    res = decode(raw, **kwargs)
    coords = res[0] if isinstance(res, tuple) else res
    return heatmap_to_input(np.asarray(coords), stride)


def _median_latency_ms(fn, x: np.ndarray, runs: int) -> float:
    for _ in range(2):
        fn(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def _prepare_out(out: Path, force: bool) -> Path:
    """Refuse an existing ``out`` without ``force``; return a fresh temp folder beside it."""
    if out.exists() and not force:
        raise InputError(f"output folder {out} exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise InputError(f"output path {out} exists and is not a folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the result is a normal folder
    return tmp


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _publish(tmp: Path, out: Path) -> None:
    """Move ``tmp`` to ``out``, replacing an old ``out`` only after the new one is complete."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def convert(cfg: ConvertConfig) -> ConvertResult:
    """Run the whole chain; see the module docstring.

    Returns:
        :class:`ConvertResult` (``gate_failures`` empty when every gate passed; the CLI turns a
        failure into exit code 1 — the folder and report are written either way).
    Raises:
        FacelmError subclasses for user-caused problems (bad weights/config, existing output
        folder, unconvertible op, missing TVM, ...). The output folder is left untouched.
    """
    cfg.validate()
    out = Path(cfg.out)
    tmp = _prepare_out(out, cfg.force)
    try:
        result = _convert_into(cfg, tmp, out)
        _publish(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    result.manifest.root = out
    return result


def _convert_into(cfg: ConvertConfig, tmp: Path, out: Path) -> ConvertResult:
    from converters import onnx_export as ox
    from quantization.calibration import build_sets
    from quantization.drift import check_gates, drift_report
    from sdk.codec import DecodeConfig
    from sdk.layouts import get_layout
    from sdk.preprocess import DEFAULT_NORMALIZATION
    from sdk.alignment import reference_template

    do_tflite, do_tvm = "tflite" in cfg.targets, "tvm" in cfg.targets
    stages = _Stages(5 + do_tflite + 2 * do_tvm)
    warnings: list[str] = []
    entries: list[ArtifactEntry] = []
    latency: dict[str, float] = {}
    own_nmes: dict[str, np.ndarray] = {}
    drift_nmes: dict[str, np.ndarray] = {}
    parity: dict[str, float] = {}

    with stages.stage("load weights"):
        lm = load_model(cfg)
        mcfg = lm.cfg
        if do_tvm:  # fail before any long work when TVM is missing
            from converters.tvm import import_tvm

            import_tvm()
    layout = get_layout(mcfg.layout)
    size, hm, stride = int(mcfg.input_size), int(mcfg.heatmap_size), float(mcfg.stride)
    decode_cfg = DecodeConfig()

    with stages.stage(f"calibration ({cfg.num_calib}) and evaluation ({cfg.num_eval}) faces from {cfg.calib}"):
        calib, evals = build_sets(cfg.calib, size, layout, cfg.num_calib, cfg.num_eval)
        x_eval = evals.inputs()
        gt = evals.landmarks

    with stages.stage("torch fp32 reference"):
        ref_hm = ox.torch_heatmaps(lm.model, x_eval)
        ref_lms = decode_landmarks(ref_hm, "nchw", stride, decode_cfg=decode_cfg)
        import torch

        prev_threads = torch.get_num_threads()
        torch.set_num_threads(1)  # the report's latencies are all single-thread
        try:
            with torch.no_grad():
                latency["torch"] = _median_latency_ms(lambda a: lm.model(torch.from_numpy(a)), x_eval[:1],
                                                      cfg.latency_runs)
        finally:
            torch.set_num_threads(prev_threads)

    def add_eval(name: str, heatmaps: np.ndarray, landmarks: np.ndarray) -> dict:
        rep, own = drift_report(ref_hm, heatmaps, ref_lms, landmarks, layout, gt)
        from quantization.drift import landmark_drift

        drift_nmes[name] = landmark_drift(ref_lms, landmarks, layout)[0]
        if own is not None:
            own_nmes[name] = own
        return rep.to_dict()

    with stages.stage("torch -> ONNX (opset 17) + onnxruntime parity"):
        onnx_path = ox.export_onnx(lm.model, tmp / "model.onnx", size)
        ort_hm = ox.onnx_heatmaps(onnx_path, x_eval)
        parity["onnx"] = ox.max_abs_diff(ref_hm, ort_hm)
        e = artifact_entry_for(
            tmp, "onnx", "model.onnx", "onnx",
            input=TensorSpec(ox.INPUT_NAME, [1, 3, size, size], "NCHW", "float32"),
            output=TensorSpec(ox.OUTPUT_NAME, [1, mcfg.num_keypoints, hm, hm], "NCHW", "float32"),
            op_counts=_onnx_op_counts(onnx_path), max_tensor_rank=_onnx_max_rank(onnx_path),
            parity={"max_abs": parity["onnx"]},
            drift=add_eval("onnx", ort_hm, decode_landmarks(ort_hm, "nchw", stride, decode_cfg=decode_cfg)))
        entries.append(e)
        log.info("  onnx parity: max |torch - onnxruntime| = %.3g", parity["onnx"])

    common = _common_manifest(lm, mcfg, layout, decode_cfg, DEFAULT_NORMALIZATION, reference_template(size), cfg)

    if do_tflite:
        with stages.stage(f"ONNX -> TFLite (onnx2tf, {cfg.quant_type}) + drift"):
            entries += _tflite_stage(cfg, onnx_path, calib, x_eval, tmp, common, layout, stride, decode_cfg,
                                     add_eval, parity, latency)

    if do_tvm:
        with stages.stage(f"ONNX -> TVM host ({'untuned' if not cfg.tvm_trials else f'{cfg.tvm_trials} trials'}) + drift"):
            from converters import tvm as tv

            b = tv.compile_host(onnx_path, tmp / "tvm" / "host.so", (1, 3, size, size), trials=cfg.tvm_trials)
            runner = tv.TvmRunner(b.path)
            tvm_hm = runner.heatmaps(x_eval)
            parity["tvm_host"] = ox.max_abs_diff(ref_hm, tvm_hm)
            latency["tvm_host"] = _median_latency_ms(runner.invoke, x_eval[:1], cfg.latency_runs)
            entries.append(artifact_entry_for(
                tmp, "tvm_host", "tvm/host.so", "tvm_so", target=b.target,
                input=TensorSpec("input", [1, 3, size, size], "NCHW", "float32"),
                output=TensorSpec("output", [1, mcfg.num_keypoints, hm, hm], "NCHW", "float32"),
                op_counts=tv.relax_op_counts(tv.import_onnx(onnx_path, (1, 3, size, size))),
                parity={"max_abs": parity["tvm_host"]},
                drift=add_eval("tvm_host", tvm_hm, decode_landmarks(tvm_hm, "nchw", stride, decode_cfg=decode_cfg)),
                notes=(f"MetaSchedule trials: {cfg.tvm_trials}; {b.tuned_kernels} kernels with tuned schedules"
                       if cfg.tvm_trials else "untuned")))
        with stages.stage("ONNX -> TVM Android arm64"):
            a = tv.compile_android(onnx_path, tmp / "tvm", (1, 3, size, size))
            if not a.linked:
                warnings.append(a.note)
                log.warning("WARNING: %s", a.note)
            entries.append(artifact_entry_for(
                tmp, "tvm_android", f"tvm/{a.path.name}", "tvm_so" if a.linked else "tvm_tar", target=a.target,
                input=TensorSpec("input", [1, 3, size, size], "NCHW", "float32"),
                output=TensorSpec("output", [1, mcfg.num_keypoints, hm, hm], "NCHW", "float32"),
                op_counts=tv.object_counts(a.path) if not a.linked else {},
                notes="linked with $TVM_NDK_CC" if a.linked else a.note))

    with stages.stage("gates, manifest and report"):
        drift_means = {e.name: float(e.drift.get("drift_mean", float("nan"))) for e in entries if e.drift}
        failures = check_gates(parity, drift_means, cfg.gates)
        manifest = Manifest(
            facelm_version=__version__, created_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            artifacts=entries, gates={"passed": not failures, "failures": failures,
                                      "parity_max_abs": cfg.gates.parity_max_abs,
                                      "int8_drift_mean": cfg.gates.int8_drift_mean},
            **common)
        from converters.report import write_report

        write_report(tmp, manifest, latency, own_nmes, drift_nmes, stages.timings, warnings,
                     eval_source=evals.source, calib_source=calib.source, ref_own_nme=_ref_own(ref_lms, gt, layout))
        write_manifest(manifest, tmp)
    for f in failures:
        log.error("GATE FAILED: %s", f)
    return ConvertResult(out=out, manifest=manifest, gate_failures=failures, timings=stages.timings, warnings=warnings)


def _ref_own(ref_lms: np.ndarray, gt: np.ndarray | None, layout) -> np.ndarray | None:
    from sdk.metrics import nme

    return None if gt is None else nme(ref_lms, gt, layout)


def _common_manifest(lm: LoadedModel, mcfg, layout, decode_cfg, norm, template: np.ndarray,
                     cfg: ConvertConfig) -> dict[str, Any]:
    """The manifest fields shared by every artifact (also embedded in each ``.tflite``)."""
    return {
        "model": {
            "name": mcfg.name, "config": mcfg.to_dict(), "weights_file": lm.weights_file,
            "weights_sha256": lm.weights_sha256, "num_keypoints": int(mcfg.num_keypoints),
            "input_size": [int(mcfg.input_size)] * 2, "heatmap_size": [int(mcfg.heatmap_size)] * 2,
            "stride": float(mcfg.stride),
        },
        "preprocess": dict(norm.to_dict(), five_point_template=np.asarray(template).tolist(),
                           alignment="similarity (umeyama) from five points to five_point_template"),
        "layout": {"name": layout.name, "num_points": int(layout.num_points),
                   "flip_permutation": [int(i) for i in layout.flip_permutation],
                   "five_point_groups": [list(map(int, g)) for g in layout.five_point_groups]},
        # decode.layout names the phone artifacts' (TFLite) layout; each artifact's
        # output.layout is authoritative (ONNX/TVM emit NCHW).
        "decode": dict(decode_cfg.to_dict(), layout="nhwc"),
        "tools": tool_versions(),
    }


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


def _tflite_stage(cfg, onnx_path, calib, x_eval, tmp, common, layout, stride, decode_cfg, add_eval,
                  parity, latency) -> list[ArtifactEntry]:
    from converters.tflite import VARIANTS, count_ops, embed_metadata, run_onnx2tf
    from sdk.preprocess import DEFAULT_NORMALIZATION
    from sdk.runtime.tflite import TfliteRunner, dequantize
    from tqdm import tqdm

    entries = []
    with tempfile.TemporaryDirectory(prefix="facelm-onnx2tf-") as work:
        t0 = time.perf_counter()
        produced = run_onnx2tf(onnx_path, calib.unit_nhwc(), DEFAULT_NORMALIZATION.mean,
                               DEFAULT_NORMALIZATION.std, work, quant_type=cfg.quant_type)
        log.info("  onnx2tf wrote %d models in %.1f s", len(produced), time.perf_counter() - t0)
        wanted = [v for v in VARIANTS if not v.optional or (v.name == "int16x8" and cfg.int16x8)]
        for v in tqdm(wanted, desc="TFLite variants", unit="model", leave=False):
            if v.name not in produced:
                raise ConversionError(f"onnx2tf did not write the {v.name} model")
            dst = tmp / f"{v.name}.tflite"
            shutil.copyfile(produced[v.name], dst)
            runner = TfliteRunner(dst, num_threads=1)
            meta = dict(common, artifact={"name": v.name, "weights": v.weights, "activations": v.activations,
                                          "io": v.io, "quant_type": cfg.quant_type,
                                          "input": runner.input_spec.to_dict(),
                                          "output": runner.output_spec.to_dict()})
            embed_metadata(dst, meta)
            runner = TfliteRunner(dst, num_threads=1)  # evaluate the file as shipped
            raw = runner.run_raw(x_eval)
            q = runner.output_spec.quantization
            hm = dequantize(raw, q).transpose(0, 3, 1, 2)
            # int8 outputs are decoded directly on the integers (the phone's path)
            lms = decode_landmarks(raw, "nhwc", stride, quant=q, decode_cfg=decode_cfg) if q is not None \
                else decode_landmarks(hm, "nchw", stride, decode_cfg=decode_cfg)
            ops, rank = count_ops(dst)
            p = {}
            drift = add_eval(v.name, hm, lms)  # its max_abs is the heatmap difference vs torch
            if v.name == "fp32":
                parity["fp32"] = float(drift["max_abs"])
                p = {"max_abs": parity["fp32"]}
            latency[v.name] = _median_latency_ms(runner.invoke, runner.prepare(x_eval[:1]), cfg.latency_runs)
            notes = f"{v.weights} weights, {v.activations} activations, {v.io} input/output; {cfg.quant_type}"
            if rank > 4:
                notes += f"; WARNING: rank-{rank} tensors (the TFLite GPU delegate accepts rank <= 4)"
            entries.append(artifact_entry_for(
                tmp, v.name, dst.name, "tflite", input=runner.input_spec, output=runner.output_spec,
                op_counts=ops, max_tensor_rank=rank, parity=p, drift=drift, notes=notes))
    return entries
