"""``facelm bench [run] PATH`` and ``facelm bench report RECORDS``.

``run`` (the default subcommand: ``facelm bench PATH`` = ``facelm bench run PATH``) benchmarks an
artifact folder or a .tflite on phones over adb, or on this host (local backend, ai-edge-litert)
when no device is attached: :func:`facelm.android_bench.bench.bench` on a
:class:`~facelm.android_bench.config.BenchRequest`; flag defaults from it and
:class:`~facelm.android_bench.config.BenchOptions`.
``report`` renders a records file as a table and a latency plot:
:func:`facelm.android_bench.report.report`.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from facelm.android_bench.bench import NATIVE_CODE_WHY, UNVERIFIED, bench
from facelm.android_bench.config import DELEGATES, BenchOptions, BenchRequest
from facelm.android_bench.report import NOT_COMPARABLE, is_emulated, report
from facelm.errors import DeviceError

from ._args import adb_from_args, add_adb_flags, defaults_of, print_help_of

log = logging.getLogger(__name__)
REPORT_FORMATS = ("md", "html")


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=__doc__)
    cmds = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    _register_run(cmds)
    _register_report(cmds)
    parser.set_defaults(func=print_help_of(parser), default_subcommand="run")
    return parser


def _register_run(cmds: argparse._SubParsersAction) -> None:
    d, b = BenchOptions(), defaults_of(BenchRequest)
    p = cmds.add_parser("run", help="benchmark an artifact folder or a .tflite (the default subcommand)",
                        description=__doc__)
    p.add_argument("target", metavar="ARTIFACTS_DIR|MODEL.tflite",
                   help="an artifact folder (manifest.json) or a .tflite")
    add_adb_flags(p)
    p.add_argument("--serial", action="append", default=None, help="device serial (repeatable)")
    p.add_argument("--all-devices", action="store_true", default=b["all_devices"],
                   help="every usable attached device, in parallel")
    p.add_argument("--local", action="store_true", help="benchmark on this host even if a device is attached")
    p.add_argument("--artifact", action="append", default=b["artifacts"],
                   help="only these manifest artifacts (repeatable); naming a TVM .so artifact here "
                        "allows loading it")
    p.add_argument("--allow-native-code", action="store_true", default=b["allow_native_code"],
                   help=f"also benchmark the folder's native-code artifacts (TVM .so); off by default because "
                        f"{NATIVE_CODE_WHY}. Use it only for folders you built or trust")
    p.add_argument("--threads", type=int, default=d.threads, help="interpreter threads")
    p.add_argument("--delegate", choices=DELEGATES, default=d.delegate, help="TFLite delegate")
    p.add_argument("--runs", type=int, default=d.runs, help="measured inferences per invocation")
    p.add_argument("--warmup", type=int, default=d.warmup, help="warmup inferences per invocation")
    p.add_argument("--repeats", type=int, default=d.repeats, help="benchmark_model invocations per artifact")
    p.add_argument("--no-pin", dest="pin_big_cores", action="store_false", help="do not taskset to the big cores")
    p.add_argument("--no-fixed-performance", dest="fixed_performance", action="store_false",
                   help="do not ask for the fixed performance mode")
    p.add_argument("--cooldown", type=float, default=d.cooldown_s, help="seconds between invocations")
    p.add_argument("--thermal-limit", type=float, default=d.thermal_limit_c,
                   help="wait until the CPU is at most this hot (C) before each invocation")
    p.add_argument("--thermal-wait", type=float, default=d.thermal_wait_s, help="longest thermal wait (s)")
    p.add_argument("--drift", action="store_true", help="measure on-device drift against the host fp32 reference")
    p.add_argument("--drift-samples", type=int, default=d.drift_samples, help="inputs pushed for drift")
    p.add_argument("--op-profile", action="store_true", default=d.op_profile,
                   help="also record per-op times (benchmark_model --enable_op_profiling=true; on this host and "
                        "on the virtual device every op is timed alone in a one-op model) for 'bench report'")
    p.add_argument("--drift-source", default=b["drift_source"], help="'synthetic' or a face folder")
    p.add_argument("--benchmark-binary", default=d.benchmark_binary,
                   help="host file to push, or device path of benchmark_model")
    p.add_argument("--tvm-rpc", default=b["tvm_rpc"], metavar="TVM_RPC",
                   help="host file or device path of tvm_rpc: also benchmark TVM artifacts on the phone")
    p.add_argument("--tvm-port", type=int, default=b["tvm_port"], help="device port of the tvm_rpc server")
    p.add_argument("--workdir", default=d.workdir, help="device directory for pushed files")
    p.add_argument("--keep", action="store_true", help="leave pushed files on the device")
    p.add_argument("--timeout", type=float, default=d.timeout_s, help="timeout of each adb call (s)")
    p.add_argument("--bench-timeout", type=float, default=d.bench_timeout_s, help="timeout of one benchmark (s)")
    p.add_argument("--results", type=Path, default=b["results"], help="JSONL file every finished run is appended to")
    p.add_argument("--resume", action="store_true", default=b["resume"], help="skip runs already in --results")
    p.add_argument("--json", type=Path, default=b["json_out"], metavar="OUT", help="write this invocation's records here")
    p.set_defaults(func=drive_run)


def _register_report(cmds: argparse._SubParsersAction) -> None:
    r = defaults_of(report)
    p = cmds.add_parser("report", help="render a records file: Markdown/HTML table and latency plot",
                        description=report.__doc__)
    p.add_argument("records", type=Path, metavar="RECORDS",
                   help="JSONL records ('bench --results') or a '--json' file of one invocation")
    p.add_argument("--compare", type=Path, default=r["compare"], metavar="OTHER",
                   help="a second records file: the table adds the ratios OTHER / RECORDS")
    p.add_argument("--format", choices=REPORT_FORMATS, default=r["fmt"], help="table format")
    p.add_argument("--out", type=Path, default=r["out_dir"],
                   help="output folder (default: RECORDS' folder / RECORDS' name + _report)")
    p.set_defaults(func=drive_report)


def options_from_args(args: argparse.Namespace) -> BenchOptions:
    """Namespace -> :class:`BenchOptions`."""
    return BenchOptions(
        threads=args.threads, delegate=args.delegate, runs=args.runs, warmup=args.warmup, repeats=args.repeats,
        pin_big_cores=args.pin_big_cores, fixed_performance=args.fixed_performance, cooldown_s=args.cooldown,
        thermal_limit_c=args.thermal_limit, thermal_wait_s=args.thermal_wait, drift=args.drift,
        drift_samples=args.drift_samples, op_profile=args.op_profile, benchmark_binary=args.benchmark_binary,
        workdir=args.workdir,
        keep=args.keep, timeout_s=args.timeout, bench_timeout_s=args.bench_timeout)


def request_from_args(args: argparse.Namespace, local: bool | None = None) -> BenchRequest:
    """Namespace -> :class:`BenchRequest` (``local``: see :attr:`BenchRequest.local`)."""
    return BenchRequest(
        Path(args.target), options_from_args(args), serials=tuple(args.serial or ()), all_devices=args.all_devices,
        local=local, results=args.results, resume=args.resume, json_out=args.json, artifacts=args.artifact,
        drift_source=args.drift_source, tvm_rpc=args.tvm_rpc, tvm_port=args.tvm_port,
        allow_native_code=args.allow_native_code)


def _adb_or_none(args: argparse.Namespace, timeout_s: float):
    """The adb client of the flags; None when there is no adb and no device was asked for."""
    from facelm.android_bench.adb import AdbNotFoundError

    try:
        return adb_from_args(args, timeout_s)
    except AdbNotFoundError:
        if args.serial or args.all_devices:
            raise
        return None


def drive_run(args: argparse.Namespace) -> int:
    """Benchmark; print one line per record. Exit 1 when a run failed."""
    import dataclasses

    request = request_from_args(args)  # bad options fail here, before adb is looked for
    adb = None if args.local else _adb_or_none(args, request.options.timeout_s)
    try:
        result = bench(dataclasses.replace(request, local=True if args.local or adb is None else None), adb=adb)
    except DeviceError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            _summary(partial.records)
        raise
    if result.backend_note:
        print(result.backend_note)
    for note in result.notes:
        print(note)
    _summary(result.records)
    if result.skipped:
        print(f"skipped {result.skipped} run(s) already in {args.results} (--resume)")
    failed = [r for r in result.records if r["status"] != "ok"]
    return 1 if failed else 0


def _summary(records: list[dict]) -> None:
    for r in records:
        lat = r.get("latency_ms") or {}
        d = r.get("drift_vs_host") or {}
        line = f"{r['device']['serial']:<22} {r['artifact']['name']:<20} {r['status']:<6} "
        if is_emulated(r):  # an emulated CPU's timings are no phone's
            line += f"latency {NOT_COMPARABLE}"
        else:
            line += f"mean {lat.get('mean') or float('nan'):8.2f} ms  min {lat.get('min') or float('nan'):8.2f} ms"
        if d:
            line += f"  PSNR {d.get('psnr_db')} dB  NME drift vs host {d.get('mean'):.4f}"
        if r["status"] != "ok":
            line += f"  {r['error']}"
        if r["artifact"].get("integrity") == UNVERIFIED:
            line += f"  [{UNVERIFIED}]"
        print(line)


def drive_report(args: argparse.Namespace) -> int:
    """Write the report; print its table and where it went."""
    out = report(args.records, args.out, args.compare, args.format)
    print(out["text"], end="")
    print(f"wrote {out['table']}" + (f" and {out['plot']}" if out["plot"] else ""))
    return 0
