"""Tiny TFLite models for the android_bench tests, built with TensorFlow at test time."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def build_heatmap_tflite(path: Path, size: int = 32, k: int = 5, stride: int = 4, seed: int = 0,
                         quantize: bool = False) -> Path:
    """Write a float32 .tflite: NHWC (1, size, size, 3) -> heatmaps (1, size/stride, size/stride, k).

    The graph is conv(3x3, stride 2) -> relu -> conv(3x3, stride 2) -> 1x1 conv to k
    channels. ``quantize`` applies dynamic-range int8 weight quantization (float I/O),
    so its outputs drift a little from the float model.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.3, (3, 3, 8, 32)).astype(np.float32))
    w3 = tf.constant(rng.normal(0, 0.2, (1, 1, 32, k)).astype(np.float32))
    if stride != 4:
        raise ValueError("the test model has stride 4")

    @tf.function(input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name="input")])
    def model(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 2, "SAME"))  # NHWC
        y = tf.nn.relu(tf.nn.conv2d(y, w2, 2, "SAME"))
        return tf.nn.conv2d(y, w3, 1, "SAME")

    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    if quantize:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    data = conv.convert()
    path = Path(path)
    path.write_bytes(data)
    return path


def build_big_tflite(path: Path, megabytes: float = 2.0, seed: int = 1) -> Path:
    """Write a float32 .tflite of about ``megabytes`` MB: (1, 16, 16, 8) -> dense -> (1, 16).

    Used where a test needs a transfer that takes many adb packets.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    rows = 16 * 16 * 8
    cols = max(1, int(megabytes * 1e6 / 4 / rows))
    w = tf.constant(rng.normal(0, 0.01, (rows, cols)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.1, (cols, 16)).astype(np.float32))

    @tf.function(input_signature=[tf.TensorSpec((1, 16, 16, 8), tf.float32, name="input")])
    def model(x):
        return tf.matmul(tf.nn.relu(tf.matmul(tf.reshape(x, (1, rows)), w)), w2)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    path = Path(path)
    path.write_bytes(conv.convert())
    return path
