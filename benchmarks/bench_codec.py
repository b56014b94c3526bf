"""Benchmark the heatmap decoder (single thread, medians): `python benchmarks/bench_codec.py`.

Cases (issue 7): ``dark`` on (1,106,48,48) and (1,106,96,96), float32 and int8, and a batch
of (64,106,48,48). Baselines measured in the same run:
- DarkPose-style reference (benchmarks/darkpose_baseline.py): Python loop per keypoint and
  ``cv2.GaussianBlur`` of every whole map (float32 input; it has no int8 path, so int8 rows
  time it on the dequantized maps);
- numpy ``argmax`` over the same tensor (the floor: no decoder can do less than find peaks).
Targets: >= 50x faster than the reference, <= 3x the argmax floor. Also prints accuracy
(mean error, px) of ours vs the reference on noisy Gaussians, interior vs near the border.

"ours, C" is the extension as installed (on x86-64 it picks its AVX2 kernels at run time
when the CPU has them). "C, SSE2 only" is the same portable core compiled here with the
system C compiler and -DFACELM_NO_DISPATCH (the baseline x86-64 path, what a CPU without
AVX2 runs), called through ctypes; skipped when no compiler is found.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import darkpose_baseline  # noqa: E402

import facelm.codec as codec  # noqa: E402

cv2.setNumThreads(1)
CSRC = Path(__file__).resolve().parents[1] / "sdk" / "codec" / "csrc"


class _Params(ctypes.Structure):
    _fields_ = [("method", ctypes.c_int), ("blur_kernel", ctypes.c_int), ("layout", ctypes.c_int)]


def build_core(tmp: Path, flags: list[str]):
    """The portable core as a shared library (system cc, -O3 -std=c99), or None without a compiler."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        return None
    lib = tmp / "libfacelm_dark.so"
    res = subprocess.run([cc, "-O3", "-std=c99", "-fno-math-errno", "-fPIC", "-shared", *flags, f"-I{CSRC}",
                          str(CSRC / "facelm_dark.c"), "-o", str(lib), "-lm"], capture_output=True, text=True)
    if res.returncode != 0:
        print(f"(core build failed: {res.stderr.strip()[:200]})")
        return None
    core = ctypes.CDLL(str(lib))
    core.facelm_workspace_size.restype = ctypes.c_size_t
    return core


def core_decoder(core, tensor: np.ndarray, kw: dict):
    """A zero-argument callable decoding tensor (NCHW, dark, k=11) with the ctypes core."""
    n, k, h, w = tensor.shape
    coords = np.empty((n, k, 2), np.float32)
    scores = np.empty((n, k), np.float32)
    ws_bytes = core.facelm_workspace_size(k, 11)
    ws = np.empty(max(ws_bytes, 1), np.uint8)
    params = _Params(2, 11, 0)
    ptr = ctypes.c_void_p
    args_out = (ctypes.byref(params), ptr(coords.ctypes.data), ptr(scores.ctypes.data), ptr(ws.ctypes.data),
                ctypes.c_size_t(ws_bytes))
    dims = (ctypes.c_int(n), ctypes.c_int(k), ctypes.c_int(h), ctypes.c_int(w))
    data = ptr(tensor.ctypes.data)
    keep = (tensor, coords, scores, ws)  # the raw pointers above must outlive the callable
    if tensor.dtype == np.int8:
        fn = core.facelm_decode_i8
        quant = (ctypes.c_double(kw["scale"]), ctypes.c_int32(kw["zero_point"]))
        return lambda keep=keep: fn(data, *dims, *quant, *args_out)
    fn = core.facelm_decode_f32
    return lambda keep=keep: fn(data, *dims, *args_out)


def median_time(fn, min_runs: int, min_seconds: float) -> float:
    """Median wall time of fn() in seconds over at least min_runs runs and min_seconds."""
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def make_maps(shape, rng, sigma=2.0, noise=0.02):
    n, k, h, w = shape
    pts = rng.uniform(3, w - 4, (n, k, 2))
    maps, _ = codec.encode(pts, (w, h), sigma=sigma)
    return (maps + rng.normal(0, noise, maps.shape).astype(np.float32)).astype(np.float32)


def quantize(maps):
    scale, zp = 1.0 / 200, -100
    return np.clip(np.round(maps / scale) + zp, -128, 127).astype(np.int8), scale, zp


def fmt_us(t):
    return f"{t * 1e6:,.0f}" if t >= 1e-4 else f"{t * 1e6:.1f}"


