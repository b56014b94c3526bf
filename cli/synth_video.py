"""``facelm synth-video OUT --frames N --motion static|slow|fast --seed S``: a synthetic clip with
exact per-frame 106-point ground truth. A shell over :func:`facelm.data.synth_video.write_clip`."""
from __future__ import annotations

import argparse

from facelm.data.synth_video import MOTIONS, VideoConfig, write_clip

from ._args import defaults_of


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    d, v = defaults_of(write_clip), VideoConfig()
    p = sub.add_parser(name, help=help_text, description=help_text + ". Layout: OUT/frames/NNNNNN.png, "
                       "OUT/landmarks.jsonl (one line per frame), OUT/video.mp4, OUT/clip.json.")
    p.add_argument("out", help="output folder (must not exist or be empty)")
    p.add_argument("--frames", type=int, required=True, help="number of frames")
    p.add_argument("--motion", choices=sorted(MOTIONS), default=d["motion"], help="head trajectory")
    p.add_argument("--seed", type=int, default=d["seed"], help="face, trajectory phases and noise")
    p.add_argument("--width", type=int, default=v.width, help="frame width in pixels")
    p.add_argument("--height", type=int, default=v.height, help="frame height in pixels")
    p.add_argument("--fps", type=float, default=v.fps, help="frames per second")
    p.add_argument("--no-mp4", action="store_true", help="skip video.mp4")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    cfg = VideoConfig(width=args.width, height=args.height, fps=args.fps)
    out = write_clip(args.out, args.frames, args.motion, args.seed, cfg, mp4=not args.no_mp4)
    print(f"wrote {args.frames} {args.motion} frames to {out}")
    return 0
