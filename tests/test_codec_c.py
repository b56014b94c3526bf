"""The C twin of the decoder: the CPython extension and the portable core agree with numpy.

Agreement is required to 1e-4 px (the issue); in practice the two are bit-identical because
they share the floating-point order (only libm's log could differ by an ulp).
"""
from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import facelm.codec as codec
from facelm.codec import core
from test_codec import bad_maps, gaussian_maps

ROOT = Path(__file__).resolve().parents[1]
CSRC = ROOT / "sdk" / "codec" / "csrc"
AGREE_TOL = 1e-4  # px

needs_ext = pytest.mark.skipif(core._cdark is None, reason="C extension not built (no compiler at install)")


def adversarial_float_maps(rng: np.random.Generator) -> np.ndarray:
    """(2, 40, 20, 24) float32: border peaks, plateaus, flat/zero/constant, singular, NaN/Inf."""
    h, w = 20, 24
    m = rng.normal(0, 1, (2, 40, h, w)).astype(np.float32)
    border = [(0, 0), (0, w - 1), (h - 1, 0), (h - 1, w - 1), (0, 7), (h - 1, 9), (5, 0), (6, w - 1),
              (1, 1), (1, w - 2), (h - 2, 1), (2, 2), (h - 3, w - 3), (3, 4), (4, 3), (h - 4, w - 5)]
    for i, (y, x) in enumerate(border):
        m[:, i] = gaussian_maps(np.array([[[x + 0.3, y - 0.2]]]), h, w, 1.5)[0, 0]
    m[:, 16] = 0.0
    m[:, 17] = 3.0
    m[:, 18] = -2.0
    m[:, 19] = np.nan
    m[:, 20, 4, 4] = np.inf
    m[:, 21, 9, 9] = -np.inf
    m[:, 22] = 1.0
    m[:, 22, 10, 12] = 2.0  # a spike on a plateau: blurred log-Hessian has equal parts
    m[:, 23] = -1.0
    m[:, 23, 10, 12] = -0.5  # all below the log floor: H = 0
    m[:, 24] = np.exp(-((np.arange(w) - 11.4) ** 2) / 6.0)[None, :]  # ridge: constant along y
    m[:, 25] = np.exp(-((np.arange(h) - 8.6) ** 2) / 6.0)[:, None]  # ridge: constant along x
    m[:, 26, 10:13, 10:13] = 50.0  # 3x3 plateau peak
    xx, yy = np.meshgrid(np.arange(w), np.arange(h))
    m[:, 27] = np.exp(-(((xx - 12.2) - (yy - 9.7)) ** 2) / 4.0 - ((xx - 12.2) + (yy - 9.7)) ** 2 / 400.0)  # tilted ridge
    m[:, 28] = (xx - 12) ** 2 - (yy - 10) ** 2 + 100.0  # saddle
    m[:, 29] = 1e-12
    m[:, 29, 10, 10] = 2e-12  # tiny positive values, below the log floor
    m[:, 30] = np.float32(3.4e38)
    m[:, 30, 5, 5] = np.inf
    m[:, 31] = np.finfo(np.float32).max
    m[:, 31, 0, 0] = 0  # huge but finite, peak at index 1
    m[1, 32:] = np.nan
    m[0, 33, 3, 3] = np.nan  # one NaN far from a normal peak
    return m


def both(maps, method, **kw):
    return codec.decode(maps, method, backend="c", **kw), codec.decode(maps, method, backend="numpy", **kw)


def assert_agree(a, b):
    (ca, sa), (cb, sb) = a, b
    assert np.all(np.isfinite(ca)) and np.all(np.isfinite(sa))
    np.testing.assert_allclose(ca, cb, atol=AGREE_TOL, rtol=0)
    np.testing.assert_allclose(sa, sb, rtol=1e-6, atol=0)


@needs_ext
@pytest.mark.parametrize("method", codec.METHODS)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("blur_kernel", [1, 5, 11, 17])
def test_c_matches_numpy_on_random_maps(method, layout, blur_kernel):
    rng = np.random.default_rng(blur_kernel)
    centres = rng.uniform(-1, 48, (2, 106, 2))
    maps = (gaussian_maps(centres, 48, 40, 2.0) + rng.normal(0, 0.1, (2, 106, 48, 40))).astype(np.float32)
    if layout == "nhwc":
        maps = np.ascontiguousarray(maps.transpose(0, 2, 3, 1))
    assert_agree(*both(maps, method, layout=layout, blur_kernel=blur_kernel))


