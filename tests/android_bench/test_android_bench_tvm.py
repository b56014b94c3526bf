"""TVM: the host .so locally, and over RPC through adb forward to the virtual device's tvm_rpc."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from facelm.android_bench.bench import bench
from facelm.android_bench.config import BenchOptions

pytestmark = [pytest.mark.timeout(150),
              pytest.mark.skipif(importlib.util.find_spec("tvm") is None, reason="TVM is not installed")]

SHAPE = (1, 3, 16, 16)


@pytest.fixture(scope="module")
def tvm_dir(tmp_path_factory):
    """A manifest folder with one TVM host library: conv3x3 (4 filters) + relu, NCHW."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from facelm.converters.tvm import compile_host
    from facelm.runtime.manifest import Manifest, ModelContract, TensorSpec, artifact_entry_for, write_manifest

    d = tmp_path_factory.mktemp("tvm")
    w = np.random.default_rng(0).normal(size=(106, 3, 3, 3)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["output"])],
        "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(SHAPE))],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 106, 16, 16])], [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), d / "tiny.onnx")
    compile_host(d / "tiny.onnx", d / "tvm" / "host.so", SHAPE)
    entry = artifact_entry_for(d, "tvm_host", target={"kind": "llvm"},
                               input=TensorSpec("input", tuple(SHAPE), "NCHW", "float32"),
                               output=TensorSpec("output", (1, 106, 16, 16), "NCHW", "float32"))
    contract = ModelContract.build("conv-relu", "jd106", 16, 16, source="onnx", output_name="output")
    write_manifest(Manifest(facelm_version="test", contract=contract, tools={}, artifacts=[entry]), d)
    return d, w


def test_local_tvm(tvm_dir):
    d, _ = tvm_dir
    res = bench(d, BenchOptions(runs=5, warmup=1, threads=1), local=True, results=None, allow_native_code=True)
    (r,) = res.records
    assert r["backend"] == "local-tvm" and r["status"] == "ok"
    assert r["latency_ms"]["count"] == 5 and r["latency_ms"]["basis"] == "per-run"


@pytest.fixture
def vdev_process(adb, tmp_path):
    """A virtual device in its own process (``facelm virtual-device``).

    The TVM RPC client blocks in native code holding the GIL while it closes its
    session, so the device relaying that session must not live in this process.
    """
    env = {**os.environ, "HOME": adb.env["HOME"]}
    proc = subprocess.Popen(
        [sys.executable, "-m", "facelm.cli", "virtual-device", "--port", "0", "--sandbox", str(tmp_path / "sb"),
         "--connect", "--adb-port", str(adb.server_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    first = proc.stdout.readline()
    serial = first.split("listening on ")[1].split(";")[0] if "listening on " in first else None
    try:
        assert serial, first
        assert "adb connect" in proc.stdout.readline()
        yield serial, tmp_path / "sb"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        if serial:
            adb.disconnect(serial)


def test_tvm_over_rpc_on_virtual_device(adb, vdev_process, tvm_dir):
    from facelm.runtime import TensorSpec
    from facelm.android_bench.tvm_runners import TvmRpcRunner

    serial, sandbox = vdev_process
    d, w = tvm_dir
    res = bench(d, BenchOptions(runs=5, warmup=1, timeout_s=30), serials=[serial], adb=adb, results=None,
                artifacts=["tvm_host"], tvm_rpc="/data/local/tmp/tvm_rpc", tvm_port=_free_port())
    (r,) = res.records
    assert r["backend"] == "tvm-rpc" and r["status"] == "ok" and r["latency_ms"]["count"] == 5
    assert r["device"]["big_core_mask"] == "f0"
    # outputs come back over RPC and match a numpy convolution
    x = np.random.default_rng(1).normal(size=SHAPE).astype(np.float32)
    runner = TvmRpcRunner(adb, serial, BenchOptions(timeout_s=30), "/data/local/tmp/tvm_rpc", _free_port())
    try:
        runner.setup()
        name = runner.prepare(d / "tvm" / "host.so")
        info = [TensorSpec("input", SHAPE, "NCHW", "float32")]
        (out,) = runner.outputs(name, info, [TensorSpec("output", (1, 106, 16, 16), "NCHW", "float32")], [[x.tobytes()]])
    finally:
        runner.close()
    pad = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    ref = np.zeros((106, 16, 16), np.float32)
    for i in range(16):
        for j in range(16):
            ref[:, i, j] = np.tensordot(w, pad[:, i:i + 3, j:j + 3], axes=([1, 2, 3], [0, 1, 2]))
    np.testing.assert_allclose(out[0][0], np.maximum(ref, 0), atol=1e-4)
    assert not (sandbox / "data/local/tmp/facelm").exists()  # pid/log files cleaned up


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
