"""Run code on aarch64 instructions under qemu-user, in a root :mod:`.sysroot` builds (see :mod:`.root`).

Every helper moves arrays through ``.npy`` files in a temporary folder: the emulated
Python (numpy, LiteRT, TVM runtime; never facelm itself) reads ``in_*.npy`` and writes
``out_*.npy``. Numerics are real aarch64 numerics; emulated time is 100-1000x slower than
a phone and is never reported as latency.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .root import TOOL_PACKAGES, Arm64Error, Arm64Root, check_tools

WORKERS = Path(__file__).resolve().parent  # _batch_worker.py runs there as a script
#: Guest environment variables passed through (everything else of the host's is dropped:
#: a host PYTHONPATH or LD_LIBRARY_PATH would point the aarch64 python at x86 files).
_PASS_ENV = ("HOME", "TMPDIR", "LANG", "LC_ALL", "TZ")
#: The emulated CPU (``QEMU_CPU``): a real phone-class core (Armv8.2-A + dotprod, no i8mm),
#: not qemu's default ``max``. Under qemu 7.2's ``max`` (i8mm, SVE2, ...) LiteRT's
#: dynamic-range int8 model gave outputs off by about their whole range, while cortex-a53,
#: cortex-a76, neoverse-n1 and a64fx matched x86 to 2e-10 (a qemu or XNNPACK i8mm-path
#: problem that no phone here can settle). ``FACELM_ARM64_CPU`` overrides it.
DEFAULT_CPU = "cortex-a76"


def emulated_cpu() -> str:
    """The CPU model qemu-aarch64 emulates: ``$FACELM_ARM64_CPU``, else :data:`DEFAULT_CPU`."""
    return os.environ.get("FACELM_ARM64_CPU") or DEFAULT_CPU


def qemu_command(root: Arm64Root | str | os.PathLike, exe: str | os.PathLike, *args: str) -> list[str]:
    """``qemu-aarch64 -L ROOT EXE ARGS...``: the argv that runs an aarch64 ELF with ROOT as its ``/``."""
    path = root.path if isinstance(root, Arm64Root) else Path(root)
    return ["qemu-aarch64", "-L", str(path), str(exe), *map(str, args)]


def guest_env(root: Arm64Root, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of the emulated python: its site folder only, no user site, no bytecode writes."""
    env = {k: os.environ[k] for k in _PASS_ENV if k in os.environ}
    env.update(PATH="/usr/bin:/bin", PYTHONPATH=str(root.site), PYTHONNOUSERSITE="1",
               PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1", QEMU_CPU=emulated_cpu())
    env.update(extra or {})
    return env


def run_python(root: Arm64Root, script_or_args: str | os.PathLike | Sequence[str], *, timeout: float = 600,
               env: dict[str, str] | None = None, cwd: str | os.PathLike | None = None) -> str:
    """Run the aarch64 python3.11 of ``root`` under ``qemu-aarch64 -L ROOT``; return its stdout.

    ``script_or_args``: a path to a script, or the python argv as a list (``["-c", "..."]``).
    Raises :class:`Arm64Error` on a non-zero exit (with the last lines of stderr) or timeout.
    """
    check_tools({"qemu-aarch64": TOOL_PACKAGES["qemu-aarch64"]})
    args = [str(script_or_args)] if isinstance(script_or_args, (str, os.PathLike)) else [str(a) for a in script_or_args]
    cmd = qemu_command(root, root.python, *args)
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=guest_env(root, env), cwd=cwd)
    except subprocess.TimeoutExpired:
        raise Arm64Error(f"aarch64 python timed out after {timeout:.0f} s (emulation is 100-1000x slower "
                         "than native): " + " ".join(args[:3])) from None
    if res.returncode != 0:
        tail = " | ".join(res.stderr.strip().splitlines()[-6:])
        raise Arm64Error(f"aarch64 python exited {res.returncode}: {tail}")
    return res.stdout


def _write_inputs(tmp: Path, inputs: Sequence[np.ndarray], prefix: str = "in_") -> None:
    for i, a in enumerate(inputs):
        if not isinstance(a, np.ndarray):
            raise Arm64Error(f"input {i} is a {type(a).__name__}, not a numpy array")
        np.save(tmp / f"{prefix}{i}.npy", np.ascontiguousarray(a), allow_pickle=False)


def run_tflite(root: Arm64Root, tflite_path: str | os.PathLike, inputs: Sequence[np.ndarray], *,
               num_threads: int = 1, timeout: float = 900) -> list[np.ndarray]:
    """One inference of a ``.tflite`` with aarch64 LiteRT (ai-edge-litert 2.1.0, XNNPACK, CPU).

    Args:
        inputs: one array per model input, in the order of the interpreter's
            ``get_input_details()``, each with exactly that input's shape and dtype
            (e.g. (1, 192, 192, 3) float32 NHWC, or int8 for int8-in models).
        num_threads: LiteRT threads on the emulated CPU.

    Returns:
        The outputs in ``get_output_details()`` order, with their stored dtype (int8
        outputs stay int8; dequantize on the host). A mismatched input shape/dtype raises
        :class:`Arm64Error`. Numerics only: emulated time is not latency.
    """
    return run_batch(root, [Job("tflite", tflite_path, [list(inputs)], threads=int(num_threads))], timeout=timeout)[0][0]