@needs_ext
@pytest.mark.parametrize("method", codec.METHODS)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_c_matches_numpy_on_adversarial_maps(method, layout):
    maps = adversarial_float_maps(np.random.default_rng(0))
    bad, _ = bad_maps()
    for m in (maps, bad):
        if layout == "nhwc":
            m = np.ascontiguousarray(m.transpose(0, 2, 3, 1))
        for k in (1, 3, 11):
            assert_agree(*both(m, method, layout=layout, blur_kernel=k))
    (c, s), _ = both(maps, method)
    np.testing.assert_array_equal(s[1, 32:], 0.0)
    np.testing.assert_array_equal(s[:, 16:22], 0.0)


@needs_ext
@pytest.mark.parametrize("method", codec.METHODS)
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_c_matches_numpy_on_quantized_maps(method, layout):
    rng = np.random.default_rng(1)
    q = rng.integers(-128, 128, (2, 30, 17, 23)).astype(np.int8)
    q[:, :10] = -128
    q[:, 10:20] = rng.integers(-128, -100, (2, 10, 17, 23))
    for i, (y, x) in enumerate([(0, 0), (16, 22), (8, 11), (1, 21), (15, 2), (2, 2), (5, 9), (9, 5)]):
        q[:, 10 + i, y, x] = 127
    q[:, 20] = 127  # saturated: constant
    q[:, 21, 3:9, 4:12] = 127  # saturated plateau
    q[:, 22] = 0
    q[:, 22, 0, 0] = -1  # all but one equal: first max at index 1
    if layout == "nhwc":
        q = np.ascontiguousarray(q.transpose(0, 2, 3, 1))
    for zp, scale in ((-128, 0.004), (0, 1.0), (127, 1e-3)):
        assert_agree(*both(q, method, layout=layout, scale=scale, zero_point=zp))
        u = (q.astype(np.int16) + 128).astype(np.uint8)
        assert_agree(*both(u, method, layout=layout, scale=scale, zero_point=zp + 128))


@needs_ext
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_c_matches_numpy_near_borders(layout):
    """The second, model-padded pass for peaks whose kernel had to shrink (rule 5f)."""
    rng = np.random.default_rng(21)
    centres = rng.uniform(3.0, 44.0, (2, 106, 2))
    for a in range(2):
        d = rng.uniform(1.5, 7.5, (2, 106))
        centres[..., a] = np.where(rng.random((2, 106)) < 0.4, np.where(rng.random((2, 106)) < 0.5, d, 47 - d),
                                   centres[..., a])
    maps = (gaussian_maps(centres, 48, 48, 2.5) + rng.normal(0, 0.05, (2, 106, 48, 48))).astype(np.float32)
    q = np.clip(np.round(maps * 150) - 90, -128, 127).astype(np.int8)
    u = (q.astype(np.int16) + 128).astype(np.uint8)
    for m, kw in ((maps, {}), (q, {"scale": 1 / 150, "zero_point": -90}), (u, {"scale": 1 / 150, "zero_point": 38})):
        if layout == "nhwc":
            m = np.ascontiguousarray(m.transpose(0, 2, 3, 1))
        for k in (5, 11, 15):
            assert_agree(*both(m, "dark", layout=layout, blur_kernel=k, **kw))


@needs_ext
def test_c_extension_rejects_bad_buffers():
    from facelm.codec import _cdark

    m = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(ValueError):
        _cdark.decode(m, np.empty((1, 2, 3), np.float32), np.empty((1, 2), np.float32), 2, 11, False, 1.0, 0)
    with pytest.raises(TypeError):
        _cdark.decode(m.astype(np.float64), np.empty((1, 2, 2), np.float32), np.empty((1, 2), np.float32),
                      2, 11, False, 1.0, 0)
    with pytest.raises(ValueError):  # even kernel: the core's own argument check
        _cdark.decode(m, np.empty((1, 2, 2), np.float32), np.empty((1, 2), np.float32), 2, 4, False, 1.0, 0)


