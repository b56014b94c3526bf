"""Face detectors on the real photo set: hits per photo, eye error, time on a 640x480 frame.

    OMP_NUM_THREADS=1 python benchmarks/bench_detect.py [--runs 30] [--landmarker artifacts] [--memory]

For every detector (``haar``, BlazeFace ``short`` range, ``full`` range, ``back`` camera, the
``multiscale`` cascade that ``auto`` picks, and ``ms_fast``: the cascade without its quarter-turn
fallback) and every case of :mod:`facelm.detect.labels` (the
real photos with hand-labelled boxes and eyes, plus crops and quarter turns of them):

- hits / labelled faces (IoU >= 0.4 with the hand-labelled box) and false positives;
- eye error: the detection's eye points against the labelled eye centres, over the labelled
  inter-ocular distance (median over the hit faces; a Haar box has prior eye points only).

Timing: median of ``--runs`` calls per detector on two 640x480 frames, one with a face (the
astronaut letterboxed) and one without (a smooth random texture: the cascade's fallback pass
runs), detectors interleaved round by round so machine load hits them alike.

``--landmarker ARTIFACTS``: ``Landmarker.detect(image)`` (IMAGE mode, the detector then the
landmark model) with the short-range detector (before) and the cascade (after); a face counts as
found when its visible eye landmarks (pupils) land within 25 % of the labelled eye distance of
some labelled face.

``--memory``: peak RSS growth while each detector runs on a 10,000 x 7,500 photo (own process each).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

import cv2
import numpy as np

from facelm.detect import create_detector
from facelm.detect.labels import EYE_TOLERANCE, cases, eye_error, score, variants

#: Benchmark column -> detector kind of :func:`facelm.detect.create_detector`.
KINDS = {"haar": "haar", "short": "blazeface", "full": "blazeface_full", "back": "blazeface_back",
         "multiscale": "multiscale", "ms_fast": "multiscale_fast"}


def hit_table(detectors: dict, all_cases: list) -> tuple[list[str], dict]:
    """Markdown rows ``case | faces | hits(+fp) per detector`` and per-detector totals."""
    rows, totals = [], {k: [0, 0, 0, []] for k in detectors}
    for c in all_cases:
        cells = []
        for k, det in detectors.items():
            s = score(det.detect(c.image), c.faces)
            t = totals[k]
            t[0] += s.hits
            t[1] += s.faces
            t[2] += s.false_positives
            t[3] += [e for e in s.eye_errors if np.isfinite(e)]
            cells.append(f"{s.hits}" + (f" +{s.false_positives} fp" if s.false_positives else ""))
        rows.append(f"| {c.name} | {len(c.faces)} | " + " | ".join(cells) + " |")
    return rows, totals


def frames_640x480() -> dict[str, np.ndarray]:
    """A 640x480 frame with the astronaut letterboxed in it, and one with no face."""
    from skimage import data

    face = np.full((480, 640, 3), 128, np.uint8)
    face[:, 80:560] = cv2.resize(data.astronaut(), (480, 480), interpolation=cv2.INTER_AREA)
    blobs = np.random.default_rng(0).integers(0, 255, (12, 16, 3), dtype=np.uint8)
    return {"face": face, "no face": cv2.resize(blobs, (640, 480), interpolation=cv2.INTER_CUBIC)}


def timings(detectors: dict, runs: int) -> dict[tuple[str, str], float]:
    """Median ms per (detector, frame), interleaved rounds after one warm-up call each."""
    frames = frames_640x480()
    times = {(k, f): [] for k in detectors for f in frames}
    for k, det in detectors.items():
        for img in frames.values():
            det.detect(img)
    for _ in range(runs):
        for f, img in frames.items():
            for k, det in detectors.items():
                t = time.perf_counter()
                det.detect(img)
                times[(k, f)].append(1e3 * (time.perf_counter() - t))
    return {key: float(np.median(v)) for key, v in times.items()}


def landmarker_check(artifacts: str, all_cases: list) -> list[str]:
    """Rows ``case | found before | found after`` for Landmarker.detect with each detector."""
    from facelm.layouts import JD106
    from facelm.runtime import Landmarker, LandmarkerOptions

    out = []
    res = {}
    for label, kind in (("short-range", "blazeface"), ("multiscale", "multiscale")):
        with Landmarker.create_from_options(LandmarkerOptions(artifacts, detector=kind)) as lm:
            for c in all_cases:
                r = lm.detect(c.image)
                ok = 0
                if r is not None:  # the Landmarker returns the best face: any labelled face counts
                    eyes = JD106.five_points(r.landmarks)[:2]
                    ok = int(min(eye_error(eyes, f) for f in c.faces) < 0.25)
                res[(label, c.name)] = ok
    for c in all_cases:
        out.append(f"| {c.name} | {'yes' if res[('short-range', c.name)] else 'no'} | {'yes' if res[('multiscale', c.name)] else 'no'} |")
    n = len(all_cases)
    out.append(f"| **total** | {sum(res[('short-range', c.name)] for c in all_cases)}/{n} | "
               f"{sum(res[('multiscale', c.name)] for c in all_cases)}/{n} |")
    return out


def memory_child(kind: str) -> None:
    """Print the peak-RSS growth (MB) of one detection on a 10,000 x 7,500 photo."""
    from skimage import data

    big = cv2.resize(data.astronaut(), (10000, 7500), interpolation=cv2.INTER_LINEAR)
    det = create_detector(kind)
    det.detect(np.zeros((64, 64, 3), np.uint8))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    faces = det.detect(big)
    ms = 1e3 * (time.perf_counter() - t)
    grow = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024.0
    print(f"{kind} {grow:.1f} {ms:.0f} {len(faces)}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=30, help="timed calls per detector and frame")
    p.add_argument("--landmarker", default=None, help="artifact folder: also run Landmarker.detect before/after")
    p.add_argument("--memory", action="store_true", help="peak RSS growth on a 10,000 x 7,500 photo")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.memory_child:
        memory_child(a.memory_child)
        return
    detectors = {k: create_detector(v) for k, v in KINDS.items()}
    base = cases()
    all_cases = base + variants(base)
    print(f"{len(base)} real photos available, {len(all_cases) - len(base)} variants; "
          f"auto = {create_detector('auto').name}\n")
    rows, totals = hit_table(detectors, all_cases)
    print("| case | faces | " + " | ".join(detectors) + " |")
    print("|---|---|" + "---|" * len(detectors))
    print("\n".join(rows))
    print("| **faces found** | " + str(totals["haar"][1]) + " | "
          + " | ".join(f"{t[0]}/{t[1]}" + (f" +{t[2]} fp" if t[2] else "") for t in totals.values()) + " |")
    print("| median eye error / IOD | | " + " | ".join(f"{np.median(t[3]):.3f}" if t[3] else "-" for t in totals.values()) + " |")
    print(f"| eyes within {EYE_TOLERANCE:.0%} of IOD | | "
          + " | ".join(f"{np.mean(np.array(t[3]) < EYE_TOLERANCE):.0%}" if t[3] else "-" for t in totals.values()) + " |")
    ms = timings(detectors, a.runs)
    print(f"\nms per call on a 640x480 frame (median of {a.runs}, 1 thread, interleaved):\n")
    print("| frame | " + " | ".join(detectors) + " |")
    print("|---|" + "---|" * len(detectors))
    for f in ("face", "no face"):
        print(f"| {f} | " + " | ".join(f"{ms[(k, f)]:.1f}" for k in detectors) + " |")
    if a.landmarker:
        print("\nLandmarker.detect (IMAGE mode) finds a face (its visible pupil landmarks within 25 % of the IOD):\n")
        print("| case | short-range detector | multiscale |\n|---|---|---|")
        print("\n".join(landmarker_check(a.landmarker, all_cases)))
    if a.memory:
        print("\n10,000 x 7,500 photo: peak RSS growth during detect (own process each):\n")
        print("| detector | MB | ms | faces |\n|---|---|---|---|")
        for k, v in KINDS.items():
            r = subprocess.run([sys.executable, __file__, "--memory-child", v], capture_output=True, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
            line = (r.stdout.strip().splitlines() or ["? ? ? ?"])[-1].split()
            print(f"| {k} | {line[1]} | {line[2]} | {line[3]} |")


if __name__ == "__main__":
    main()
