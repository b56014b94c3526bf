"""IMAGE vs VIDEO mode on real-face clips (and the synthetic ones): jitter, error, face scale,
re-acquisition, per-stage cost.

    python benchmarks/bench_realface.py --artifacts artifacts                 # every clip, fp32 + int8
    python benchmarks/bench_realface.py --artifacts artifacts --clips static leave --artifact int8

Real clips: :func:`facelm.data.real_clips.render_clip` (a real photo under known similarity
motion, fresh sensor noise every frame). Their ground truth is consistency: the artifact's own
IMAGE-mode landmarks on the clean reference frame (:func:`facelm.data.real_clips.reference_frame`),
mapped through each frame's transform. Synthetic clips (``synth:static`` ...):
:func:`facelm.data.synth_video.render_clip`, exact truth.

Runs: clip x artifact (fp32 / int8, through :class:`facelm.runtime.Landmarker`, the product's crop
model) x mode (IMAGE: :class:`~facelm.runtime.tracking.ImageSmoother`, the detector and two passes
every frame; VIDEO: :class:`~facelm.runtime.tracking.VideoTracker` with ``TrackingConfig()``
defaults) x One Euro off / on (``OneEuroConfig()`` defaults, applied live).

Columns (IOD = the true inter-pupil distance of the frame, landmarks 104-105):
- jitter: RMS frame-to-frame landmark displacement, % IOD (static clips only);
- error: mean landmark distance to the truth, % IOD, mean over frames with the whole face in view;
- IOD ratio: tracked / true inter-pupil distance, min and max over those frames (the no-collapse check);
- re-acq: frames from the face's return (first whole-face frame after face-absent ones) to landmarks
  on it (``leave`` clip); false: frames without a face that got landmarks;
- detector runs, and ms per frame: the mean per stage (a stage that runs on some frames only, like
  VIDEO mode's detector, is averaged over all frames) and the median of the frame total. The four
  runs of a clip (IMAGE/VIDEO x One Euro off/on) are interleaved frame by frame, so the machine's
  load falls on them alike; compare rows of the same clip, not across runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from facelm.data import real_clips
from facelm.data.synth_video import render_clip as render_synth
from facelm.detect import create_detector
from facelm.runtime import Landmarker, LandmarkerOptions
from facelm.runtime.tracking import ImageSmoother, TrackingConfig, VideoTracker, detect_image
from facelm.smoothing import OneEuroConfig

REAL = ("static", "slow", "fast", "zoom", "leave")
SYNTH = ("synth:static", "synth:slow", "synth:fast")
STAGES = ("detector", "tracking", "warp", "model", "decode", "smoothing", "total")


def make_clip(name: str, photo: str, frames: int | None):
    """``(frames, timestamps, truth (N, 106, 2), state (N,))`` of a clip; truth None for real clips
    until :func:`real_truth` fills it (it needs the artifact)."""
    if name.startswith("synth:"):
        c = render_synth(frames or 60, name.split(":", 1)[1], seed=0)
        return {"frames": c.frames, "ts": c.timestamps_ms, "truth": c.landmarks,
                "state": np.full(len(c.frames), real_clips.INSIDE, np.int8), "real": None}
    c = real_clips.render_clip(photo, name, frames)
    return {"frames": c.frames, "ts": c.timestamps_ms, "truth": None, "state": c.state, "real": c}


def real_truth(clip: real_clips.RealClip, model, detector) -> np.ndarray:
    """(N, 106, 2): the model's IMAGE-mode landmarks on the clean reference frame, through every frame's transform."""
    img, m = real_clips.reference_frame(clip.photo, clip.config)
    r = detect_image(img, model, detector)
    if r.landmarks is None:
        raise SystemExit(f"no face on the reference frame of {clip.photo}")
    return clip.truth(real_clips.to_photo(r.landmarks, m))


def run(frames, ts, runners: list) -> list[dict]:
    """Every runner on every frame, interleaved (frame by frame, the order rotating), so that the
    machine's load falls on all of them alike."""
    outs = [{"lm": [], "timings": [], "health": []} for _ in runners]
    for i, (f, t) in enumerate(zip(frames, ts)):
        for j in np.roll(np.arange(len(runners)), -i):
            r = runners[j].process(f, t)
            outs[j]["lm"].append(np.full((106, 2), np.nan) if r.landmarks is None else r.landmarks)
            outs[j]["timings"].append(r.timings)
            outs[j]["health"].append(getattr(r, "health", {}))
    for o, runner in zip(outs, runners):
        o["lm"] = np.array(o["lm"])
        o["detector_runs"] = getattr(runner, "detector_runs", len(frames))
    return outs


def metrics(lm: np.ndarray, truth: np.ndarray, state: np.ndarray, static: bool) -> dict:
    iod_true = np.linalg.norm(truth[:, 104] - truth[:, 105], axis=-1)
    have = np.isfinite(lm).all(axis=(1, 2))
    inside = state == real_clips.INSIDE
    ok = have & inside
    out: dict = {"missed": int((inside & ~have).sum()), "false": int(((state == real_clips.ABSENT) & have).sum())}
    if ok.any():
        err = np.linalg.norm(lm[ok] - truth[ok], axis=-1).mean(1) / iod_true[ok]
        ratio = np.linalg.norm(lm[ok, 104] - lm[ok, 105], axis=-1) / iod_true[ok]
        out.update(error=100 * float(err.mean()), iod_min=float(ratio.min()), iod_max=float(ratio.max()))
    if static:
        d = np.linalg.norm(np.diff(lm, axis=0), axis=-1) / iod_true[1:, None]
        out["jitter"] = 100 * float(np.sqrt(np.nanmean(d ** 2)))
    absent = np.flatnonzero(state == real_clips.ABSENT)
    if len(absent):
        back = [i for i in range(absent[-1] + 1, len(state)) if inside[i]]
        if back:
            on = [i for i in back if have[i] and np.linalg.norm(lm[i] - truth[i], axis=-1).mean() < 0.25 * iod_true[i]]
            out["reacquire"] = (on[0] - back[0]) if on else len(state) - back[0]
    return out


