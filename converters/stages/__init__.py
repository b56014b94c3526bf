"""The conversion stages, one module per group; each takes the shared :class:`facelm.converters.state.StageState`.

- :mod:`.onnx`: ``model.onnx`` (onnxruntime parity and drift vs torch; an ONNX source is the reference).
- :mod:`.tflite`: onnx2tf in the background and every TFLite variant as it is written.
- :mod:`.mixed`: ``int8_mixed.tflite`` (``--keep-float``).
- :mod:`.tvm`: TVM host / Android from ONNX, and ``tvm_int8`` from ``int8.tflite``.
- :mod:`.publish`: deferred latencies, gates, ``manifest.json`` and ``report.md``.

The ``--arm64-check`` stages are :mod:`facelm.converters.arm64_check`. The order in which
they run is :func:`facelm.converters.pipeline.convert`'s.
"""
