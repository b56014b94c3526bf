"""The facelm CLI (facelm.cli): help, usage errors, defaults from the config dataclasses,
error reporting, missing extras, and the installed console script."""
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from facelm import __version__
from facelm.android_bench.bench import DEFAULT_RESULTS
from facelm.android_bench.config import BenchOptions
from facelm.android_bench.virtual_device import Faults
from facelm.cli import COMMANDS, Command, build_parser, main
from facelm.cli import app
from facelm.cli.bench import options_from_args
from facelm.cli.convert import config_from_args
from facelm.cli.virtual_device import faults_from_args
from facelm.converters.pipeline import ConvertConfig
from facelm.errors import ConfigError
from facelm.quantization.drift import GateConfig

#: Each command (and subcommand) with the fewest arguments that parse.
MINIMAL = {
    "layouts": [], "synth": ["out", "--count", "1"], "train": ["tiny", "--data", "d"],
    "evaluate": ["demo", "--data", "d"], "model": ["list"], "convert": [], "devices": [],
    "bench": ["run", "x.tflite"], "virtual-device": [], "arm64": ["setup"],
    "app-kit": ["artifacts", "--out", "kit"], "detect": ["in.png", "--model", "m", "--out", "o"],
    "synth-video": ["out", "--frames", "2"], "quant-debug": ["x"],
}
HELPS = [[c.name] for c in COMMANDS] + [["bench", "run"], ["bench", "report"], ["model", "table"]]


def test_minimal_table_covers_every_command():
    assert set(MINIMAL) == {c.name for c in COMMANDS}


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"facelm {__version__}"


def test_no_command_prints_help_listing_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    listed = re.findall(r"^    (\S+)", out, flags=re.M)
    assert listed == [c.name for c in COMMANDS]


