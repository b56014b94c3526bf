"""Results as JSON lines: one object per (device, artifact, options) run.

Schema (``schema: 1``)::

    {"schema", "time", "backend", "status": "ok"|"failed", "error", "stderr_tail",
     "device": {facts}, "artifact": {"name", "path", "sha256", "size"},
     "options": {...}, "latency_ms": {"mean", "median", "p90", "p99", "std", "min",
     "max", "init", "first", "warmup_mean", "count", "basis"},
     "memory_mb": {"init", "overall", "peak"},
     "thermal": {"before": {...}, "after": {...}}, "drift_vs_host": null | {...}}   # device vs host fp32 TFLite (facelm.quantization.drift.DriftReport)
"""
from __future__ import annotations

import json
import math
import os
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from facelm.errors import InputError
from facelm.fileio import atomic_open

SCHEMA = 1
_LOCK = threading.Lock()


def latency_stats(samples_ms: Iterable[float]) -> dict:
    """mean, median, p90, p99, std (population), min, max, count of samples (ms)."""
    a = np.asarray(list(samples_ms), dtype=np.float64)
    if a.size == 0:
        return dict.fromkeys(("mean", "median", "p90", "p99", "std", "min", "max"), None) | {"count": 0}
    return {
        "mean": float(a.mean()), "median": float(np.median(a)),
        "p90": float(np.percentile(a, 90)), "p99": float(np.percentile(a, 99)),
        "std": float(a.std()), "min": float(a.min()), "max": float(a.max()), "count": int(a.size),
    }


def run_key(record: dict) -> tuple:
    """What identifies a measurement for --resume: device serial, artifact hash, options."""
    return (record.get("device", {}).get("serial"), record.get("artifact", {}).get("sha256"),
            json.dumps(record.get("options", {}), sort_keys=True))


def _clean(obj):
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def append_record(path: Path, record: dict) -> None:
    """Append one record as a line (flushed and fsynced; thread-safe)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(_clean(record), sort_keys=True) + "\n"
    with _LOCK:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())


def write_records(path: Path, records: list[dict]) -> None:
    """Write ``records`` as a fresh JSONL file, atomically (temp + rename)."""
    with atomic_open(path) as fh:
        for r in records:
            fh.write(json.dumps(_clean(r), sort_keys=True) + "\n")


def read_records(path: Path) -> list[dict]:
    """Read a JSONL results file. A truncated last line (a crash mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"results file {path} does not exist")
    out = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if i == len(lines) - 1:
                continue
            raise InputError(f"{path}:{i + 1}: not a JSON line") from None
        if not isinstance(rec, dict) or rec.get("schema") != SCHEMA:
            raise InputError(f"{path}:{i + 1}: not a facelm bench record (schema {SCHEMA})")
        out.append(rec)
    return out
