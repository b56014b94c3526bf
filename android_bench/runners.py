"""Runners: one measurement protocol over several backends.

* :class:`BenchmarkModelRunner` - TFLite's official ``benchmark_model`` on a phone over adb;
* :class:`LocalTfliteRunner` - the same protocol on this host with ai-edge-litert;
* :mod:`facelm.android_bench.tvm_runners` - TVM over RPC (phone) and the TVM host ``.so``.

Each runner offers ``facts()``, ``thermal()``, ``prepare(path)``,
``benchmark(handle) -> Measurement`` and ``outputs(handle, inputs) -> list[list[bytes]]``
(raw output tensors per input, for drift), and ``close()``.
"""
from __future__ import annotations

import logging
import os
import platform
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facelm.errors import ConfigError, DeviceError, InputError
from facelm.runtime.manifest import TensorSpec

from . import device as dev
from .adb import Adb, RemoteCommandError, quote
from .config import BenchOptions
from .parse import op_profile_record, parse_benchmark_output, parse_op_profile
from .records import latency_stats
from .transfer import RemoteFiles
from .virtual_device.procmem import rss_mb

log = logging.getLogger(__name__)


class BinaryCrashError(RemoteCommandError):
    """The benchmark binary exited non-zero or was killed by a signal."""


@dataclass
class Measurement:
    """Latency (ms), memory (MB) and raw tool output of one benchmark."""

    latency: dict
    memory: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    raw: list = field(default_factory=list)


#: What LiteRT raises for a file it cannot load (random bytes give a UnicodeDecodeError).
_LOAD_ERRORS = (ValueError, RuntimeError, UnicodeDecodeError, OSError)


def open_tflite(path: Path, allocate: bool = False, **kw):
    """A host LiteRT ``Interpreter`` for ``path``; InputError (one line) when LiteRT rejects the file."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        it = Interpreter(model_path=str(path), **kw)
        if allocate:
            it.allocate_tensors()
    except _LOAD_ERRORS as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, UnicodeDecodeError):
            first = "not a TFLite flatbuffer (unreadable bytes)"
        raise InputError(f"{path} is not a loadable TFLite model: {first}") from None
    return it


def check_tflite_loadable(path: Path) -> None:
    """InputError unless the host LiteRT can load ``path`` and allocate its tensors."""
    open_tflite(path, allocate=True)


def tflite_io(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of a ``.tflite`` file, read with the host interpreter."""
    from facelm.runtime.tflite import tensor_spec

    it = open_tflite(path)
    return [tensor_spec(d) for d in it.get_input_details()], [tensor_spec(d) for d in it.get_output_details()]


def split_outputs(raw: bytes, outputs: list[TensorSpec]) -> list[np.ndarray]:
    """Cut ``--output_filepath`` bytes (outputs concatenated in order) into arrays."""
    need = sum(o.nbytes for o in outputs)
    if len(raw) != need:
        raise DeviceError(f"output file holds {len(raw)} bytes, the model's outputs need {need}")
    arrays, off = [], 0
    for o in outputs:
        arrays.append(np.frombuffer(raw[off:off + o.nbytes], dtype=o.dtype).reshape(o.shape))
        off += o.nbytes
    return arrays


def _signal_name(rc: int) -> str:
    if rc > 128:
        try:
            return f" (killed by {signal.Signals(rc - 128).name})"
        except ValueError:
            pass
    return ""