def speed_table(quick: bool, core) -> list[str]:
    rng = np.random.default_rng(0)
    cases = [((1, 106, 48, 48), "float32"), ((1, 106, 48, 48), "int8"),
             ((1, 106, 96, 96), "float32"), ((1, 106, 96, 96), "int8"),
             ((64, 106, 48, 48), "float32"), ((64, 106, 48, 48), "int8")]
    runs = 20 if quick else 200
    rows = ["| case | dtype | ours, C (us) | C, SSE2 only (us) | ours, numpy (us) | DarkPose-style (us) | "
            "argmax floor (us) | speed-up vs DarkPose | x argmax floor | SSE2 only: x floor |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for shape, dtype in cases:
        maps = make_maps(shape, rng)
        n, k, h, w = shape
        if dtype == "int8":
            q, scale, zp = quantize(maps)
            tensor, kw = q, {"scale": scale, "zero_point": zp}
            deq = ((q.astype(np.float32) - zp) * scale).astype(np.float32)
        else:
            tensor, kw, deq = maps, {}, maps
        flat = tensor.reshape(n * k, h * w)
        t_floor = median_time(lambda: flat.argmax(axis=1), runs, 0.3)
        t_c = median_time(lambda: codec.decode(tensor, "dark", backend="c", **kw), runs, 0.3) \
            if codec.backend() == "c" else float("nan")
        t_sse = median_time(core_decoder(core, tensor, kw), runs, 0.3) if core is not None else float("nan")
        t_np = median_time(lambda: codec.decode(tensor, "dark", backend="numpy", **kw), max(3, runs // 20), 0.3)
        ref_runs = 1 if n > 1 else (3 if quick else 7)
        t_ref = median_time(lambda: darkpose_baseline.decode_darkpose(deq, 11), ref_runs, 0.0)
        rows.append(f"| ({n},{k},{h},{w}) | {dtype} | {fmt_us(t_c)} | {fmt_us(t_sse)} | {fmt_us(t_np)} | "
                    f"{fmt_us(t_ref)} | {fmt_us(t_floor)} | {t_ref / t_c:,.0f}x | {t_c / t_floor:.2f}x | "
                    f"{t_sse / t_floor:.2f}x |")
    return rows


def accuracy_table() -> list[str]:
    """Mean error (px) on noisy unbiased Gaussians, 48x48, centres >= 3 px from the border."""
    rows = ["| sigma | noise | ours: all | DarkPose: all | ours: interior | DarkPose: interior | "
            "ours: near border | DarkPose: near border |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for sigma, noise in [(1.0, 0.0), (3.0, 0.0), (1.5, 0.02), (2.0, 0.02), (3.0, 0.02), (2.0, 0.05),
                         (1.0, 0.1), (1.5, 0.1), (2.0, 0.1), (3.0, 0.1)]:
        rng = np.random.default_rng(int(sigma * 100 + noise * 1000))
        pts = rng.uniform(3, 44, (8, 106, 2))
        ys, xs = np.mgrid[0:48, 0:48]
        maps = np.exp(-((xs - pts[..., 0, None, None]) ** 2 + (ys - pts[..., 1, None, None]) ** 2)
                      / (2 * sigma**2)) + rng.normal(0, noise, (8, 106, 48, 48))
        maps = maps.astype(np.float32)
        ours = np.linalg.norm(codec.decode(maps)[0] - pts, axis=-1)
        ref = np.linalg.norm(darkpose_baseline.decode_darkpose(maps, 11)[0] - pts, axis=-1)
        peaks = codec.decode(maps, "argmax")[0]
        inner = np.all((peaks >= 7) & (peaks <= 40), axis=-1)
        rows.append(f"| {sigma} | {noise} | {ours.mean():.4f} | {ref.mean():.4f} | {ours[inner].mean():.4f} | "
                    f"{ref[inner].mean():.4f} | {ours[~inner].mean():.4f} | {ref[~inner].mean():.4f} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer runs (smoke test)")
    args = ap.parse_args()
    print(f"backend={codec.backend()}  numpy={np.__version__}  opencv={cv2.__version__}  single thread\n")
    with tempfile.TemporaryDirectory() as tmp:
        core = build_core(Path(tmp), ["-DFACELM_NO_DISPATCH"])
        print("\n".join(speed_table(args.quick, core)))
    print()
    print("\n".join(accuracy_table()))


if __name__ == "__main__":
    main()