def link_tvm_objects(tar_path: str | os.PathLike, out_so: str | os.PathLike, *, timeout: float = 600) -> Path:
    """Link the AArch64 object files of a TVM ``export_library("m.tar")`` into a glibc Linux ``.so``.

    Uses Debian's ``aarch64-linux-gnu-g++ -shared -fPIC``. The result loads on aarch64
    Linux (and under qemu with :func:`run_tvm`); it is not loadable on Android (bionic).
    Written to a temporary file and renamed onto ``out_so``. Returns ``out_so``.
    """
    check_tools({"aarch64-linux-gnu-g++": TOOL_PACKAGES["aarch64-linux-gnu-g++"]})
    tar_path, out_so = Path(tar_path), Path(out_so)
    if not tar_path.is_file():
        raise Arm64Error(f"TVM object archive not found: {tar_path}")
    out_so.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="facelm-tvmlink-") as tmp_s:
        tmp = Path(tmp_s)
        try:
            with tarfile.open(tar_path) as tf:
                tf.extractall(tmp / "objs", filter="data")
        except (tarfile.TarError, OSError) as exc:
            raise Arm64Error(f"cannot read TVM object archive {tar_path}: {exc}") from None
        objs = sorted(str(p) for p in (tmp / "objs").rglob("*.o"))
        if not objs:
            raise Arm64Error(f"{tar_path} holds no object files")
        tmp_so = out_so.with_name(f".{out_so.name}.{os.getpid()}.tmp")
        cmd = ["aarch64-linux-gnu-g++", "-shared", "-fPIC", "-o", str(tmp_so), *objs]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
            if res.returncode != 0:
                raise Arm64Error(f"aarch64-linux-gnu-g++ failed linking {tar_path.name}: "
                                 + " | ".join(res.stderr.strip().splitlines()[-4:]))
            os.chmod(tmp_so, 0o755)
            os.replace(tmp_so, out_so)
        finally:
            if tmp_so.exists():
                tmp_so.unlink()
    return out_so


def run_tvm(root: Arm64Root, so_path: str | os.PathLike, inputs: Sequence[np.ndarray], *,
            entry: str = "main", timeout: float = 1800) -> list[np.ndarray]:
    """Run a linked aarch64 TVM relax module (``.so`` from :func:`link_tvm_objects`) under qemu.

    Loads it with the aarch64 TVM runtime (``tvm.runtime.load_module`` +
    ``relax.VirtualMachine`` on ``tvm.cpu()``) and calls ``entry`` once.

    Args:
        inputs: the arguments of ``entry`` as arrays, e.g. one (1, 3, S, S) float32 NCHW
            image for facelm's modules (weights are bound as constants).

    Returns:
        The outputs as numpy arrays (a single tensor gives a one-element list; a tuple is
        flattened one level), e.g. [(1, K, H, W) float32 heatmaps].
    """
    return run_batch(root, [Job("tvm", so_path, [list(inputs)], entry=entry)], timeout=timeout)[0][0]


@dataclass(frozen=True)
class Job:
    """One model run on several samples inside a :func:`run_batch` process.

    Attributes:
        kind: ``"tflite"`` (aarch64 LiteRT, XNNPACK) or ``"tvm"`` (a linked aarch64 relax module).
        model: the ``.tflite`` or ``.so`` file.
        samples: one list of input arrays per inference (as :func:`run_tflite` / :func:`run_tvm`).
        threads: LiteRT threads; entry: the TVM function to call.
    """

    kind: str
    model: str | os.PathLike
    samples: Sequence[Sequence[np.ndarray]]
    threads: int = 1
    entry: str = "main"


def run_batch(root: Arm64Root, jobs: Sequence[Job], *, timeout: float = 3600,
              info: dict | None = None) -> list[list[list[np.ndarray]]]:
    """Run every job in ONE emulated python (its start, ~10 s, and TVM's import, ~20-45 s under
    emulation, are paid once). Each model is loaded once and invoked once per sample.

    Args:
        info: if given, receives ``{"machine": ...}`` as the emulated python reported it
            (``platform.machine()``: ``"aarch64"``).

    Returns:
        ``result[j][s]``: the outputs of job ``j`` on sample ``s`` (as :func:`run_tflite` /
        :func:`run_tvm` return them). Numerics only: emulated time is not latency.
    """
    spec = []
    with tempfile.TemporaryDirectory(prefix="facelm-arm64-") as tmp_s:
        tmp = Path(tmp_s)
        for j, job in enumerate(jobs):
            if job.kind not in ("tflite", "tvm"):
                raise Arm64Error(f"job {j}: kind must be 'tflite' or 'tvm', got {job.kind!r}")
            model = Path(job.model)
            if not model.is_file():
                raise Arm64Error(f"model file not found: {model}")
            n_in = {len(s) for s in job.samples}
            if len(n_in) > 1:
                raise Arm64Error(f"job {j} ({model.name}): samples have different input counts {sorted(n_in)}")
            for s, inputs in enumerate(job.samples):
                _write_inputs(tmp, inputs, prefix=f"in_{j}_{s}_")
            spec.append({"kind": job.kind, "model": str(model.resolve()), "samples": len(job.samples),
                         "inputs": n_in.pop() if n_in else 0, "threads": int(job.threads), "entry": job.entry})
        (tmp / "jobs.json").write_text(json.dumps(spec))
        run_python(root, [str(WORKERS / "_batch_worker.py"), str(tmp)], timeout=timeout)
        meta = json.loads((tmp / "outputs.json").read_text())
        counts = meta["counts"]
        if info is not None:
            info["machine"] = meta.get("machine")
        return [[[np.load(tmp / f"out_{j}_{s}_{o}.npy", allow_pickle=False) for o in range(n)]
                 for s, n in enumerate(per_sample)] for j, per_sample in enumerate(counts)]