def combine_invocations(parsed: list[dict]) -> dict:
    """Latency over several benchmark_model invocations (ms).

    mean/std pool the per-invocation counts, averages and stds; min/max are the
    extremes; init/first come from the first (coldest) invocation. median/p90/p99
    are over the per-invocation means ("basis" says so) and None for a single
    invocation, because the tool prints aggregates only.
    """
    counts = np.array([p["count"] or 0 for p in parsed], dtype=np.float64)
    avgs = np.array([p["avg_ms"] for p in parsed], dtype=np.float64)
    stds = np.array([p["std_ms"] or 0.0 for p in parsed], dtype=np.float64)
    w = counts if counts.sum() > 0 else np.ones_like(avgs)
    mean = float((w * avgs).sum() / w.sum())
    std = float(np.sqrt((w * (stds ** 2 + (avgs - mean) ** 2)).sum() / w.sum()))
    mins = [p["min_ms"] for p in parsed if p["min_ms"] is not None]
    maxs = [p["max_ms"] for p in parsed if p["max_ms"] is not None]
    per = latency_stats(avgs) if len(parsed) > 1 else {}
    return {
        "mean": mean, "std": std,
        "median": per.get("median"), "p90": per.get("p90"), "p99": per.get("p99"),
        "min": min(mins) if mins else None, "max": max(maxs) if maxs else None,
        "init": parsed[0]["init_ms"], "first": parsed[0]["first_ms"],
        "warmup_mean": parsed[0]["warmup_avg_ms"], "count": int(counts.sum()),
        "invocation_means": [float(a) for a in avgs],
        "basis": "per-invocation means" if len(parsed) > 1 else "aggregate only",
    }


