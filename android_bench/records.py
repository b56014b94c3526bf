"""Results as JSON lines: one object per (device, artifact, options) run.

Schema (``schema: 1``)::

    {"schema", "time", "backend", "status": "ok"|"failed", "error", "stderr_tail",
     "device": {facts}, "emulated": bool, "artifact": {"name", "path", "sha256", "size", "manifest",
     "integrity": "verified: manifest sha256" | "verified: embedded sha256" | "unverified: no manifest"},
     "options": {...}, "latency_ms": {"mean", "median", "p90", "p99", "std", "min",
     "max", "init", "first", "warmup_mean", "count", "basis",
                    "op_profile" (with --op-profile): {"available", "source", "method", "invocations",
                    "total_ms", "ops": [{"graph", "order", "type", "name", "avg_ms", "first_ms", "pct",
                    "times_called"}], "by_type": [{"graph", "type", "count", "avg_ms", "pct", "times_called"}],
                    "init": [...]} or {"available": false, "reason"} (facelm.android_bench.parse.op_profile_record)},
     "memory_mb": {"init", "overall", "peak"},
     "thermal": {"before": {...}, "after": {...}}, "drift_vs_host": null | {...}}   # device vs host fp32 TFLite (facelm.quantization.drift.DriftReport)

``emulated`` is true when the device ran the code on an emulated CPU (``device.emulator``,
e.g. ``qemu-aarch64`` for ``facelm virtual-device --arch arm64``): its drift is real, its
latency and memory are not a phone's (the report shows them as not comparable).
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


def check_output_path(path: Path, what: str = "results file") -> None:
    """InputError (one line) unless ``path`` can be a file: not a folder, no file among its parents."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; give a file path such as {path / 'results.jsonl'}")
    if path.exists() and not path.is_file():
        raise InputError(f"{what} {path} exists and is not a regular file")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{what} {path} cannot be created: {parent} is a file, not a folder")
            break


def append_record(path: Path, record: dict) -> None:
    """Append one record as a line (flushed and fsynced; thread-safe)."""
    path = Path(path)
    check_output_path(path)
    line = json.dumps(_clean(record), sort_keys=True) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _LOCK:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
    except OSError as exc:
        raise InputError(f"cannot append to results file {path}: {exc.strerror or exc}") from None


def write_records(path: Path, records: list[dict]) -> None:
    """Write ``records`` as a fresh JSONL file, atomically (temp + rename)."""
    check_output_path(path, "records file")
    try:
        with atomic_open(path) as fh:
            for r in records:
                fh.write(json.dumps(_clean(r), sort_keys=True) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write records file {path}: {exc.strerror or exc}") from None


def read_records(path: Path) -> list[dict]:
    """Read a JSONL results file. A truncated last line (a crash mid-write) is skipped."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"results file {path} does not exist")
    if not path.is_file():
        raise InputError(f"results file {path} is not a regular file")
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read results file {path}: {exc}") from None
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
