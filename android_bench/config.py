"""Options of a benchmark run and the request of one ``bench()`` call. The CLI takes its defaults from here."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from facelm.errors import ConfigError

DELEGATES = ("cpu", "xnnpack", "gpu", "nnapi", "hexagon")
REMOTE_WORKDIR = "/data/local/tmp/facelm"
DEFAULT_BENCHMARK_BINARY = "/data/local/tmp/benchmark_model"
#: the JSONL file every finished run is appended to
DEFAULT_RESULTS = Path("runs/bench/results.jsonl")
#: ``drift_source`` of synthetic faces
SYNTHETIC_DRIFT_SOURCE = "synthetic"
DEFAULT_TVM_PORT = 9090


@dataclass(frozen=True)
class BenchOptions:
    """How to benchmark one artifact on one device (or the host).

    threads: interpreter threads (``--num_threads``).
    delegate: cpu (TFLite reference kernels), xnnpack, gpu, nnapi or hexagon.
    runs, warmup: measured and warmup inferences per invocation.
    repeats: benchmark_model invocations per artifact; their means give the
        median/p90/p99 on a phone (the tool itself only prints aggregates).
    pin_big_cores: run under ``taskset <big-core mask>``.
    fixed_performance: try ``cmd power set-fixed-performance-mode-enabled true``.
    cooldown_s: sleep between invocations.
    thermal_limit_c: wait until the CPU is at most this hot before each invocation
        (None: do not wait); thermal_wait_s bounds the wait.
    drift: also measure on-device drift against the host fp32 reference.
    drift_samples: number of inputs pushed for drift.
    op_profile: also record per-op times (``benchmark_model --enable_op_profiling=true``;
        the record's ``latency_ms.op_profile``).
    benchmark_binary: a host file to push, or a device path already there.
    workdir: device directory for pushed files.
    keep: leave pushed files on the device.
    timeout_s: timeout of each short adb call; bench_timeout_s of each benchmark.
    """

    threads: int = 4
    delegate: str = "xnnpack"
    runs: int = 50
    warmup: int = 5
    repeats: int = 3
    pin_big_cores: bool = True
    fixed_performance: bool = True
    cooldown_s: float = 0.0
    thermal_limit_c: float | None = None
    thermal_wait_s: float = 120.0
    drift: bool = False
    drift_samples: int = 8
    op_profile: bool = False
    benchmark_binary: str = DEFAULT_BENCHMARK_BINARY
    workdir: str = REMOTE_WORKDIR
    keep: bool = False
    timeout_s: float = 60.0
    bench_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.delegate not in DELEGATES:
            raise ConfigError(f"unknown delegate {self.delegate!r}; choose one of {', '.join(DELEGATES)}")
        for name in ("runs", "repeats", "drift_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup < 0 or self.threads < 1:
            raise ConfigError("warmup must be >= 0 and threads >= 1")
        if not self.workdir.startswith("/"):
            raise ConfigError(f"workdir must be an absolute device path, got {self.workdir!r}")

    def record_dict(self) -> dict:
        """The options that define a measurement (what --resume matches on)."""
        keys = ("threads", "delegate", "runs", "warmup", "repeats", "pin_big_cores", "drift", "drift_samples",
                "op_profile")
        d = asdict(self)
        return {k: d[k] for k in keys}



@dataclass(frozen=True)
class BenchRequest:
    """What one :func:`facelm.bench` call benchmarks, where, and where its records go.

    path: a ``.tflite`` or an artifact folder (``manifest.json``).
    options: how each artifact is measured (:class:`BenchOptions`; recorded, matched by ``resume``).
    serials: devices to use (each checked); all_devices: every usable attached device.
    local: True forces this host; None uses this host only when no device is attached and none
        was asked for; False forces devices.
    results: JSONL file every finished run is appended to (None: do not append).
    resume: skip runs whose (serial, artifact sha256, options) are in ``results``.
    json_out: also write this invocation's records to this file (atomically).
    artifacts: only these manifest artifacts (naming a native-code one allows loading it).
    drift_source: ``synthetic`` or a face folder, for ``options.drift``.
    tvm_rpc: host file or device path of ``tvm_rpc``: TVM artifacts on phones; tvm_port its port.
    allow_native_code: load the folder's native-code artifacts (TVM ``.so``).
    """

    path: Path
    options: BenchOptions = field(default_factory=BenchOptions)
    serials: tuple[str, ...] = ()
    all_devices: bool = False
    local: bool | None = None
    results: Path | None = DEFAULT_RESULTS
    resume: bool = False
    json_out: Path | None = None
    artifacts: tuple[str, ...] | None = None
    drift_source: str = SYNTHETIC_DRIFT_SOURCE
    tvm_rpc: str | None = None
    tvm_port: int = DEFAULT_TVM_PORT
    allow_native_code: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "serials", tuple(dict.fromkeys(self.serials or ())))
        if self.artifacts is not None:
            object.__setattr__(self, "artifacts", tuple(self.artifacts) or None)
        for name in ("results", "json_out"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, Path(getattr(self, name)))
        if not isinstance(self.options, BenchOptions):
            raise ConfigError(f"options must be a BenchOptions, got {type(self.options).__name__}")
        if not 0 < int(self.tvm_port) < 65536:
            raise ConfigError(f"tvm_port must be a TCP port (1-65535), got {self.tvm_port}")