@pytest.mark.parametrize("words", HELPS, ids=" ".join)
def test_every_command_help_runs_and_shows_each_default_once(words, capsys):
    assert main([*words, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: facelm {' '.join(words)}")
    for block in re.split(r"\n  (?=-)", out):  # one block per option
        assert len(re.findall(r"\(default", block)) <= 1, block


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_unknown_flag_is_one_line_exit_2(name, capsys):
    assert main([name, *MINIMAL[name], "--no-such-flag"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["facelm: error: unrecognized arguments: --no-such-flag (see 'facelm --help')"]


def test_bad_value_names_the_subcommand(capsys):
    assert main(["bench", "x.tflite", "--delegate", "tpu"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("facelm bench run: error: argument --delegate: invalid choice: 'tpu'")


def test_missing_positional_is_one_line(capsys):
    assert main(["bench", "report"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "required: RECORDS" in line


def _parse(*argv):
    return build_parser().parse_args(list(argv))


def test_convert_defaults_are_convert_config_defaults(capsys):
    assert config_from_args(_parse("convert")) == ConvertConfig()
    assert main(["convert", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"--num-calib NUM_CALIB calibration faces (default: {ConvertConfig().num_calib})" in help_text
    assert f"(default: {GateConfig().int8_drift_mean})" in help_text


def test_bench_defaults_are_bench_options_defaults(capsys):
    args = _parse("bench", "run", "x.tflite")
    assert options_from_args(args) == BenchOptions()
    assert args.results == DEFAULT_RESULTS
    assert main(["bench", "run", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert f"--runs RUNS measured inferences per invocation (default: {BenchOptions().runs})" in help_text
    assert f"(default: {DEFAULT_RESULTS})" in help_text


def test_bench_request_defaults_are_bench_request_defaults():
    from facelm.android_bench.config import BenchRequest
    from facelm.cli.bench import request_from_args

    assert request_from_args(_parse("bench", "run", "x.tflite")) == BenchRequest(Path("x.tflite"))
    req = request_from_args(_parse("bench", "run", "x.tflite", "--serial", "a", "--serial", "b", "--serial", "a",
                                   "--artifact", "int8", "--runs", "7"))
    assert req.serials == ("a", "b") and req.artifacts == ("int8",) and req.options.runs == 7


@pytest.mark.parametrize("argv, api", [
    (["detect", "in.png", "--model", "m", "--out", "o"], "facelm.detect_flow:detect_path"),
    (["quant-debug", "x"], "facelm.quantization.flow:quant_debug"),
    (["evaluate", "demo", "--data", "d"], "facelm.workflows:evaluate"),
    (["train", "tiny", "--data", "d"], "facelm.workflows:train"),
])
def test_flag_defaults_are_the_api_keyword_defaults(argv, api):
    """Every flag whose dest is a keyword of the command's API function defaults to that keyword's default."""
    import importlib

    from facelm.cli._args import defaults_of

    module, name = api.split(":")
    defaults = defaults_of(getattr(importlib.import_module(module), name))
    ns = vars(_parse(*argv))
    renamed = {"json": "json_out"}  # evaluate --json
    shared = {renamed.get(k, k): v for k, v in ns.items() if renamed.get(k, k) in defaults}
    assert len(shared) >= 3, (argv, sorted(ns))
    assert shared == {k: defaults[k] for k in shared}


def test_train_flags_override_the_recipe_only_when_given():
    from facelm.cli.train import config_from_args
    from facelm.training.config import load_train_config

    assert config_from_args(_parse("train", "tiny", "--data", "d")) == load_train_config("tiny")
    assert config_from_args(_parse("train", "tiny", "--data", "d", "--epochs", "3")).epochs == 3


def test_virtual_device_defaults_are_faults_defaults():
    assert faults_from_args(_parse("virtual-device")) == Faults()


def test_bench_path_is_bench_run_path_and_report_is_its_own_subcommand(capsys):
    assert main(["bench", "--help"]) == 0
    assert re.findall(r"^    (\S+)", capsys.readouterr().out, flags=re.M) == ["run", "report"]
    # report's flags belong to report only
    assert main(["bench", "x.tflite", "--compare", "y"]) == 2
    assert "unrecognized arguments: --compare y" in capsys.readouterr().err
    assert main(["bench", "report", "r.jsonl", "--runs", "3"]) == 2
    assert "unrecognized arguments: --runs 3" in capsys.readouterr().err


def test_bench_without_subcommand_runs_the_default(tmp_path, capsys):
    missing = tmp_path / "missing.tflite"
    assert main(["bench", str(missing), "--local"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("facelm: error:") and "does not exist" in line


def test_facelm_error_gives_one_line_and_exit_2(capsys):
    assert main(["layouts", "cofw29"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facelm: error: unknown landmark layout")


def test_debug_reraises():
    with pytest.raises(ConfigError):
        main(["--debug", "layouts", "cofw29"])


def test_layouts_json(capsys):
    import json

    assert main(["layouts", "jd106", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["num_points"] == 106 and [104, 105] in rows[0]["flip_pairs"]


# ------------------------------------------------------------------------- missing extras
@pytest.fixture
def fake_command(tmp_path, monkeypatch):
    """A command 'fake' (extra convert) whose module fails to import with the given error."""

    def make(error: str, extra: str | None = "convert") -> Command:
        (tmp_path / "facelm_fake_cmd.py").write_text(f"raise {error}\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop("facelm_fake_cmd", None)
        cmd = Command("fake", "facelm_fake_cmd", "a command that needs an extra", extra)
        monkeypatch.setattr(app, "COMMANDS", app.COMMANDS + (cmd,))
        return cmd

    return make


def test_missing_heavy_module_is_one_line_naming_the_extra(fake_command, capsys):
    fake_command("ModuleNotFoundError(\"No module named 'onnx2tf'\", name='onnx2tf')")
    assert main(["fake"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "facelm: error: 'fake' needs facelm[convert]: pip install 'facelm[convert]'"]
    with pytest.raises(ModuleNotFoundError):
        main(["--debug", "fake"])


def test_other_import_errors_are_not_blamed_on_an_extra(fake_command):
    fake_command("ModuleNotFoundError(\"No module named 'yaml'\", name='yaml')")
    with pytest.raises(ModuleNotFoundError):
        main(["fake"])


@pytest.mark.parametrize("exc, extra, expected", [
    (ModuleNotFoundError("x", name="torch"), "torch", "torch"),
    (ModuleNotFoundError("x", name="torch"), "convert", "convert"),  # convert's torch comes with facelm[convert]
    (ModuleNotFoundError("x", name="tensorflow.lite"), None, "convert"),
    (ModuleNotFoundError("x", name="tvm"), "convert", "tvm"),  # not in the command's extra: its own extra
    (ImportError("cannot import name 'x' from 'tvm.relax'", name="tvm.relax"), None, "tvm"),
    (ModuleNotFoundError("x", name="numpy"), "torch", None),
    (ImportError("blocked: torch"), "torch", None),  # no name, and torch is installed here: not a missing extra
    (ImportError("blocked: nothing_heavy_like_this"), "torch", None),
])
def test_missing_extra(exc, extra, expected):
    assert app.missing_extra(exc, Command("c", "m", "h", extra)) == expected


def test_extra_modules_come_with_their_extra():
    """Every import name of EXTRA_MODULES belongs to a distribution the extra installs
    (directly, or as a requirement of one: keras comes with tensorflow)."""
    reqs = [Requirement(r) for r in md.requires("facelm")]
    dists = md.packages_distributions()

    def norm(name):
        return re.sub(r"[-_.]+", "-", name).lower()

    for extra, modules in app.EXTRA_MODULES.items():
        direct = {norm(r.name) for r in reqs if r.marker and r.marker.evaluate({"extra": extra})}
        indirect = {norm(Requirement(q).name) for d in direct for q in (md.requires(d) or [])}
        for module in modules:
            assert {norm(d) for d in dists[module]} & (direct | indirect), (extra, module)


# ------------------------------------------------------------------------- entry points
def test_installed_console_script():
    exe = Path(sys.executable).parent / "facelm"
    assert exe.is_file(), f"the facelm console script is not installed next to {sys.executable}"
    res = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"facelm {__version__}"
    res = subprocess.run([str(exe), "layouts", "nope"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.strip().startswith("facelm: error: unknown landmark layout")


def test_python_m_facelm_cli():
    res = subprocess.run([sys.executable, "-m", "facelm.cli", "--version"], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == f"facelm {__version__}"
