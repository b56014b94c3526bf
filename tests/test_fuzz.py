"""Fuzz (issue 12): mutated manifests and decode arguments end in success or a FacelmError.

Seeded, a few hundred cases each, a few seconds in all. Any other exception type fails the
test with the case that caused it; decode runs in a subprocess so that a crash of the C
codec is a failure, not a dead test run.
"""
from __future__ import annotations

import copy
import json
import math
import random
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest

from facelm.errors import FacelmError

sys.path.insert(0, str(Path(__file__).parent))

N_MANIFEST = 300
N_DECODE = 400


def _paths(node, prefix=()):
    """Every (path, value) in a JSON tree."""
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _junk(rng: random.Random):
    return rng.choice([
        None, True, False, 0, -1, 1, 2**63, -(2**70), 10**400, 1e308, -1e-320, math.nan, math.inf, -math.inf,
        0.5, "", "x", "../../etc/passwd", "/etc/passwd", "NCHW", "int8", "a" * 10_000, "\u00e9\x00", [], [1, 2],
        [[0, 0]] * 5, {}, {"scale": 0.1, "zero_point": 0}, {"a": {"b": {"c": []}}}, [None] * 3,
        "0" * 64, "f" * 64,
    ])


def _mutate(rng: random.Random, d: dict):
    d = copy.deepcopy(d)
    kind = rng.random()
    paths = [p for p, _ in _paths(d) if p]
    path = rng.choice(paths)
    parent = d
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if kind < 0.55:
        parent[last] = _junk(rng)
    elif kind < 0.7 and isinstance(parent, dict):
        del parent[last]
    elif kind < 0.8 and isinstance(parent, list):
        parent.append(copy.deepcopy(parent[last]))  # duplicates (artifacts twice, 6 template points)
    elif kind < 0.9:
        value = parent[last]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            parent[last] = rng.choice([value * 1e6, -value, value + 0.5, value * 1e-30, 0])
        else:
            parent[last] = _junk(rng)
    else:
        for _ in range(rng.randint(2, 6)):  # several at once
            d = _mutate(rng, d)
    return d


def test_fuzz_manifests(tmp_path):
    from test_runtime import _manifest

    from facelm.runtime import load_manifest, write_manifest

    write_manifest(_manifest(tmp_path, ("fp32", "int8")), tmp_path)
    base = json.loads((tmp_path / "manifest.json").read_text())
    base_text = (tmp_path / "manifest.json").read_bytes()
    rng = random.Random(12)
    outcomes = {"ok": 0, "error": 0}
    unexpected = []
    for i in range(N_MANIFEST):
        if i % 5 == 4:  # byte-level damage of the JSON text
            data = bytearray(base_text)
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            text = bytes(data[: rng.randint(0, len(data))] if rng.random() < 0.3 else data)
        else:
            text = json.dumps(_mutate(rng, base)).encode()
        (tmp_path / "manifest.json").write_bytes(text)
        try:
            m = load_manifest(tmp_path)
            # what loaded must be usable: typed sections and paths of verified artifacts
            for name in m.names():
                m.artifact_path(name)
            assert m.model.input_size[0] >= 1 and len(m.preprocess.normalization.std) == 3
            outcomes["ok"] += 1
        except FacelmError:
            outcomes["error"] += 1
        except Exception as exc:  # noqa: BLE001 - the point of the test
            where = traceback.extract_tb(exc.__traceback__)[-1]
            unexpected.append((i, type(exc).__name__, str(exc)[:80], f"{Path(where.filename).name}:{where.lineno}",
                               text[:300]))
    # Known gap, reported to the lead (facelm/runtime/manifest.py, owned there): math.isfinite() of a
    # JSON integer beyond float range (10**400) raises OverflowError instead of a ManifestError.
    known = [u for u in unexpected if u[1] == "OverflowError" and u[3].startswith("manifest.py:")]
    others = [u for u in unexpected if u not in known]
    if others:
        pytest.fail("not a FacelmError:\n" + "\n".join(f"case {i}: {t}: {m} at {w}\n  {x!r}" for i, t, m, w, x in others))
    assert outcomes["error"] > N_MANIFEST // 2 and outcomes["ok"] > 0, outcomes  # the fuzz reaches both ends
    if known:
        pytest.xfail(f"known gap: {len(known)} manifests with an integer beyond float range raise OverflowError "
                     f"at {sorted({u[3] for u in known})}")


