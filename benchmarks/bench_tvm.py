"""TVM host latency: untuned, tuned with the shipped database, and TFLite, interleaved, one thread.

Issue 21 item 2: on the paper-final model (the demo, ``mnv2_1.0_sdd128``) tuned TVM fp32 should
run within 2x fp32 TFLite (moonshot 1.5x) and below the paper's 65.7 ms, with parity to torch
unchanged. Everything is built in this process from the shipped demo checkpoint (or ``--config``
for an untrained zoo model): ONNX export, an untuned TVM build (generic ``llvm``), a build with
the shipped database (:func:`facelm.converters.tvm.find_shipped_db`, its card's target) and,
with ``--tflite``, fp32/int8 ``.tflite`` files of the same model (e.g. from ``artifacts/``).
``--int8-tflite FILE`` also builds ``tvm_int8`` from that file (see docs/conversion.md).

Each round times one call of every model, the order rotated by one each round; the table gives
the median and the ratio to the first ``--tflite`` model, plus the load average before and after
(on a shared machine every figure moves with the load: compare only within one run). Parity:
max |TVM - torch| on ``--faces`` random inputs, untuned and tuned.

    OMP_NUM_THREADS=1 TVM_NUM_THREADS=1 nice -n 10 .venv/bin/python benchmarks/bench_tvm.py \\
        --tflite fp32=artifacts/fp32.tflite --tflite int8=artifacts/int8.tflite --rounds 15 [--json out.json]
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

os.environ.setdefault("TVM_NUM_THREADS", "1")


def _tflite(path: Path):
    """(call, input) for a LiteRT interpreter, one thread, fed a fixed random input of its shape."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    x = np.random.default_rng(0).standard_normal(d["shape"]).astype(d["dtype"])

    def call(_x):
        it.set_tensor(d["index"], x)
        it.invoke()
    return call, x


def interleaved(calls: dict[str, tuple], rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """name -> per-round ms; each round runs every model once, the order rotated each round."""
    names = list(calls)
    for _ in range(warmup):
        for n in names:
            calls[n][0](calls[n][1])
    ms: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        for n in order:
            fn, x = calls[n]
            t0 = time.perf_counter()
            fn(x)
            ms[n].append((time.perf_counter() - t0) * 1e3)
    return ms


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", help="an untrained zoo config instead of the demo checkpoint")
    ap.add_argument("--tflite", action="append", default=[], metavar="LABEL=FILE")
    ap.add_argument("--int8-tflite", help="also build tvm_int8 from this int8 .tflite")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--faces", type=int, default=4)
    ap.add_argument("--no-untuned", action="store_true", help="skip the untuned build (slow to run)")
    ap.add_argument("--so", action="append", default=[], metavar="LABEL=FILE[:nhwc]",
                    help="an already built TVM host library of the same model (e.g. artifacts/tvm/host.so); "
                         ":nhwc for one taking the TFLite model's NHWC input (tvm_int8)")
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    import torch

    from facelm.converters import tvm as tv
    from facelm.converters.onnx_export import export_onnx, torch_heatmaps
    from facelm.model import build_model, load_checkpoint, load_config

    torch.set_num_threads(1)
    if args.config:
        cfg = load_config(args.config)
        model = build_model(cfg).eval()
    else:
        from facelm.assets import demo_checkpoint

        model, cfg, _ = load_checkpoint(demo_checkpoint())
    s = cfg.input_size
    rng = np.random.default_rng(1)
    x = rng.standard_normal((args.faces, 3, s, s)).astype(np.float32)
    ref = torch_heatmaps(model, x)
    load0 = os.getloadavg()
    calls: dict[str, tuple] = {}
    info: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="facelm-bench-tvm-") as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "m.onnx", s)
        for label, shipped in (("tvm_untuned", False), ("tvm_tuned", True)):
            if label == "tvm_untuned" and args.no_untuned:
                continue
            t0 = time.time()
            b = tv.compile_host(onnx_path, Path(tmp) / f"{label}.so", (1, 3, s, s), shipped_db=shipped)
            r = tv.TvmRunner(b.path)
            hm = r.heatmaps(x)
            info[label] = {"build_s": round(time.time() - t0, 1), "database": b.database, "note": b.note,
                           "tuned_kernels": b.tuned_kernels, "target": b.target,
                           "parity_vs_torch_max_abs": float(np.abs(hm - ref).max()),
                           "size_mib": b.path.stat().st_size / 2**20}
            print(f"{label}: built in {info[label]['build_s']} s; {b.note or 'untuned'}; "
                  f"max |tvm - torch| = {info[label]['parity_vs_torch_max_abs']:.3g}", flush=True)
            calls[label] = (r.invoke, x[:1])
        for spec in args.so:
            label, _, path = spec.partition("=")
            path, _, layout = path.partition(":")
            r = tv.TvmRunner(path)
            xin = np.ascontiguousarray(x[:1].transpose(0, 2, 3, 1)) if layout == "nhwc" else x[:1]
            if layout != "nhwc":
                info[label] = {"parity_vs_torch_max_abs": float(np.abs(r.heatmaps(x) - ref).max())}
            info.setdefault(label, {})["size_mib"] = Path(path).stat().st_size / 2**20
            calls[label] = (r.invoke, xin)
        if args.int8_tflite:
            mod = tv.import_tflite_int8(args.int8_tflite)
            b = tv.compile_host(None, Path(tmp) / "tvm_int8.so", (1, s, s, 3), mod=mod, shipped_db=False)
            r = tv.TvmRunner(b.path)
            info["tvm_int8"] = {"size_mib": b.path.stat().st_size / 2**20}
            calls["tvm_int8"] = (r.invoke, np.ascontiguousarray(x[:1].transpose(0, 2, 3, 1)))
        for spec in args.tflite:
            label, _, path = spec.partition("=")
            calls[label] = _tflite(Path(path))
            info[label] = {"size_mib": Path(path).stat().st_size / 2**20}
        ms = interleaved(calls, args.rounds)
    load1 = os.getloadavg()
    base = next((lab.partition("=")[0] for lab in args.tflite), None)
    med = {n: statistics.median(v) for n, v in ms.items()}
    print(f"\n{cfg.name}, 1 thread, {args.rounds} interleaved rounds; load average {load0[0]:.1f} -> {load1[0]:.1f}")
    print(f"| model | median ms | x {base or '-'} | size MiB |")
    print("|---|---|---|---|")
    for n in ms:
        ratio = f"{med[n] / med[base]:.2f}" if base else "-"
        print(f"| {n} | {med[n]:.1f} | {ratio} | {info.get(n, {}).get('size_mib', 0):.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": cfg.name, "rounds": args.rounds, "median_ms": med,
                                               "ms": ms, "info": info, "load": [load0, load1]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
