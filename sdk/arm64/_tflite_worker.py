"""Runs on the emulated aarch64 python (numpy + ai-edge-litert only; no facelm).

argv: MODEL.tflite DIR N_INPUTS NUM_THREADS. Reads DIR/in_{i}.npy, writes DIR/out_{i}.npy
and DIR/outputs.json ({"count": n, "machine": ...}).
"""
import json
import platform
import sys

import numpy as np
from ai_edge_litert.interpreter import Interpreter


def main(model: str, folder: str, n_inputs: str, threads: str) -> None:
    it = Interpreter(model_path=model, num_threads=int(threads))
    it.allocate_tensors()
    details = it.get_input_details()
    if len(details) != int(n_inputs):
        sys.exit(f"model has {len(details)} inputs, got {n_inputs}")
    for i, d in enumerate(details):
        a = np.load(f"{folder}/in_{i}.npy", allow_pickle=False)
        if tuple(a.shape) != tuple(d["shape"]) or a.dtype != d["dtype"]:
            sys.exit(f"input {i} ({d['name']}): expected {tuple(d['shape'])} {np.dtype(d['dtype'])}, "
                     f"got {a.shape} {a.dtype}")
        it.set_tensor(d["index"], a)
    it.invoke()
    outs = it.get_output_details()
    for i, d in enumerate(outs):
        np.save(f"{folder}/out_{i}.npy", it.get_tensor(d["index"]), allow_pickle=False)
    with open(f"{folder}/outputs.json", "w") as f:
        json.dump({"count": len(outs), "machine": platform.machine()}, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
