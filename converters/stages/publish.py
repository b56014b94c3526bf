"""The last stage: deferred latencies, gates, ``manifest.json`` and ``report.md`` in the temp folder."""
from __future__ import annotations

import datetime as _dt
import time

import numpy as np

from facelm import __version__
from facelm.converters.config import TVM_INT8_DRIFT_RATIO
from facelm.converters.state import StageState
from facelm.runtime.manifest import ArtifactEntry, Manifest, write_manifest


def median_latency_ms(fn, x: np.ndarray, runs: int) -> float:
    """Median wall time of ``fn(x)`` over ``runs`` calls after two warm-up calls, ms."""
    for _ in range(2):
        fn(x)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))


def measure_pending_latencies(state: StageState) -> None:
    """Measure the latencies deferred until no background conversion competes for the CPU."""
    for name, (fn, x, runs) in state.rec.pending_latency.items():
        state.rec.latency[name] = median_latency_ms(fn, x, runs)


def publish_manifest(state: StageState, entries: list[ArtifactEntry], timings: dict[str, float]) -> tuple[Manifest, list[str]]:
    """Gates, ``manifest.json`` and ``report.md`` in the temp folder."""
    from facelm.converters.report import write_report
    from facelm.quantization.drift import check_gates

    cfg = state.cfg
    drift_means = {e.name: float(e.drift_vs_torch["mean"]) for e in entries if e.drift_vs_torch}
    failures = check_gates(state.rec.parity, drift_means, cfg.gates)
    if state.rec.tvm_int8_check is not None:
        got, int8 = state.rec.tvm_int8_check
        if got > TVM_INT8_DRIFT_RATIO * int8 + 1e-12:
            failures.append(f"tvm_int8: mean landmark drift {got:.4g} exceeds {TVM_INT8_DRIFT_RATIO}x int8 TFLite's "
                            f"{int8:.4g} on the same faces")
    manifest = Manifest(
        facelm_version=__version__, contract=state.contract, tools=state.tools, artifacts=entries,
        created_utc=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        gates={"passed": not failures, "failures": failures, "parity_max_abs": cfg.gates.parity_max_abs,
               "int8_drift_mean": cfg.gates.int8_drift_mean},
        data={"calibration": {"source": str(cfg.calib), "count": len(state.calib)},
              "evaluation": {"source": state.evals.source, "count": len(state.evals)}})
    rec = state.rec
    write_report(state.tmp, manifest, rec.latency, rec.own_nmes, rec.drifts, timings, rec.warnings,
                 eval_source=state.evals.source, calib_source=state.calib.source, ref_own_nme=reference_own_nme(state),
                 reference=f"{state.lm.reference_name} fp32")
    write_manifest(manifest, state.tmp)
    return manifest, failures


def reference_own_nme(state: StageState) -> np.ndarray | None:
    """(N,) the reference's own NME vs ground truth (the layout's normaliser), or None."""
    from facelm.metrics import nme

    return None if state.ref.gt is None else nme(state.ref.landmarks, state.ref.gt, state.contract.layout.name)
