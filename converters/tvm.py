"""ONNX -> TVM (relax): a host ``.so`` and an Android arm64 library or object archive.

TVM 0.27 is relax-only. Weights are bound as constants (``from_onnx`` default), so the
compiled library takes just the input: ``vm["main"](x) -> heatmaps``. Targets are dicts
(TVM rejects ``llvm -mcpu=...`` strings). MetaSchedule tuning prepacks the weights of every
kernel but ``conv2d_transpose`` (prepacked tuned ``conv2d_transpose`` schedules computed wrong
answers, docs/toolchain.md), and the pipeline checks every TVM artifact against torch anyway.

Shipped tuning databases (``facelm/assets/tvm_tuning/<config>/``, :func:`find_shipped_db`) are
applied by default to a host build whose kernels they cover; ``--tvm-trials`` continues a copy.
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

from facelm.runtime.tvm import TvmRunner, import_tvm  # noqa: F401  (the one loader)
from facelm.errors import ConversionError, InputError

log = logging.getLogger(__name__)

HOST_TARGET: dict[str, Any] = {"kind": "llvm"}
ANDROID_TARGET: dict[str, Any] = {"kind": "llvm", "mtriple": "aarch64-linux-android", "mattr": ["+neon"]}
NDK_ENV = "TVM_NDK_CC"
#: linker options of the host ``.so``: LLVM's DWARF is dropped (on the paper-final int8 build it was
#: 0.9 of 5.4 MB; the symbols TVM's loader needs stay)
HOST_LINK_OPTIONS = ("-Wl,--strip-debug",)
#: the target the shipped tuning databases were tuned for and are applied with: any AVX2/FMA
#: x86-64 host runs its code (not ``znver*``/native), one core (MetaSchedule needs ``num-cores``)
SHIPPED_TARGET: dict[str, Any] = {"kind": "llvm", "mcpu": "haswell", "num-cores": 1}
#: the two files of a MetaSchedule JSON database
DB_FILES = ("database_workload.json", "database_tuning_record.json")
#: the card next to a shipped database (target, trials, TVM version, date, measured latency)
CARD_FILE = "card.json"

LINK_NOTE = (
    "the Android TVM library is left as AArch64 object files in {tar}. To link it:\n"
    "  mkdir objs && tar -xf {tar} -C objs\n"
    "  $NDK/toolchains/llvm/prebuilt/linux-x86_64/bin/aarch64-linux-android24-clang++ -shared -fPIC "
    "-o android.so objs/*.o\n"
    "(the app loads it with the TVM runtime, libtvm_runtime.so), or set TVM_NDK_CC to that compiler "
    "and rerun `facelm convert` to get tvm/android.so directly."
)


def import_onnx(onnx_path: str | os.PathLike, input_shape: tuple[int, ...], input_name: str = "input",
                fold_constants: bool = True):
    """ONNX file -> relax IRModule with the weights bound as constants.

    ``fold_constants`` runs relax ``FoldConstant`` on the import: TVM 0.27's ONNX ``Clip``
    converter wraps each constant bound in ``where(isnan(bound), +-inf, bound)`` (ONNX
    treats a NaN bound as none), and the bias of every Conv is reshaped at run time. With
    constant bounds and weights all of that is computable once: on the tiny config it
    removes 68 ``isnan``, 68 ``where`` and 55 of 58 ``reshape`` calls, with bit-identical
    output (docs/conversion.md).
    """
    import onnx

    import_tvm()
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx

    try:
        mod = from_onnx(onnx.load(str(onnx_path)), shape_dict={input_name: list(input_shape)})
        return relax.transform.FoldConstant()(mod) if fold_constants else mod
    except Exception as exc:  # the frontend raises many types
        raise ConversionError(f"TVM cannot import {onnx_path}: {type(exc).__name__}: {exc}") from exc


def import_tflite_int8(tflite_path: str | os.PathLike, integer: bool = True):
    """An int8 ``.tflite`` (float32 in/out, int8 inside) -> relax IRModule, for the ``tvm_int8`` artifacts.

    Uses TVM 0.27's relax TFLite frontend (needs the ``tflite`` flatbuffer package, 2.18.0,
    installed with ``--no-deps``). The frontend lowers each quantized op to explicit
    dequantize -> float op -> quantize (QDQ), so TVM computes exactly what the calibrated
    int8 model computes (scales, zero points, rounding). Three adjustments:

    - the frontend refuses quantized ``PAD``, ``TRANSPOSE`` and ``DEPTH_TO_SPACE`` although its
      converters for them are correct for quantized tensors (PAD pads with the input's zero point,
      TRANSPOSE and DEPTH_TO_SPACE only move values): :class:`_Int8Ops` admits them;
    - ``TRANSPOSE_CONV`` comes out NHWC/IOHW, which TVM's conv2d_transpose lowering does not
      take: it is converted to NCHW (``ConvertLayout``);
    - with ``integer`` (the default), every convolution and transposed convolution whose
      weights are a per-channel int8 constant with zero point 0 and whose input is a
      dequantized int8 tensor is rewritten by :func:`integer_convs`: int8 weights stay int8
      constants, the conv runs on integers (int16 input minus zero point x int8 weights,
      int32 accumulate) and one float multiply per output channel rescales it; without it
      the weights' dequantize is folded into float32 constants (a float model in QDQ form);
    - constants are folded.

    The module takes the TFLite model's NHWC float32 input and returns its NHWC heatmaps.

    Raises:
        ConversionError: ``tflite`` is missing or the frontend cannot convert an op.
    """
    import_tvm()
    from tvm import relax

    try:
        import tflite
    except ImportError:
        raise ConversionError("the tvm_int8 artifacts need the tflite flatbuffer package: "
                              "pip install --no-deps tflite==2.18.0") from None
    from tvm.relax.frontend.tflite import from_tflite

    buf = Path(tflite_path).read_bytes()
    try:
        mod = from_tflite(tflite.Model.GetRootAsModel(buf, 0), op_converter=_int8_ops())
        if isinstance(mod, tuple):
            mod = mod[0]
        if integer:
            mod = integer_convs(mod)
        mod = relax.transform.FoldConstant()(mod)
        mod = relax.transform.ConvertLayout({"relax.nn.conv2d_transpose": ["NCHW", "IOHW"]})(mod)
        return relax.transform.FoldConstant()(mod)
    except Exception as exc:  # the frontend raises many types
        raise ConversionError(f"TVM cannot import {Path(tflite_path).name}: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def integer_convs(mod):
    """Rewrite QDQ convolutions of a TFLite-imported module to integer convolutions (int8 weights).

    Pattern (what the relax TFLite frontend emits for a quantized CONV_2D, DEPTHWISE_CONV_2D
    or TRANSPOSE_CONV): ``conv(dequantize(xq, sx, zx), [reshape](dequantize(Wq, sw, 0)))``
    with ``Wq`` an int8 constant, ``sx``/``zx`` scalars and ``sw`` one scale per output channel
    (or one). Rewritten to::

        acc = conv2d(pad(xq, zx), Wq, out_dtype=int32) - zx * sum(Wq)   # int8 x int8, exact
        acc = conv2d_transpose(astype(xq, int16) - zx, Wq, out_dtype=int32)
        y   = astype(acc, float32) * (sx * sw)                          # (O,) along NHWC's C

    which is the same sum: ``sx*sw*sum((xq - zx) * Wq)``; a padded border is 0 in both (the
    float conv pads the dequantized value 0, i.e. ``xq == zx``; :func:`_int8_conv2d`). A
    transposed conv's padding crops its output, so its zero point is subtracted on the input
    (int16) instead. Only float rounding order differs. The bias add and the output ``quantize`` that follow are left as they are. A conv
    that does not fit the pattern (float weights, a nonzero weight zero point, a non-NHWC
    output) is left unchanged.

    Args:
        mod: module from ``from_tflite`` before any constant folding.
    Returns:
        The module with its ``main`` rewritten.
    """
    import_tvm()
    from tvm import relax
    from tvm.relax.dpl import is_const, is_op, rewrite_call, wildcard

    xq, sx, zx = wildcard(), is_const(), is_const()
    wq, sw, zw = is_const(), is_const(), is_const()
    x = is_op("relax.dequantize")(xq, sx, zx)
    w0 = is_op("relax.dequantize")(wq, sw, zw)
    w = w0 | is_op("relax.reshape")(w0, wildcard())
    conv = is_op("relax.nn.conv2d")(x, w) | is_op("relax.nn.conv2d_transpose")(x, w)

    def rewrite(expr, m):
        a = expr.attrs
        wq_np, sw_np = m[wq].value.numpy(), m[sw].value.numpy().astype(np.float64).reshape(-1)
        sx_np, zx_np = m[sx].value.numpy(), m[zx].value.numpy()
        w_shape = [int(d) for d in expr.args[1].ty.shape]
        out_c = w_shape[a.kernel_layout.index("O")]
        if (wq_np.dtype != np.int8 or np.any(m[zw].value.numpy() != 0) or sx_np.size != 1 or zx_np.size != 1
                or sw_np.size not in (1, out_c) or a.out_layout != "NHWC"
                or str(m[xq].ty.dtype) not in ("int8", "uint8")
                or (expr.op.name == "relax.nn.conv2d" and a.data_layout != "NHWC")):
            return expr
        z = int(zx_np.reshape(()))
        wc = relax.const(wq_np.reshape(w_shape))
        if expr.op.name == "relax.nn.conv2d":
            acc = _int8_conv2d(m[xq], z, wq_np.reshape(w_shape), a)
        else:
            xs = relax.op.subtract(relax.op.astype(m[xq], "int16"), relax.const(z, "int16"))
            acc = relax.op.nn.conv2d_transpose(xs, wc, strides=a.strides, padding=a.padding,
                                               output_padding=a.output_padding, dilation=a.dilation,
                                               groups=a.groups, data_layout=a.data_layout,
                                               kernel_layout=a.kernel_layout, out_layout=a.out_layout,
                                               out_dtype="int32")
        scale = (float(sx_np.reshape(())) * sw_np).astype(np.float32)
        return relax.op.multiply(relax.op.astype(acc, "float32"), relax.const(scale))

    mod = mod.clone() if hasattr(mod, "clone") else mod
    mod["main"] = rewrite_call(conv, rewrite, mod["main"])
    return mod


def _int8_conv2d(xq, zx: int, wq: np.ndarray, a):
    """int8 x int8 -> int32 NHWC conv2d of ``xq - zx`` without widening the input.

    ``sum((xq - zx) * w) = sum(xq * w) - zx * sum(w)``, exact when every window is full: a
    padded conv first pads ``xq`` with ``zx`` (the quantized zero) and then convolves without
    padding. ``sum(w)`` per output channel is a constant (the kernel layout's ``O`` axis).
    """
    from tvm import relax

    x = xq
    pad = [int(p) for p in a.padding]  # top, left, bottom, right
    if any(pad) and a.data_layout == "NHWC":
        x = relax.op.nn.pad(xq, pad_width=[0, 0, pad[0], pad[2], pad[1], pad[3], 0, 0], pad_value=float(zx))
        pad = [0, 0, 0, 0]
    elif any(pad):
        raise ValueError(f"padded {a.data_layout} conv")  # not emitted by the TFLite frontend
    acc = relax.op.nn.conv2d(x, relax.const(wq), strides=a.strides, padding=pad, dilation=a.dilation,
                             groups=a.groups, data_layout=a.data_layout, kernel_layout=a.kernel_layout,
                             out_layout=a.out_layout, out_dtype="int32")
    o = a.kernel_layout.index("O")
    wsum = wq.astype(np.int64).sum(axis=tuple(i for i in range(wq.ndim) if i != o))
    if zx == 0:
        return acc
    return relax.op.subtract(acc, relax.const((zx * wsum).astype(np.int32)))


def int8_constant_bytes(mod) -> dict[str, int]:
    """Bytes of the constants in a module's ``main`` by dtype (``{"int8": ..., "float32": ...}``)."""
    from collections import Counter

    tvm = import_tvm()
    from tvm import relax

    sizes: Counter[str] = Counter()

    @relax.expr_functor.visitor
    class _Consts(relax.PyExprVisitor):
        def visit_generic_const_(self, c):  # noqa: N802 - TVM's visitor naming
            v = getattr(c, "value", None)
            if hasattr(v, "numpy"):
                a = v.numpy()
                sizes[str(a.dtype)] += a.nbytes

    _Consts().visit_expr(mod["main"])
    del tvm
    return dict(sizes)


def _int8_ops():
    from tvm.relax.frontend.tflite.tflite_frontend import OperatorConverter

    class _Int8Ops(OperatorConverter):
        """The stock converter, with quantized PAD, TRANSPOSE and DEPTH_TO_SPACE admitted (see
        :func:`import_tflite_int8`; DEPTH_TO_SPACE, what the S blocks export as, is a reshape and
        a transpose, and TFLite requires the same scale and zero point on its input and output)."""

        _SUPPORTED_QUANTIZED_OPS = OperatorConverter._SUPPORTED_QUANTIZED_OPS | {"PAD", "TRANSPOSE",
                                                                                  "DEPTH_TO_SPACE"}

    return _Int8Ops


def _strategy(population: int = 128):
    from tvm.s_tir.meta_schedule.search_strategy import EvolutionarySearch

    # The default population (512) is far too slow on a 2-core machine (docs/toolchain.md).
    return EvolutionarySearch(population_size=population, genetic_num_iters=2,
                              init_min_unmeasured=min(32, population))


def lean_build(mod, target, _params=None):
    """MetaSchedule build function: ``default_build`` without ``import tvm.s_tir.tensor_intrin``.

    TVM's default build function imports every tensor intrinsic (~17 s per fresh process on
    this 2-core machine) and its ``LocalBuilder`` starts fresh worker processes for every
    tuning round, so each round cost ~25-30 s before a single kernel was compiled (and the
    30 s build timeout could fail the round on a loaded machine). The intrinsics are only
    needed to *schedule* (tensorize), which happens in the tuning process; a scheduled
    module is plain TIR and builds without them.
    """
    from tvm.driver import build as tvm_build
    from tvm.s_tir.transform import RemoveWeightLayoutRewriteBlock

    mod = RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(mod)
    return tvm_build(mod, target=target)


_BUILDER_CLS = None


def persistent_builder(max_workers: int = 1, timeout_s: float = 120.0):
    """A MetaSchedule builder whose worker processes live for the whole tuning run.

    Same results as ``LocalBuilder(f_build=lean_build)`` but the ``PopenPoolExecutor`` is
    created once (workers are recycled after 200 builds against the leak TVM mentions),
    so a round costs its builds and nothing else. Call ``.shutdown()`` when done.
    """
    global _BUILDER_CLS
    if _BUILDER_CLS is None:
        import_tvm()
        from tvm.ir.utils import derived_object
        from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
        from tvm.s_tir.meta_schedule.builder.local_builder import _serialize_params, _worker_func
        from tvm.support.popen_pool import PopenPoolExecutor, StatusKind

        @derived_object
        class _PersistentBuilder(PyBuilder):
            def __init__(self, max_workers: int, timeout_s: float) -> None:
                super().__init__()
                self.timeout_s = timeout_s
                self.pool = PopenPoolExecutor(max_workers=max_workers, timeout=timeout_s,
                                              maximum_process_uses=200)

            def build(self, build_inputs):
                jobs = [(lean_build, None, b.mod, b.target, _serialize_params(b.params)) for b in build_inputs]
                results = []
                for r in self.pool.map_with_error_catching(lambda j: _worker_func(*j), jobs):
                    if r.status == StatusKind.COMPLETE:
                        results.append(BuilderResult(r.value, None))
                    elif r.status == StatusKind.TIMEOUT:
                        results.append(BuilderResult(None, f"build timed out after {self.timeout_s} s"))
                    else:
                        results.append(BuilderResult(None, f"build failed: {r.value}"))
                return results

            def shutdown(self) -> None:
                self.pool.shutdown()

        _BUILDER_CLS = _PersistentBuilder
    return _BUILDER_CLS(max_workers, timeout_s)


def tuning_plan(trials: int, n_tasks: int) -> tuple[int, int]:
    """(trials per task, trials per round) for a global budget over ``n_tasks`` tasks.

    Every task should get trials: ``per_round * n_tasks <= trials`` (docs/toolchain.md; an untuned
    task stays very slow). Below one trial per task, the scheduler reaches only
    ``trials`` tasks and the rest keep TVM's default schedules. The per-task cap is rounded
    up so the whole budget can be spent (MetaSchedule stops at the global budget).
    """
    n = max(1, n_tasks)
    per_round = max(1, min(64, trials // n))
    # ceil: with floor, 70 trials over 36 tasks capped every task at 1 and 34 trials went unused
    return max(per_round, -(-trials // n)), per_round


#: kernels that never get weight prepacking (docs/toolchain.md: prepacked tuned conv2d_transpose
#: schedules computed answers ~6% off; the rest of the model prepacks safely)
NO_PREPACK_KERNELS = ("conv2d_transpose",)


def _prepare_for_tuning(mod, tgt, prepack: bool):
    """The passes before tuning (and before applying a database): the same for both, so records match.

    With ``prepack``, every kernel's constant weights are marked layout-free (MetaSchedule may
    then choose a packed weight layout, computed once at compile time) except the kernels
    named in :data:`NO_PREPACK_KERNELS`, whose ``layout_free_buffers`` attribute is removed.
    """
    tvm = import_tvm()
    from tvm import relax
    from tvm.relax import transform

    with tgt:
        mod = tvm.transform.Sequential([
            transform.DecomposeOpsForInference(),
            transform.CanonicalizeBindings(),
            relax.get_pipeline("zero"),
        ])(mod)
        if prepack:
            mod = transform.AttachAttrLayoutFreeBuffers()(mod)
            for gv, f in list(mod.functions.items()):
                if (isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None and "layout_free_buffers" in f.attrs
                        and any(k in gv.name_hint for k in NO_PREPACK_KERNELS)):
                    mod[gv] = f.without_attr("layout_free_buffers")
    return mod


def prepacked_kernels(mod) -> int:
    """Kernels of a module (before :func:`apply_database`) whose weights may be prepacked."""
    tvm = import_tvm()
    return sum(1 for _, f in mod.functions.items() if isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None
               and "layout_free_buffers" in f.attrs)


def apply_database(mod, target: dict, db_dir: str | os.PathLike, prepack: bool = True, prepared: bool = False):
    """Apply the tuning records in ``db_dir`` to ``mod`` without tuning (``--tvm-tuning-db``).

    ``mod`` is the imported module (``prepared=True``: already through :func:`_prepare_for_tuning`).
    With ``prepack`` the weight layout rewrites are split out and folded into the constants,
    so the library still takes only the input.

    Raises:
        InputError: ``db_dir`` holds no tuning database.
    """
    tvm = import_tvm()
    from tvm.relax import transform

    db = Path(db_dir)
    if not (db / "database_tuning_record.json").is_file():
        raise InputError(f"{db} holds no MetaSchedule database (database_tuning_record.json)")
    tgt = tvm.target.Target(target)
    if not prepared:
        mod = _prepare_for_tuning(mod, tgt, prepack)
    with tgt:
        mod = transform.MetaScheduleApplyDatabase(str(db))(mod)
        if prepack:
            mod = tvm.transform.Sequential([transform.SplitLayoutRewritePreproc(), transform.LiftTransformParams(),
                                            transform.FoldConstant()])(mod)
    return mod


def tune(mod, target: dict, trials: int, work_dir: str | os.PathLike, population: int = 128,
         builder_workers: int = 1, prepack: bool = True, scheduler: str = "gradient"):
    """MetaSchedule-tune ``mod`` for ``target`` with a global budget of ``trials`` measurements.

    Args:
        mod: relax module from :func:`import_onnx` (weights bound as constants).
        target: a target dict with ``num-cores`` (see :func:`host_target`).
        trials: global measurement budget (see :func:`tuning_plan`).
        work_dir: the tuning database (``database_*.json``) and logs go here.
        population: evolutionary-search population per round (128 suits 2 cores).
        builder_workers: parallel kernel builds.
        prepack: prepack weights of every kernel but :data:`NO_PREPACK_KERNELS` (callers
            check the result against a reference anyway). A database tuned with prepacking
            applies to prepacked builds only, and the reverse.
        scheduler: MetaSchedule's task scheduler. ``"gradient"`` writes no record before
            every task has had its first round (its warm-up joins the measurements only
            then); ``"round-robin"`` writes each task's records as they come, so a run that
            is stopped early keeps what it measured (benchmarks/tune_tvm.py uses it).
    Returns:
        The module with the tuned schedules applied (ready for ``tvm.compile``).
    Raises:
        ConversionError: tuning measured nothing (see ``work_dir/logs``).
    """
    tvm = import_tvm()
    from tvm import relax
    from tvm.relax import transform
    from tvm.s_tir.meta_schedule.database import JSONDatabase
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks, tune_relax

    tgt = tvm.target.Target(target)
    mod = _prepare_for_tuning(mod, tgt, prepack)
    n_tasks = len(extract_tasks(mod, tgt))
    per_task, per_iter = tuning_plan(trials, n_tasks)
    log.info("tuning %d tasks: %d trials in all, %d per task, %d per round", n_tasks, trials, per_task, per_iter)
    if trials < n_tasks:
        log.warning("a budget of %d trials reaches only %d of %d tasks; the rest keep default schedules "
                    "(give at least %d)", trials, trials, n_tasks, n_tasks)
    builder = persistent_builder(builder_workers)
    # MetaSchedule builds its logging config from the *names* of the handlers already on its
    # logger; an unnamed handler (one left by an earlier run in this process) makes it crash with
    # "'NoneType' object has no attribute 'format'". They are set aside for the run.
    ms_logger = logging.getLogger("tvm.s_tir.meta_schedule")
    unnamed = [h for h in ms_logger.handlers if h.get_name() is None]
    for h in unnamed:
        ms_logger.removeHandler(h)
    try:
        tune_relax(mod, params={}, target=tgt, work_dir=str(work_dir), max_trials_global=trials,
                   max_trials_per_task=per_task, num_trials_per_iter=per_iter, strategy=_strategy(population),
                   builder=builder, task_scheduler=scheduler)
    finally:
        builder.shutdown()
        for h in unnamed:
            ms_logger.addHandler(h)
    db = JSONDatabase(work_dir=str(work_dir))
    valid = [r for r in db.get_all_tuning_records() if r.run_secs and all(float(s) < 1e9 for s in r.run_secs)]
    if not valid:
        raise ConversionError(f"MetaSchedule tuning measured no valid schedule; see {Path(work_dir) / 'logs'}")
    mod = apply_database(mod, target, work_dir, prepack=prepack, prepared=True)
    log.info("tuning saved %d valid records; %d of %d kernels use tuned schedules", len(valid),
             scheduled_kernels(mod), n_tasks)
    return mod


def scheduled_kernels(mod) -> int:
    """Number of TIR kernels in ``mod`` carrying a schedule from a tuning database."""
    tvm = import_tvm()

    return sum(1 for _, f in mod.functions.items()
               if isinstance(f, tvm.tirx.PrimFunc) and f.attrs is not None and "tirx.is_scheduled" in f.attrs)


def host_target(tuned: bool) -> dict[str, Any]:
    """The host target. Tuned code is specialised to this CPU, single core; untuned stays generic,
    because a set ``mcpu`` made untuned code slower (docs/toolchain.md)."""
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
    tuned_kernels: int = 0
    note: str = ""
    op_counts: dict[str, int] | None = None
    #: name of the shipped tuning database applied (or continued), "" if none
    database: str = ""


def compile_host(onnx_path: str | os.PathLike, out_path: str | os.PathLike, input_shape: tuple[int, ...],
                 trials: int = 0, work_dir: str | os.PathLike | None = None, population: int = 128,
                 mod=None, prepack: bool = True, shipped_db: bool = True) -> TvmBuild:
    """Compile for this machine and export a loadable ``.so``.

    Args:
        onnx_path: static-shape ONNX model.
        out_path: the ``.so`` to write.
        input_shape: (1, 3, S, S).
        trials: MetaSchedule budget; 0 = untuned.
        work_dir: tuning database folder (a temp folder if None). With ``trials=0`` and a
            ``work_dir`` holding a database, its records are applied without tuning
            (``--tvm-tuning-db``); with ``trials>0`` tuning continues that database.
        population: evolutionary-search population (see :func:`tune`).
        mod: the relax module of ``onnx_path`` when the caller already imported it.
        shipped_db: without a ``work_dir``, look for a shipped database whose workloads
            match the module (:func:`find_shipped_db`): with ``trials=0`` it is applied,
            with ``trials>0`` tuning continues a copy of it (the package is never written).
            A module with no match is built untuned (or tuned from scratch) with a note.
    """
    tvm = import_tvm()
    mod = mod if mod is not None else import_onnx(onnx_path, input_shape)
    op_counts = relax_op_counts(mod)
    target = host_target(tuned=trials > 0)
    tuned_kernels, database, note = 0, "", ""
    shipped = None
    if work_dir is None and shipped_db:
        shipped, note = find_shipped_db(mod)
        log.info("%s", note)
    if trials > 0:
        with tempfile.TemporaryDirectory(prefix="facelm-tune-") as tmp:
            if shipped is not None:
                for f in DB_FILES:
                    shutil.copy2(shipped / f, Path(tmp) / f)
                target = dict((read_card(shipped) or {}).get("target") or SHIPPED_TARGET)
                database = shipped.name
            mod = tune(mod, target, trials, work_dir or tmp, population=population, prepack=prepack)
        tuned_kernels = scheduled_kernels(mod)
    elif work_dir is not None or shipped is not None:
        db = work_dir if work_dir is not None else shipped
        if shipped is not None:
            target = dict((read_card(shipped) or {}).get("target") or SHIPPED_TARGET)
            database = shipped.name
        else:
            target = host_target(tuned=True)
        mod = apply_database(mod, target, db, prepack=prepack)
        tuned_kernels = scheduled_kernels(mod)
        log.info("applied %s: %d kernels with tuned schedules (no tuning)", db, tuned_kernels)
    try:
        ex = tvm.compile(mod, target=tvm.target.Target(target))
        out_path = Path(out_path)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        ex.export_library(str(out_path), options=list(HOST_LINK_OPTIONS))
    except Exception as exc:
        raise ConversionError(f"TVM host build failed: {type(exc).__name__}: {exc}") from exc
    return TvmBuild(path=out_path, target=target, linked=True, trials=trials, tuned_kernels=tuned_kernels,
                    op_counts=op_counts, note=note, database=database)


def compile_android(onnx_path: str | os.PathLike | None, out_dir: str | os.PathLike,
                    input_shape: tuple[int, ...], mod=None, stem: str = "android") -> TvmBuild:
    """Cross-compile for ``aarch64-linux-android`` (+neon).

    With ``$TVM_NDK_CC`` set to an NDK clang, links ``out_dir/android.so``. Otherwise writes
    ``out_dir/android.tar`` (AArch64 object files) and returns a note on how to link it;
    the caller shows it as a warning. ``mod``: the already imported relax module, if any;
    ``stem``: the file name without suffix.
    """
    tvm = import_tvm()
    mod = mod if mod is not None else import_onnx(onnx_path, input_shape)
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

        path = out_dir / f"{stem}.so"
        try:
            ex.export_library(str(path), fcompile=ndk.create_shared)
        except Exception as exc:
            raise ConversionError(f"linking with ${NDK_ENV}={cc} failed: {exc}") from exc
        return TvmBuild(path=path, target=ANDROID_TARGET, linked=True)
    path = out_dir / f"{stem}.tar"
    ex.export_library(str(path))
    return TvmBuild(path=path, target=ANDROID_TARGET, linked=False,
                    note=f"no Android NDK (${NDK_ENV} unset). " + LINK_NOTE.format(tar=path.name))


def object_counts(tar_path: str | os.PathLike) -> dict[str, int]:
    """Number of object files in an exported ``.tar`` (its ``op_counts`` stand-in)."""
    import tarfile

    with tarfile.open(tar_path) as tf:
        return {"object_files": sum(1 for m in tf.getmembers() if m.name.endswith(".o"))}


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


# ---- shipped tuning databases (sdk/assets/tvm_tuning/<config>/) ----------------------------

def shipped_root() -> Path:
    """Folder of the shipped databases: ``facelm/assets/tvm_tuning`` (one sub-folder per config)."""
    from facelm.assets import ASSETS_DIR

    return ASSETS_DIR / "tvm_tuning"


def shipped_db_dir(config_name: str) -> Path:
    """Where the database of zoo config ``config_name`` is (or would be) shipped."""
    return shipped_root() / config_name


def read_card(db_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The card of a database folder, or None when it has none."""
    import json

    p = Path(db_dir) / CARD_FILE
    return json.loads(p.read_text()) if p.is_file() else None


def write_card(db_dir: str | os.PathLike, card: dict[str, Any]) -> None:
    """Write ``card.json`` atomically (temp name, then rename)."""
    import json

    p = Path(db_dir) / CARD_FILE
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(card, indent=1, sort_keys=True) + "\n")
    tmp.replace(p)


def host_runs_shipped_target() -> bool:
    """Whether this machine runs code for :data:`SHIPPED_TARGET` (x86-64 with AVX2 and FMA)."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " avx2" in flags and " fma" in flags


#: share of a module's kernels that must have records in a shipped database for it to apply
MIN_MATCH = 0.5


def shipped_matches(mod, db_dir: str | os.PathLike, tasks=None) -> tuple[int, int]:
    """(kernels of ``mod`` with a tuning record in ``db_dir``, kernels of ``mod``).

    Matching is on MetaSchedule's workloads, i.e. the structural hash of each kernel after the
    same passes as tuning (:func:`_prepare_for_tuning`, prepacked): weight values do not
    matter, shapes and operators do. The hashes are read from the database files directly
    (the first field of each workload line; a record's first field is its workload's line),
    which costs milliseconds where loading a ``JSONDatabase`` parses every stored module.
    ``mod`` is an imported module (:func:`import_onnx`); ``tasks``: its extracted tasks, if known.
    """
    import json

    import_tvm()
    from tvm_ffi import structural_hash  # MetaSchedule's "structural" workload hash

    tasks = tasks if tasks is not None else _shipped_tasks(mod)
    d = Path(db_dir)
    hashes = [json.loads(line)[0] for line in (d / DB_FILES[0]).read_text().splitlines() if line.strip()]
    with_records = {hashes[int(line[1:line.index(",")])] for line in (d / DB_FILES[1]).read_text().splitlines()
                    if line.strip()}
    hits = sum(str(structural_hash(t.dispatched[0]) % 2**64) in with_records for t in tasks)
    return hits, len(tasks)


def _shipped_tasks(mod):
    """MetaSchedule tasks of ``mod`` prepared as for tuning with :data:`SHIPPED_TARGET`."""
    tvm = import_tvm()
    from tvm.s_tir.meta_schedule.relax_integration import extract_tasks

    tgt = tvm.target.Target(SHIPPED_TARGET)
    return extract_tasks(_prepare_for_tuning(mod, tgt, True), tgt)


def find_shipped_db(mod, root: str | os.PathLike | None = None) -> tuple[Path | None, str]:
    """The shipped database that matches ``mod`` best, and a one-line note saying why (not).

    A database matches when at least :data:`MIN_MATCH` of the module's kernels have records in
    it (:func:`shipped_matches`); the one with the most matched kernels wins. None (with the
    note) when no database matches, none is shipped, or this CPU cannot run its target.
    """
    root = Path(root) if root is not None else shipped_root()
    dbs = sorted(d for d in root.iterdir() if all((d / f).is_file() for f in DB_FILES)) if root.is_dir() else []
    if not dbs:
        return None, "no shipped TVM tuning database; TVM host build is untuned"
    if not host_runs_shipped_target():
        return None, "this CPU lacks AVX2/FMA (the shipped databases' target); TVM host build is untuned"
    best, best_hits, n = None, 0, 0
    tasks = _shipped_tasks(mod)
    for d in dbs:
        hits, n = shipped_matches(mod, d, tasks)
        if hits > best_hits:
            best, best_hits = d, hits
    if best is None or best_hits < MIN_MATCH * n:
        return None, (f"no shipped TVM tuning database matches this model ({best_hits} of {n} kernels at best); "
                      "TVM host build is untuned (tune with --tvm-trials)")
    return best, f"shipped TVM tuning database {best.name}: {best_hits} of {n} kernels have tuned schedules"
