"""This process's resident memory, read from ``/proc/self/status`` (standard library only).

One copy for the host runner (:class:`facelm.android_bench.runners.LocalTfliteRunner`) and
the stand-in ``benchmark_model`` (:mod:`benchmark_model`), which may run as a plain script
under the emulated aarch64 python where facelm is not importable; it imports this file as
its sibling then.

The virtual device's sandbox has no ``/proc`` (a private pid namespace would give it one, but
it kills a daemon such as ``tvm_rpc`` when the ``adb shell`` that started it exits). There the
reading falls back to the process's peak resident size (``getrusage``), which only grows: the
memory deltas the stand-in prints are then peak growth, as the real benchmark tool's peak
footprint is.
"""
from __future__ import annotations

#: What :func:`rss_mb` returns when the size cannot be read: unknown, never a number that
#: reads as a measurement (0.0 would make every memory delta look like zero).
RSS_UNKNOWN = float("nan")
#: This process's status file.
STATUS_PATH = "/proc/self/status"


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (``getrusage``; KiB on Linux), or NaN."""
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError, ValueError):
        return RSS_UNKNOWN
    return kib / 1024.0 if kib > 0 else RSS_UNKNOWN


def rss_mb(status_path: str | None = None) -> float:
    """Resident set size (``VmRSS``) in MiB.

    Args:
        status_path: a status file to read; None: this process's (falling back to
            :func:`peak_rss_mb` where ``/proc`` is not mounted, as in the sandbox).
    Returns:
        MiB, or :data:`RSS_UNKNOWN` (NaN) if it cannot be read.
    """
    try:
        with open(status_path or STATUS_PATH, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return peak_rss_mb() if status_path is None else RSS_UNKNOWN
