"""``facelm layouts``: print the landmark layouts (the single source of their facts)."""
from __future__ import annotations

import argparse
import json

from facelm.layouts import LAYOUTS, get_layout

FORMATS = ("text", "json")


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text)
    p.add_argument("name", nargs="?", help=f"one layout ({', '.join(LAYOUTS)}); default: all")
    p.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="output format")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    layouts = [get_layout(args.name)] if args.name else list(LAYOUTS.values())
    rows = [
        {
            "name": l.name,
            "num_points": l.num_points,
            "regions": {k: [v[0], v[-1]] for k, v in l.regions.items()},
            "flip_pairs": [list(p) for p in l.flip_pairs],
            "five_point_groups": [list(g) for g in l.five_point_groups],
            "norm": l.norm,
            "ocular_indices": list(l.ocular_indices) if l.ocular_indices else None,
        }
        for l in layouts
    ]
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    for l, r in zip(layouts, rows):
        print(f"{l.name}: {l.num_points} points. {l.description}")
        for k, (a, b) in r["regions"].items():
            print(f"  {k:<12} {a}-{b}")
        print(f"  five points  {r['five_point_groups']}")
        print(f"  flip pairs   {len(l.flip_pairs)}")
    return 0