def _run_driver(cmd: list[str], maps: np.ndarray, method: int, blur_kernel: int, nhwc: bool,
                scale: float = 1.0, zero_point: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Run the driver argv ``cmd`` (the executable, or qemu + executable) on ``maps``."""
    dtype_code = {np.dtype(np.float32): 0, np.dtype(np.int8): 1, np.dtype(np.uint8): 2}[maps.dtype]
    if nhwc:
        n, h, w, k = maps.shape
    else:
        n, k, h, w = maps.shape
    hdr = np.array([dtype_code, int(nhwc), method, blur_kernel, n, k, h, w], np.int32).tobytes()
    payload = hdr + np.float64(scale).tobytes() + np.int32(zero_point).tobytes() + maps.tobytes()
    out = subprocess.run(cmd, input=payload, capture_output=True, timeout=120, check=True).stdout
    vals = np.frombuffer(out, np.float32)
    return vals[: n * k * 2].reshape(n, k, 2), vals[n * k * 2:].reshape(n, k)


#: Builds of the core: default (on x86-64: SSE2 intrinsics plus AVX2 kernels chosen at run
#: time), SSE2 only (no run-time dispatch), AVX2 at compile time (-mavx2, where this CPU has
#: it), the generic vector-extension path other targets (ARM NEON) take, and plain C99 loops.
CORE_VARIANTS = {"default": [], "sse2_only": ["-DFACELM_NO_DISPATCH"], "avx2_compiled": ["-mavx2"],
                 "generic_vectors": ["-U__SSE2__"], "plain_c99": ["-DFACELM_NO_VECTOR_EXT"]}


def _cpu_has_avx2() -> bool:
    try:
        return " avx2 " in Path("/proc/cpuinfo").read_text().replace("\n", " ") + " "
    except OSError:
        return False


def _build_driver(cc: str, flags: list[str], exe: Path) -> Path:
    cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-pedantic", "-Werror", *flags,
           f"-I{CSRC}", str(ROOT / "tests" / "c" / "facelm_dark_driver.c"), str(CSRC / "facelm_dark.c"),
           "-o", str(exe), "-lm"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return exe


#: aarch64 builds, run under qemu-user with the cross toolchain's own sysroot (a C program
#: needs only glibc): the default build (NEON through the vector extensions) and plain C99.
ARM64_VARIANTS = {"aarch64_neon": [], "aarch64_plain_c99": ["-DFACELM_NO_VECTOR_EXT"]}
ARM64_CC = "aarch64-linux-gnu-gcc"
ARM64_LIBC = Path("/usr/aarch64-linux-gnu")


@pytest.fixture(scope="module", params=list(CORE_VARIANTS) + list(ARM64_VARIANTS))
def driver(request, tmp_path_factory) -> list[str]:
    """argv running the portable core's driver, one per build variant (x86 and aarch64)."""
    exe = tmp_path_factory.mktemp("cdriver") / f"facelm_dark_driver_{request.param}"
    if request.param in ARM64_VARIANTS:
        missing = [t for t in (ARM64_CC, "qemu-aarch64") if shutil.which(t) is None]
        if missing or not ARM64_LIBC.is_dir():
            pytest.skip(f"no {', '.join(missing) or ARM64_LIBC} (apt-get install qemu-user gcc-aarch64-linux-gnu)")
        _build_driver(ARM64_CC, ARM64_VARIANTS[request.param], exe)
        return ["qemu-aarch64", "-L", str(ARM64_LIBC), str(exe)]
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no system C compiler")
    flags = CORE_VARIANTS[request.param]
    if "-mavx2" in flags and not (platform.machine() in ("x86_64", "AMD64") and _cpu_has_avx2()):
        pytest.skip("this CPU has no AVX2")
    return [str(_build_driver(cc, flags, exe))]


@pytest.mark.parametrize("method", codec.METHODS)
def test_portable_core_alone_matches_numpy(driver, method):
    """The core compiled without Python (as an app would, via the NDK) gives numpy's answer."""
    mcode = {"argmax": 0, "quarter": 1, "dark": 2}[method]
    rng = np.random.default_rng(9)
    centres = rng.uniform(-1, 48, (2, 106, 2))
    maps = (gaussian_maps(centres, 48, 48, 2.0) + rng.normal(0, 0.05, (2, 106, 48, 48))).astype(np.float32)
    adv = adversarial_float_maps(rng)
    # 37x29 = 1073 values: not a multiple of any vector block, so every search has a tail
    odd = (gaussian_maps(rng.uniform(-1, 38, (1, 106, 2)), 37, 29, 1.5)
           + rng.normal(0, 0.05, (1, 106, 37, 29))).astype(np.float32)
    cases = [(maps, False, {}), (np.ascontiguousarray(maps.transpose(0, 2, 3, 1)), True, {}),
             (adv, False, {}), (np.ascontiguousarray(adv.transpose(0, 2, 3, 1)), True, {}),
             (odd, False, {}), (np.ascontiguousarray(odd.transpose(0, 2, 3, 1)), True, {})]
    for m in (maps, odd):
        q = np.clip(np.round(m * 120) - 100, -128, 127).astype(np.int8)
        u = (q.astype(np.int16) + 128).astype(np.uint8)
        for qm, zp in ((q, -100), (u, 28)):
            cases.append((qm, False, {"scale": 1 / 120, "zero_point": zp}))
            cases.append((np.ascontiguousarray(qm.transpose(0, 2, 3, 1)), True, {"scale": 1 / 120, "zero_point": zp}))
    for m, nhwc, quant in cases:
        c, s = _run_driver(driver, m, mcode, 11, nhwc, quant.get("scale", 1.0), quant.get("zero_point", 0))
        rc, rs = codec.decode(m, method, layout="nhwc" if nhwc else "nchw", backend="numpy", **quant)
        np.testing.assert_allclose(c, rc, atol=AGREE_TOL, rtol=0)
        np.testing.assert_allclose(s, rs, rtol=1e-6)


def test_portable_core_rejects_bad_arguments(driver):
    m = np.zeros((1, 1, 4, 4), np.float32)
    with pytest.raises(subprocess.CalledProcessError) as exc:
        _run_driver(driver, m, 2, 4, False)  # even blur kernel
    assert exc.value.returncode == 101
    with pytest.raises(subprocess.CalledProcessError):
        _run_driver(driver, m.astype(np.int8), 2, 11, False, scale=0.0)
    with pytest.raises(subprocess.CalledProcessError):
        _run_driver(driver, m, 7, 11, False)  # unknown method


def _header_defines() -> dict[str, str]:
    """``#define FACELM_NAME VALUE`` lines of facelm_dark.h (comments stripped)."""
    import re

    text = re.sub(r"/\*.*?\*/", "", (CSRC / "facelm_dark.h").read_text(), flags=re.S)
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"^#define (FACELM_\w+)[ \t]+(.+)$", text, re.M)}


