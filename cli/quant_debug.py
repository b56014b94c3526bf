"""``facelm quant-debug ARTIFACTS``: which layer breaks int8, what it costs in landmarks, what the GPU takes.

A shell over :func:`facelm.quant_debug` (``facelm.quantization.flow``); its keyword defaults are
the flags' defaults. Without ``--out`` the chosen format goes to standard output (``--format json
| jq`` works; logs go to standard error); with ``--out DIR`` the folder gets ``report.md``,
``layers.json`` and ``sqnr.png`` (and ``int8_mixed.tflite`` with ``--keep-float``).
"""
from __future__ import annotations

import argparse
import json
import sys

from facelm.artifacts import DEFAULT_RUNTIME_ARTIFACT, artifact_kind

from ._args import defaults_of

FORMATS = ("table", "json", "md")


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    from facelm.quantization.flow import MIXED_ARTIFACT, quant_debug

    d = defaults_of(quant_debug)
    mixed_file = artifact_kind(MIXED_ARTIFACT).file
    p = sub.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("artifacts", metavar="ARTIFACTS", help="folder written by 'facelm convert' (manifest.json)")
    p.add_argument("--artifact", default=d["artifact"],
                   help=f"int8 TFLite artifact to debug (default: {DEFAULT_RUNTIME_ARTIFACT}, else the folder's "
                        "first int8 one)")
    p.add_argument("--format", choices=FORMATS, default=FORMATS[0], help="what goes to standard output")
    p.add_argument("--out", default=d["out"], help="write report.md, layers.json and sqnr.png into this folder")
    p.add_argument("--top-k", type=int, default=d["top_k"],
                   help="lowest-SQNR layers whose landmark drift is measured with only them float")
    p.add_argument("--calib", default=d["calib"], help="calibration source if the manifest does not record it")
    p.add_argument("--num-calib", type=int, default=d["num_calib"], help="calibration faces if not recorded")
    p.add_argument("--num-eval", type=int, default=d["num_eval"], help="evaluation faces if not recorded")
    p.add_argument("--keep-float", default=d["keep_float"],
                   help=f"also build {mixed_file}: 'auto' (greedy to --drift-target) or NAME,NAME")
    p.add_argument("--drift-target", type=float, default=d["drift_target"],
                   help="mean landmark drift (NME fraction vs fp32 TFLite) for --keep-float auto")
    p.add_argument("--no-chain", dest="chain", action="store_false", default=d["chain"],
                   help="skip the ONNX vs fp32 TFLite per-op comparison")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from facelm.quantization import debug as qd
    from facelm.quantization.flow import quant_debug

    res = quant_debug(args.artifacts, args.artifact, top_k=args.top_k, calib=args.calib, num_calib=args.num_calib,
                      num_eval=args.num_eval, keep_float=args.keep_float, drift_target=args.drift_target,
                      chain=args.chain, out=args.out)
    if args.out:
        print("wrote " + ", ".join(str(p) for p in res.paths.values()), file=sys.stderr)
        return 0
    if args.format == "json":
        sys.stdout.write(json.dumps(res.report.to_json(), indent=1) + "\n")
    elif args.format == "md":
        sys.stdout.write(qd.render_markdown(res.report))
    else:
        sys.stdout.write(qd.render_table(res.report))
    return 0