class BenchmarkModelRunner:
    """TFLite ``benchmark_model`` on an adb device."""

    backend = "benchmark_model"

    def __init__(self, adb: Adb, serial: str, options: BenchOptions, sleep=time.sleep):
        self.adb = adb
        self.serial = serial
        self.opt = options
        self.sleep = sleep
        self.files = RemoteFiles(adb, serial, options.workdir, keep=options.keep, timeout_s=options.timeout_s)
        self._facts: dev.DeviceFacts | None = None
        self._binary: str | None = None
        self._tmp = tempfile.TemporaryDirectory(prefix="facelm-bench-")
        self._fixed_perf = False
        self.notes: list[str] = []

    # -- device setup ----------------------------------------------------------
    def facts(self) -> dev.DeviceFacts:
        if self._facts is None:
            self._facts = dev.read_facts(self.adb, self.serial, timeout_s=self.opt.timeout_s)
        return self._facts

    def thermal(self) -> dev.Thermal:
        return dev.read_thermal(self.adb, self.serial, timeout_s=self.opt.timeout_s)

    def setup(self) -> None:
        """Read facts, try fixed performance mode, and find or push the binary."""
        self.facts()
        if self.opt.fixed_performance:
            res = self.adb.shell(self.serial, "cmd power set-fixed-performance-mode-enabled true",
                                 timeout_s=self.opt.timeout_s)
            if res.returncode != 0:
                self.notes.append("fixed performance mode unsupported")
            else:
                self._fixed_perf = True  # persists until reboot: switched off again in close()
        self.files.ensure_workdir()
        self._binary = self._ensure_binary()

    def _ensure_binary(self) -> str:
        path = self.opt.benchmark_binary
        local = Path(path).expanduser()
        if local.is_file():
            remote = self.files.push(local, name="benchmark_model")
            self.adb.shell(self.serial, f"chmod 755 {quote(remote)}", timeout_s=self.opt.timeout_s, check=True)
            return remote
        if not path.startswith("/"):
            raise ConfigError(f"benchmark binary {path!r} is neither a host file nor an absolute device path")
        res = self.adb.shell(self.serial, f"[ -x {quote(path)} ] && echo ok", timeout_s=self.opt.timeout_s)
        if res.stdout.strip() != "ok":
            raise ConfigError(
                f"no executable benchmark_model at {path} on {self.serial}: download "
                "android_aarch64_benchmark_model (docs/android.md) and pass --benchmark-binary FILE")
        return path

    def prepare(self, model: Path, sha256: str | None = None) -> str:
        return self.files.push(model, sha256)

    # -- running -----------------------------------------------------------------
    def _delegate_flags(self) -> list[str]:
        d = self.opt.delegate
        flags = [f"--use_xnnpack={'true' if d == 'xnnpack' else 'false'}"]
        if d in ("gpu", "nnapi", "hexagon"):
            flags.append(f"--use_{d}=true")
        return flags

    def command(self, remote_model: str, runs: int, warmup: int, extra: list[str] = ()) -> str:
        """The shell command for one invocation (every path quoted)."""
        argv = [self._binary, f"--graph={remote_model}", f"--num_threads={self.opt.threads}",
                f"--warmup_runs={warmup}", f"--num_runs={runs}", "--min_secs=0", "--warmup_min_secs=0",
                *self._delegate_flags(), "--report_peak_memory_footprint=true", *extra]
        prefix = ""
        mask = self.facts().big_core_mask
        if self.opt.pin_big_cores and mask:
            prefix = f"taskset {mask} "
        return f"cd {quote(self.opt.workdir)} && {prefix}" + " ".join(quote(a) for a in argv)

    def _run(self, cmd: str):
        res = self.adb.shell(self.serial, cmd, timeout_s=self.opt.bench_timeout_s)
        if res.returncode != 0:
            raise BinaryCrashError(
                f"benchmark_model failed on {self.serial} with exit {res.returncode}{_signal_name(res.returncode)}",
                res.returncode, res.tail(20))
        return res

    def _invoke(self, cmd: str) -> str:
        return self._run(cmd).stdout

    def benchmark(self, remote_model: str) -> Measurement:
        """``repeats`` invocations with thermal wait / cool-down between them."""
        parsed, raw, waits, profiles = [], [], [], []
        for i in range(self.opt.repeats):
            if i and self.opt.cooldown_s:
                self.sleep(self.opt.cooldown_s)
            if self.opt.thermal_limit_c is not None:
                _, waited = dev.wait_cool(self.thermal, self.opt.thermal_limit_c, self.opt.thermal_wait_s,
                                          sleep=self.sleep)
                waits.append(waited)
            extra = ["--enable_op_profiling=true"] if self.opt.op_profile else []
            res = self._run(self.command(remote_model, self.opt.runs, self.opt.warmup, extra))
            out = res.stdout
            p = parse_benchmark_output(out)
            if self.opt.op_profile:  # logged like the timings: stdout, or stderr in some builds
                profiles.append(parse_op_profile(out) or parse_op_profile(res.stderr))
            if p["avg_ms"] is None:
                raise BinaryCrashError(f"could not find timings in benchmark_model output on {self.serial}",
                                       0, "\n".join(out.splitlines()[-20:]))
            parsed.append(p)
            raw.append(out)
        memory = {"init": parsed[0]["memory_init_mb"], "overall": parsed[0]["memory_overall_mb"],
                  "peak": parsed[0]["peak_memory_mb"]}
        notes = list(self.notes) + ([f"thermal waits (s): {waits}"] if any(waits) else [])
        latency = combine_invocations(parsed)
        if self.opt.op_profile:
            latency["op_profile"] = op_profile_record(profiles)
        return Measurement(latency, memory, notes, raw)

    def outputs(self, remote_model: str, inputs: list[TensorSpec], outputs: list[TensorSpec],
                samples: list[list[bytes]]) -> list[list[np.ndarray]]:
        """Run each sample (raw input tensors) once; return the outputs read back."""
        results = []
        tmp = Path(self._tmp.name)
        for i, sample in enumerate(samples):
            files = []
            for info, data in zip(inputs, sample):
                remote = self.files.push_bytes(data, f"input{i}.bin", tmp)
                files.append(f"{info.name.replace(':', '::')}:{remote}")
            out_remote = self.files.track(self.files.remote_path(f"output{i}.bin"))
            cmd = self.command(remote_model, 1, 0, [f"--input_layer_value_files={','.join(files)}",
                                                    f"--output_filepath={out_remote}"])
            self._invoke(cmd)
            local = tmp / f"output{i}.bin"
            self.adb.pull(self.serial, out_remote, local, timeout_s=self.opt.timeout_s)
            results.append(split_outputs(local.read_bytes(), outputs))
            local.unlink()
        return results

    def close(self) -> None:
        try:
            if self._fixed_perf:
                self._fixed_perf = False
                self.adb.shell(self.serial, "cmd power set-fixed-performance-mode-enabled false",
                               timeout_s=self.opt.timeout_s)
            self.files.cleanup()
        finally:
            self._tmp.cleanup()


# ------------------------------------------------------------------------------ local
def host_facts() -> dev.DeviceFacts:
    """This machine, described like a device."""
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    n = os.cpu_count() or 1
    return dev.DeviceFacts(
        serial="local", model=platform.node() or "host", manufacturer=None, soc=model or platform.processor(),
        abi=platform.machine(), api_level=None, release=f"{platform.system()} {platform.release()}",
        fingerprint=None, cores=tuple(dev.Core(i, None, None) for i in range(n)),
    )


