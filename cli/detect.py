"""``facelm detect INPUT --model ARTIFACTS [--artifact int8] [--mode image|video] [--smooth] --out OUT``.

INPUT is an image, a folder of images or a video file (OpenCV's reader). OUT gets
``landmarks.jsonl`` (one line per image or frame: landmarks, scores, box, timings; ``"face":
null`` when no face was found) and overlays (``overlays/NAME.png`` per image, or
``overlay.mp4`` for a video). Light install only: LiteRT, OpenCV, numpy.

A shell over :func:`facelm.detect_path` (``facelm.detect_flow``); its keyword defaults are the
flags' defaults.
"""
from __future__ import annotations

import argparse

from ._args import defaults_of


def register(sub: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    from facelm.detect import DETECTORS
    from facelm.detect_flow import MODES, detect_path

    d = defaults_of(detect_path)
    p = sub.add_parser(name, help=help_text, description=__doc__.split("\n\n")[1])
    p.add_argument("input", help="an image, a folder of images or a video file")
    p.add_argument("--model", required=True, help="artifact folder or .tflite file")
    p.add_argument("--artifact", default=d["artifact"], help="artifact name in the folder")
    p.add_argument("--mode", choices=MODES, default=d["mode"],
                   help="IMAGE: detect every frame; VIDEO: track (default: video for a video, image otherwise)")
    p.add_argument("--smooth", action="store_true", default=d["smooth"],
                   help="One Euro smoothing of the landmarks (streams)")
    p.add_argument("--detector", choices=DETECTORS, default=d["detector"],
                   help="auto: BlazeFace when its model file is found, else OpenCV's Haar cascade")
    p.add_argument("--detector-model", default=d["detector_model"], help="BlazeFace short-range .tflite")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=d["progress"],
                   help="no progress bar")
    p.set_defaults(func=drive)
    return p


def drive(args: argparse.Namespace) -> int:
    from facelm.detect_flow import detect_path

    s = detect_path(args.input, args.model, args.out, artifact=args.artifact, mode=args.mode, smooth=args.smooth,
                    detector=args.detector, detector_model=args.detector_model, progress=args.progress)
    for note in s["notes"]:
        print(f"note: {note}")
    print(f"{s['faces']}/{s['frames']} with a face ({s['mode']} mode); wrote {s['jsonl']} and {s['overlay']}")
    return 0
