"""The app kit (``facelm app-kit``): its files, its C/JNI golden tests, the LiteRT C example and bad input.

The kits are built from the session's converted tiny model (tests/conftest.py ``converted``;
random weights, so the landmarks mean nothing, but C-vs-Python agreement is what is tested).
Set ``FACELM_APPKIT_ARTIFACTS`` to an existing artifact folder to skip that conversion while
working on this file.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facelm.errors import FacelmError
from facelm.appkit import GOLDEN_LANDMARK_TOL_PX, KitError, build_kit, model_params_header
from facelm.runtime import load_manifest

ARM64_LIBC = Path("/usr/aarch64-linux-gnu")
#: Five points of skimage.data.astronaut() (512x512), picked by hand on a 4x zoom of the face
#: (pupil centres, nose tip, mouth corners); the Haar cascade's eye boxes agree within 1 px.
ASTRONAUT_FIVE = np.array([[202.5, 101.8], [246.3, 103.3], [226.3, 126.3], [205.0, 141.3], [243.8, 142.0]])


def _make(kit: Path, *targets: str, **variables: str) -> subprocess.CompletedProcess:
    cmd = ["make", "-s", "-C", str(kit), *targets, *(f"{k}={v}" for k, v in variables.items())]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def _need(*tools: str, package: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip(f"no {', '.join(missing)} (apt-get install -y {package})")


def _litert_dir() -> Path:
    import ai_edge_litert

    return Path(ai_edge_litert.__file__).resolve().parent


@pytest.fixture(scope="module")
def artifacts(request) -> Path:
    override = os.environ.get("FACELM_APPKIT_ARTIFACTS")
    if override:
        return Path(override)
    _, folder = request.getfixturevalue("converted")
    return folder


def _astronaut():
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="module")
def kit_i8(artifacts, tmp_path_factory) -> Path:
    """Kit of the int8-in/int8-out artifact, with the astronaut as a fourth golden case."""
    out = tmp_path_factory.mktemp("kits") / "kit_int8_io"
    result = build_kit(artifacts, out, artifact="int8_io", extra_cases=[("skimage.data.astronaut", _astronaut(), ASTRONAUT_FIVE)])
    assert result.path == out and len(result.cases) == 4
    return out


@pytest.fixture(scope="module")
def kit_f32(artifacts, tmp_path_factory) -> Path:
    """Kit of the int8 artifact with float input and output (the default --artifact)."""
    out = tmp_path_factory.mktemp("kits") / "kit_int8"
    build_kit(artifacts, out)
    return out


# ------------------------------------------------------------------------------ contents
def test_kit_files_and_manifest(kit_i8, artifacts):
    for rel in ("model.tflite", "manifest.json", "README.md", "Makefile", "native/CMakeLists.txt",
                "native/facelm_landmarks.h", "native/facelm_landmarks.c", "native/facelm_model_params.h",
                "native/facelm_dark.c", "native/facelm_dark.h", "android/INTEGRATION.md", "android/jni/facelm_jni.c",
                "android/java/com/facelm/kit/FaceLandmarks.java"):
        assert (kit_i8 / rel).is_file(), rel
    kit = load_manifest(kit_i8)  # verifies model.tflite's sha256
    src = load_manifest(artifacts, verify=False)
    assert kit.names() == ["int8_io"] and kit.artifact("int8_io").file == "model.tflite"
    assert kit.artifact("int8_io").sha256 == src.artifact("int8_io").sha256
    assert kit.contract.to_dict() == src.contract.to_dict()
    assert not list(kit_i8.parent.glob(".kit_int8_io.*")), "temporary folder left behind"
    text = (kit_i8 / "README.md").read_text() + (kit_i8 / "Makefile").read_text() + (kit_i8 / "native/CMakeLists.txt").read_text()
    assert "{{" not in text and "int8_io" in text


def test_dark_core_is_the_codecs_one_copy(kit_i8):
    import facelm.codec

    csrc = Path(facelm.codec.__file__).parent / "csrc"
    for name in ("facelm_dark.c", "facelm_dark.h"):
        assert (kit_i8 / "native" / name).read_bytes() == (csrc / name).read_bytes()
    sources = {p.name: p.read_text() for p in (kit_i8 / "native").glob("*.c")}
    sources["facelm_jni.c"] = (kit_i8 / "android/jni/facelm_jni.c").read_text()
    defining = [n for n, s in sources.items() if re.search(r"^int facelm_decode_f32\(", s, re.M)]
    assert defining == ["facelm_dark.c"]
    assert "log(" not in sources["facelm_landmarks.c"]  # no second DARK (log-domain Newton step) anywhere else


def _header_numbers(text: str) -> list[float]:
    body = text[text.index("#define FACELM_MODEL_DESC_INIT"):]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    return [float(v) for v in re.findall(r"(?<![A-Z_\w])-?\d+(?:\.\d+)?(?:e-?\d+)?", body)]


def test_params_header_is_the_manifest(kit_i8):
    m = load_manifest(kit_i8)
    e = m.artifact("int8_io")
    header = (kit_i8 / "native/facelm_model_params.h").read_text()
    assert header == model_params_header(m, "int8_io")
    nums = _header_numbers(header)
    s = m.model.input_side
    h, w = m.model.heatmap_size
    want = [s, 0, *m.preprocess.normalization.mean, *m.preprocess.normalization.std,
            *[v for p in m.preprocess.five_point_template for v in p],
            e.input.quantization.scale, e.input.quantization.zero_point, m.model.num_keypoints, h, w, *m.model.stride,
            e.output.quantization.scale, e.output.quantization.zero_point, m.decode.blur_kernel]
    assert nums == want  # exact: written with repr, read back as the same doubles
    assert f'#define FACELM_MODEL_SHA256 "{e.sha256}"' in header


def test_golden_cases(kit_i8):
    m = load_manifest(kit_i8)
    cases = sorted((kit_i8 / "golden").glob("case_*.json"))
    assert len(cases) == 4
    s = m.model.input_side
    h, w = m.model.heatmap_size
    for c in cases:
        d = json.loads(c.read_text())
        assert np.asarray(d["landmarks"]).shape == (m.model.num_keypoints, 2)
        assert np.asarray(d["five_points"]).shape == (5, 2) and np.asarray(d["transform"]).shape == (2, 3)
        assert (kit_i8 / "golden" / d["input_tensor"]).stat().st_size == s * s * 3  # int8
        assert (kit_i8 / "golden" / d["raw_output"]).stat().st_size == h * w * m.model.num_keypoints
        assert d["tolerance"] == {"input_per_channel": [1.0, 1.0, 1.0], "input_units": "quantization steps",
                                  "landmarks_px": GOLDEN_LANDMARK_TOL_PX}
        assert (kit_i8 / "golden" / d["image"]).read_bytes()[:2] == b"P6"
    assert json.loads(cases[3].read_text())["source"] == "skimage.data.astronaut"


def test_golden_landmarks_are_the_landmarkers(kit_i8):
    """Case 3 (the astronaut) replayed through facelm.Landmarker on the kit folder itself."""
    from facelm import Landmarker

    d = json.loads((kit_i8 / "golden/case_003.json").read_text())
    with Landmarker.create_from_model_path(kit_i8, artifact="int8_io") as lm:
        got = lm.detect(_astronaut(), np.asarray(d["five_points"])).landmarks
    assert np.max(np.abs(got - np.asarray(d["landmarks"]))) < 1e-9


# ----------------------------------------------------------------------- native / JNI
def _passed(out: str, n_cases: int) -> None:
    assert out.count("PASS golden/case_") == n_cases and "PASS API checks" in out and "\nOK: " in "\n" + out, out


def test_native_golden(kit_i8, kit_f32):
    _need("cc", package="gcc")
    for kit, n in ((kit_i8, 4), (kit_f32, 3)):
        r = _make(kit, "test")
        assert r.returncode == 0, r.stdout + r.stderr
        _passed(r.stdout, n)
        # the warp is bit-exact with cv2.warpAffine: no input element differs at all
        assert r.stdout.count("(0 elements differ)") == n, r.stdout


def test_native_golden_can_fail(kit_i8, tmp_path):
    """Tampered goldens (0.06 px on one landmark; 2 steps on one input element) fail the driver."""
    _need("cc", package="gcc")
    exe = kit_i8 / "build/host/facelm_golden_test"
    if not exe.exists():
        assert _make(kit_i8, "test").returncode == 0
    src = kit_i8 / "golden"
    for f in src.glob("case_000.*"):
        shutil.copy(f, tmp_path / f.name)
    d = json.loads((src / "case_000.json").read_text())
    d["landmarks"][17][1] += 0.06
    (tmp_path / "case_000.json").write_text(json.dumps(d))
    raw = np.fromfile(src / "case_001.input.bin", np.int8)
    raw[1000] += 2 if raw[1000] <= 125 else -2
    for f in src.glob("case_001.*"):
        shutil.copy(f, tmp_path / f.name)
    raw.tofile(tmp_path / "case_001.input.bin")
    r = subprocess.run([str(exe), str(tmp_path / "case_000.json"), str(tmp_path / "case_001.json")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith("FAIL") and "landmarks max err 6.0" in lines[0], r.stdout
    assert any(line.startswith("FAIL") and "input element 1000 differs by 2" in line for line in lines), r.stdout


def test_arm64_golden_under_qemu(kit_i8):
    _need("aarch64-linux-gnu-gcc", "qemu-aarch64", package="gcc-aarch64-linux-gnu qemu-user")
    if not (ARM64_LIBC / "lib").is_dir():
        pytest.skip(f"no aarch64 libc in {ARM64_LIBC} (apt-get install -y gcc-aarch64-linux-gnu)")
    r = _make(kit_i8, "test-arm64")
    assert r.returncode == 0, r.stdout + r.stderr
    _passed(r.stdout, 4)
    assert r.stdout.count("(0 elements differ)") == 4


def test_jni_golden_on_host_jvm(kit_i8):
    _need("javac", "java", "cc", package="default-jdk-headless")
    r = _make(kit_i8, "test-jni")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("PASS golden/case_") == 4 and "PASS API checks" in r.stdout and "OK: 5 of 5" in r.stdout


def test_missing_toolchains_name_the_package(kit_i8):
    cases = [
        (("test",), {"CC": "no-such-cc"}, "apt-get install -y gcc"),
        (("test-arm64",), {"CROSS_CC": "no-such-cc"}, "apt-get install -y gcc-aarch64-linux-gnu"),
        (("test-arm64",), {"CROSS_CC": "cc", "QEMU": "no-such-qemu"}, "apt-get install -y qemu-user"),
        (("test-jni",), {"JAVAC": "no-such-javac"}, "apt-get install -y default-jdk-headless"),
        (("test-jni",), {"JDK_HOME": "/nonexistent"}, "no jni.h"),
    ]
    for targets, variables, needle in cases:
        if "JDK_HOME" in variables and shutil.which("javac") is None:
            continue
        r = _make(kit_i8, *targets, **variables)
        assert r.returncode != 0
        lines = [line for line in r.stdout.splitlines() if line.strip()]
        assert len(lines) == 1 and needle in lines[0], (variables, r.stdout)


def test_cmake_builds_the_library_and_test(kit_i8, tmp_path):
    _need("cmake", "cc", package="cmake gcc")
    build = tmp_path / "b"
    r = subprocess.run(["cmake", "-S", str(kit_i8 / "native"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    cases = sorted(str(p) for p in (kit_i8 / "golden").glob("case_*.json"))
    r = subprocess.run([str(build / "facelm_golden_test"), *cases], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout


# --------------------------------------------------------------------- LiteRT C API
@pytest.mark.parametrize("which", ["int8_io", "int8"])
def test_litert_c_example_matches_landmarker(which, kit_i8, kit_f32):
    """image -> landmarks in C through libLiteRt.so's C API == facelm.Landmarker (0.05 px)."""
    _need("cc", package="gcc")
    from facelm import Landmarker

    kit = kit_i8 if which == "int8_io" else kit_f32
    lib = _litert_dir()
    r = _make(kit, "build/host/facelm_example", LITERT_LIB=str(lib))
    assert r.returncode == 0, r.stdout + r.stderr
    d = json.loads((kit / "golden/case_000.json").read_text())
    ppm = kit / "golden" / d["image"]
    five = np.asarray(d["five_points"])
    out = subprocess.run([str(kit / "build/host/facelm_example"), str(kit / "model.tflite"), str(ppm),
                          *(repr(float(v)) for v in five.ravel())], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'metadata "facelm_manifest"' in out.stderr and "matches" in out.stderr
    got = np.loadtxt(out.stdout.splitlines())
    raw = ppm.read_bytes()
    image = np.frombuffer(raw[-d["width"] * d["height"] * 3:], np.uint8).reshape(d["height"], d["width"], 3)
    with Landmarker.create_from_model_path(kit, artifact=which) as lm:
        want = lm.detect(image, five).landmarks
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < GOLDEN_LANDMARK_TOL_PX


# ------------------------------------------------------------------------- bad input
def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_bad_input_one_line_nothing_written(artifacts, tmp_path, capsys):
    from facelm.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    before = _listing(tmp_path)
    with pytest.raises(KitError, match="no manifest.json"):
        build_kit(empty, tmp_path / "k")
    with pytest.raises(KitError, match=r"not a \.tflite"):
        build_kit(artifacts, tmp_path / "k", artifact="onnx")
    with pytest.raises(FacelmError, match="'nope'"):
        build_kit(artifacts, tmp_path / "k", artifact="nope")
    assert _listing(tmp_path) == before

    existing = tmp_path / "kit"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep")
    assert main(["app-kit", str(artifacts), "--out", str(existing)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "already exists" in err[0] and "--force" in err[0]
    assert _listing(existing) == ["mine.txt"]
    assert main(["app-kit", str(empty), "--out", str(tmp_path / "k2")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "manifest.json" in err[0]
    assert _listing(tmp_path) == sorted(before + ["kit"])


def test_force_replaces(artifacts, tmp_path, capsys):
    from facelm.cli import main

    out = tmp_path / "kit"
    out.mkdir()
    (out / "old.txt").write_text("old")
    assert main(["app-kit", str(artifacts), "--out", str(out), "--force", "--cases", "1"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert not (out / "old.txt").exists() and (out / "golden/case_000.json").is_file()
    assert not (out / "golden/case_001.json").exists()
    assert _listing(tmp_path) == ["kit"]
