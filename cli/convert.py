"""``facelm convert``: a thin shell over :func:`facelm.converters.pipeline.convert`.

A zoo checkpoint (``--config``/``--weights``) or a brought model (``--model`` model.onnx |
model.pt2 | package.module:function [--weights W]) with its declared contract
(``--contract FILE.yaml`` and/or ``--layout --input-size [--stride] [--mean --std --color]
[--output-layout] [--decode]``; flags override the file). See docs/conversion.md.

Exit codes: 0 = converted and every gate passed; 1 = converted, but a parity or drift gate
failed (the folder and its report are written); 2 = an error (nothing written).
"""
from __future__ import annotations

import argparse
import logging

from facelm.converters.arm64_check import HELP as ARM64_HELP
from facelm.converters.pipeline import TARGETS, ConvertConfig
from facelm.errors import ConfigError
from facelm.converters.tflite import QUANT_TYPES
from facelm.quantization.drift import GateConfig

log = logging.getLogger("facelm.convert")


def register(subparsers, name: str, help_text: str) -> argparse.ArgumentParser:
    """Declare the flags; defaults come from :class:`ConvertConfig` and :class:`GateConfig`."""
    d, g = ConvertConfig(), GateConfig()
    p = subparsers.add_parser(name, help=help_text, description=__doc__)
    p.add_argument("--config", default=d.config, help="model config name or YAML (default: the checkpoint's own)")
    p.add_argument("--weights", default=d.weights,
                   help="checkpoint path (default: the shipped demo checkpoint); with --model FACTORY: its state dict")
    b = p.add_argument_group("bring your own model (docs/conversion.md)")
    b.add_argument("--model", default=d.model, help="model.onnx, model.pt2 (torch.export) or package.module:function")
    b.add_argument("--contract", default=None, help="YAML with the declared contract (keys as the flags below)")
    b.add_argument("--name", default=None, help="model name in the manifest (default: the source's stem)")
    b.add_argument("--layout", default=None, help="landmark layout: jd106 | wflw98 | ibug68 (gives K)")
    b.add_argument("--input-size", type=int, default=None, help="input crop side, pixels")
    b.add_argument("--stride", type=float, default=None,
                   help="input pixels per heatmap cell (default: derived from the output shape)")
    b.add_argument("--mean", default=None, help="3 comma-separated means of pixel/255 (default ImageNet)")
    b.add_argument("--std", default=None, help="3 comma-separated stds of pixel/255 (default ImageNet)")
    b.add_argument("--color", default=None, choices=("RGB", "BGR"), help="channel order the network expects")
    b.add_argument("--output-layout", default=None, choices=("NCHW", "NHWC"), help="layout of the heatmap output")
    b.add_argument("--decode", default=None, choices=("dark", "quarter", "argmax"), help="heatmap decoding")
    p.add_argument("--random-init", action="store_true", help="convert freshly initialised weights of --config (benchmarks only)")
    p.add_argument("--out", default=d.out, help="output folder (written atomically)")
    p.add_argument("--calib", default=d.calib, help="calibration faces: synthetic, realistic, real (augmented real photos), mixed, or a folder of "
                   "annotated faces (JD format or image + .txt/.pts); docs/quantization.md")
    p.add_argument("--targets", default=",".join(d.targets), help=f"comma-separated subset of {','.join(TARGETS)}")
    p.add_argument("--force", action="store_true", help="replace an existing output folder")
    p.add_argument("--quant-type", default=d.quant_type, choices=QUANT_TYPES, help="int8 weight quantization")
    p.add_argument("--int16x8", action="store_true", help="also write int16x8.tflite (int16 activations)")
    p.add_argument("--variants", default=None,
                   help="comma-separated TFLite artifacts to write (default: fp32,fp16,dynamic_int8,int8,int8_io)")
    p.add_argument("--tvm-tuning-db", default=d.tvm_tuning_db,
                   help="MetaSchedule database folder: applied as is with --tvm-trials 0, continued otherwise")
    p.add_argument("--tvm-eval-faces", type=int, default=d.tvm_eval_faces,
                   help="evaluation faces run through the untuned TVM host module (parity still gated)")
    p.add_argument("--num-calib", type=int, default=d.num_calib, help="calibration faces")
    p.add_argument("--num-eval", type=int, default=d.num_eval, help="evaluation faces (disjoint from calibration)")
    p.add_argument("--tvm-trials", type=int, default=d.tvm_trials, help="MetaSchedule tuning budget for TVM host (0 = untuned)")
    p.add_argument("--parity-max", type=float, default=g.parity_max_abs, help="gate: max abs heatmap difference of fp32 artifacts vs torch")
    p.add_argument("--int8-drift-max", type=float, default=g.int8_drift_mean, help="gate: max mean landmark drift (NME) of int8 artifacts")
    p.add_argument("--keep-float", default=d.keep_float,
                   help="also write int8_mixed.tflite: 'auto' (fewest float layers to --drift-target) or NAME,NAME")
    p.add_argument("--drift-target", type=float, default=d.drift_target,
                   help="mean landmark drift (NME vs torch) --keep-float auto aims for")
    p.add_argument("--latency-runs", type=int, default=d.latency_runs, help="timed runs per artifact for the report")
    p.add_argument("--arm64-check", action="store_true", default=d.arm64_check, help=ARM64_HELP)
    p.set_defaults(func=drive)
    return p