def set_random_inputs(interpreter, seed: int = 0) -> dict[int, np.ndarray]:
    """Fill every input of a LiteRT interpreter with seeded random values, as benchmark_model does
    without input files: integers over the full int8 range, floats uniform in [-1, 1].

    Returns:
        tensor index -> the array set.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for d in interpreter.get_input_details():
        dtype = np.dtype(d["dtype"])
        if np.issubdtype(dtype, np.integer):
            value = rng.integers(-128, 127, size=d["shape"], endpoint=True).astype(dtype)
        else:
            value = rng.uniform(-1, 1, size=d["shape"]).astype(dtype)
        interpreter.set_tensor(d["index"], value)
        feeds[d["index"]] = value
    return feeds


class LocalTfliteRunner:
    """The benchmark protocol on this host with ai-edge-litert (per-run timings)."""

    backend = "local-tflite"

    def __init__(self, options: BenchOptions):
        if options.delegate not in ("cpu", "xnnpack"):
            raise ConfigError(f"delegate {options.delegate!r} is not available on the host; use cpu or xnnpack")
        self.opt = options
        self._facts = None
        self.notes: list[str] = []

    def facts(self) -> dev.DeviceFacts:
        if self._facts is None:
            self._facts = host_facts()
        return self._facts

    def thermal(self) -> dev.Thermal:
        return dev.Thermal()

    def setup(self) -> None:
        pass

    def prepare(self, model: Path, sha256: str | None = None) -> Path:
        return Path(model)

    def _interpreter(self, model: Path):
        from ai_edge_litert.interpreter import OpResolverType

        resolver = (OpResolverType.AUTO if self.opt.delegate == "xnnpack"
                    else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        return open_tflite(model, allocate=True, num_threads=self.opt.threads,
                           experimental_op_resolver_type=resolver)

    def benchmark(self, model: Path) -> Measurement:
        rss0 = rss_mb()
        t0 = time.perf_counter()
        it = self._interpreter(model)
        init_ms = (time.perf_counter() - t0) * 1e3
        rss_init = rss_mb()
        feeds = set_random_inputs(it)
        warm = []
        for _ in range(max(self.opt.warmup, 1)):
            t = time.perf_counter()
            it.invoke()
            warm.append((time.perf_counter() - t) * 1e3)
        samples = []
        for _ in range(self.opt.runs):
            t = time.perf_counter()
            it.invoke()
            samples.append((time.perf_counter() - t) * 1e3)
        lat = latency_stats(samples)
        lat.update(init=init_ms, first=warm[0], warmup_mean=statistics.fmean(warm), basis="per-run")
        if self.opt.op_profile:
            lat["op_profile"] = self._op_profile(model, feeds)
        memory = {"init": rss_init - rss0, "overall": rss_mb() - rss0, "peak": None}
        return Measurement(lat, memory, list(self.notes))

    def _op_profile(self, model: Path, feeds: dict) -> dict:
        """Per-op times: LiteRT's Python API has no op profiler, so every op is timed alone in a
        one-op model cut from the graph (the virtual device stand-in's method, same tables)."""
        from .virtual_device.benchmark_model import measure_ops, op_profile_text

        measured = measure_ops(str(model), feeds, self.opt.threads, self.opt.delegate == "xnnpack", self.opt.runs)
        return op_profile_record([parse_op_profile(op_profile_text(measured))],
                                 source="local: one-op models (LiteRT's Python API has no op profiler)")

    def outputs(self, model: Path, inputs: list[TensorSpec], outputs: list[TensorSpec],
                samples: list[list[bytes]]) -> list[list[np.ndarray]]:
        it = self._interpreter(model)
        ins = it.get_input_details()
        outs = it.get_output_details()
        results = []
        for sample in samples:
            for d, info, data in zip(ins, inputs, sample):
                it.set_tensor(d["index"], np.frombuffer(data, dtype=info.dtype).reshape(info.shape))
            it.invoke()
            results.append([it.get_tensor(d["index"]).copy() for d in outs])
        return results

    def close(self) -> None:
        pass

