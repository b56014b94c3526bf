"""Contact sheet of the realistic synthetic-face preset with its landmarks drawn.

    python docs/figures/make_synth_figure.py [--out docs/figures/synth_realistic.png]

Row 1: one identity at yaw -60, -30, 0, 30, 60 degrees (pitch 10; silhouette contour).
Row 2: expressions, row 3: occluders, each alone (the other expressions and layers off).
Rows 4-5: faces ``sample(seed, i, SynthConfig.realistic())`` as the trainer sees them.
Image-left contour 0..16 in green, image-right 17..32 in blue, other points red.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import cv2
import numpy as np

from facelm.data import synth
from facelm.fileio import atomic_write_bytes

#: Row 2 and row 3: (label, SynthConfig.realistic overrides).
EXPRESSIONS = [("frown", dict(p_frown=1.0)), ("brows up", dict(p_brow_raise=1.0, p_frown=0.0)),
               ("smile", dict(p_smile=1.0, p_frown=0.0)), ("mouth open", dict(p_mouth_open=1.0, p_tongue=0.0)),
               ("tongue", dict(p_mouth_open=1.0, p_tongue=1.0))]
OCCLUDERS = [("hand", dict(p_hand=1.0)), ("mask", dict(p_mask=1.0)), ("phone / mic", dict(p_object=1.0)),
             ("eyeglasses", dict(p_eyeglasses=1.0)), ("side hair", dict(p_side_hair=1.0))]


def _mark(img: np.ndarray, lm: np.ndarray, scale: int) -> np.ndarray:
    """Upscale (S, S, 3) RGB by ``scale`` and draw the (106, 2) landmarks."""
    big = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    pts = (lm + 0.5) * scale - 0.5
    cv2.polylines(big, [np.round(pts[0:33] * 16).astype(np.int32)], False, (255, 255, 0), 1, cv2.LINE_AA, 4)
    for k, (x, y) in enumerate(pts):
        col = (0, 255, 0) if k <= 16 else (0, 128, 255) if k <= 32 else (255, 0, 0)
        cv2.circle(big, (int(round(x * 16)), int(round(y * 16))), 2 * 16, col, -1, cv2.LINE_AA, 4)
    return big


def _label(tile: np.ndarray, text: str) -> np.ndarray:
    cv2.putText(tile, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(tile, text, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return tile


def sheet(seed: int = 7, cols: int = 5, size: int = 128, scale: int = 2) -> np.ndarray:
    """(5 * size * scale, cols * size * scale, 3) uint8 RGB contact sheet."""
    cfg = synth.SynthConfig.realistic(size=size)
    rows = []
    rng = np.random.default_rng(seed)
    p = dataclasses.replace(synth.sample_params(rng, synth.SynthConfig(p_mouth_open=0, p_smile=0, p_blink=0)),
                            mouth_open=0.2)
    clean = dataclasses.replace(cfg, p_real_background=0.0, p_eyeglasses=0.0, p_hand=0.0, p_side_hair=0.0,
                                p_mask=0.0, p_object=0.0, p_occlusion=0.0, p_hair_fringe=0.0)
    tiles = []
    for yaw in np.linspace(-60, 60, cols):
        pose = synth.Pose(yaw=float(yaw), pitch=10.0, roll=0.0, distance=8.0, width=0.55, offset=(0.0, 0.0))
        lm, fh, unit = synth.place_face(p, pose, size, silhouette=True)
        img = synth.draw_face(np.random.default_rng(seed), clean, p, pose, lm, fh, unit)
        tiles.append(_label(_mark(img, lm, scale), f"yaw {yaw:+.0f}"))
    rows.append(tiles)
    plain = dataclasses.replace(clean, p_shadow=0.0, p_gray=0.0, p_low_contrast=0.0, p_frown=0.0, p_brow_raise=0.0,
                                p_tongue=0.0, p_smile=0.0, p_mouth_open=0.0, yaw=35.0)
    for table in (EXPRESSIONS, OCCLUDERS):  # one feature on, the other layers off, to show it
        rows.append([_label(_mark(*synth.sample(seed, i, dataclasses.replace(plain, **over)), scale), name)
                     for i, (name, over) in enumerate(table[:cols])])
    rows += [[_mark(*synth.sample(seed, r * cols + i, cfg), scale) for i in range(cols)] for r in range(2)]
    return np.concatenate([np.concatenate(r, axis=1) for r in rows], axis=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(Path(__file__).with_name("synth_realistic.png")))
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    ok, buf = cv2.imencode(".png", cv2.cvtColor(sheet(args.seed), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    if not ok:  # pragma: no cover - OpenCV failure
        raise SystemExit("could not encode the PNG")
    atomic_write_bytes(args.out, buf.tobytes())
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
