"""int8 calibration remedies on a converted model: drift vs torch, real-clip jitter, latency.

    nice -n 5 python benchmarks/bench_int8.py --artifacts artifacts            # the four named sources
    nice -n 5 python benchmarks/bench_int8.py --candidates synthetic mixed:500 mixed:200:per-tensor \\
        --int16x8 mixed

Every candidate ``SOURCE[:N[:QUANT_TYPE[:bc]]]`` (SOURCE a :data:`facelm.quantization.calibration.CALIB_SOURCES`
name or a folder, N calibration faces (default 200), QUANT_TYPE ``per-channel`` (default) or
``per-tensor`` onnx2tf ``-qt`` (weights; TFLite int8 activations are always per-tensor), ``bc``:
biases corrected for int8 weight rounding on the calibration faces first,
:mod:`facelm.quantization.bias_correction`) re-quantizes ``ARTIFACTS/model.onnx`` with onnx2tf exactly as
``facelm convert`` does (:func:`facelm.converters.tflite.start_onnx2tf`, then the same NHWC and
activation-fusion passes), into ``--work`` (never into the artifact folder). ``--int16x8 SOURCE ...``
also writes onnx2tf's int16-activation variant for those candidates.

Columns:
- drift synth: mean (p95) per-image landmark drift vs the fp32 reference on the standard synthetic
  evaluation set (200 faces, seed 2002), % of the template inter-pupil distance, as the report's
  ``drift vs torch``. The reference is the folder's ``fp32.tflite``, whose drift vs torch the
  conversion gates at parity (0.000% in the demo report).
- drift real: the same on augmented crops of the real-clip photos
  (:data:`~facelm.quantization.calibration.REAL_EVAL_PHOTOS`, never used for calibration).
- jitter: IMAGE-mode static jitter (RMS frame-to-frame motion, % IOD, One Euro off) on the real
  still clip (``astronaut``, fresh sensor noise every frame) through :class:`facelm.runtime.Landmarker`,
  measured by ``bench_realface.py``'s own functions; ratio = artifact / fp32 on the same frames.
- latency: one thread, median of ``--runs`` invokes, all artifacts interleaved in one loop.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_realface as rf  # noqa: E402  (its clip, truth and jitter functions)

from facelm.quantization import calibration as cal  # noqa: E402

DEFAULT_CANDIDATES = ("synthetic", "realistic", "real", "mixed")


@dataclass(frozen=True)
class Candidate:
    """One calibration to try: source, size, onnx2tf weight quantization (``-qt``) and whether the
    ONNX biases are corrected for int8 weight rounding first (:mod:`facelm.quantization.bias_correction`)."""

    source: str
    num: int = 200
    quant_type: str = "per-channel"
    bias_correct: bool = False

    @classmethod
    def parse(cls, text: str) -> "Candidate":
        parts = text.split(":")
        return cls(parts[0], int(parts[1]) if len(parts) > 1 else 200, parts[2] if len(parts) > 2 else "per-channel",
                   len(parts) > 3 and parts[3] == "bc")

    @property
    def label(self) -> str:
        return (f"{self.source}:{self.num}" + ("" if self.quant_type == "per-channel" else f":{self.quant_type}")
                + (":bc" if self.bias_correct else ""))


def convert(cand: Candidate, onnx: Path, manifest, work: Path, int16x8: bool, reuse: bool = False) -> dict[str, Path]:
    """Quantize ``onnx`` with ``cand``'s calibration -> {variant: post-processed .tflite}
    (``reuse``: take the files an earlier run left in ``work`` instead)."""
    from facelm.converters.tflite import ensure_nhwc_output, fuse_activations, start_onnx2tf

    folder = work / cand.label.replace(":", "_")
    variants = ["int8"] + (["int16x8"] if int16x8 else [])
    if reuse and all((folder / f"{v}.tflite").is_file() for v in variants):
        print(f"  {cand.label}: reusing {folder}", file=sys.stderr)
        return {v: folder / f"{v}.tflite" for v in variants}
    norm, m = manifest.contract.preprocess.normalization, manifest.contract.model
    calib, _ = cal.build_sets(cand.source, m.input_side, manifest.contract.layout.layout, cand.num, 1)
    shutil.rmtree(folder, ignore_errors=True)
    t0 = time.perf_counter()
    if cand.bias_correct:
        from facelm.quantization.bias_correction import bias_correct_onnx

        folder.mkdir(parents=True)
        bias_correct_onnx(onnx, folder / "model_bc.onnx", calib.inputs(norm))
        onnx = folder / "model_bc.onnx"
    produced = start_onnx2tf(onnx, calib.unit_nhwc(norm), norm.mean, norm.std, folder / "onnx2tf",
                             quant_type=cand.quant_type, variants=variants).wait()
    out = {}
    for name, src in produced.items():
        dst = folder / f"{name}.tflite"
        shutil.copyfile(src, dst)
        ensure_nhwc_output(dst, (1, m.num_keypoints) + tuple(m.heatmap_size))
        fuse_activations(dst)
        out[name] = dst
    print(f"  {cand.label}: {len(calib)} faces ({calib.source}), onnx2tf {time.perf_counter() - t0:.0f} s",
          file=sys.stderr)
    return out


def drift_stats(ref: np.ndarray, lms: np.ndarray, contract) -> tuple[float, float]:
    """(mean, p95) per-image drift, % of the template IOD."""
    from facelm.quantization.drift import drift_scale, landmark_drift

    per_image, _ = landmark_drift(ref, lms, drift_scale(contract))
    return 100 * float(per_image.mean()), 100 * float(np.percentile(per_image, 95))


def clip_jitter(model: Path, artifacts: Path, folder: Path, clip: dict, detector) -> float:
    """IMAGE-mode static jitter (% IOD, One Euro off) of one .tflite, run as the runtime runs it
    (from ``folder``: the artifacts' manifest beside a copy of the model)."""
    from facelm.runtime import Landmarker, LandmarkerOptions
    from facelm.runtime.tracking import ImageSmoother

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(artifacts / "manifest.json", folder / "manifest.json")
    shutil.copyfile(model, folder / "int8.tflite")  # the manifest's "int8" slot; specs are read from the file
    lmk = Landmarker.create_from_options(LandmarkerOptions(folder, artifact="int8", verify=False))
    truth = rf.real_truth(clip["real"], lmk, detector)
    out = rf.run(clip["frames"], clip["ts"], [ImageSmoother(lmk, detector, None)])[0]
    return rf.metrics(out["lm"], truth, clip["state"], True)["jitter"]


def latencies(models: dict[str, Path], x: np.ndarray, runs: int) -> dict[str, float]:
    """Median single-thread invoke time (ms) of each model, invokes interleaved round-robin."""
    from facelm.runtime.tflite import TfliteRunner

    runners = {k: TfliteRunner(p, num_threads=1) for k, p in models.items()}
    inputs = {k: r.prepare(x) for k, r in runners.items()}
    times: dict[str, list[float]] = {k: [] for k in runners}
    for k, r in runners.items():  # warm-up
        r.invoke(inputs[k])
    for _ in range(runs):
        for k, r in runners.items():
            t = time.perf_counter()
            r.invoke(inputs[k])
            times[k].append(1e3 * (time.perf_counter() - t))
    return {k: float(np.median(v)) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    import cv2

    from facelm.detect import create_detector
    from facelm.runtime.manifest import load_manifest
    from facelm.runtime.tflite import TfliteRunner

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default="artifacts", help="a converted folder (model.onnx, fp32.tflite, manifest)")
    ap.add_argument("--work", default="/tmp/facelm_bench_int8", help="where the re-quantized models go")
    ap.add_argument("--candidates", nargs="+", default=list(DEFAULT_CANDIDATES), help="SOURCE[:N[:QUANT_TYPE[:bc]]]")
    ap.add_argument("--int16x8", nargs="*", default=[], help="candidate labels that also get int16x8")
    ap.add_argument("--num-eval", type=int, default=cal.DEFAULT_EVAL_SIZE, help="synthetic evaluation faces")
    ap.add_argument("--num-real", type=int, default=60, help="real evaluation crops (augmented)")
    ap.add_argument("--frames", type=int, default=60, help="frames of each still clip")
    ap.add_argument("--photos", nargs="+", default=["astronaut"],
                    help=f"still-clip photos, of {tuple(cal.REAL_EVAL_PHOTOS)}")
    ap.add_argument("--reuse", action="store_true", help="evaluate the models an earlier run left in --work")
    ap.add_argument("--runs", type=int, default=50, help="timed invokes per artifact (median)")
    ap.add_argument("--shipped", action="store_true", help="also evaluate the folder's own int8.tflite")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    root, work = Path(args.artifacts), Path(args.work)
    manifest = load_manifest(root, verify=False)
    contract = manifest.contract
    norm, side = contract.preprocess.normalization, contract.model.input_side
    _, evals = cal.build_sets("synthetic", side, contract.layout.layout, 1, args.num_eval)
    real = cal.real_photo_faces(args.num_real, side, cal.EVAL_SEED, photos=cal.REAL_EVAL_PHOTOS)
    x_syn, x_real = evals.inputs(norm), real.inputs(norm)
    det = create_detector("auto")
    clips = {p: rf.make_clip("static", p, args.frames) for p in args.photos}

    def landmarks(path: Path, x: np.ndarray) -> np.ndarray:
        from facelm.postprocess import output_to_landmarks

        r = TfliteRunner(path, num_threads=1)
        return output_to_landmarks(r.run_raw(x), r.output_spec, contract.model, contract.decode).crop

    fp32 = root / "fp32.tflite"
    ref_syn, ref_real = landmarks(fp32, x_syn), landmarks(fp32, x_real)
    work.mkdir(parents=True, exist_ok=True)
    models = {"fp32": fp32}
    if args.shipped:
        models["shipped int8"] = root / "int8.tflite"
    for text in args.candidates:
        cand = Candidate.parse(text)
        for name, path in convert(cand, root / "model.onnx", manifest, work, cand.label in args.int16x8
                                  or text in args.int16x8, args.reuse).items():
            models[f"{cand.label} {name}"] = path
    rows = []
    for label, path in models.items():
        row = {"artifact": label, "file": str(path)}
        row["drift_synth"] = drift_stats(ref_syn, landmarks(path, x_syn), contract)
        row["drift_real"] = drift_stats(ref_real, landmarks(path, x_real), contract)
        row["jitter"] = {p: clip_jitter(path, root, work / "runtime" / label.replace(" ", "_").replace(":", "_"),
                                        c, det) for p, c in clips.items()}
        rows.append(row)
        print(f"  evaluated {label}: drift synth {row['drift_synth'][0]:.3f}%, real {row['drift_real'][0]:.3f}%, "
              f"jitter {row['jitter']} % IOD", file=sys.stderr)
    lat = latencies(models, x_syn[:1], args.runs)
    base = rows[0]["jitter"]  # fp32
    int8_ms = lat.get("shipped int8") or next((v for k, v in lat.items() if k.endswith(" int8")), None)
    print(f"synthetic eval {len(evals)} faces (seed {cal.EVAL_SEED}); real eval {len(real)} crops of "
          f"{', '.join(cal.REAL_EVAL_PHOTOS)}; still clips {', '.join(args.photos)} {args.frames} frames; "
          f"latency median of {args.runs}")
    print("| artifact | drift synth mean (p95) | drift real mean (p95) | IMAGE jitter % IOD (x fp32), per photo "
          "| jitter x fp32, mean | latency ms (x int8) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        ms = lat[r["artifact"]]
        rel = f" ({ms / int8_ms:.2f}x)" if int8_ms else ""
        ratios = {p: r["jitter"][p] / base[p] for p in base}
        jit = "; ".join(f"{r['jitter'][p]:.3f} ({ratios[p]:.2f}x)" for p in base)
        print(f"| {r['artifact']} | {r['drift_synth'][0]:.3f}% ({r['drift_synth'][1]:.3f}%) "
              f"| {r['drift_real'][0]:.3f}% ({r['drift_real'][1]:.3f}%) | {jit} "
              f"| {np.mean(list(ratios.values())):.2f}x "
              f"| {ms:.2f}{rel} |")
        r["latency_ms"] = ms
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0

if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