def _c_number(token: str) -> float:
    """A C numeric literal as written in the header: ``1e-10``, ``0.0f``, ``(-1)``, ``61``."""
    return float(token.strip("()").rstrip("fF"))


def test_header_decode_constants_match_python_config():
    """The C core's decode constants are the Python config's (one source of truth, checked)."""
    from facelm.codec import config
    from facelm.errors import ConfigError

    defines = _header_defines()
    block = (CSRC / "facelm_dark.h").read_text().split("/* The constants of sdk/codec/config.py. */", 1)[1]
    in_block = {line.split()[1] for line in block.split("\n\n", 1)[0].splitlines() if line.startswith("#define")}
    twins = {"FACELM_LOG_FLOOR": config.LOG_FLOOR, "FACELM_MIN_SHRUNK_RADIUS": config.MIN_SHRUNK_RADIUS,
             "FACELM_MAX_OFFSET": config.MAX_OFFSET, "FACELM_DET_REL_EPS": config.DET_REL_EPS,
             "FACELM_MODEL_MIN_VAR": config.MODEL_MIN_VAR, "FACELM_INVALID_SCORE": config.INVALID_SCORE}
    # every constant of the block has a Python twin (a new C constant needs one here)
    assert in_block == set(twins) | {"FACELM_MAX_BLUR_KERNEL"}, sorted(in_block)
    for name, value in twins.items():
        assert _c_number(defines[name]) == value, (name, defines[name], value)
    # the largest kernel: Python's DecodeConfig accepts it and rejects the next odd size
    kmax = int(_c_number(defines["FACELM_MAX_BLUR_KERNEL"]))
    assert config.DecodeConfig(blur_kernel=kmax).blur_kernel == kmax
    with pytest.raises(ConfigError):
        config.DecodeConfig(blur_kernel=kmax + 2)
    # method and layout codes as the Python side passes them
    assert {m: int(_c_number(defines[f"FACELM_METHOD_{m.upper()}"])) for m in config.METHODS} == core._METHOD_CODES
    assert [int(_c_number(defines[f"FACELM_LAYOUT_{lay.upper()}"])) for lay in config.LAYOUTS] == list(range(len(config.LAYOUTS)))
