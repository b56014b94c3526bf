"""``facelm``'s lazy public API (sdk/__init__.py): cheap to import, every name resolves, the user
flows behind the commands are exported, and the light ones load without the heavy packages."""
import subprocess
import sys

import pytest

import facelm
from light_path import HEAVY, light_env

#: the flows behind the commands (facelm detect / train / evaluate / bench / app-kit / quant-debug)
FLOWS = ("detect_path", "train", "evaluate", "bench", "build_kit", "quant_debug")
LAZY_MODULES = ("facelm.detect_flow", "facelm.workflows", "facelm.quantization.flow", "facelm.android_bench.bench",
                "facelm.appkit.kit", "facelm.runtime.landmarker")


def _run(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)


def test_import_facelm_loads_no_flow_and_no_heavy_package():
    res = _run("import sys, facelm; print(' '.join(sorted(m for m in sys.modules)))")
    assert res.returncode == 0, res.stderr
    loaded = set(res.stdout.split())
    assert not loaded & {*HEAVY, *LAZY_MODULES}, sorted(loaded & {*HEAVY, *LAZY_MODULES})


@pytest.mark.parametrize("name", sorted(facelm.__all__))
def test_every_public_name_resolves(name):
    if name in ("train", "evaluate", "TrainConfig"):
        pytest.importorskip("torch")
    if name == "quant_debug":
        pytest.importorskip("tensorflow")
    assert getattr(facelm, name) is not None
    assert name in dir(facelm)


def test_flows_are_exported_with_an_example():
    from facelm.android_bench.bench import bench
    from facelm.detect_flow import detect_path

    assert set(FLOWS) <= set(facelm.__all__)
    assert facelm.bench is bench and facelm.detect_path is detect_path
    from facelm import workflows

    for fn in (detect_path, bench, workflows.train, workflows.evaluate):  # workflows itself needs no torch
        assert "Example::" in fn.__doc__ and f"facelm.{fn.__name__}(" in fn.__doc__, fn.__name__
    for name in FLOWS:
        assert f"facelm.{name}(" in facelm.__doc__, name


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        facelm.nope  # noqa: B018


def test_light_flows_load_on_the_light_install(tmp_path):
    res = _run("import facelm; print(facelm.detect_path.__module__, facelm.LandmarkStream.__name__, "
               "facelm.bench.__module__, facelm.BenchRequest.__name__)", env=light_env(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["facelm.detect_flow", "LandmarkStream", "facelm.android_bench.bench", "BenchRequest"]
