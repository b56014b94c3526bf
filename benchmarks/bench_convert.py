"""Conversion wall time against a bare onnx2tf (``--conversion-speed``), or the speed and size of
every artifact of one model, single thread, in one run (medians).

``--conversion-speed`` times ``facelm convert`` with its defaults (the demo checkpoint, the
paper-final config, targets tflite + tvm untuned: what ``make demo`` runs), prints its stage
table, then times a bare ``onnx2tf -i model.onnx`` (float32 + float16, the stock CLI) of the
same ONNX file in the same run and prints the ratio (issue 10's target: <= 2.5). The machine's
load average is printed too: on a shared machine both figures move with it.

    python benchmarks/bench_convert.py --conversion-speed [--json out.json]
    python benchmarks/bench_convert.py --conversion-speed --config tiny --random-init   # quick look

Runs in one process, one after the other: PyTorch, onnxruntime, each TFLite artifact with
ai-edge-litert (XNNPACK, the default CPU delegate), and TVM host libraries (untuned and,
with ``--tvm-trials``, MetaSchedule-tuned at each budget). Then checks the issue's goals:

- ``int8.tflite`` latency <= fp32 latency / 3, and size <= fp32 size / 3.5;
- TVM (best budget) within 1.5x of fp32 TFLite.

Usage::

    # the paper's final config, freshly initialised weights (speed does not depend on them)
    python benchmarks/bench_convert.py --config final --random-init --runs 50
    # an existing artifact folder (from `facelm convert`)
    python benchmarks/bench_convert.py --artifacts artifacts
    # with cumulative tuning budgets (each continues the previous database)
    python benchmarks/bench_convert.py --config final --random-init --tvm-trials 70,280
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def median_ms(fn, x, runs: int, warmup: int) -> float:
    """Median wall time of ``fn(x)`` in milliseconds over ``runs`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn(x)
    t = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        t.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(t)


def convert_for_bench(args, out: Path) -> Path:
    from facelm.converters.pipeline import ConvertConfig, convert
    from facelm.quantization.drift import GateConfig

    cfg = ConvertConfig(config=args.config, weights=args.weights, random_init=args.random_init, out=str(out),
                        force=True, num_calib=args.num_calib, num_eval=8, latency_runs=2,
                        gates=GateConfig(parity_max_abs=float("inf"), int8_drift_mean=float("inf")))
    return convert(cfg).out


def conversion_speed(args) -> int:
    """``facelm convert`` (defaults) vs a bare ``onnx2tf -i model.onnx`` of the same ONNX, same run."""
    import shutil
    import subprocess

    from facelm.converters.pipeline import ConvertConfig, convert
    from facelm.converters.tflite import _onnx2tf_command, write_calibration_inputs

    work = Path(tempfile.mkdtemp(prefix="facelm-bench-convert-"))
    load_before = os.getloadavg()
    kw = {}
    if args.config_given:
        kw["config"] = args.config
    cfg = ConvertConfig(weights=args.weights, random_init=args.random_init, out=str(work / "artifacts"), force=True,
                        **kw)
    t0 = time.perf_counter()
    res = convert(cfg)
    total = time.perf_counter() - t0
    bare = work / "bare"
    bare.mkdir()
    shutil.copyfile(res.out / "model.onnx", bare / "model.onnx")  # a copy: onnx2tf rewrites its input
    side = res.manifest.model.input_side
    # onnx2tf's fallback sample file, so it never reaches for the network
    write_calibration_inputs(bare, np.random.default_rng(0).uniform(0, 1, (4, side, side, 3)).astype(np.float32))
    t1 = time.perf_counter()
    proc = subprocess.run(_onnx2tf_command() + ["-i", "model.onnx"], cwd=bare, capture_output=True, text=True,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES=""))
    bare_s = time.perf_counter() - t1
    load_after = os.getloadavg()
    if proc.returncode != 0:
        print(proc.stdout[-2000:], proc.stderr[-2000:])
        return 1
    ratio = total / bare_s
    print(f"model: {res.manifest.model.name} ({res.manifest.model.weights_file}); targets {','.join(cfg.targets)}; "
          f"{os.cpu_count()} CPUs; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after")
    print(f"{'stage':78s} {'s':>8s}")
    for name, dt in res.timings.items():
        print(f"{name[:78]:78s} {dt:8.1f}")
    print(f"{'facelm convert, total':78s} {total:8.1f}")
    print(f"{'bare onnx2tf -i model.onnx (float32 + float16)':78s} {bare_s:8.1f}")
    print(f"ratio facelm convert / bare onnx2tf: {ratio:.2f} (target <= 2.5: {'met' if ratio <= 2.5 else 'NOT met'})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "model": res.manifest.model.name, "stages_s": res.timings, "convert_s": total, "bare_onnx2tf_s": bare_s,
            "ratio": ratio, "cpu_count": os.cpu_count(), "loadavg_before": load_before, "loadavg_after": load_after},
            indent=2))
    shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--conversion-speed", action="store_true",
                   help="time `facelm convert` (defaults) against a bare onnx2tf of the same ONNX")
    p.add_argument("--artifacts", help="benchmark an existing artifact folder instead of converting")
    p.add_argument("--config", default=None, help="model config (default: final; with --conversion-speed: "
                                                  "the demo checkpoint's own)")
    p.add_argument("--weights")
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--num-calib", type=int, default=100)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--tvm-trials", default="", help="comma-separated MetaSchedule budgets to tune and time")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.config_given = args.config is not None
    if args.config is None:
        args.config = "final"
    if args.conversion_speed:
        return conversion_speed(args)

    import torch

    from facelm.converters.onnx_export import onnx_heatmaps  # noqa: F401 (import check)
    from facelm.runtime import load_manifest
    from facelm.runtime.tflite import TfliteRunner

    torch.set_num_threads(1)
    work = Path(tempfile.mkdtemp(prefix="facelm-bench-"))
    t0 = time.perf_counter()
    folder = Path(args.artifacts) if args.artifacts else convert_for_bench(args, work / "artifacts")
    convert_s = time.perf_counter() - t0
    man = load_manifest(folder)
    size = man.model.input_side
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    rows: dict[str, dict] = {}

    # PyTorch: rebuild from the ONNX-identical config
    from facelm.model import build_model, load_checkpoint
    from facelm.model.config import ModelConfig

    if args.weights:
        model = load_checkpoint(args.weights)[0]
    else:
        model = build_model(ModelConfig.from_dict(man.model.config)).eval()
    with torch.no_grad():
        xt = torch.from_numpy(x)
        rows["torch"] = {"ms": median_ms(lambda a: model(a), xt, args.runs, args.warmup)}

    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
    sess = ort.InferenceSession(str(man.artifact_path("onnx")), so, providers=["CPUExecutionProvider"])
    rows["onnxruntime"] = {"ms": median_ms(lambda a: sess.run(None, {"input": a}), x, args.runs, args.warmup),
                           "bytes": man.artifact("onnx").bytes}

    for a in man.artifacts:
        if a.format != "tflite":
            continue
        r = TfliteRunner(man.artifact_path(a.name), num_threads=1)
        xi = r.prepare(x)
        rows[f"tflite:{a.name}"] = {"ms": median_ms(r.invoke, xi, args.runs, args.warmup), "bytes": a.bytes,
                                    "ops": sum(a.op_counts.values()), "max_rank": a.max_tensor_rank}

    from facelm.converters.tvm import TvmRunner, compile_host

    r = TvmRunner(man.artifact_path("tvm_host"))
    rows["tvm:untuned"] = {"ms": median_ms(r.invoke, x, args.runs, args.warmup), "bytes": man.artifact("tvm_host").bytes}
    # Budgets are cumulative: each one continues the previous tuning database (MetaSchedule
    # starts its search from the best records there), so "70,280" costs 280 trials in all.
    done, tune_total = 0, 0.0
    for budget in sorted(int(b) for b in args.tvm_trials.split(",") if b.strip()):
        if budget <= done:
            continue
        t1 = time.perf_counter()
        b = compile_host(man.artifact_path("onnx"), work / f"tvm_{budget}.so", (1, 3, size, size),
                         trials=budget - done, work_dir=work / "tune")
        tune_total += time.perf_counter() - t1
        done = budget
        r = TvmRunner(b.path)
        err = float(np.abs(r.invoke(x) - sess.run(None, {"input": x})[0]).max())
        rows[f"tvm:{budget}"] = {"ms": median_ms(r.invoke, x, args.runs, args.warmup), "tune_s": tune_total,
                                 "max_abs_vs_onnx": err, "tuned_kernels": b.tuned_kernels}

    fp32, int8 = rows.get("tflite:fp32"), rows.get("tflite:int8")
    tvm_best = min((v["ms"] for k, v in rows.items() if k.startswith("tvm:")), default=float("nan"))
    goals = {}
    if fp32 and int8:
        goals["int8_latency_ratio"] = int8["ms"] / fp32["ms"]
        goals["int8_latency_goal_met"] = goals["int8_latency_ratio"] <= 1 / 3
        goals["int8_size_ratio"] = int8["bytes"] / fp32["bytes"]
        goals["int8_size_goal_met"] = goals["int8_size_ratio"] <= 1 / 3.5
        goals["tvm_best_vs_fp32_tflite"] = tvm_best / fp32["ms"]
        goals["tvm_goal_met"] = goals["tvm_best_vs_fp32_tflite"] <= 1.5

    print(f"model: {man.model.name} ({man.model.weights_file}), input {size}px; "
          f"single thread, median of {args.runs} runs after {args.warmup} warm-up; conversion {convert_s:.0f} s")
    print(f"{'runtime':24s} {'median ms':>10s} {'size':>10s}")
    for k, v in rows.items():
        size_txt = f"{v['bytes'] / 2**20:.2f} MiB" if "bytes" in v else ""
        extra = (f"  (tuned {v['tune_s']:.0f} s in all, {v['tuned_kernels']} kernels tuned, "
                 f"max|Δ| vs ORT {v['max_abs_vs_onnx']:.1e})") if "tune_s" in v else ""
        print(f"{k:24s} {v['ms']:10.2f} {size_txt:>10s}{extra}")
    for k, v in goals.items():
        print(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": man.model.name, "rows": rows, "goals": goals,
                                               "cpu_count": os.cpu_count()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
