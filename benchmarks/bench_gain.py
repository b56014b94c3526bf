"""Alignment-noise gain curve: ``python benchmarks/bench_gain.py [CKPT ...] [--plot docs/figures/alignment_gain.png]``.

For each checkpoint (default: the shipped demo), landmark movement against five-point noise
(:func:`facelm.training.gain.alignment_gain`, sigma 0.5–5% IOD per coordinate), on

- synthetic faces (``facelm.data.synth``, a seed no demo saw) with the exact five points of the
  ground truth;
- the real photos of :mod:`facelm.data.real_faces` (every face the detector finds, up to six per
  photo), with five points from the model's own IMAGE-mode pass (detector crop + one pass
  re-aligned from the model's own points): consistency, no labels.

Every checkpoint sees the same noise draws (same seed). Prints one Markdown table per checkpoint and
data set, a JSON line with everything, and draws the curves into ``--plot``.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from facelm.data import real_faces, synth
from facelm.training.gain import DEFAULT_SIGMAS, TorchCropModel, alignment_gain, model_five_points, synthetic_five_points


def _label(path: str) -> str:
    return Path(path).stem if path else "demo"


def measure(ckpt: str, synth_count: int, repeats: int, seed: int, flip: bool, photos: list[str]) -> dict:
    from facelm.assets import demo_checkpoint

    path = ckpt or str(demo_checkpoint())
    model = TorchCropModel.from_checkpoint(path, flip=flip)
    out = {"checkpoint": path, "flip_test": flip}
    t = time.perf_counter()
    images, lms = synth.generate(synth_count, seed=31337, size=256)
    out["synthetic"] = alignment_gain(model, list(images), synthetic_five_points(lms), DEFAULT_SIGMAS, seed, repeats)
    loaded = [real_faces.load(n) for n in photos]
    kept, five = model_five_points(model, loaded, max_faces=6)
    out["real"] = alignment_gain(model, kept, five, DEFAULT_SIGMAS, seed, repeats)
    out["real_photos"] = photos
    out["time_s"] = round(time.perf_counter() - t, 1)
    return out


def plot(results: list[dict], path: Path) -> None:
    """Gain against noise, one line per checkpoint and data set (``results``: the JSON records)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for r in results:
        for kind, style in (("real", "-o"), ("synthetic", "--s")):
            c = r[kind]
            ax.plot(100 * np.asarray(c["sigmas"]), c["gain"], style,
                    label=f"{_label(r['checkpoint'])}: {kind} ({c['faces']} faces)")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(0.5, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("five-point noise σ per coordinate (% IOD)")
    ax.set_ylabel("gain = landmark movement / five-point movement")
    ax.set_title("Alignment-noise gain (lower: landmarks stay on the face)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", help="facelm checkpoints (default: the shipped demo)")
    ap.add_argument("--synth", type=int, default=24, help="synthetic faces")
    ap.add_argument("--repeats", type=int, default=8, help="noise draws per face and sigma")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--flip", action="store_true", help="flip test in every pass")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--plot", type=Path, help="write the curves here (PNG)")
    ap.add_argument("--replot", nargs="+", type=Path, metavar="OUTPUT",
                    help="measure nothing: plot the JSON lines of earlier runs' outputs together")
    args = ap.parse_args()
    if args.replot:
        records = [r for p in args.replot
                   for r in json.loads([ln for ln in p.read_text().splitlines() if ln.startswith("[{")][-1])]
    else:
        torch.set_num_threads(args.threads)
        photos = list(real_faces.available())
        results = [measure(c, args.synth, args.repeats, args.seed, args.flip, photos)
                   for c in (args.checkpoints or [""])]
        for r in results:
            for kind in ("synthetic", "real"):
                c = r[kind]
                print(f"\n{_label(r['checkpoint'])} — {kind}: {c.faces} faces x {c.repeats} draws\n")
                print(c.table())
        records = [{**{k: v for k, v in r.items() if k not in ("synthetic", "real")},
                    "synthetic": r["synthetic"].to_dict(), "real": r["real"].to_dict()} for r in results]
        print(json.dumps(records))
    if args.plot:
        plot(records, args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
