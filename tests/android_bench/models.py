"""Tiny TFLite models for the android_bench tests, built with TensorFlow at test time."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np


def build_heatmap_tflite(path: Path, size: int = 32, k: int = 5, stride: int = 4, seed: int = 0) -> Path:
    """Write a float32 .tflite: NHWC (1, size, size, 3) -> heatmaps (1, size/stride, size/stride, k).

    The graph is conv(3x3, stride 2) -> relu -> conv(3x3, stride 2) -> 1x1 conv to k
    channels, so outputs depend on every input pixel neighbourhood (drift is real).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    w1 = tf.constant(rng.normal(0, 0.3, (3, 3, 3, 8)).astype(np.float32))
    w2 = tf.constant(rng.normal(0, 0.3, (3, 3, 8, 8)).astype(np.float32))
    w3 = tf.constant(rng.normal(0, 0.3, (1, 1, 8, k)).astype(np.float32))
    assert stride == 4

    @tf.function(input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name="input")])
    def model(x):
        y = tf.nn.relu(tf.nn.conv2d(x, w1, 2, "SAME"))
        y = tf.nn.relu(tf.nn.conv2d(y, w2, 2, "SAME"))
        return tf.nn.conv2d(y, w3, 1, "SAME")

    conv = tf.lite.TFLiteConverter.from_concrete_functions([model.get_concrete_function()], model)
    data = conv.convert()
    path = Path(path)
    path.write_bytes(data)
    return path
