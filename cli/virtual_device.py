"""``facelm virtual-device``: serve a virtual adb device on loopback (dry runs of ``facelm bench``).

Defaults come from :class:`~facelm.android_bench.virtual_device.Faults` and
:class:`~facelm.android_bench.virtual_device.VirtualDevice`.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from facelm.android_bench.config import BenchOptions
from facelm.android_bench.virtual_device import DeviceProfile, Faults, VirtualDevice
from facelm.android_bench.virtual_device.profile import ARCHES

from ._args import adb_from_args, add_adb_flags, defaults_of

CRASHES = ("segv", "abort", "exit")


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    f, v = Faults(), defaults_of(VirtualDevice)
    p = sub.add_parser(name, help=help_text, description=help_text + ". Reach it with "
                       "'adb connect 127.0.0.1:PORT'. It runs the commands adb sends, in a sandbox; it only "
                       "listens on loopback.")
    p.add_argument("--port", type=int, default=v["port"], help="TCP port (0: pick a free one)")
    p.add_argument("--sandbox", type=Path, default=Path("runs/virtual-device"),
                   help="directory standing in for the device's disk")
    p.add_argument("--profile", type=Path, default=None, help="device profile JSON (default: SD845-like)")
    p.add_argument("--arch", choices=ARCHES, default=v["arch"],
                   help="host: stand-ins run as host processes; arm64: the device reports arm64-v8a and runs "
                        "benchmark_model and tvm_rpc as aarch64 processes under qemu-user (numerics of an arm64 "
                        "CPU; needs `facelm arm64 setup`; emulation is 100-1000x slower, its timings are marked "
                        "emulated and are not phone figures)")
    p.add_argument("--connect", action="store_true", help="also run 'adb connect' to it")
    p.add_argument("--unsafe-host-shell", action="store_true", default=v["unsafe_host_shell"],
                   help="where no user/mount namespace can be made (bubblewrap), run the device's shell commands "
                        "unconfined on this machine, as you (without it, such a device refuses to start)")
    p.add_argument("--authorized-key", action="append", type=Path, default=[], metavar="ADBKEY_PUB",
                   help="only hosts holding this adb key (~/.android/adbkey.pub) may connect (repeatable; "
                        "default: any local process)")
    add_adb_flags(p)
    g = p.add_argument_group("fault switches")
    g.add_argument("--drop-after", type=int, default=f.drop_after_bytes, metavar="BYTES", help="drop the link after BYTES")
    g.add_argument("--slow", type=float, default=f.slow_bytes_per_s, metavar="BYTES_PER_S", help="throttle the link")
    g.add_argument("--latency", type=float, default=f.latency_s, metavar="S", help="delay before each message")
    g.add_argument("--storage-full", action="store_true", help="every push fails: no space left")
    g.add_argument("--quota", type=int, default=f.quota_bytes, metavar="BYTES", help="/data holds at most BYTES")
    g.add_argument("--unauthorized", action="store_true", help="never accept the host's key")
    g.add_argument("--offline", action="store_true", help="never answer the handshake")
    g.add_argument("--crash", choices=CRASHES, default=f.crash, help="the stand-in benchmark_model crashes")
    p.set_defaults(func=drive)
    return p


def faults_from_args(args: argparse.Namespace) -> Faults:
    """Namespace -> :class:`Faults`."""
    return Faults(drop_after_bytes=args.drop_after, slow_bytes_per_s=args.slow, latency_s=args.latency,
                  storage_full=args.storage_full, quota_bytes=args.quota, unauthorized=args.unauthorized,
                  offline=args.offline, crash=args.crash)


def drive(args: argparse.Namespace) -> int:
    import signal

    profile = DeviceProfile.from_json(args.profile.read_text()) if args.profile else DeviceProfile()
    vd = VirtualDevice(args.sandbox, profile, port=args.port, faults=faults_from_args(args), arch=args.arch,
                       unsafe_host_shell=args.unsafe_host_shell,
                       authorized_keys=tuple(args.authorized_key)).start()
    abi = vd.profile.props.get("ro.product.cpu.abi")
    emulated = " (aarch64 under qemu-user: emulated timings)" if args.arch == "arm64" else ""
    print(f"virtual device {profile.props.get('ro.product.model')} [{abi}{emulated}] listening on {vd.serial}; "
          f"sandbox {vd.root}; benchmark_model at {vd.benchmark_model_path}", flush=True)
    if args.connect:
        adb = adb_from_args(args, BenchOptions().timeout_s)
        adb.start_server()
        print(f"adb connect {adb.connect(vd.serial)}", flush=True)
    else:
        print(f"connect with: adb connect {vd.serial}", flush=True)

    def _stop(signum, frame):  # SIGTERM: stop cleanly, killing the commands still running
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    vd.serve_forever()
    return 0
