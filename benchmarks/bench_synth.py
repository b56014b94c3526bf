"""Synthetic-face throughput on one core: ``python benchmarks/bench_synth.py [--size 256] [--preset P ...]``.

Measures (median of ``--repeats`` runs, same process), per preset (``default``: ``SynthConfig()``;
``realistic``: ``SynthConfig.realistic()``; several presets are measured interleaved, run by run,
so that they are compared under the same machine load):
- render: ``facelm.data.synth.generate`` in memory, as faces per second and ms per face (the rate
  the issue's target of 200 img/s refers to);
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


PRESETS = {"default": synth.SynthConfig, "realistic": synth.SynthConfig.realistic}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--count", type=int, default=200, help="faces per run")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--preset", choices=sorted(PRESETS), nargs="+", default=["default"])
    ap.add_argument("--no-write", action="store_true", help="measure rendering only")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    cfgs = {name: PRESETS[name](size=args.size) for name in args.preset}
    for cfg in cfgs.values():
        synth.generate(5, seed=99, size=args.size, cfg=cfg)  # warm-up (noise bank, real images, imports)
    render = {name: [] for name in cfgs}
    write = {name: [] for name in cfgs}
    for r in range(args.repeats):
        for name, cfg in cfgs.items():
            t = time.perf_counter()
            synth.generate(args.count, seed=r, size=args.size, cfg=cfg)
            render[name].append(args.count / (time.perf_counter() - t))
            if args.no_write:
                continue
            with tempfile.TemporaryDirectory() as d:
                t = time.perf_counter()
                synth.write_jd_folder(Path(d) / "out", args.count, seed=r, size=args.size, cfg=cfg, progress=False)
                write[name].append(args.count / (time.perf_counter() - t))
    out = {"benchmark": "synth", "size": args.size, "count_per_run": args.count, "repeats": args.repeats,
           "threads": 1, "cpu": platform.processor() or platform.machine()}
    for name in cfgs:
        med = statistics.median(render[name])
        out[name] = {"render_img_per_s_median": round(med, 1), "render_ms_per_face_median": round(1000.0 / med, 2),
                     "render_runs": [round(v, 1) for v in render[name]]}
        if write[name]:
            out[name].update(write_jd_img_per_s_median=round(statistics.median(write[name]), 1),
                             write_runs=[round(v, 1) for v in write[name]])
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
