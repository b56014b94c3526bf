"""Conversion chain: PyTorch -> ONNX -> TFLite (onnx2tf: fp32, fp16, dynamic int8, int8) and -> TVM (relax).

Filled by the conversion issue.
"""
