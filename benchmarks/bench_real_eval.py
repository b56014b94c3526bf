"""Real-photo evaluation against FaceMesh: ``python benchmarks/bench_real_eval.py [CKPT ...]``.

For each checkpoint (default: the shipped demo) and every face the detector finds in the real photos
(:mod:`facelm.data.real_faces`, up to six per photo): our NME against FaceMesh on the eight twin
points, and the consistency error of ours and of FaceMesh under three known similarities of the
photo (:mod:`facelm.training.real_eval`). All in % of FaceMesh's twin IOD. Prints one Markdown table
per checkpoint (✗: ours not within 1.25x FaceMesh's consistency error) and one JSON line.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from facelm.data import real_faces
from facelm.detect import create_detector
from facelm.training.gain import TorchCropModel
from facelm.training.real_eval import FaceMesh, evaluate_photo, photo_table


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoints", nargs="*", help="facelm checkpoints (default: the shipped demo)")
    ap.add_argument("--flip", action="store_true", help="our model with the flip test")
    ap.add_argument("--ratio", type=float, default=1.25)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from facelm.assets import demo_checkpoint

    facemesh, detector = FaceMesh(), create_detector()
    photos = {n: real_faces.load(n) for n in real_faces.available()}
    out = []
    for ckpt in args.checkpoints or [str(demo_checkpoint())]:
        t = time.perf_counter()
        model = TorchCropModel.from_checkpoint(ckpt, flip=args.flip)
        scores = [s for n, im in photos.items() for s in evaluate_photo(n, im, model, facemesh, detector)]
        table, flagged = photo_table(scores, args.ratio)
        print(f"\n{ckpt} ({len(scores)} faces, {time.perf_counter() - t:.0f} s)\n\n{table}\n\n"
              f"ours not within {args.ratio}x FaceMesh's consistency error: {', '.join(flagged) or 'none'}")
        out.append({"checkpoint": ckpt, "flip_test": args.flip, "flagged": flagged, "faces": [
            {"photo": s.photo, "box": np.round(s.box, 1).tolist(), "nme_vs_facemesh": s.nme_vs_facemesh,
             "ours_consistency": s.ours_consistency, "facemesh_consistency": s.facemesh_consistency,
             "transforms_found": s.transforms_found} for s in scores]})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
