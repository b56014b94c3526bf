"""Draw docs/figures/alignment.png: synthetic faces before and after five-point alignment.

Also prints how much of the 106-point face lands inside the aligned crop over many
synthetic faces, which is the check behind the template's scale and shift.

    .venv/bin/python docs/figures/make_alignment_figure.py
"""
from __future__ import annotations

import os

import cv2
import numpy as np

from facelm.alignment import reference_template
from facelm.data.synth import generate_aligned

SIZE = 192


def _draw(img: np.ndarray, pts: np.ndarray, five: np.ndarray | None) -> np.ndarray:
    out = np.ascontiguousarray(img.copy())
    for x, y in pts:
        cv2.circle(out, (int(round(x)), int(round(y))), 1, (0, 255, 0), -1, cv2.LINE_AA)
    if five is not None:
        for x, y in five:
            cv2.drawMarker(out, (int(round(x)), int(round(y))), (255, 0, 0), cv2.MARKER_CROSS, 8, 1)
    return out


def main() -> None:
    data = generate_aligned(6, seed=7, input_size=SIZE, size=256)
    tmpl = reference_template(SIZE)
    top = [_draw(cv2.resize(im, (SIZE, SIZE)), lm * SIZE / 256, None) for im, lm in zip(data["images"], data["landmarks_image"])]
    bottom = [_draw(c, lm, tmpl) for c, lm in zip(data["crops"], data["landmarks"])]
    grid = np.vstack([np.hstack(top), np.hstack(bottom)])
    path = os.path.join(os.path.dirname(__file__), "alignment.png")
    cv2.imwrite(path, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print("wrote", path)

    stats = generate_aligned(500, seed=11, input_size=SIZE, size=256)["landmarks"]
    inside = np.all((stats >= 0) & (stats <= SIZE - 1), axis=-1)
    print(f"landmarks inside the {SIZE}px crop: {100 * inside.mean():.2f}% of points, "
          f"{100 * inside.all(axis=1).mean():.1f}% of faces fully inside")
    lo, hi = stats.min(axis=(0, 1)), stats.max(axis=(0, 1))
    print(f"landmark extent over 500 faces: x {lo[0]:.1f}..{hi[0]:.1f}, y {lo[1]:.1f}..{hi[1]:.1f}")
    p = np.percentile(stats.reshape(-1, 2), [1, 99], axis=0)
    print(f"1st-99th percentile: x {p[0,0]:.1f}..{p[1,0]:.1f}, y {p[0,1]:.1f}..{p[1,1]:.1f}")


if __name__ == "__main__":
    main()
