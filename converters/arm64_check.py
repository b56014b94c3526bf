"""``facelm convert --arm64-check``: run the artifacts on aarch64 instructions (qemu-user) and record it.

Two stages of :func:`facelm.converters.pipeline.convert`, run only with ``arm64_check``; like
every stage (:mod:`facelm.converters.stages`) they take the shared
:class:`facelm.converters.state.StageState`:

- :func:`tvm_linux_arm64_stage` writes ``tvm/linux_arm64.so`` (catalogue ``tvm_linux_arm64``,
  platform ``linux-arm64``): the AArch64 object files of the Android archive
  (``tvm/android.tar``) linked with Debian's ``aarch64-linux-gnu-g++`` into a glibc ``.so``.
  The emulated run therefore executes the Android archive's own object code (the
  Android ``.so`` is the same objects linked by the NDK). When the Android library was
  linked by the NDK (no archive), the relax module is compiled once more for
  ``aarch64-linux-gnu`` (+neon), the same codegen with another triple.
- :func:`arm64_check_stage` runs, in ONE emulated python (facelm.arm64.run_batch), every
  ``.tflite`` artifact through aarch64 LiteRT and ``tvm_linux_arm64`` through the aarch64 TVM
  runtime, on the first :data:`ARM64_FACES` evaluation faces:

  - each TFLite entry gets ``checks["arm64_emulated"]``: max |arm64 - host| of the
    (dequantized) outputs and the landmark drift arm64 vs host (fraction of the template
    inter-pupil distance, and pixels), recorded even when
    zero (XNNPACK's int8 kernels are expected to be bit-exact across ISAs: checked, not
    assumed);
  - ``tvm_linux_arm64`` gets its ``parity`` and ``drift_vs_torch`` against torch fp32
    measured *on aarch64* (parity is gated like every fp32 artifact), and the same check.

Emulation is 100-1000x slower than a phone (paper-final model: int8 ~3 s an inference,
fp32 ~15 s, untuned TVM ~40 s, plus ~10 s to start the emulated python and ~20-45 s to
import TVM in it). No emulated time is ever reported.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from facelm.artifacts import TVM_ANDROID, TVM_HOST, TVM_LINUX_ARM64, artifact_kind
from facelm.errors import ConversionError
from facelm.runtime.manifest import ArtifactEntry, TensorSpec, artifact_entry_for

if TYPE_CHECKING:
    from facelm.arm64 import Arm64Root
    from facelm.converters.state import StageState

log = logging.getLogger("facelm.convert")

#: Evaluation faces run on aarch64 (a handful: each is an emulated inference).
ARM64_FACES = 4
#: The catalogue artifact written by :func:`tvm_linux_arm64_stage`.
LINUX_ARM64 = TVM_LINUX_ARM64
#: Target of the fallback compile (when there is no Android object archive to link).
LINUX_ARM64_TARGET: dict[str, Any] = {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]}
#: Key of the emulated check in an artifact entry's ``checks``.
CHECK_KEY = "arm64_emulated"
#: Help text of ``--arm64-check`` (its cost), shared by the CLI.
HELP = ("run every .tflite artifact once through aarch64 LiteRT under qemu-user, and write and run "
        "tvm/linux_arm64.so (the Android TVM objects linked for glibc aarch64), on "
        f"{ARM64_FACES} evaluation faces; records 'arm64 (emulated) vs host' and the aarch64 parity "
        "vs torch. Needs `facelm arm64 setup` and apt packages qemu-user, g++-aarch64-linux-gnu. "
        "COST: emulation is 100-1000x slower than native (paper-final model: int8 ~3 s an inference, "
        "fp32 ~15 s, untuned TVM ~40 s; plus ~1 min to start the emulated python and import TVM): "
        "about 8 min for the paper model, 1-2 min for the tiny config")


def require_root() -> "Arm64Root":
    """The built aarch64 root (and the host tools), or one clear error saying how to get them."""
    from facelm import arm64

    arm64.check_tools()
    root = arm64.load()
    if root is None:
        raise arm64.Arm64Error(f"--arm64-check needs the aarch64 root at {arm64.default_root()}: build it with "
                               "`facelm arm64 setup` (or `make arm64`)")
    return root


def tvm_linux_arm64_stage(state: "StageState", entries: list[ArtifactEntry]) -> list[ArtifactEntry]:
    """Write ``tvm/linux_arm64.so`` from the Android archive's objects (see the module docstring).

    Args:
        entries: the entries so far; ``tvm_android`` among them (its ``android.tar`` is linked).
    Returns:
        ``[entry]`` for ``tvm_linux_arm64`` (parity and drift filled in by :func:`arm64_check_stage`).
    """
    from facelm import arm64

    kind = artifact_kind(LINUX_ARM64)
    out = state.tmp / kind.file
    android = next((e for e in entries if e.name == TVM_ANDROID), None)
    if android is None:
        raise ConversionError("tvm_linux_arm64 is linked from the Android TVM build, which was not written")
    if android.format == "tvm_tar":
        arm64.link_tvm_objects(state.tmp / android.file, out)
        target, source = android.target, (f"the AArch64 objects of {android.file} (sha256 {android.sha256[:12]}...) "
                                          "linked with aarch64-linux-gnu-g++: the same object code as the Android "
                                          "library")
    else:  # the Android library is already NDK-linked: compile the same relax module for glibc
        from facelm.converters import tvm as tv

        tvm = tv.import_tvm()
        mod = tv.import_onnx(state.tmp / artifact_kind("onnx").file, state.input_shape)
        try:
            ex = tvm.compile(mod, target=tvm.target.Target(LINUX_ARM64_TARGET))
            with tempfile.TemporaryDirectory(prefix="facelm-linux-arm64-") as tmp:
                ex.export_library(str(Path(tmp) / "linux_arm64.tar"))
                arm64.link_tvm_objects(Path(tmp) / "linux_arm64.tar", out)
        except arm64.Arm64Error:
            raise
        except Exception as exc:
            raise ConversionError(f"TVM linux-arm64 build failed: {type(exc).__name__}: {exc}") from exc
        target, source = dict(LINUX_ARM64_TARGET), ("the same relax module as the Android library compiled for "
                                                     "aarch64-linux-gnu (+neon), linked with aarch64-linux-gnu-g++")
    m = state.contract.model
    return [artifact_entry_for(
        state.tmp, LINUX_ARM64, target=target, input=TensorSpec("input", state.input_shape, "NCHW", "float32"),
        output=TensorSpec("output", (1, m.num_keypoints) + tuple(m.heatmap_size), "NCHW", "float32"),
        checks={"linked_from": TVM_ANDROID if android.format == "tvm_tar" else "compiled"},
        notes=f"glibc aarch64 Linux library: {source}")]


def arm64_check_stage(state: "StageState", entries: list[ArtifactEntry]) -> list[ArtifactEntry]:
    """Run every TFLite artifact and ``tvm_linux_arm64`` on aarch64 (one emulated process); record it.

    Sets ``checks["arm64_emulated"]`` on each of them and, for ``tvm_linux_arm64``, ``parity``
    and ``drift_vs_torch`` (and ``state.rec.parity``, so the fp32 parity gate covers it). Returns
    ``entries`` (updated in place).
    """
    from facelm import arm64
    from facelm.runtime.tflite import TfliteRunner, dequantize

    root = require_root()
    n = min(ARM64_FACES, len(state.ref.x))
    x = state.ref.x[:n]
    tflites = [e for e in entries if e.format == "tflite"]
    tvm_entry = next((e for e in entries if e.name == LINUX_ARM64), None)
    hosts = {e.name: TfliteRunner(state.tmp / e.file, num_threads=1) for e in tflites}
    jobs = [arm64.Job("tflite", state.tmp / e.file, [[hosts[e.name].prepare(x[i:i + 1])] for i in range(n)])
            for e in tflites]
    if tvm_entry is not None:
        jobs.append(arm64.Job("tvm", state.tmp / tvm_entry.file, [[np.ascontiguousarray(x[i:i + 1])] for i in range(n)]))
    log.info("  aarch64 (qemu-user): %d TFLite artifact(s)%s on %d face(s), one emulated process", len(tflites),
             " + tvm_linux_arm64" if tvm_entry is not None else "", n)
    info: dict = {}
    results = arm64.run_batch(root, jobs, info=info)
    if info.get("machine") != "aarch64":
        raise ConversionError(f"the emulated python reported machine {info.get('machine')!r}, not aarch64")
    common = {"faces": n, "machine": info["machine"], "emulator": "qemu-aarch64 (qemu-user)",
              "cpu": arm64.emulated_cpu()}
    for e, res in zip(tflites, results):
        host = hosts[e.name]
        raw_host = host.run_raw(x)
        raw_arm = np.concatenate([r[0] for r in res], axis=0)
        if raw_arm.shape != raw_host.shape or raw_arm.dtype != raw_host.dtype:
            raise ConversionError(f"{e.name}: aarch64 LiteRT output {raw_arm.shape} {raw_arm.dtype} differs from "
                                  f"the host's {raw_host.shape} {raw_host.dtype}")
        q = host.output_spec.quantization
        e.checks[CHECK_KEY] = dict(common, runtime="ai-edge-litert (XNNPACK, 1 thread)", reference="host LiteRT",
                                   **_vs_host(state, dequantize(raw_host, q), dequantize(raw_arm, q),
                                              state.landmarks(raw_host, host.output_spec),
                                              state.landmarks(raw_arm, host.output_spec), raw_host, raw_arm))
        log.info("  %s: arm64 (emulated) vs host: max |diff| %.3g, landmark drift %.3g", e.name,
                 e.checks[CHECK_KEY]["max_abs_vs_host"], e.checks[CHECK_KEY]["drift_vs_host"]["mean"])
    if tvm_entry is not None:
        hm = np.concatenate([r[0] for r in results[-1]], axis=0).astype(np.float32)
        if hm.shape != state.ref.heatmaps[:n].shape:
            raise ConversionError(f"tvm_linux_arm64 on aarch64 gave {hm.shape}, expected {state.ref.heatmaps[:n].shape}")
        out = tvm_entry.output
        lms = state.landmarks(hm, out)
        state.rec.parity[LINUX_ARM64] = float(np.abs(hm.astype(np.float64) - state.ref.heatmaps[:n]).max())
        tvm_entry.parity = {"max_abs": state.rec.parity[LINUX_ARM64], "measured_on": "aarch64 (qemu-user)", "faces": n}
        tvm_entry.drift_vs_torch = state.drift(LINUX_ARM64, hm, lms)
        check = dict(common, runtime="TVM runtime (relax VM, tvm.cpu())", reference="torch fp32",
                     parity_vs_torch=state.rec.parity[LINUX_ARM64])
        host_hm = _host_tvm_heatmaps(state, entries, n)
        if host_hm is not None:  # the same relax module on this host's CPU (x86 codegen)
            ref_lms = state.landmarks(host_hm, out)
            check.update(_vs_host(state, host_hm, hm, ref_lms, lms), reference_vs_host="tvm_host (this host)")
        if tvm_entry.checks.get("linked_from") == TVM_ANDROID:
            check["covers"] = "tvm_android (the same object files)"
        tvm_entry.checks[CHECK_KEY] = check
        log.info("  tvm_linux_arm64 on aarch64: parity vs torch %.3g", state.rec.parity[LINUX_ARM64])
    return entries


def _host_tvm_heatmaps(state: "StageState", entries: list[ArtifactEntry], n: int) -> np.ndarray | None:
    host = next((e for e in entries if e.name == TVM_HOST), None)
    if host is None:
        return None
    from facelm.runtime.tvm import TvmRunner

    return TvmRunner(state.tmp / host.file).heatmaps(state.ref.x[:n])


def _vs_host(state: "StageState", hm_host: np.ndarray, hm_arm: np.ndarray, lms_host: np.ndarray, lms_arm: np.ndarray,
             raw_host: np.ndarray | None = None, raw_arm: np.ndarray | None = None) -> dict:
    """max |arm64 - host| of the float outputs, bit-exactness, and the landmark drift arm64 vs host
    (fraction of the template inter-pupil distance, and pixels)."""
    from facelm.quantization.drift import drift_scale, landmark_drift

    scale = drift_scale(state.contract)
    per_img = landmark_drift(lms_host, lms_arm, scale)[0]
    mean, mx = float(per_img.mean()), float(per_img.max())
    d = {"max_abs_vs_host": float(np.abs(np.asarray(hm_arm, np.float64) - np.asarray(hm_host, np.float64)).max()),
         "bit_exact": bool(np.array_equal(raw_arm, raw_host) if raw_host is not None else np.array_equal(hm_arm, hm_host)),
         "drift_vs_host": {"mean": mean, "max": mx, "mean_px": mean * scale, "max_px": mx * scale}}
    if raw_host is not None and np.issubdtype(raw_host.dtype, np.integer):
        d["max_lsb_vs_host"] = int(np.abs(raw_arm.astype(np.int64) - raw_host.astype(np.int64)).max())
    return d


# ---------------------------------------------------------------------------- report
COLUMN = "arm64 (emulated) vs host"


def report_cell(entry: ArtifactEntry) -> str:
    """The report's "arm64 (emulated) vs host" cell of one artifact ("–" when not run on aarch64)."""
    c = (entry.checks or {}).get(CHECK_KEY)
    if not c:
        return "–"
    if "max_abs_vs_host" not in c:  # tvm_linux_arm64 without a host module: its parity is the figure
        return f"parity vs torch {c['parity_vs_torch']:.2g} (on aarch64, {c['faces']} faces)"
    exact = "bit-exact" if c["bit_exact"] else f"max \\|Δ\\| {c['max_abs_vs_host']:.2g}"
    if "max_lsb_vs_host" in c and not c["bit_exact"]:
        exact += f" ({c['max_lsb_vs_host']} LSB)"
    cell = f"{exact}, drift {100 * c['drift_vs_host']['mean']:.3g}% ({c['faces']} faces)"
    if "parity_vs_torch" in c:
        cell += f"; parity vs torch {c['parity_vs_torch']:.2g} on aarch64"
    return cell


