import json
import subprocess
import sys

import pytest

from sdk import __version__
from sdk.cli import COMMANDS, build_parser, main


def test_version_and_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out
    assert main([]) == 0
    out = capsys.readouterr().out
    for name, _, _ in COMMANDS:
        assert name in out


def test_every_registered_command_has_a_driver():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == {name for name, _, _ in COMMANDS}


def test_facelm_error_gives_one_line_and_exit_2(capsys):
    assert main(["layouts", "cofw29"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facelm: error: unknown landmark layout")


def test_debug_shows_traceback():
    from sdk.errors import ConfigError

    with pytest.raises(ConfigError):
        main(["--debug", "layouts", "cofw29"])


def test_layouts_json(capsys):
    assert main(["layouts", "jd106", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["num_points"] == 106 and [104, 105] in rows[0]["flip_pairs"]


def test_console_script_is_installed():
    exe = subprocess.run([sys.executable, "-m", "sdk.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert exe.returncode == 0 and "facelm" in exe.stdout
