"""facelm.arm64: run artifacts and the C codec on aarch64 instructions under qemu-user.

- :func:`setup` builds (once, cached) an aarch64 Python 3.11 + numpy + LiteRT + TVM runtime
  root under ``~/.cache/facelm/arm64`` (``$FACELM_ARM64_ROOT`` overrides);
- :func:`run_python`, :func:`run_tflite`, :func:`run_tvm` run code in it; :func:`run_batch`
  runs many models on many samples in one emulated process;
- :func:`link_tvm_objects` links TVM's AArch64 object archive with the GNU cross compiler.

Emulated numerics are real aarch64 numerics; emulated time is 100-1000x slower than a
phone and is never reported as latency. Host tools: apt packages ``qemu-user``,
``gcc-aarch64-linux-gnu``, ``g++-aarch64-linux-gnu``.
"""
from .run import DEFAULT_CPU, Job, emulated_cpu, guest_env, link_tvm_objects, qemu_command, run_batch, run_python, run_tflite, run_tvm
from .root import TOOL_PACKAGES, Arm64Error, Arm64Root, check_tools, default_root, missing_tools
from .sysroot import load, setup

__all__ = ["Arm64Error", "Arm64Root", "DEFAULT_CPU", "Job", "emulated_cpu", "TOOL_PACKAGES", "check_tools", "default_root", "guest_env",
           "link_tvm_objects", "load", "missing_tools", "qemu_command", "run_batch", "run_python", "run_tflite",
           "run_tvm", "setup"]
