"""A stand-in for TFLite's ``benchmark_model``, run on the virtual device.

It implements the flags the harness uses with ai-edge-litert on the host CPU and
prints the official 2.x output format (see :mod:`facelm.android_bench.parse`). GPU,
NNAPI and Hexagon delegates do not exist here: asking for them prints a notice and
runs on the CPU, so only the flag plumbing is exercised, not the accelerator.

Fault switch: ``FACELM_VD_CRASH=segv|abort|exit`` (set by the virtual device)
makes it crash after loading the model, like a binary built for the wrong ABI or
a delegate that dies.
"""
from __future__ import annotations

import os
import signal
import statistics
import sys
import time

import numpy as np

FLAGS = {
    "graph": "", "num_threads": "-1", "warmup_runs": "1", "num_runs": "50", "min_secs": "1",
    "max_secs": "150", "warmup_min_secs": "0.5", "run_delay": "-1", "use_xnnpack": "", "use_gpu": "false",
    "use_nnapi": "false", "use_hexagon": "false", "input_layer_value_files": "", "output_filepath": "",
    "report_peak_memory_footprint": "false", "enable_op_profiling": "false",
}


def _rss_mb() -> float:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _bool(v: str) -> bool:
    return v.lower() in ("1", "true", "yes")


def _parse(argv: list[str]) -> tuple[dict, list[str]]:
    flags = dict(FLAGS)
    unknown = []
    for arg in argv:
        if arg.startswith("--") and "=" in arg:
            k, v = arg[2:].split("=", 1)
            if k in flags:
                flags[k] = v
                continue
        unknown.append(arg)
    return flags, unknown


def _value_files(spec: str) -> list[tuple[str, str]]:
    """Split ``name:path,name2:path2`` ("::" escapes a colon inside a name)."""
    out = []
    for item in filter(None, spec.split(",")):
        placeholder = item.replace("::", "\0")
        name, sep, path = placeholder.partition(":")
        if not sep:
            raise ValueError(f"bad input_layer_value_files item {item!r}")
        out.append((name.replace("\0", ":"), path.replace("\0", ":")))
    return out


def _stats_line(times_us: list[float]) -> str:
    if not times_us:
        return "count=0"
    std = statistics.pstdev(times_us) if len(times_us) > 1 else 0.0
    return (f"count={len(times_us)} first={times_us[0]:.0f} curr={times_us[-1]:.0f} min={min(times_us):.0f} "
            f"max={max(times_us):.0f} avg={statistics.fmean(times_us):g} std={std:.0f}")


def _loop(interp, runs: int, min_secs: float, max_secs: float, delay: float) -> list[float]:
    times = []
    start = time.perf_counter()
    while True:
        elapsed = time.perf_counter() - start
        if len(times) >= runs and elapsed >= min_secs:
            break
        if elapsed > max_secs and times:
            break
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1e6)
        if delay > 0:
            time.sleep(delay)
    return times


def _log_machine(graph: str) -> None:
    """Append ``MACHINE GRAPH`` to the device's benchmark_model.log (which CPU ran it), and say
    when the timings are emulated (``FACELM_VD_EMULATED``, set by an arm64 virtual device)."""
    import platform

    emulated = os.environ.get("FACELM_VD_EMULATED")
    if emulated:
        print(f"Emulated: {platform.machine()} under {emulated}; timings are not comparable with a phone.")
    root = os.environ.get("FACELM_VD_ROOT")
    if root:
        with open(os.path.join(root, "benchmark_model.log"), "a") as fh:
            fh.write(f"{platform.machine()} {graph}\n")


