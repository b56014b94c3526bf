"""``facelm model``: the paper-vs-ours table and per-config details.

* ``facelm model table [--format text|json]``
* ``facelm model info NAME [--format text|json]`` (NAME: zoo name or YAML path)
* ``facelm model list``
"""
from __future__ import annotations

import argparse
import json

from ._args import print_help_of

FORMATS = ("text", "json")


def register(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    """Declare ``facelm model`` and its subcommands; returns the parser. The model zoo
    (torch) is imported by the drivers, so ``facelm model --help`` needs no extra."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")
    p = sub.add_parser("table", help="paper Tables 2/3/4/6 GFLOPs and size beside ours, with ratios")
    p.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="output format")
    p.set_defaults(func=drive_table)
    p = sub.add_parser("info", help="layers, output size, GFLOPs, parameters and size of a config")
    p.add_argument("name", help="zoo config name (see 'facelm model list') or a YAML path")
    p.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="output format")
    p.set_defaults(func=drive_info)
    p = sub.add_parser("list", help="names of the shipped configs")
    p.set_defaults(func=drive_list)
    parser.set_defaults(func=print_help_of(parser))
    return parser


def drive_table(args: argparse.Namespace) -> int:
    from facelm.model.paper import comparison_table, format_table

    rows = comparison_table()
    print(json.dumps(rows, indent=1) if args.format == "json" else format_table(rows))
    return 0


def model_info(name: str) -> dict:
    """Everything ``facelm model info`` shows, as a JSON-ready dict."""
    from facelm.model.config import load_config
    from facelm.model.flops import measure

    cfg = load_config(name)
    c = measure(cfg)
    return {
        "config": cfg.to_dict(),
        "label": cfg.label,
        "input_shape": [1, 3, cfg.input_size, cfg.input_size],
        "output_shape": [1, cfg.num_keypoints, cfg.heatmap_size, cfg.heatmap_size],
        "stride": cfg.stride,
        "gflops": c.gflops,
        "params": c.params,
        "size_mb_fp32": c.size_mb,
        "size_mb_int8": c.size_mb_at(1),
        "layers": [{"name": l.name, "kind": l.kind, "out_shape": list(l.out_shape), "macs": l.macs,
                    "params": l.params} for l in c.layers],
    }


def format_info(info: dict) -> str:
    cfg = info["config"]
    lines = [f"{cfg['name']}: {info['label']}  ({cfg['description']})" if cfg["description"] else
             f"{cfg['name']}: {info['label']}",
             f"{'layer':<40} {'type':<16} {'output (C,H,W)':<16} {'MMACs':>9} {'params':>9}"]
    for l in info["layers"]:
        shape = "x".join(map(str, l["out_shape"]))
        lines.append(f"{l['name']:<40} {l['kind']:<16} {shape:<16} {l['macs'] / 1e6:>9.2f} {l['params']:>9}")
    lines += [
        f"input  {'x'.join(map(str, info['input_shape']))} (N,C,H,W), normalised RGB",
        f"output {'x'.join(map(str, info['output_shape']))} heatmaps, stride {info['stride']}",
        f"GFLOPs {info['gflops']:.4f} (10^9 multiply-adds, conv/deconv)",
        f"params {info['params']:,} (learnable)",
        f"size   {info['size_mb_fp32']:.2f} MB fp32, {info['size_mb_int8']:.2f} MB int8 (MB = 2^20 bytes)",
    ]
    return "\n".join(lines)


def drive_info(args: argparse.Namespace) -> int:
    info = model_info(args.name)
    print(json.dumps(info, indent=1) if args.format == "json" else format_info(info))
    return 0


def drive_list(args: argparse.Namespace) -> int:
    from facelm.model.config import ALIASES, list_configs, load_config

    for name in list_configs():
        cfg = load_config(name)
        alias = f"  (alias of {ALIASES[name]})" if name in ALIASES else ""
        print(f"{name:<20} {cfg.label:<22} {cfg.input_size}px -> {cfg.heatmap_size}x{cfg.heatmap_size}{alias}")
    return 0