def contract_from_args(args: argparse.Namespace) -> dict | None:
    """The declared contract of ``--model``: the ``--contract`` YAML, overridden by the flags."""
    from facelm.converters.sources import read_contract_yaml

    flags = {"name": args.name, "layout": args.layout, "input_size": args.input_size, "stride": args.stride,
             "mean": args.mean, "std": args.std, "color": args.color, "output_layout": args.output_layout,
             "decode": args.decode}
    given = {k: v for k, v in flags.items() if v is not None}
    if args.model is None:
        if given or args.contract:
            raise ConfigError(f"--{next(iter(given), 'contract').replace('_', '-')} declares a brought model's "
                              "contract: it goes with --model")
        return None
    data = read_contract_yaml(args.contract) if args.contract else {}
    data.update(given)
    return data


def config_from_args(args: argparse.Namespace) -> ConvertConfig:
    """Namespace -> :class:`ConvertConfig`."""
    variants = None if args.variants is None else tuple(v.strip() for v in args.variants.split(",") if v.strip())
    return ConvertConfig(
        model=args.model, contract=contract_from_args(args), variants=variants,
        tvm_eval_faces=args.tvm_eval_faces, tvm_tuning_db=args.tvm_tuning_db,
        config=args.config, weights=args.weights, random_init=args.random_init, out=args.out,
        calib=args.calib, targets=tuple(t.strip() for t in args.targets.split(",") if t.strip()),
        force=args.force, quant_type=args.quant_type, int16x8=args.int16x8, num_calib=args.num_calib,
        num_eval=args.num_eval, tvm_trials=args.tvm_trials,
        gates=GateConfig(parity_max_abs=args.parity_max, int8_drift_mean=args.int8_drift_max),
        keep_float=args.keep_float, drift_target=args.drift_target,
        latency_runs=args.latency_runs, arm64_check=args.arm64_check)


def drive(args: argparse.Namespace) -> int:
    """Run the conversion; print where the results are. Returns the exit code."""
    import torch  # noqa: F401  every target starts from the torch model: without it, fail before any stage runs

    from facelm.converters.pipeline import convert

    result = convert(config_from_args(args))
    print(f"wrote {result.out}/ ({len(result.manifest.artifacts)} artifacts): "
          f"manifest.json, report.md; total {sum(result.timings.values()):.1f} s")
    for w in result.warnings:
        print(f"warning: {w.splitlines()[0]}")
    if result.gate_failures:
        for f in result.gate_failures:
            print(f"facelm: gate failed: {f}")
        return 1
    return 0
