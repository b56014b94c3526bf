"""On-device benchmarking over adb: device discovery, TFLite/TVM runners, drift, records, virtual device.

Public API:

* :func:`parse_benchmark_output` - parse any known ``benchmark_model`` output;
* :class:`facelm.android_bench.adb.Adb` - the real ``adb`` client with timeouts and device selection;
* :func:`facelm.android_bench.bench.bench` - benchmark artifacts on devices or on this host;
* :func:`facelm.android_bench.report.report` - Markdown/HTML table and latency plot;
* :class:`facelm.android_bench.virtual_device.VirtualDevice` - a loopback adb device for tests.
"""
from .parse import parse_benchmark_output

__all__ = ["parse_benchmark_output"]