def report_section(manifest) -> list[str]:
    """Markdown lines of the report's arm64 section (empty when nothing ran on aarch64)."""
    checked = [a for a in manifest.artifacts if (a.checks or {}).get(CHECK_KEY)]
    if not checked:
        return []
    lines = ["## arm64 (emulated)", "",
             f"Ran on aarch64 instructions under qemu-user (emulated CPU {checked[0].checks[CHECK_KEY].get('cpu')}, "
             f"{checked[0].checks[CHECK_KEY]['faces']} evaluation faces): numerics are those of an arm64 CPU; emulated time is not latency and is not reported. "
             "Max |Δ|: largest difference of the (dequantized) outputs, arm64 vs this host; drift: mean distance "
             "between the landmarks decoded from both, in % of the template inter-pupil distance.", ""]
    for a in checked:
        c = a.checks[CHECK_KEY]
        line = f"- **{a.name}** ({c['runtime']}): {report_cell(a)}"
        if a.name == LINUX_ARM64:
            line += (f". Parity vs torch fp32 measured on aarch64: {c['parity_vs_torch']:.3g} (gated like every fp32 "
                     "artifact).")
            if c.get("covers"):
                line += (" `tvm/linux_arm64.so` is the Android archive's object files linked for glibc, so this "
                         "emulated run covers the Android TVM library (same codegen, same object code).")
            else:
                line += (" It comes from the same relax module and codegen as the Android library (another "
                         "target triple), so the emulated run covers its numerics.")
        lines.append(line)
    return lines + [""]


def with_column(rows: list[str], manifest) -> list[str]:
    """The report's artifact table rows (header, separator, optional torch row, one row per
    artifact in manifest order) with the "arm64 (emulated) vs host" column appended, when any
    artifact ran on aarch64; unchanged otherwise."""
    arts = manifest.artifacts
    if not any((a.checks or {}).get(CHECK_KEY) for a in arts):
        return rows
    lead = len(rows) - len(arts)  # header, separator and the torch row
    extra = [COLUMN, "---"] + ["–"] * (lead - 2) + [report_cell(a) for a in arts]
    return [f"{r} {c} |" for r, c in zip(rows, extra)]
