"""ONNX -> TVM (relax): a host ``.so`` and an Android arm64 library or object archive.

TVM 0.27 is relax-only. Weights are bound as constants (``from_onnx`` default), so the
compiled library takes just the input: ``vm["main"](x) -> heatmaps``. Targets are dicts
(TVM rejects ``llvm -mcpu=...`` strings). Optional MetaSchedule tuning never uses weight
prepacking: FACTS.md records prepacked ``conv2d_transpose`` schedules computing wrong
answers, and the pipeline checks every TVM artifact against torch anyway.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sdk.errors import ConversionError, InputError

log = logging.getLogger(__name__)

HOST_TARGET: dict[str, Any] = {"kind": "llvm"}
ANDROID_TARGET: dict[str, Any] = {"kind": "llvm", "mtriple": "aarch64-linux-android", "mattr": ["+neon"]}
NDK_ENV = "TVM_NDK_CC"

LINK_NOTE = (
    "the Android TVM library is left as AArch64 object files in {tar}. To link it:\n"
    "  mkdir objs && tar -xf {tar} -C objs\n"
    "  $NDK/toolchains/llvm/prebuilt/linux-x86_64/bin/aarch64-linux-android24-clang++ -shared -fPIC "
    "-o android.so objs/*.o\n"
    "(the app loads it with the TVM runtime, libtvm_runtime.so), or set TVM_NDK_CC to that compiler "
    "and rerun `facelm convert` to get tvm/android.so directly."
)


def import_tvm():
    """Import TVM or raise a :class:`ConversionError` saying how to install it."""
    try:
        import tvm  # noqa: F401
        from tvm import relax  # noqa: F401
    except ImportError as exc:
        raise ConversionError(
            "TVM is not installed (needed for --targets tvm): pip install -e '.[tvm]' "
            f"(apache-tvm 0.27); import failed with: {exc}") from exc
    import tvm

    return tvm


def import_onnx(onnx_path: str | os.PathLike, input_shape: tuple[int, ...], input_name: str = "input"):
    """ONNX file -> relax IRModule with the weights bound as constants."""
    import onnx

    import_tvm()
    from tvm.relax.frontend.onnx import from_onnx

    try:
        return from_onnx(onnx.load(str(onnx_path)), shape_dict={input_name: list(input_shape)})
    except Exception as exc:  # the frontend raises many types
        raise ConversionError(f"TVM cannot import {onnx_path}: {type(exc).__name__}: {exc}") from exc


def _strategy():
    from tvm.s_tir.meta_schedule.search_strategy import EvolutionarySearch

    # The default population (512) is far too slow on a 2-core machine (FACTS.md).
    return EvolutionarySearch(population_size=128, genetic_num_iters=2, init_min_unmeasured=32)


def tune(mod, target: dict, trials: int, work_dir: str | os.PathLike):
    """MetaSchedule-tune ``mod`` for ``target`` with a global budget of ``trials`` measurements.

    Every task gets trials: ``trials_per_iter * tasks <= trials`` (an untuned task stays slow).

    Returns:
        The module with the tuned schedules applied (ready for ``tvm.compile``).
    """
    tvm = import_tvm()
    from tvm import relax
    from tvm.relax import transform
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks, tune_relax

    tgt = tvm.target.Target(target)
    with tgt:
        mod = tvm.transform.Sequential([
            transform.DecomposeOpsForInference(),
            transform.CanonicalizeBindings(),
            relax.get_pipeline("zero"),
        ])(mod)
    n_tasks = max(1, len(extract_tasks(mod, tgt)))
    per_iter = max(1, min(64, trials // n_tasks))
    per_task = max(per_iter, trials // n_tasks)
    log.info("tuning %d tasks: %d trials in all, %d per task, %d per round", n_tasks, trials, per_task, per_iter)
    tune_relax(mod, params={}, target=tgt, work_dir=str(work_dir), max_trials_global=trials,
               max_trials_per_task=per_task, num_trials_per_iter=per_iter, strategy=_strategy())
    with tgt:
        mod = transform.MetaScheduleApplyDatabase(str(work_dir))(mod)
    return mod


def host_target(tuned: bool) -> dict[str, Any]:
    """The host target. Tuned code is specialised to this CPU, single core; untuned stays generic,
    because a set ``mcpu`` made untuned code slower (FACTS.md)."""
    if not tuned:
        return dict(HOST_TARGET)
    tvm = import_tvm()
    cpu = tvm.target.codegen.llvm_get_system_cpu()
    return {"kind": "llvm", "mcpu": cpu, "num-cores": 1}


@dataclass
class TvmBuild:
    """What :func:`compile_host` / :func:`compile_android` wrote."""

    path: Path
    target: dict[str, Any]
    linked: bool
    trials: int = 0
    note: str = ""


def compile_host(onnx_path: str | os.PathLike, out_path: str | os.PathLike, input_shape: tuple[int, ...],
                 trials: int = 0, work_dir: str | os.PathLike | None = None) -> TvmBuild:
    """Compile for this machine and export a loadable ``.so``.

    Args:
        onnx_path: static-shape ONNX model.
        out_path: the ``.so`` to write.
        input_shape: (1, 3, S, S).
        trials: MetaSchedule budget; 0 = untuned.
        work_dir: tuning database folder (a temp folder if None).
    """
    tvm = import_tvm()
    mod = import_onnx(onnx_path, input_shape)
    target = host_target(tuned=trials > 0)
    if trials > 0:
        with tempfile.TemporaryDirectory(prefix="facelm-tune-") as tmp:
            mod = tune(mod, target, trials, work_dir or tmp)
    try:
        ex = tvm.compile(mod, target=tvm.target.Target(target))
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        ex.export_library(str(out_path))
    except Exception as exc:
        raise ConversionError(f"TVM host build failed: {type(exc).__name__}: {exc}") from exc
    return TvmBuild(path=out_path, target=target, linked=True, trials=trials)


def compile_android(onnx_path: str | os.PathLike, out_dir: str | os.PathLike,
                    input_shape: tuple[int, ...]) -> TvmBuild:
    """Cross-compile for ``aarch64-linux-android`` (+neon).

    With ``$TVM_NDK_CC`` set to an NDK clang, links ``out_dir/android.so``. Otherwise writes
    ``out_dir/android.tar`` (AArch64 object files) and returns a note on how to link it;
    the caller shows it as a warning.
    """
    tvm = import_tvm()
    mod = import_onnx(onnx_path, input_shape)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        ex = tvm.compile(mod, target=tvm.target.Target(ANDROID_TARGET))
    except Exception as exc:
        raise ConversionError(f"TVM Android build failed: {type(exc).__name__}: {exc}") from exc
    cc = os.environ.get(NDK_ENV, "")
    if cc:
        if not (shutil.which(cc) or Path(cc).is_file()):
            raise ConversionError(f"${NDK_ENV}={cc!r} is not an executable compiler")
        from tvm.support import ndk

        path = out_dir / "android.so"
        try:
            ex.export_library(str(path), fcompile=ndk.create_shared)
        except Exception as exc:
            raise ConversionError(f"linking with ${NDK_ENV}={cc} failed: {exc}") from exc
        return TvmBuild(path=path, target=ANDROID_TARGET, linked=True)
    path = out_dir / "android.tar"
    ex.export_library(str(path))
    return TvmBuild(path=path, target=ANDROID_TARGET, linked=False,
                    note=f"no Android NDK (${NDK_ENV} unset). " + LINK_NOTE.format(tar=path.name))


def object_counts(tar_path: str | os.PathLike) -> dict[str, int]:
    """Number of object files in an exported ``.tar`` (its ``op_counts`` stand-in)."""
    import tarfile

    with tarfile.open(tar_path) as tf:
        return {"object_files": sum(1 for m in tf.getmembers() if m.name.endswith(".o"))}


class TvmRunner:
    """Run a host ``.so`` from :func:`compile_host`: (N, 3, S, S) float32 -> (N, K, h, w)."""

    def __init__(self, path: str | os.PathLike) -> None:
        tvm = import_tvm()
        from tvm import relax

        path = Path(path)
        if not path.is_file():
            raise InputError(f"no TVM library at {path}")
        self._tvm = tvm
        self._dev = tvm.cpu()
        self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), self._dev)
        self.path = path

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """One (1, 3, S, S) float32 input -> (1, K, h, w) float32."""
        out = self._vm["main"](self._tvm.runtime.tensor(np.ascontiguousarray(x, dtype=np.float32), self._dev))
        if not hasattr(out, "numpy"):  # a tuple return
            out = out[0]
        return out.numpy()

    def heatmaps(self, x: np.ndarray) -> np.ndarray:
        return np.concatenate([self.invoke(x[i:i + 1]) for i in range(len(x))], axis=0)


def relax_op_counts(mod) -> dict[str, int]:
    """Histogram of relax operators (``relax.nn.conv2d``...) in an imported module's ``main``."""
    from collections import Counter

    tvm = import_tvm()
    from tvm import relax

    counts: Counter[str] = Counter()

    @relax.expr_functor.visitor
    class _Count(relax.PyExprVisitor):
        def visit_call_(self, call):  # noqa: N802 - TVM's visitor naming
            if isinstance(call.op, tvm.ir.Op):
                counts[call.op.name.removeprefix("relax.")] += 1
            for arg in call.args:
                self.visit_expr(arg)

    _Count().visit_expr(mod["main"])
    return dict(sorted(counts.items()))
