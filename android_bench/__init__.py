"""On-device benchmarking over adb: device discovery, TFLite/TVM runners, drift, records, virtual device.

Filled by the android_bench issue.
"""