_DECODE_FUZZ = textwrap.dedent('''
    import math, random, sys, traceback
    import numpy as np
    from facelm.codec import backend, decode
    from facelm.errors import FacelmError

    rng = random.Random(int(sys.argv[1]))
    n = int(sys.argv[2])
    backends = ["numpy"] + (["c"] if backend() == "c" else [])
    dtypes = ["float32", ">f4", "float64", "float16", "int8", "uint8", "int16", "int32", "bool", "complex64",
              "object", "<U3"]
    def junk():
        return rng.choice([None, 0, 1, -1, 0.5, 1.5, 10**400, 1e308, 1e-320, 1e-30, 1e30, math.nan, math.inf,
                           -math.inf, "1", True, [1], np.float32(0.1), np.int64(3), np.float64(math.nan), -128, 255,
                           256, np.array([0.1]), 3.0])
    counts = {"ok": 0, "error": 0}
    for i in range(n):
        # a valid call, then 0-3 of its parts replaced by something odd
        shape = (rng.choice([1, 2]), rng.choice([1, 3, 5]), rng.choice([1, 2, 7, 8]), rng.choice([1, 4, 9]))
        dtype = rng.choice(["float32", "float32", "int8", "uint8"])
        kw = {"backend": rng.choice(backends)}
        if dtype in ("int8", "uint8"):
            kw["scale"], kw["zero_point"] = rng.choice([0.1, 1 / 255, 2.0]), rng.choice([0, 3] if dtype == "uint8" else [0, -3])
        method = rng.choice(["dark", "argmax", "quarter"])
        mutations = rng.choice([0, 1, 1, 2, 3])
        for _ in range(mutations):
            what = rng.choice(["shape", "dtype", "scale", "zero_point", "blur_kernel", "layout", "method",
                               "unknown", "backend"])
            if what == "shape":
                shape = tuple(rng.choice([0, 1, 2, 3, 5, 8]) for _ in range(rng.choice([4, 4, 3, 5, 0])))
            elif what == "dtype":
                dtype = rng.choice(dtypes)
            elif what in ("scale", "zero_point"):
                kw[what] = junk()
            elif what == "blur_kernel":
                kw["blur_kernel"] = rng.choice([1, 3, 11, 61, 63, 0, -1, 2, 1.0, "3", None, 10**9])
            elif what == "layout":
                kw["layout"] = rng.choice(["nchw", "nhwc", "NCHW", "", None, 1])
            elif what == "method":
                method = rng.choice(["soft", "", None, 3, ["dark"]])
            elif what == "unknown":
                kw[rng.choice(["bogus", "sigma"])] = 1
            else:
                kw["backend"] = rng.choice(["cuda", "", 1])
        try:
            size = int(np.prod(shape)) if shape else 1
            if dtype in ("object", "<U3"):
                h = np.array([rng.random() for _ in range(size)], dtype=dtype).reshape(shape)
            else:
                h = (np.random.default_rng(i).normal(0, 50, size)).astype(dtype).reshape(shape)
            if rng.random() < 0.2 and h.size:
                h.flat[rng.randrange(h.size)] = rng.choice([np.nan, np.inf, -np.inf]) if h.dtype.kind == "f" else 0
            if rng.random() < 0.2 and h.ndim == 4:
                h = h[:, :, ::-1]  # not contiguous
        except (ValueError, TypeError, OverflowError):
            continue  # not an array this numpy makes
        if rng.random() < 0.05:
            h = h.tolist()
        try:
            coords, scores = decode(h, method, **kw)
            assert coords.dtype == np.float32 and scores.dtype == np.float32
            assert np.isfinite(coords).all(), "non-finite coordinates"
            counts["ok"] += 1
        except FacelmError:
            counts["error"] += 1
        except Exception:
            print(f"CASE {i}: dtype={dtype} shape={shape} method={method!r} kw={kw!r}")
            traceback.print_exc()
            sys.exit(3)
    print("COUNTS", counts["ok"], counts["error"])
''')


