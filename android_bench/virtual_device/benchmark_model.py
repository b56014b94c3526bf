"""A stand-in for TFLite's ``benchmark_model``, run on the virtual device.

It implements the flags the harness uses with ai-edge-litert on the host CPU and
prints the official 2.x output format (see :mod:`facelm.android_bench.parse`). GPU,
NNAPI and Hexagon delegates do not exist here: asking for them prints a notice and
runs on the CPU, so only the flag plumbing is exercised, not the accelerator.

``--enable_op_profiling=true`` prints the tool's per-op tables ("Run Order", "Top by
Computation Time", "Summary by node type", in the format of TFLite's StatsCalculator)
from per-op times this stand-in measures itself, because the Python interpreter has no
op profiler: every operator of the main graph is cut out into a model of its own (the
op, its tensors, its constant buffers, copied from the flatbuffer), fed the values its
inputs had in a full run of the benchmark input, and that one-op model's ``invoke()`` is
timed with the same threads and resolver (``measure_ops``). So each figure is a real
measurement of that op's kernel on this CPU, but taken alone: it includes the
interpreter's per-invoke overhead (printed as "Per-invoke overhead"), it misses the cache
state and the cross-op fusion of the full graph, and with XNNPACK every op is delegated on
its own instead of in one delegate partition (the real tool would show delegate nodes). The
[start] column is left out (the ops do not run in one sequence), as older tool versions
also print it. Ops that call other subgraphs (WHILE, IF, CALL_ONCE) are not timed and are
listed in a "Not timed alone" line.

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

try:
    from .procmem import rss_mb
except ImportError:  # run as a script (the aarch64 stand-in, no facelm): the sibling file
    from procmem import rss_mb  # type: ignore[no-redef]

FLAGS = {
    "graph": "", "num_threads": "-1", "warmup_runs": "1", "num_runs": "50", "min_secs": "1",
    "max_secs": "150", "warmup_min_secs": "0.5", "run_delay": "-1", "use_xnnpack": "", "use_gpu": "false",
    "use_nnapi": "false", "use_hexagon": "false", "input_layer_value_files": "", "output_filepath": "",
    "report_peak_memory_footprint": "false", "enable_op_profiling": "false",
}


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


# ------------------------------------------------------------------ per-op timing (--enable_op_profiling)
def _builtin_names(schema) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_") and isinstance(v, int)}


def _calls_subgraph(op) -> bool:
    for opts in (op.builtinOptions, getattr(op, "builtinOptions2", None)):
        if opts is not None and any(k.lower().endswith("subgraphindex") for k in vars(opts)):
            return True
    return False


def _op_type(model, op, names: dict[int, str]) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode or 0, code.deprecatedBuiltinCode or 0)
    if code.customCode:
        return code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
    return names.get(builtin, f"BUILTIN_{builtin}")


def _tensor_name(t) -> str:
    return t.name.decode() if isinstance(t.name, bytes) else str(t.name)


def one_op_models(buf: bytes) -> list[dict]:
    """Cut every operator of subgraph 0 out of a TFLite flatbuffer into a model of its own.

    Returns one dict per op in execution order: ``index``, ``type`` (builtin op name),
    ``name`` (``[output tensor names]:index``, as the tool names nodes), ``model`` (bytes
    of the one-op model, or None for an op that calls other subgraphs) and ``inputs``
    (original tensor indices of its non-constant inputs, in the one-op model's input order).
    """
    import copy

    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromPackedBuf(buf, 0)
    names = _builtin_names(schema)
    graph = model.subgraphs[0]
    out = []
    for i, op in enumerate(graph.operators or []):
        outs = [t for t in (op.outputs if op.outputs is not None else []) if t >= 0]
        item = {"index": i, "type": _op_type(model, op, names),
                "name": "[" + ", ".join(_tensor_name(graph.tensors[t]) for t in outs) + f"]:{i}",
                "model": None, "inputs": []}
        out.append(item)
        if _calls_subgraph(op):
            continue
        ins = [int(t) for t in (op.inputs if op.inputs is not None else [])]
        remap: dict[int, int] = {}
        tensors, buffers, runtime_inputs = [], [schema.BufferT()], []
        for t in [t for t in ins if t >= 0] + outs:
            if t in remap:
                continue
            tt = copy.copy(graph.tensors[t])
            data = model.buffers[tt.buffer].data if 0 < tt.buffer < len(model.buffers) else None
            if data is not None and len(data) > 0 and t not in outs:
                buffers.append(model.buffers[tt.buffer])
                tt.buffer = len(buffers) - 1
            else:
                tt.buffer = 0
                if t not in outs:
                    runtime_inputs.append(t)
            remap[t] = len(tensors)
            tensors.append(tt)
        sub = schema.SubGraphT()
        sub.tensors = tensors
        sub.inputs = [remap[t] for t in runtime_inputs]
        sub.outputs = [remap[t] for t in outs]
        new_op = copy.copy(op)
        new_op.inputs = [remap[t] if t >= 0 else -1 for t in ins]
        new_op.outputs = [remap[t] for t in outs]
        new_op.intermediates = None
        sub.operators = [new_op]
        small = schema.ModelT()
        small.version, small.operatorCodes, small.description = model.version, model.operatorCodes, b"one op"
        small.subgraphs, small.buffers = [sub], buffers
        builder = flatbuffers.Builder(1024)
        builder.Finish(small.Pack(builder), file_identifier=b"TFL3")
        item["model"], item["inputs"] = bytes(builder.Output()), runtime_inputs
    return out


def _timed_invokes(interp, runs: int) -> tuple[float, list[float]]:
    t0 = time.perf_counter()
    interp.invoke()
    first = (time.perf_counter() - t0) * 1e6
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        interp.invoke()
        times.append((time.perf_counter() - t0) * 1e6)
    return first, times


def measure_ops(graph: str, feeds: dict[int, np.ndarray], threads: int, xnnpack: bool, runs: int) -> dict:
    """Time every op of ``graph`` alone (see the module docstring): one-op models fed real values.

    feeds: the full model's input values by tensor index (what the benchmark ran on).
    Returns ``{"ops": [{"index", "type", "name", "first_us", "times_us" (runs floats, µs)}],
    "not_timed": [names], "overhead_us": median invoke time of an op-free model or None}``.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    kw = {"num_threads": threads if threads > 0 else None, "experimental_op_resolver_type": resolver}
    with open(graph, "rb") as fh:
        buf = fh.read()
    full = Interpreter(model_content=buf, experimental_preserve_all_tensors=True, num_threads=kw["num_threads"],
                       experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    full.allocate_tensors()
    for index, value in feeds.items():
        full.set_tensor(index, value)
    full.invoke()  # every intermediate tensor keeps the value it had in this run
    ops, not_timed = [], []
    for item in one_op_models(buf):
        if item["model"] is None:
            not_timed.append(item["name"])
            continue
        small = Interpreter(model_content=item["model"], **kw)
        small.allocate_tensors()
        for det, t in zip(small.get_input_details(), item["inputs"]):
            small.set_tensor(det["index"], full.get_tensor(t))
        first, times = _timed_invokes(small, runs)
        ops.append({k: item[k] for k in ("index", "type", "name")} | {"first_us": first, "times_us": times})
    return {"ops": ops, "not_timed": not_timed, "overhead_us": _overhead_us(kw, runs)}


def _overhead_us(kw: dict, runs: int) -> float | None:
    """Median ``invoke()`` time of a model without operators (its input is its output)."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.interpreter import Interpreter

    t = schema.TensorT()
    t.shape, t.type, t.buffer, t.name = [1], schema.TensorType.FLOAT32, 0, b"x"
    sub = schema.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators = [t], [0], [0], []
    m = schema.ModelT()
    m.version, m.operatorCodes, m.subgraphs, m.buffers = 3, [], [sub], [schema.BufferT()]
    builder = flatbuffers.Builder(64)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    try:
        it = Interpreter(model_content=bytes(builder.Output()), **kw)
        it.allocate_tensors()
        _, times = _timed_invokes(it, max(runs, 5))
    except Exception:  # an op-free model is not something every LiteRT accepts
        return None
    return float(np.median(times))


def _field(v, width: int) -> str:
    return f"\t{v:>{width}.3f}" if isinstance(v, float) else f"\t{v!s:>{width}}"


def _op_rows(ops: list[dict], total_us: float) -> list[str]:
    rows, cdf = [], 0.0
    for op in ops:
        avg = statistics.fmean(op["times_us"])
        cdf += avg
        rows.append(_field(op["type"], 24) + _field(op["first_us"] / 1000, 9) + _field(avg / 1000, 9)
                    + _field(100 * avg / total_us, 7) + "%" + _field(100 * cdf / total_us, 7) + "%"
                    + _field(0.0, 10) + _field(1, 9) + "\t" + op["name"])
    return rows


def op_profile_text(measured: dict, top: int = 10) -> str:
    """The tool's "Operator-wise Profiling Info" block for :func:`measure_ops`' result (times in ms)."""
    ops = measured["ops"]
    lines = ["Operator-wise Profiling Info for Regular Benchmark Runs:"]
    if measured["overhead_us"] is not None:
        lines.insert(0, f"Per-invoke overhead (op-free model, median): {measured['overhead_us']:.3f} us; "
                        "included in every op's time below.")
    lines.insert(0, "Op profiling method: each op timed alone in a one-op model cut from the graph, fed its "
                    "real input values (facelm's measurement, not benchmark_model's in-graph profiler)")
    if measured["not_timed"]:
        lines.insert(0, "Not timed alone (they call other subgraphs): " + ", ".join(measured["not_timed"]))
    runs = min((len(op["times_us"]) for op in ops), default=0)
    per_run = [sum(op["times_us"][j] for op in ops) for j in range(runs)]
    total = statistics.fmean(per_run) if per_run else 0.0
    total = total or 1.0
    header = (_field("[node type]", 24) + _field("[first]", 9) + _field("[avg ms]", 9) + _field("[%]", 8)
              + _field("[cdf%]", 8) + _field("[mem KB]", 10) + _field("[times called]", 9) + "\t[Name]")
    bar = "============================== {} =============================="
    lines += [bar.format("Run Order"), header, *_op_rows(ops, total), ""]
    by_time = sorted(ops, key=lambda o: -statistics.fmean(o["times_us"]))[:top]
    lines += [bar.format("Top by Computation Time"), header, *_op_rows(by_time, total), ""]
    lines += [f"Number of nodes executed: {len(ops)}", bar.format("Summary by node type"),
              _field("[Node type]", 24) + _field("[count]", 9) + _field("[avg ms]", 10) + _field("[avg %]", 11)
              + _field("[cdf %]", 11) + _field("[mem KB]", 10) + _field("[times called]", 10)]
    by_type: dict[str, list] = {}
    for op in ops:  # like the tool: whole microseconds per op, summed per type
        by_type.setdefault(op["type"], []).append(int(statistics.fmean(op["times_us"])))
    acc = sum(sum(v) for v in by_type.values()) or 1
    cdf = 0.0
    for name, us in sorted(by_type.items(), key=lambda kv: (-sum(kv[1]), kv[0])):
        pct = 100.0 * sum(us) / acc
        cdf += pct
        lines.append(_field(name, 24) + _field(len(us), 9) + _field(sum(us) / 1000, 10) + _field(pct, 10) + "%"
                     + _field(cdf, 10) + "%" + _field(0.0, 10) + _field(len(us), 9))
    lines += ["", "Timings (microseconds): " + _stats_line(per_run), "Memory (bytes): count=0",
              f"{len(ops)} nodes observed", ""]
    return "\n".join(lines)


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
    rss0 = rss_mb()
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
    rss_init = rss_mb()

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
    feeds = {}  # input values by tensor index, for the op profile
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
        feeds[det["index"]] = value
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
    rss_end = rss_mb()
    print("Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the "
          "actual memory footprint of the model at runtime. Take the information at your discretion.")
    print(f"Memory footprint delta from the start of the tool (MB): init={rss_init - rss0:g} "
          f"overall={rss_end - rss0:g}")
    if _bool(flags["report_peak_memory_footprint"]):
        print(f"Overall peak memory footprint (MB) via periodic monitoring: {max(rss_end, rss_init):g}")
    if _bool(flags["enable_op_profiling"]):
        measured = measure_ops(graph, feeds, threads, xnnpack, max(1, min(runs, 100)))
        print(op_profile_text(measured))
    if flags["output_filepath"]:
        with open(flags["output_filepath"], "wb") as fh:
            for det in interp.get_output_details():
                fh.write(np.ascontiguousarray(interp.get_tensor(det["index"])).tobytes())
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
