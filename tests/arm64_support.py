"""The aarch64 root for the arm64 tests: built once per session (cached on disk across sessions).

CI builds it first (`make arm64` in .ci/run); on a machine with the tools but no root, the
first test that asks builds it (a few minutes, registries only). Tests skip only when
qemu-user or the cross compilers are absent, naming the apt packages.
"""
from __future__ import annotations

import functools

import pytest

import facelm.arm64 as arm64


@functools.lru_cache(maxsize=None)
def _root() -> arm64.Arm64Root:
    return arm64.setup(progress=False)


def arm64_root() -> arm64.Arm64Root:
    missing = arm64.missing_tools()
    if missing:
        pytest.skip(f"no {', '.join(sorted(missing))}: apt-get install {' '.join(sorted(set(missing.values())))}")
    return _root()
