"""What ``facelm convert`` can be told: :class:`ConvertConfig` and the target names.

The CLI (``facelm convert``) and :func:`facelm.converters.pipeline.convert` share these
defaults; the pipeline re-exports every name here.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from facelm.errors import ConfigError
from facelm.quantization.drift import GateConfig
from facelm.quantization.mixed import DEFAULT_DRIFT_TARGET

TARGETS = ("tflite", "tvm", "tvm_int8")
#: targets a plain ``facelm convert`` produces (``tvm_int8`` is asked for by name)
DEFAULT_TARGETS = ("tflite", "tvm")
#: tvm_int8's landmark drift vs the fp32 reference may be at most this multiple of int8 TFLite's
TVM_INT8_DRIFT_RATIO = 1.5


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
