"""``facelm devices``, ``facelm bench`` (and ``bench report``) and ``facelm virtual-device``.

Parsers declare flags (defaults from :class:`BenchOptions`), drivers call the
Python API (:func:`android_bench.bench.bench`, :func:`android_bench.report.report`,
:class:`android_bench.virtual_device.VirtualDevice`) and return an exit code.
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from sdk.errors import ConfigError, DeviceError

from .config import DELEGATES, BenchOptions

log = logging.getLogger(__name__)
D = BenchOptions()


def _adb_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--adb", default=None, help="adb executable (default: adb on PATH)")
    p.add_argument("--adb-port", type=int, default=None, help="adb server port (default: adb's, 5037)")


def _adb(args):
    from .adb import Adb

    return Adb(args.adb, server_port=args.adb_port, timeout_s=getattr(args, "timeout", D.timeout_s))


# ----------------------------------------------------------------------------- devices
def register_devices(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    _adb_flags(p)
    p.add_argument("--connect", action="append", default=[], metavar="HOST:PORT",
                   help="adb connect to a network / virtual device first (repeatable)")
    p.add_argument("--facts", action="store_true", help="also read each usable device's facts")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=drive_devices)
    return p


def drive_devices(args) -> int:
    from .device import read_facts

    adb = _adb(args)
    adb.start_server()
    for addr in args.connect:
        adb.connect(addr)
    entries = adb.devices()
    rows = []
    for e in entries:
        row = {"serial": e.serial, "state": e.state, **e.attrs}
        if args.facts and e.usable:
            row["facts"] = read_facts(adb, e.serial).to_dict()
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no devices attached ('facelm bench' will benchmark on this host)")
    for row in rows:
        print(f"{row['serial']}\t{row['state']}\t{row.get('model', '')}")
        f = row.get("facts")
        if f:
            print(f"  {f['manufacturer']} {f['model']}, SoC {f['soc']}, {f['abi']}, API {f['api_level']}, "
                  f"{len(f['cores'])} cores, big cores {f['big_cores']} (mask {f['big_core_mask']}), "
                  f"governors {f['governors']}, CPU {f['thermal']['cpu_max_c']} C, "
                  f"battery {f['thermal']['battery_c']} C, thermal status {f['thermal']['status']}")
    return 0


# ------------------------------------------------------------------------------- bench
def register_bench(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name, help=help_text, description=help_text + ". 'facelm bench report RESULTS [--compare OTHER]' "
        "renders a results file.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("target", nargs="+", metavar="ARTIFACTS_DIR|MODEL.tflite",
                   help="an artifact folder (manifest.json) or a .tflite; or 'report RESULTS'")
    _adb_flags(p)
    p.add_argument("--serial", action="append", default=[], help="device serial (repeatable)")
    p.add_argument("--all-devices", action="store_true", help="every usable attached device, in parallel")
    p.add_argument("--local", action="store_true", help="benchmark on this host even if a device is attached")
    p.add_argument("--artifact", action="append", default=None, help="only these manifest artifacts (repeatable)")
    p.add_argument("--threads", type=int, default=D.threads)
    p.add_argument("--delegate", choices=DELEGATES, default=D.delegate)
    p.add_argument("--runs", type=int, default=D.runs)
    p.add_argument("--warmup", type=int, default=D.warmup)
    p.add_argument("--repeats", type=int, default=D.repeats, help="benchmark_model invocations per artifact")
    p.add_argument("--no-pin", dest="pin_big_cores", action="store_false", help="do not taskset to the big cores")
    p.add_argument("--no-fixed-performance", dest="fixed_performance", action="store_false")
    p.add_argument("--cooldown", type=float, default=D.cooldown_s, help="seconds between invocations")
    p.add_argument("--thermal-limit", type=float, default=D.thermal_limit_c,
                   help="wait until the CPU is at most this hot (C) before each invocation")
    p.add_argument("--thermal-wait", type=float, default=D.thermal_wait_s, help="longest thermal wait (s)")
    p.add_argument("--drift", action="store_true", help="measure on-device drift against the host fp32 reference")
    p.add_argument("--drift-samples", type=int, default=D.drift_samples)
    p.add_argument("--drift-source", default="synthetic", help="'synthetic' or a face folder")
    p.add_argument("--benchmark-binary", default=D.benchmark_binary,
                   help="host file to push, or device path of benchmark_model")
    p.add_argument("--tvm-rpc", default=None, metavar="TVM_RPC",
                   help="host file or device path of tvm_rpc: also benchmark TVM artifacts on the phone")
    p.add_argument("--tvm-port", type=int, default=9090, help="device port of the tvm_rpc server")
    p.add_argument("--workdir", default=D.workdir, help="device directory for pushed files")
    p.add_argument("--keep", action="store_true", help="leave pushed files on the device")
    p.add_argument("--timeout", type=float, default=D.timeout_s, help="timeout of each adb call (s)")
    p.add_argument("--bench-timeout", type=float, default=D.bench_timeout_s, help="timeout of one benchmark (s)")
    p.add_argument("--results", type=Path, default=Path("runs/bench/results.jsonl"),
                   help="JSONL file every finished run is appended to")
    p.add_argument("--resume", action="store_true", help="skip runs already in --results")
    p.add_argument("--json", type=Path, default=None, metavar="OUT", help="write this invocation's records here")
    # bench report
    p.add_argument("--compare", type=Path, default=None, help="(report) a second results file to compare")
    p.add_argument("--format", choices=("md", "html"), default="md", help="(report) table format")
    p.add_argument("--out", type=Path, default=None, help="(report) output folder")
    p.set_defaults(func=drive_bench)
    return p


def options_from_args(args) -> BenchOptions:
    return BenchOptions(
        threads=args.threads, delegate=args.delegate, runs=args.runs, warmup=args.warmup, repeats=args.repeats,
        pin_big_cores=args.pin_big_cores, fixed_performance=args.fixed_performance, cooldown_s=args.cooldown,
        thermal_limit_c=args.thermal_limit, thermal_wait_s=args.thermal_wait, drift=args.drift,
        drift_samples=args.drift_samples, benchmark_binary=args.benchmark_binary, workdir=args.workdir,
        keep=args.keep, timeout_s=args.timeout, bench_timeout_s=args.bench_timeout)


def drive_bench(args) -> int:
    if args.target[0] == "report":
        return drive_report(args)
    if len(args.target) != 1:
        raise ConfigError(f"give one artifact folder or .tflite, got {args.target}")
    from .bench import bench

    options = options_from_args(args)
    adb = None
    if not args.local:
        from .adb import AdbNotFoundError

        try:
            adb = _adb(args)
        except AdbNotFoundError:
            if args.serial or args.all_devices:
                raise
    try:
        result = bench(Path(args.target[0]), options, serials=args.serial, all_devices=args.all_devices,
                       local=True if args.local or adb is None else None, results=args.results,
                       resume=args.resume, json_out=args.json, adb=adb, artifacts=args.artifact,
                       drift_source=args.drift_source, tvm_rpc=args.tvm_rpc, tvm_port=args.tvm_port)
    except DeviceError as exc:
        partial = getattr(exc, "result", None)
        if partial is not None:
            _summary(partial.records)
        raise
    if result.backend_note:
        print(result.backend_note)
    _summary(result.records)
    if result.skipped:
        print(f"skipped {result.skipped} run(s) already in {args.results} (--resume)")
    failed = [r for r in result.records if r["status"] != "ok"]
    return 1 if failed else 0


def _summary(records: list[dict]) -> None:
    for r in records:
        lat = r.get("latency_ms") or {}
        d = r.get("drift") or {}
        line = (f"{r['device']['serial']:<22} {r['artifact']['name']:<20} {r['status']:<6} "
                f"mean {lat.get('mean') or float('nan'):8.2f} ms  min {lat.get('min') or float('nan'):8.2f} ms")
        if d:
            line += f"  PSNR {d.get('psnr_db')} dB  NME drift {d.get('drift_mean'):.4f}"
        if r["status"] != "ok":
            line += f"  {r['error']}"
        print(line)


def drive_report(args) -> int:
    from .report import report

    if len(args.target) != 2:
        raise ConfigError("usage: facelm bench report RESULTS [--compare OTHER] [--format md|html] [--out DIR]")
    out = report(Path(args.target[1]), args.out, args.compare, args.format)
    print(out["text"], end="")
    print(f"wrote {out['table']}" + (f" and {out['plot']}" if out["plot"] else ""))
    return 0


# ----------------------------------------------------------------------- virtual-device
def register_virtual_device(sub, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text + ". Reach it with "
                       "'adb connect 127.0.0.1:PORT'. It runs the commands adb sends, in a sandbox; it only "
                       "listens on loopback.")
    p.add_argument("--port", type=int, default=0, help="TCP port (0: pick a free one)")
    p.add_argument("--sandbox", type=Path, default=Path("runs/virtual-device"),
                   help="directory standing in for the device's disk")
    p.add_argument("--profile", type=Path, default=None, help="device profile JSON (default: SD845-like)")
    p.add_argument("--connect", action="store_true", help="also run 'adb connect' to it")
    _adb_flags(p)
    g = p.add_argument_group("fault switches")
    g.add_argument("--drop-after", type=int, default=None, metavar="BYTES", help="drop the link after BYTES")
    g.add_argument("--slow", type=float, default=None, metavar="BYTES_PER_S", help="throttle the link")
    g.add_argument("--latency", type=float, default=0.0, metavar="S", help="delay before each message")
    g.add_argument("--storage-full", action="store_true", help="every push fails: no space left")
    g.add_argument("--quota", type=int, default=None, metavar="BYTES", help="/data holds at most BYTES")
    g.add_argument("--unauthorized", action="store_true", help="never accept the host's key")
    g.add_argument("--offline", action="store_true", help="never answer the handshake")
    g.add_argument("--crash", choices=("segv", "abort", "exit"), default=None,
                   help="the stand-in benchmark_model crashes")
    p.set_defaults(func=drive_virtual_device)
    return p


def drive_virtual_device(args) -> int:
    from .virtual_device import DeviceProfile, Faults, VirtualDevice

    profile = DeviceProfile.from_json(args.profile.read_text()) if args.profile else DeviceProfile()
    faults = Faults(drop_after_bytes=args.drop_after, slow_bytes_per_s=args.slow, latency_s=args.latency,
                    storage_full=args.storage_full, quota_bytes=args.quota, unauthorized=args.unauthorized,
                    offline=args.offline, crash=args.crash)
    vd = VirtualDevice(args.sandbox, profile, port=args.port, faults=faults).start()
    print(f"virtual device {profile.props.get('ro.product.model')} listening on {vd.serial}; "
          f"sandbox {vd.root}; benchmark_model at {vd.benchmark_model_path}", flush=True)
    if args.connect:
        adb = _adb(args)
        adb.start_server()
        print(f"adb connect {adb.connect(vd.serial)}", flush=True)
    else:
        print(f"connect with: adb connect {vd.serial}", flush=True)
    import signal

    def _stop(signum, frame):  # SIGTERM: stop cleanly, killing the commands still running
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    vd.serve_forever()
    return 0
