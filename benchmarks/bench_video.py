"""Jitter, lag, accuracy and per-stage latency of IMAGE vs VIDEO mode on synthetic clips.

    python benchmarks/bench_video.py --artifacts ARTIFACTS            # short run (few frames)
    python benchmarks/bench_video.py --artifacts ARTIFACTS --full     # the README's table
    python benchmarks/bench_video.py --artifacts ARTIFACTS --tune     # One Euro grid on the runs

Clips: ``facelm.data.synth_video.render_clip`` (static / slow / fast; exact per-frame truth).
Runs: motion x decode (argmax / quarter / dark) x artifact (fp32 / int8) x mode (IMAGE: BlazeFace
on every frame + a refinement pass; VIDEO: :class:`facelm.runtime.tracking.VideoTracker`).
Smoothing (One Euro with :class:`facelm.smoothing.OneEuroConfig` defaults) is applied to each
run's raw landmarks afterwards: it never feeds back into the crops, so this equals running it live.

Metrics:
- NME: :func:`facelm.metrics.nme` (JD-106 normaliser), mean over frames, in %;
- static jitter: RMS frame-to-frame landmark displacement on the static clip, in pixels of the
  192 crop (image px x the truth's alignment scale) and in % of the inter-ocular distance (104-105);
- lag: the time shift (frames, 0.1 steps) that best aligns the predicted trajectory with the truth
  on the slow clip (positive = behind); it needs a clip much longer than the lag it can find
  (+-4 frames): read it from ``--full`` (90 frames), not from the 20-frame default run;
- latency: mean ms per stage and per frame, one thread (this machine; absolute numbers vary).
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from facelm.alignment import estimate_alignment, warp_face
from facelm.data.synth_video import render_clip
from facelm.detect import BlazeFaceDetector, HaarDetector, installed_model_path
from facelm.layouts import JD106
from facelm.metrics import nme
from facelm.postprocess import output_to_landmarks
from facelm.preprocess import normalize
from facelm.runtime.manifest import load_manifest
from facelm.runtime.tflite import TfliteRunner
from facelm.runtime.tracking import CropLandmarks, ImageSmoother, TrackingConfig, VideoTracker, crop_scale
from facelm.smoothing import OneEuroConfig, OneEuroFilter

DECODES = ("argmax", "quarter", "dark")
MOTIONS = ("static", "slow", "fast")


class TfliteCropModel:
    """An artifact as a crop model, with the decode method overridden; stages warp / model / decode."""

    def __init__(self, folder: Path, artifact: str, method: str) -> None:
        man = load_manifest(folder, verify=False)
        self.runner = TfliteRunner(man.artifact_path(artifact, verify=True), num_threads=1)
        self.spec = man.model
        self.input_size = int(man.model.input_size[0])
        self.norm = man.preprocess.normalization
        self.decode = dataclasses.replace(man.decode, method=method)
        self.layout = JD106

    def __call__(self, image: np.ndarray, transform: np.ndarray) -> CropLandmarks:
        t0 = time.perf_counter()
        x = normalize(warp_face(image, transform, self.input_size), self.norm).transpose(2, 0, 1)[None]
        t1 = time.perf_counter()
        raw = self.runner.run_raw(np.ascontiguousarray(x))
        t2 = time.perf_counter()
        lm = output_to_landmarks(raw, self.runner.output_spec, self.spec, self.decode)
        t3 = time.perf_counter()
        return CropLandmarks(crop=lm.crop[0], scores=lm.scores[0],
                             timings={"warp": (t1 - t0) * 1e3, "model": (t2 - t1) * 1e3, "decode": (t3 - t2) * 1e3})


def run_clip(clip, model, detector, mode: str, tracking: TrackingConfig) -> dict:
    runner = VideoTracker(model, detector, tracking) if mode == "video" else ImageSmoother(model, detector)
    lms, scales, timings, lost = [], [], [], 0
    for frame, ts in zip(clip.frames, clip.timestamps_ms):
        r = runner.process(frame, ts)
        if r.landmarks is None:
            lost += 1
            lms.append(np.full((106, 2), np.nan))
            scales.append(np.nan)
        else:
            lms.append(r.raw_landmarks)
            scales.append(crop_scale(r.transform))
        timings.append(r.timings)
    return {"landmarks": np.array(lms), "scales": np.array(scales), "timings": timings, "lost": lost,
            "detector_runs": getattr(runner, "detector_runs", len(clip.frames))}


def smooth(landmarks: np.ndarray, scales: np.ndarray, ts: np.ndarray, cfg: OneEuroConfig) -> np.ndarray:
    f = OneEuroFilter(cfg)
    return np.array([f(p, t, value_scale=1.0 / s) if np.isfinite(s) else p for p, s, t in zip(landmarks, scales, ts)])


def _iod(gt: np.ndarray) -> np.ndarray:
    return np.linalg.norm(gt[:, 104] - gt[:, 105], axis=-1)


def jitter(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """(RMS frame-to-frame displacement in 192-crop px, in % IOD) on a static clip."""
    d = np.linalg.norm(np.diff(pred, axis=0), axis=-1)  # (N-1, K) image px
    rms = float(np.sqrt(np.nanmean(d ** 2)))
    s = crop_scale(estimate_alignment(JD106.five_points(gt[0]), 192))
    return rms * s, 100.0 * rms / float(_iod(gt[:1])[0])


def lag(pred: np.ndarray, gt: np.ndarray, max_lag: float = 4.0) -> float:
    """Shift d (frames, 0.1 steps) minimising the RMS of ``pred_t - gt_(t-d) - b`` over the overlap.

    ``gt`` is linearly interpolated between frames; ``b`` is each landmark's constant offset
    (removed, so a fixed bias along the direction of motion is not mistaken for lag).
    """
    n = len(gt)
    best, best_d = np.inf, 0.0
    for d in np.arange(-max_lag, max_lag + 1e-9, 0.1):
        t = np.arange(n) - d
        ok = (t >= 0) & (t <= n - 1) & np.isfinite(pred).all(axis=(1, 2))
        t0 = np.clip(np.floor(t[ok]).astype(int), 0, n - 2)
        w = (t[ok] - t0)[:, None, None]
        r = pred[ok] - (gt[t0] * (1 - w) + gt[t0 + 1] * w)
        e = float(np.mean((r - r.mean(axis=0)) ** 2))
        if e < best - 1e-12:
            best, best_d = e, float(d)
    return round(best_d, 1)


def nme_pct(pred: np.ndarray, gt: np.ndarray) -> float:
    ok = np.isfinite(pred).all(axis=(1, 2))
    return 100.0 * float(np.mean(nme(pred[ok], gt[ok], JD106))) if ok.any() else float("nan")


def stage_means(timings: list[dict]) -> dict:
    keys = sorted({k for t in timings for k in t})
    return {k: round(float(np.mean([t.get(k, 0.0) for t in timings])), 3) for k in keys}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default="artifacts", help="converted artifact folder (fp32 + int8 .tflite)")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default 20; 90 with --full)")
    ap.add_argument("--full", action="store_true", help="every configuration, 90 frames per clip")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detector", choices=("blazeface", "haar"), default="blazeface")
    ap.add_argument("--tune", action="store_true", help="print a One Euro (min_cutoff, beta) grid")
    ap.add_argument("--json", default=None, help="write the results here")
    ap.add_argument("--plot", default=None, help="write the jitter/lag figure here (PNG)")
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    n = args.frames or (90 if args.full else 20)
    decodes = DECODES if args.full else ("argmax", "dark")
    artifacts = ("fp32", "int8") if args.full else ("int8",)
    det = BlazeFaceDetector() if args.detector == "blazeface" and installed_model_path() else HaarDetector()
    clips = {m: render_clip(n, m, args.seed) for m in MOTIONS}
    smoothing = OneEuroConfig()
    rows, raw_runs = [], {}
    for art, dec, motion, mode in itertools.product(artifacts, decodes, MOTIONS, ("image", "video")):
        model = TfliteCropModel(Path(args.artifacts), art, dec)
        clip = clips[motion]
        t0 = time.perf_counter()
        run = run_clip(clip, model, det, mode, TrackingConfig())
        raw_runs[(art, dec, motion, mode)] = run
        for smooth_on in (False, True):
            pred = smooth(run["landmarks"], run["scales"], clip.timestamps_ms, smoothing) if smooth_on else run["landmarks"]
            row = {"artifact": art, "decode": dec, "motion": motion, "mode": mode, "smoothing": smooth_on,
                   "nme_pct": round(nme_pct(pred, clip.landmarks), 3), "lost": run["lost"],
                   "detector_runs": run["detector_runs"], "stages_ms": stage_means(run["timings"])}
            if motion == "static":
                row["jitter_crop_px"], row["jitter_iod_pct"] = (round(v, 3) for v in jitter(pred, clip.landmarks))
            if motion == "slow":
                row["lag_frames"] = lag(pred, clip.landmarks)
            rows.append(row)
        print(f"  {art:5s} {dec:8s} {motion:7s} {mode:6s} {time.perf_counter() - t0:6.1f} s", file=sys.stderr)
    print_table(rows)
    if args.tune:
        tune(raw_runs, clips, artifacts, decodes)
    if args.json:
        Path(args.json).write_text(json.dumps({"frames": n, "machine": platform.processor() or platform.machine(),
                                               "smoothing": dataclasses.asdict(smoothing), "rows": rows}, indent=1))
    if args.plot:
        plot(rows, args.plot)
    return 0


def _get(rows, **kw):
    return next(r for r in rows if all(r.get(k) == v for k, v in kw.items()))


def print_table(rows: list[dict]) -> None:
    """One line per artifact x decode x mode x smoothing: the three motions' numbers side by side."""
    print("| artifact | decode | mode | One Euro | static jitter (192-crop px) | static jitter (% IOD) "
          "| NME static % | NME slow % | NME fast % | lag slow (frames) | detector runs (slow) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    keys = sorted({(r["artifact"], r["decode"], r["mode"], r["smoothing"]) for r in rows},
                  key=lambda k: (k[0], ["argmax", "quarter", "dark"].index(k[1]), k[2], k[3]))
    for art, dec, mode, sm in keys:
        q = dict(artifact=art, decode=dec, mode=mode, smoothing=sm)
        s, sl, f = _get(rows, motion="static", **q), _get(rows, motion="slow", **q), _get(rows, motion="fast", **q)
        print(f"| {art} | {dec} | {mode} | {'on' if sm else 'off'} | {s['jitter_crop_px']:.3f} | {s['jitter_iod_pct']:.2f} "
              f"| {s['nme_pct']:.2f} | {sl['nme_pct']:.2f} | {f['nme_pct']:.2f} | {sl['lag_frames']:+.1f} | {sl['detector_runs']} |")
    print()
    print("| artifact | decode | mode | detector ms | tracking ms | warp ms | model ms | decode ms | frame ms | frame / model |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for art, dec, mode, sm in keys:
        if sm:
            continue
        st = _get(rows, motion="slow", artifact=art, decode=dec, mode=mode, smoothing=False)["stages_ms"]
        model_ms = st.get("model", float("nan"))
        # The model's own latency is one pass; IMAGE mode runs two passes per frame.
        passes = 2.0 if mode == "image" else 1.0
        print(f"| {art} | {dec} | {mode} | {st.get('detector', 0):.2f} | {st.get('tracking', 0):.2f} | {st.get('warp', 0):.2f} "
              f"| {model_ms:.2f} | {st.get('decode', 0):.2f} | {st.get('total', 0):.2f} | {st.get('total', 0) / (model_ms / passes):.2f} |")


def tune(raw_runs: dict, clips: dict, artifacts, decodes) -> None:
    """Static-jitter ratio, slow lag and slow NME for a grid of One Euro settings (DARK, VIDEO and IMAGE)."""
    print("\n| mode | artifact | min_cutoff | beta | static jitter ratio | lag slow | NME slow % (raw) |")
    print("|---|---|---|---|---|---|---|")
    for art, mode in itertools.product(artifacts, ("image", "video")):
        dec = "dark" if "dark" in decodes else decodes[-1]
        st, sl = raw_runs[(art, dec, "static", mode)], raw_runs[(art, dec, "slow", mode)]
        j0 = jitter(st["landmarks"], clips["static"].landmarks)[1]
        raw_nme = nme_pct(sl["landmarks"], clips["slow"].landmarks)
        for mc, beta in itertools.product((0.3, 1.0, 2.0), (0.0, 0.03, 0.1, 0.3, 0.5, 1.0)):
            cfg = OneEuroConfig(min_cutoff=mc, beta=beta)
            j = jitter(smooth(st["landmarks"], st["scales"], clips["static"].timestamps_ms, cfg), clips["static"].landmarks)[1]
            p = smooth(sl["landmarks"], sl["scales"], clips["slow"].timestamps_ms, cfg)
            print(f"| {mode} | {art} | {mc} | {beta} | {j / j0:.2f} | {lag(p, clips['slow'].landmarks):+.1f} "
                  f"| {nme_pct(p, clips['slow'].landmarks):.2f} ({raw_nme:.2f}) |")


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["artifact"], r["decode"], r["mode"], r["smoothing"]) for r in rows},
                  key=lambda k: (k[2], k[3], k[0], ["argmax", "quarter", "dark"].index(k[1])))
    labels = [f"{m} {a} {d}{' +1€' if s else ''}" for a, d, m, s in keys]
    jit = [_get(rows, motion="static", artifact=a, decode=d, mode=m, smoothing=s)["jitter_iod_pct"] for a, d, m, s in keys]
    lg = [_get(rows, motion="slow", artifact=a, decode=d, mode=m, smoothing=s)["lag_frames"] for a, d, m, s in keys]
    colors = ["#4c72b0" if k[2] == "image" else "#dd8452" for k in keys]
    fig, ax = plt.subplots(2, 1, figsize=(max(8, 0.42 * len(keys)), 7), sharex=True)
    ax[0].bar(range(len(keys)), jit, color=colors)
    ax[0].set_ylabel("static jitter (% IOD)")
    ax[0].set_title("Synthetic clips, demo model (blue: IMAGE mode, orange: VIDEO mode)")
    ax[1].bar(range(len(keys)), lg, color=colors)
    ax[1].axhline(1.0, color="k", lw=0.8, ls="--")
    ax[1].set_ylabel("lag on the slow clip (frames)")
    ax[1].set_xticks(range(len(keys)), labels, rotation=70, ha="right", fontsize=8)
    fig.tight_layout()
    from facelm.fileio import atomic_path

    with atomic_path(path, suffix=".tmp.png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
