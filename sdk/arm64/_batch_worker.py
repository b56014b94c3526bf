"""Runs on the emulated aarch64 python (numpy, ai-edge-litert, TVM runtime; no facelm).

argv: DIR. Reads DIR/jobs.json, a list of {"kind": "tflite"|"tvm", "model", "samples",
"inputs", "threads", "entry"}; for job j and sample s reads DIR/in_{j}_{s}_{i}.npy (i < inputs)
and writes DIR/out_{j}_{s}_{o}.npy. Writes DIR/outputs.json {"counts": [[n_out per sample] per
job], "machine": ...}. Each model is loaded once; TVM is imported only when a job needs it (its
import takes ~20-45 s under emulation).
"""
import json
import platform
import sys

import numpy as np


def _tflite(job, load):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=job["model"], num_threads=int(job.get("threads", 1)))
    it.allocate_tensors()
    details = it.get_input_details()
    if len(details) != job["inputs"]:
        sys.exit(f"{job['model']}: model has {len(details)} inputs, got {job['inputs']}")
    for s in range(job["samples"]):
        for i, d in enumerate(details):
            a = load(s, i)
            if tuple(a.shape) != tuple(d["shape"]) or a.dtype != d["dtype"]:
                sys.exit(f"{job['model']}: input {i} ({d['name']}): expected {tuple(d['shape'])} "
                         f"{np.dtype(d['dtype'])}, got {a.shape} {a.dtype}")
            it.set_tensor(d["index"], a)
        it.invoke()
        yield [it.get_tensor(d["index"]).copy() for d in it.get_output_details()]


def _tvm(job, load):
    import tvm
    from tvm import relax

    dev = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(job["model"]), dev)
    for s in range(job["samples"]):
        out = vm[job.get("entry", "main")](*[tvm.runtime.tensor(load(s, i), dev) for i in range(job["inputs"])])
        yield [o.numpy() for o in ([out] if hasattr(out, "numpy") else list(out))]


def main(folder: str) -> None:
    with open(f"{folder}/jobs.json") as f:
        jobs = json.load(f)
    counts = []
    for j, job in enumerate(jobs):
        def load(s, i, j=j):
            return np.load(f"{folder}/in_{j}_{s}_{i}.npy", allow_pickle=False)

        run = {"tflite": _tflite, "tvm": _tvm}[job["kind"]]
        counts.append([])
        for s, outs in enumerate(run(job, load)):
            for o, a in enumerate(outs):
                np.save(f"{folder}/out_{j}_{s}_{o}.npy", a, allow_pickle=False)
            counts[-1].append(len(outs))
    with open(f"{folder}/outputs.json", "w") as f:
        json.dump({"counts": counts, "machine": platform.machine()}, f)


if __name__ == "__main__":
    main(sys.argv[1])
