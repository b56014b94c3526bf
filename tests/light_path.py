"""The light install in a test: a ``sitecustomize.py`` that makes importing the heavy packages raise.

Put :func:`blocker_dir`'s folder on ``PYTHONPATH`` of a subprocess and every import of torch,
TensorFlow, ONNX, onnxruntime, TVM, onnx2tf or Keras raises ``ImportError``, as on a
``pip install facelm`` without extras.
"""
from __future__ import annotations

import os
from pathlib import Path

HEAVY = ("torch", "tensorflow", "onnx", "onnxruntime", "tvm", "onnx2tf", "keras")
BLOCKER = f'''import sys
class _Block:
    HEAVY = {HEAVY!r}
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.HEAVY:
            raise ImportError(f"blocked on the light path: {{name}}")
        return None
sys.meta_path.insert(0, _Block())
'''


def blocker_dir(folder: Path) -> Path:
    """Write the blocker into ``folder`` and return it (for ``PYTHONPATH``)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def light_env(folder: Path, **extra: str) -> dict[str, str]:
    """This process's environment with the blocker on ``PYTHONPATH`` (plus ``extra`` variables)."""
    return {**os.environ, "PYTHONPATH": str(blocker_dir(folder)), **extra}
