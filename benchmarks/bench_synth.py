"""Synthetic-face throughput on one core: ``python benchmarks/bench_synth.py [--size 256]``.

Measures (median of ``--repeats`` runs, same process):
- render: ``facelm.data.synth.generate`` in memory (the rate the issue's target of 200 img/s refers to);
- write: ``write_jd_folder`` to a temporary folder (JPEG encode + three small files per face).
OpenCV is limited to one thread and the process is pinned to one CPU where the OS allows.
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import cv2

from facelm.data import synth


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--count", type=int, default=200, help="faces per run")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    synth.generate(5, seed=99, size=args.size)  # warm-up (noise bank, imports)
    render, write = [], []
    for r in range(args.repeats):
        t = time.perf_counter()
        synth.generate(args.count, seed=r, size=args.size)
        render.append(args.count / (time.perf_counter() - t))
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            synth.write_jd_folder(Path(d) / "out", args.count, seed=r, size=args.size, progress=False)
            write.append(args.count / (time.perf_counter() - t))
    print(json.dumps({
        "benchmark": "synth", "size": args.size, "count_per_run": args.count, "repeats": args.repeats,
        "render_img_per_s_median": round(statistics.median(render), 1),
        "write_jd_img_per_s_median": round(statistics.median(write), 1),
        "render_runs": [round(v, 1) for v in render], "write_runs": [round(v, 1) for v in write],
        "threads": 1, "cpu": platform.processor() or platform.machine(),
    }, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