def main(argv: list[str] | None = None) -> int:
    flags, unknown = _parse(sys.argv[1:] if argv is None else argv)
    print("STARTING!", flush=True)
    if unknown:
        print(f"Unconsumed cmdline flags: {' '.join(unknown)}", file=sys.stderr)
    graph = flags["graph"]
    print(f"Log parameter values verbosely: [0]\nNum threads: [{flags['num_threads']}]\nGraph: [{graph}]")
    threads = int(flags["num_threads"])
    print(f"#threads used for CPU inference: [{threads}]")
    if not graph or not os.path.exists(graph):
        print(f"ERROR: Could not open '{graph}'.", file=sys.stderr)
        print("Benchmarking failed.", file=sys.stderr)
        return 1
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    xnnpack = flags["use_xnnpack"] == "" or _bool(flags["use_xnnpack"])
    for name in ("use_gpu", "use_nnapi", "use_hexagon"):
        if _bool(flags[name]):
            print(f"Use {name[4:]}: [1]")
            print(f"WARNING: {name[4:]} delegate is not available on the virtual device; running on CPU.",
                  file=sys.stderr)
    print(f"Use xnnpack: [{int(xnnpack)}]")
    print(f"Loaded model {graph}")
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interp = Interpreter(model_path=graph, num_threads=threads if threads > 0 else None,
                             experimental_op_resolver_type=resolver)
        interp.allocate_tensors()
    except Exception as exc:  # the real tool prints and exits 1 on a bad model
        print(f"ERROR: Failed to construct interpreter: {exc}", file=sys.stderr)
        print("Benchmarking failed.", file=sys.stderr)
        return 1
    init_us = (time.perf_counter() - t0) * 1e6
    print("INFO: Initialized TensorFlow Lite runtime.")
    if xnnpack:
        print("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.")
    print(f"The input model file size (MB): {os.path.getsize(graph) / 1e6:g}")
    print(f"Initialized session in {init_us / 1000:.3f}ms.", flush=True)
    _log_machine(graph)
    rss_init = _rss_mb()

    crash = os.environ.get("FACELM_VD_CRASH")
    if crash:
        sys.stdout.flush()
        print("F tflite  : fault injected by the virtual device", file=sys.stderr, flush=True)
        if crash == "segv":
            os.kill(os.getpid(), signal.SIGSEGV)
        elif crash == "abort":
            os.abort()
        return 1

    inputs = interp.get_input_details()
    files = dict(_value_files(flags["input_layer_value_files"]))
    rng = np.random.default_rng(0)
    for det in inputs:
        dtype = np.dtype(det["dtype"])
        shape = tuple(det["shape"])
        if det["name"] in files:
            raw = open(files[det["name"]], "rb").read()
            need = int(np.prod(shape)) * dtype.itemsize
            if len(raw) != need:
                print(f"ERROR: The number of bytes in {files[det['name']]} ({len(raw)}) doesn't match "
                      f"the input tensor {det['name']} ({need} bytes).", file=sys.stderr)
                return 1
            value = np.frombuffer(raw, dtype=dtype).reshape(shape)
        elif np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            value = rng.integers(max(info.min, -128), min(info.max, 255), size=shape, endpoint=True).astype(dtype)
        else:
            value = rng.uniform(-1, 1, size=shape).astype(dtype)
        interp.set_tensor(det["index"], value)
    missing = set(files) - {d["name"] for d in inputs}
    if missing:
        print(f"ERROR: Cannot find input layer(s) {sorted(missing)} in the model.", file=sys.stderr)
        return 1

    warm_runs = int(flags["warmup_runs"])
    print(f"Running benchmark for at least {warm_runs} iterations and at least {flags['warmup_min_secs']} "
          f"seconds but terminate if exceeding {flags['max_secs']} seconds.")
    warm = _loop(interp, warm_runs, float(flags["warmup_min_secs"]), float(flags["max_secs"]), -1)
    print(_stats_line(warm) + "\n")
    runs = int(flags["num_runs"])
    print(f"Running benchmark for at least {runs} iterations and at least {flags['min_secs']} seconds but "
          f"terminate if exceeding {flags['max_secs']} seconds.")
    meas = _loop(interp, runs, float(flags["min_secs"]), float(flags["max_secs"]), float(flags["run_delay"]))
    print(_stats_line(meas) + "\n")
    first = (warm or meas)[0]
    warm_avg = statistics.fmean(warm) if warm else float("nan")
    print(f"Inference timings in us: Init: {init_us:.0f}, First inference: {first:.0f}, "
          f"Warmup (avg): {warm_avg:g}, Inference (avg): {statistics.fmean(meas):g}")
    rss_end = _rss_mb()
    print("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
          "actual memory footprint of the model at runtime. Take the information at your discretion.")
    print(f"Memory footprint delta from the start of the tool (MB): init={rss_init - rss0:g} "
          f"overall={rss_end - rss0:g}")
    if _bool(flags["report_peak_memory_footprint"]):
        print(f"Overall peak memory footprint (MB) via periodic monitoring: {max(rss_end, rss_init):g}")
    if flags["output_filepath"]:
        with open(flags["output_filepath"], "wb") as fh:
            for det in interp.get_output_details():
                fh.write(np.ascontiguousarray(interp.get_tensor(det["index"])).tobytes())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