def stage_means(timings: list[dict]) -> dict:
    return {k: float(np.mean([t.get(k, 0.0) for t in timings])) for k in STAGES}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--artifacts", default="artifacts")
    ap.add_argument("--artifact", nargs="+", default=["fp32", "int8"])
    ap.add_argument("--clips", nargs="+", default=list(REAL + SYNTH), help=f"of {REAL + SYNTH}")
    ap.add_argument("--photo", nargs="+", default=["astronaut"], help=f"of {tuple(real_clips.EYES)}")
    ap.add_argument("--frames", type=int, default=None, help="frames per clip (default: each motion's)")
    ap.add_argument("--modes", nargs="+", default=["image", "video"])
    ap.add_argument("--detector", default="auto", help="facelm.detect.create_detector kind")
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    cv2.setNumThreads(1)
    det = create_detector(args.detector)
    print(f"detector: {type(det).__name__}", file=sys.stderr)
    rows = []
    for art in args.artifact:
        lmk = Landmarker.create_from_options(LandmarkerOptions(args.artifacts, artifact=art))
        todo = [(p, n) for n in args.clips for p in (args.photo if not n.startswith("synth:") else ["synth"])]
        for photo, name in todo:
            c = make_clip(name, photo, args.frames)
            truth = c["truth"] if c["real"] is None else real_truth(c["real"], lmk, det)
            keys = [(mode, smooth) for mode in args.modes for smooth in (False, True)]
            runners = [VideoTracker(lmk, det, TrackingConfig(smoothing=OneEuroConfig() if sm else None))
                       if mode == "video" else ImageSmoother(lmk, det, OneEuroConfig() if sm else None)
                       for mode, sm in keys]
            t0 = time.perf_counter()
            for (mode, smooth), r in zip(keys, run(c["frames"], c["ts"], runners)):
                row = {"clip": name if c["real"] is None else f"{photo}:{name}", "artifact": art,
                       "mode": mode, "smoothing": smooth, "frames": len(c["frames"]),
                       "detector_runs": r["detector_runs"], "stages_ms": stage_means(r["timings"]),
                       "median_total_ms": float(np.median([t["total"] for t in r["timings"]])),
                       **metrics(r["lm"], truth, c["state"], name.endswith("static"))}
                rows.append(row)
            print(f"  {name:14s} {photo:12s} {art:5s} {time.perf_counter() - t0:6.1f} s", file=sys.stderr)
    print_tables(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    return 0


def _f(v, fmt=".2f") -> str:
    return "–" if v is None else format(v, fmt)


def print_targets(rows: list[dict]) -> None:
    """Issue 19's targets per real clip and artifact, One Euro off: VIDEO vs IMAGE."""
    print("| clip | artifact | VIDEO / IMAGE jitter | VIDEO / IMAGE error | VIDEO IOD ratio | re-acq (frames) "
          "| VIDEO / IMAGE ms (mean) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r["mode"] != "video" or r["smoothing"] or r["clip"].startswith("synth:"):
            continue
        i = next(x for x in rows if x["clip"] == r["clip"] and x["artifact"] == r["artifact"]
                 and x["mode"] == "image" and not x["smoothing"])
        jit = f"{r['jitter']:.2f} / {i['jitter']:.2f} = {r['jitter'] / i['jitter']:.2f}x" if "jitter" in r else "–"
        err = f"{r['error']:.2f} / {i['error']:.2f} = {r['error'] / i['error']:.2f}x" if "error" in r else "–"
        iod = f"{r['iod_min']:.2f}–{r['iod_max']:.2f}" if "iod_min" in r else "–"
        ms = f"{r['stages_ms']['total']:.1f} / {i['stages_ms']['total']:.1f}"
        print(f"| {r['clip']} | {r['artifact']} | {jit} | {err} | {iod} | {_f(r.get('reacquire'), 'd')} | {ms} |")
    print()


def print_tables(rows: list[dict]) -> None:
    print_targets(rows)
    print("| clip | artifact | mode | One Euro | jitter % IOD | error % IOD | IOD ratio min–max | re-acq (frames) "
          "| detector runs | ms/frame mean (median) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        iod = f"{r['iod_min']:.2f}–{r['iod_max']:.2f}" if "iod_min" in r else "–"
        print(f"| {r['clip']} | {r['artifact']} | {r['mode']} | {'on' if r['smoothing'] else 'off'} "
              f"| {_f(r.get('jitter'))} | {_f(r.get('error'))} | {iod} | {_f(r.get('reacquire'), 'd')} "
              f"| {r['detector_runs']}/{r['frames']} | {r['stages_ms']['total']:.1f} ({r['median_total_ms']:.1f}) |")
    print()
    print("| clip | artifact | mode | " + " | ".join(f"{s} ms" for s in STAGES) + " |")
    print("|---|---|---|" + "---|" * len(STAGES))
    for r in rows:
        if not r["smoothing"]:
            print(f"| {r['clip']} | {r['artifact']} | {r['mode']} | "
                  + " | ".join(f"{r['stages_ms'][s]:.2f}" for s in STAGES) + " |")


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
