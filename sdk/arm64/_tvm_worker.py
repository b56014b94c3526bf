"""Runs on the emulated aarch64 python (numpy + TVM runtime only; no facelm).

argv: MODULE.so DIR N_INPUTS ENTRY. Reads DIR/in_{i}.npy, writes DIR/out_{i}.npy and
DIR/outputs.json ({"count": n, "machine": ...}).
"""
import json
import platform
import sys

import numpy as np
import tvm
from tvm import relax


def main(so: str, folder: str, n_inputs: str, entry: str) -> None:
    dev = tvm.cpu()
    vm = relax.VirtualMachine(tvm.runtime.load_module(so), dev)
    args = [tvm.runtime.tensor(np.load(f"{folder}/in_{i}.npy", allow_pickle=False), dev)
            for i in range(int(n_inputs))]
    out = vm[entry](*args)
    outs = [out] if hasattr(out, "numpy") else list(out)
    for i, o in enumerate(outs):
        np.save(f"{folder}/out_{i}.npy", o.numpy(), allow_pickle=False)
    with open(f"{folder}/outputs.json", "w") as f:
        json.dump({"count": len(outs), "machine": platform.machine()}, f)


if __name__ == "__main__":
    main(*sys.argv[1:5])
