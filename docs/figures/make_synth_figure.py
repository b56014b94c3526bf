"""Contact sheet of the realistic synthetic-face preset with its landmarks drawn.

    python docs/figures/make_synth_figure.py [--out docs/figures/synth_realistic.png]

Top row: one identity at yaw -60, -30, 0, 30, 60 degrees (silhouette contour; image-left
contour 0..16 in green, image-right 17..32 in blue, other points red). The rows below: faces
``sample(seed, i, SynthConfig.realistic())`` as the trainer sees them.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from facelm.data import synth
from facelm.fileio import atomic_write_bytes


def _mark(img: np.ndarray, lm: np.ndarray, scale: int) -> np.ndarray:
    """Upscale (S, S, 3) RGB by ``scale`` and draw the (106, 2) landmarks."""
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    pts = (lm + 0.5) * scale - 0.5
    cv2.polylines(big, [np.round(pts[0:33] * 16).astype(np.int32)], False, (255, 255, 0), 1, cv2.LINE_AA, 4)
    for k, (x, y) in enumerate(pts):
        col = (0, 255, 0) if k <= 16 else (0, 128, 255) if k <= 32 else (255, 0, 0)
        cv2.circle(big, (int(round(x * 16)), int(round(y * 16))), 2 * 16, col, -1, cv2.LINE_AA, 4)
    return big


def sheet(seed: int = 7, rows: int = 4, cols: int = 5, size: int = 160, scale: int = 2) -> np.ndarray:
    """(rows * size * scale, cols * size * scale, 3) uint8 RGB contact sheet."""
    cfg = synth.SynthConfig.realistic(size=size)
    tiles = []
    rng = np.random.default_rng(seed)
    p = dataclasses.replace(synth.sample_params(rng, synth.SynthConfig(p_mouth_open=0, p_smile=0, p_blink=0)),
                            mouth_open=0.2, tongue=0.7)
    clean = dataclasses.replace(cfg, p_real_background=0.0, p_eyeglasses=0.0, p_hand=0.0, p_side_hair=0.0,
                                p_mask=0.0, p_object=0.0, p_occlusion=0.0, p_hair_fringe=0.0)
    for yaw in np.linspace(-60, 60, cols):
        pose = synth.Pose(yaw=float(yaw), pitch=10.0, roll=0.0, distance=8.0, width=0.55, offset=(0.0, 0.0))
        lm, fh, unit = synth.place_face(p, pose, size, silhouette=True)
        img = synth.draw_face(np.random.default_rng(seed), clean, p, pose, lm, fh, unit)
        tiles.append(_mark(img, lm, scale))
    for i in range((rows - 1) * cols):
        img, lm = synth.sample(seed, i, cfg)
        tiles.append(_mark(img, lm, scale))
    grid = [np.concatenate(tiles[r * cols:(r + 1) * cols], axis=1) for r in range(rows)]
    return np.concatenate(grid, axis=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).with_name("synth_realistic.png")))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet(args.seed), cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV failure
        raise SystemExit("could not encode the PNG")
    atomic_write_bytes(args.out, buf.tobytes())
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
