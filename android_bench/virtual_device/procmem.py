"""This process's resident memory, read from ``/proc/self/status`` (standard library only).

One copy for the host runner (:class:`facelm.android_bench.runners.LocalTfliteRunner`) and
the stand-in ``benchmark_model`` (:mod:`benchmark_model`), which may run as a plain script
under the emulated aarch64 python where facelm is not importable; it imports this file as
its sibling then.
"""
from __future__ import annotations

#: What :func:`rss_mb` returns when the size cannot be read: unknown, never a number that
#: reads as a measurement (0.0 would make every memory delta look like zero).
RSS_UNKNOWN = float("nan")


def rss_mb(status_path: str = "/proc/self/status") -> float:
    """Resident set size (``VmRSS``) in MiB, or :data:`RSS_UNKNOWN` (NaN) if it cannot be read."""
    try:
        with open(status_path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return RSS_UNKNOWN
