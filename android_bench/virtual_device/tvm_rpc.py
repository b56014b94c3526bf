"""A stand-in ``tvm_rpc`` for the virtual device: TVM's Python RPC server with the C++ server's flags.

``tvm_rpc server --host=H --port=P --port-end=E [--key=K] [--tracker=T] [--work-dir=D]``
becomes ``python -m tvm.exec.rpc_server --host H --port P --port-end E``.
"""
from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    if not argv or argv[0] != "server":
        print("usage: tvm_rpc server --host=HOST --port=PORT --port-end=PORT_END [--key=KEY]", file=sys.stderr)
        return 1
    opts = {}
    for arg in argv[1:]:
        if arg.startswith("--") and "=" in arg:
            k, v = arg[2:].split("=", 1)
            opts[k] = v
    cmd = [sys.executable, "-m", "tvm.exec.rpc_server", "--host", opts.get("host", "127.0.0.1"),
           "--port", opts.get("port", "9090"), "--port-end", opts.get("port-end", "9199")]
    if opts.get("key"):
        cmd += ["--key", opts["key"]]
    if opts.get("tracker"):
        cmd += ["--tracker", opts["tracker"]]
    wrapper = os.environ.get("FACELM_VD_PYTHON")
    if wrapper:
        # An arm64 virtual device: this is an aarch64 python under qemu-user, which cannot
        # exec aarch64 binaries itself. Serve in this process, and let TVM start its workers
        # through the host wrapper FACELM_VD_PYTHON (TVM uses sys.executable for them).
        import runpy

        sys.executable = wrapper
        sys.argv = ["rpc_server", *cmd[3:]]
        runpy.run_module("tvm.exec.rpc_server", run_name="__main__", alter_sys=True)
        return 0
    os.execv(sys.executable, cmd)
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