def test_fuzz_decode_arguments_in_a_subprocess():
    res = subprocess.run([sys.executable, "-c", _DECODE_FUZZ, "12", str(N_DECODE)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, f"exit {res.returncode} (a negative code is a crash)\n{res.stdout}\n{res.stderr}"
    ok, err = map(int, res.stdout.split("COUNTS")[1].split())
    assert ok > 20 and err > 20, (ok, err)  # the fuzz reaches both ends


N_DETECT = 300


def _detect_case(rng: random.Random, image, five):
    """One mutated (image, five_points) pair: wrong dtypes, shapes, sizes, values or types."""
    import numpy as np

    img, pts = image, five
    kind = rng.randrange(12)
    if kind == 0:
        img = img.astype(rng.choice([np.float32, np.int16, np.uint16, np.float64]))
    elif kind == 1:
        img = img[..., :rng.choice([1, 2])] if rng.random() < 0.5 else np.dstack([img, img[..., :1]])
    elif kind == 2:
        img = img[: rng.randrange(0, 4), : rng.randrange(0, 4)]
    elif kind == 3:
        img = rng.choice([None, "abc", 3, [1, 2, 3], img[..., 0], img[None]])
    elif kind == 4:
        pts = rng.choice([None, "abc", 7, [], [[1, 2]] * 4, np.zeros((5, 3)), np.zeros((6, 2)), {"a": 1}])
    elif kind == 5:
        pts = five.copy()
        pts.flat[rng.randrange(10)] = rng.choice([float("nan"), float("inf"), -float("inf"), 1e308, -1e308])
    elif kind == 6:
        pts = five + rng.choice([1e4, -1e4, 1e9, 1e300])
    elif kind == 7:
        pts = (five - five.mean(0)) * rng.choice([0.0, 1e-9, 1e6, -1.0, 1e200]) + five.mean(0)
    elif kind == 8:
        pts = np.asarray(five, dtype=rng.choice([np.int8, np.float16, np.complex64, object]))
    elif kind == 9:
        pts = five[::-1].copy()  # a mirrored face: still a face
    elif kind == 10:
        pts = five + np.asarray([[rng.gauss(0, 5), rng.gauss(0, 5)] for _ in range(5)])
    return img, pts


def test_detect_arguments_only_succeed_or_raise_facelm_errors(converted):
    """Landmarker.detect with a few hundred mutated images and five points: a result or a FacelmError."""
    import numpy as np

    from facelm.data.synth import sample
    from facelm.layouts import JD106
    from facelm.runtime import Landmarker

    image, lms = sample(5, 0)
    five = JD106.five_points(lms)
    rng = random.Random(12)
    outcomes = {"ok": 0, "error": 0}
    with Landmarker.create_from_model_path(converted[1], artifact="int8") as lm:
        for i in range(N_DETECT):
            img, pts = _detect_case(rng, image, five)
            try:
                res = lm.detect(img, pts)
            except FacelmError:
                outcomes["error"] += 1
                continue
            except Exception:  # noqa: BLE001 - the point of the test
                pytest.fail(f"case {i}: detect({type(img).__name__} {getattr(img, 'shape', '')} "
                            f"{getattr(img, 'dtype', '')}, {pts!r:.80}) raised\n{traceback.format_exc()}")
            assert res is None or (res.landmarks.shape == (106, 2) and np.all(np.isfinite(res.landmarks)))
            outcomes["ok"] += 1
    assert outcomes["ok"] > 30 and outcomes["error"] > 100, outcomes  # both paths were exercised
