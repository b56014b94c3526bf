"""The one TVM loader: import TVM, load a compiled relax module, run it.

Conversion (``facelm.converters.tvm``) and the bench harness (``facelm.android_bench``)
both come here, so a missing TVM is always the same :class:`TvmUnavailableError` naming
the extra to install. Loading a TVM ``.so`` executes native code from that file: callers
only pass paths whose manifest hash was checked.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from facelm.errors import ConfigError, InputError


class TvmUnavailableError(ConfigError):
    """TVM (apache-tvm 0.27) is not installed; the message says how to install it."""


def import_tvm():
    """Import TVM and its relax VM, or raise :class:`TvmUnavailableError`."""
    try:
        import tvm
        from tvm import relax  # noqa: F401
    except ImportError as exc:
        raise TvmUnavailableError(
            f"TVM artifacts need facelm[tvm]: pip install 'facelm[tvm]' (apache-tvm 0.27); import failed: {exc}"
        ) from None
    return tvm


class TvmRunner:
    """Run a compiled relax module (``.so``) on this machine's CPU: (N, 3, S, S) float32 -> (N, K, h, w).

    Args:
        path: the library; it must have been verified against its manifest before.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        tvm = import_tvm()
        from tvm import relax

        path = Path(path)
        if not path.is_file():
            raise InputError(f"no TVM library at {path}")
        self._tvm = tvm
        self._dev = tvm.cpu()
        try:
            self._vm = relax.VirtualMachine(tvm.runtime.load_module(str(path)), self._dev)
        except Exception as exc:  # TVM raises its own error types for unloadable files
            raise InputError(f"TVM cannot load {path}: {type(exc).__name__}: {exc}") from None
        self.path = path

    def invoke(self, x: np.ndarray) -> np.ndarray:
        """One (1, 3, S, S) input in the module's dtype -> its first output as numpy."""
        out = self._vm["main"](self._tvm.runtime.tensor(np.ascontiguousarray(x), self._dev))
        if not hasattr(out, "numpy"):  # a tuple return
            out = out[0]
        return out.numpy()

    def run_raw(self, x: np.ndarray) -> np.ndarray:
        """(N, 3, S, S) -> raw outputs concatenated over N."""
        return np.concatenate([self.invoke(x[i:i + 1]) for i in range(len(x))], axis=0)

    heatmaps = run_raw
