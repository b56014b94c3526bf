"""Grow a shipped MetaSchedule database for a zoo config, in time-boxed chunks (resumable).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/tune_tvm.py tiny_track --until 03:40 --chunk 70
    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/tune_tvm.py mnv2_1.0_sdd128 --until 04:28

The model is the config built from scratch (untrained): MetaSchedule workloads are the kernels'
structure, not the weight values, so a trained checkpoint of the same config matches the records.
Each chunk tunes ``--chunk`` trials into a work folder seeded from
``sdk/assets/tvm_tuning/<config>/`` (so a new session continues the shipped database) and copies
the grown ``database_*.json`` back into the package when the chunk ends. The card
(``card.json``) is rewritten after every chunk: target, cumulative trials, TVM version, date.
A chunk is started only if the last one, scaled by the budget, fits before ``--until`` (UTC).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

from facelm.converters import tvm as tv
from facelm.converters.onnx_export import export_onnx
from facelm.model import build_model, load_config


def _deadline(hhmm: str) -> float:
    now = dt.datetime.now(dt.timezone.utc)
    h, m = map(int, hhmm.split(":"))
    t = now.replace(hour=h, minute=m, second=0, microsecond=0)
    return t.timestamp()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config")
    ap.add_argument("--until", required=True, help="UTC HH:MM; no chunk starts that would end later")
    ap.add_argument("--chunk", type=int, default=0, help="trials per chunk (default: 4 per task)")
    ap.add_argument("--population", type=int, default=128, help="evolutionary-search population")
    ap.add_argument("--scheduler", default="round-robin", choices=("round-robin", "gradient"),
                    help="round-robin writes records as they come (a stopped run keeps them)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tvm = tv.import_tvm()
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks

    cfg = load_config(args.config)
    ship = tv.shipped_db_dir(cfg.name)
    ship.mkdir(parents=True, exist_ok=True)
    card = tv.read_card(ship) or {"config": cfg.name, "target": tv.SHIPPED_TARGET, "trials": 0, "chunks": []}
    target = card["target"]
    end = _deadline(args.until)
    with tempfile.TemporaryDirectory(prefix="facelm-tunedb-") as tmp:
        onnx_path = export_onnx(build_model(cfg).eval(), Path(tmp) / "m.onnx", cfg.input_size)
        mod = tv.import_onnx(onnx_path, (1, 3, cfg.input_size, cfg.input_size))
        if args.chunk:  # extracting the tasks costs minutes on a loaded machine: only when needed
            chunk = args.chunk
        else:
            prepared = tv._prepare_for_tuning(mod, tvm.target.Target(target), True)
            chunk = 4 * len(extract_tasks(prepared, tvm.target.Target(target)))
        last = 0.0
        while True:
            left = end - time.time()
            if left <= 0 or (last and last > left):
                break
            work = Path(tmp) / "work"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir()
            for f in tv.DB_FILES:
                if (ship / f).is_file():
                    shutil.copy2(ship / f, work / f)
            t0 = time.time()
            logging.info("%s: chunk of %d trials (%d so far); work folder %s", cfg.name, chunk, card["trials"], work)
            tv.tune(mod, target, chunk, work, population=args.population, scheduler=args.scheduler)
            last = time.time() - t0
            for f in tv.DB_FILES:
                tmpf = ship / (f + ".tmp")
                shutil.copy2(work / f, tmpf)
                tmpf.replace(ship / f)
            card["trials"] += chunk
            card["chunks"].append({"trials": chunk, "seconds": round(last, 1), "population": args.population,
                                   "scheduler": args.scheduler,
                                   "ended_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
            card["tvm_version"] = tvm.__version__
            tv.write_card(ship, card)
            logging.info("%s: chunk done in %.0f s; database now %d trials", cfg.name, last, card["trials"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
