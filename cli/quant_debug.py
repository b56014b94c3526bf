"""``facelm quant-debug ARTIFACTS``: which layer breaks int8, what it costs in landmarks, what the GPU takes.

A shell over :func:`facelm.quantization.debug.debug_artifacts`. Without ``--out`` the chosen
format goes to standard output (``--format json | jq`` works; logs go to standard error);
with ``--out DIR`` the folder gets ``report.md``, ``layers.json`` and ``sqnr.png`` (and
``int8_mixed.tflite`` with ``--keep-float``).
"""
from __future__ import annotations

import argparse
import json
import sys

from facelm.quantization.debug import DEFAULT_TOP_K
from facelm.quantization.mixed import DEFAULT_DRIFT_TARGET

FORMATS = ("table", "json", "md")


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("artifacts", metavar="ARTIFACTS", help="folder written by 'facelm convert' (manifest.json)")
    p.add_argument("--artifact", default=None, help="int8 TFLite artifact to debug (default: int8)")
    p.add_argument("--format", choices=FORMATS, default="table", help="what goes to standard output")
    p.add_argument("--out", default=None, help="write report.md, layers.json and sqnr.png into this folder")
    p.add_argument("--top-k", type=int, default=DEFAULT_TOP_K,
                   help="lowest-SQNR layers whose landmark drift is measured with only them float")
    p.add_argument("--calib", default=None, help="calibration source if the manifest does not record it")
    p.add_argument("--num-calib", type=int, default=None, help="calibration faces if not recorded")
    p.add_argument("--num-eval", type=int, default=None, help="evaluation faces if not recorded")
    p.add_argument("--keep-float", default=None,
                   help="also build int8_mixed.tflite: 'auto' (greedy to --drift-target) or NAME,NAME")
    p.add_argument("--drift-target", type=float, default=DEFAULT_DRIFT_TARGET,
                   help="mean landmark drift (NME fraction vs fp32 TFLite) for --keep-float auto")
    p.add_argument("--no-chain", action="store_true", help="skip the ONNX vs fp32 TFLite per-op comparison")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from facelm.errors import ConfigError
    from facelm.quantization import debug as qd

    if args.top_k < 0:
        raise ConfigError("--top-k must be >= 0")
    rep = qd.debug_artifacts(args.artifacts, args.artifact, k=args.top_k, calib=args.calib,
                             num_calib=args.num_calib, num_eval=args.num_eval, chain=not args.no_chain)
    mixed = None
    if args.keep_float:
        mixed = _mixed(args, rep)
        rep.mixed = mixed.record()
    if args.out:
        paths = qd.write_outputs(rep, args.out)
        if mixed is not None:
            from pathlib import Path

            from facelm.fileio import atomic_write_bytes

            paths["int8_mixed"] = atomic_write_bytes(Path(args.out) / "int8_mixed.tflite", mixed.model)
        print("wrote " + ", ".join(str(p) for p in paths.values()), file=sys.stderr)
        return 0
    if args.format == "json":
        sys.stdout.write(json.dumps(rep.to_json(), indent=1) + "\n")
    elif args.format == "md":
        sys.stdout.write(qd.render_markdown(rep))
    else:
        sys.stdout.write(qd.render_table(rep))
    return 0


def _mixed(args: argparse.Namespace, rep):
    from pathlib import Path

    from facelm.quantization import debug as qd
    from facelm.quantization.mixed import mixed_precision, parse_keep_float
    from facelm.runtime.manifest import load_manifest

    m = load_manifest(args.artifacts, verify=False)
    data = qd.rebuild_data(Path(args.artifacts), m, args.calib, args.num_calib, args.num_eval)
    fp32 = m.artifact_path("fp32")
    ref = qd.model_landmarks(fp32, data.evals, m.contract)
    return mixed_precision(fp32.read_bytes(), data.calib, data.evals, ref, m.contract,
                           parse_keep_float(args.keep_float), args.drift_target, rep.per_channel,
                           reference="fp32_tflite")
