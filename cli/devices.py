"""``facelm devices``: list attached adb devices (and, with ``--facts``, their SoC, cores, thermal)."""
from __future__ import annotations

import argparse
import json

from facelm.android_bench.config import BenchOptions

from ._args import adb_from_args, add_adb_flags


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    add_adb_flags(p)
    p.add_argument("--connect", action="append", default=[], metavar="HOST:PORT",
                   help="adb connect to a network / virtual device first (repeatable)")
    p.add_argument("--facts", action="store_true", help="also read each usable device's facts")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from facelm.android_bench.device import read_facts

    adb = adb_from_args(args, BenchOptions().timeout_s)
    adb.start_server()
    for addr in args.connect:
        adb.connect(addr)
    rows = []
    for e in adb.devices():
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
