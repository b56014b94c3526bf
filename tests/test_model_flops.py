"""FLOPs/size in the paper's units, and the paper-vs-ours table."""
import copy
import json

import pytest
from torch import nn

from facelm.cli import main
from facelm.model import build_model, count_complexity, load_config, measure
from facelm.model import paper
from facelm.model.paper import PAPER_ROWS, comparison_table

# Two figures no consistent reading reproduces (documented in docs/model_zoo.md).
KNOWN_PAPER_ERRATA = {("3", "DDSS", "size_mb"), ("6", "SDD", "gflops", "ResNet18")}


def test_final_model_matches_paper_within_1_percent():
    g, mb = count_complexity("mnv2_1.0_sdd128")
    assert g == pytest.approx(0.43, rel=0.01)
    assert mb == pytest.approx(12.16, rel=0.01)


def test_baseline_matches_paper_within_1_percent():
    g, mb = count_complexity("baseline")
    assert g == pytest.approx(3.50, rel=0.01)
    assert mb == pytest.approx(18.26, rel=0.01)


def test_conv_and_deconv_counting_rules():
    """Hand-computed MACs: conv = Ho*Wo*Co*(Ci/g)*k^2, deconv = Hi*Wi*Ci*Co*k^2; BN uncounted."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, 2, 1, bias=False),          # 5x5 -> 3x3: 9*8*3*9 = 1944
        nn.BatchNorm2d(8),
        nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False),  # depthwise: 9*8*1*9 = 648
        nn.ConvTranspose2d(8, 5, 4, 2, 1, bias=False),   # 3x3 in: 9*8*5*16 = 5760
        nn.Conv2d(5, 2, 1),                              # 6x6: 36*2*5 = 360
    )
    model.cfg = None
    c = measure(model, input_size=5)
    assert [layer.macs for layer in c.layers] == [1944, 648, 5760, 360]
    assert c.macs == 1944 + 648 + 5760 + 360
    bn_params = 16
    assert c.params == sum(p.numel() for p in model.parameters()) and c.params == 216 + bn_params + 72 + 640 + 12
    assert c.size_mb == pytest.approx(c.params * 4 / 2**20)


def test_meta_count_equals_real_model_count():
    cfg = load_config("tiny")
    real = measure(build_model(cfg))
    meta = measure(cfg)
    assert (real.macs, real.params) == (meta.macs, meta.params)
    # BN running statistics are buffers, not learnable parameters: they are excluded.
    assert meta.params == sum(p.numel() for p in build_model(cfg).parameters())


def test_tiny_track_fits_challenge_limits():
    c = measure("tiny_track")
    assert c.gflops <= 0.100
    assert c.size_mb_at(1) <= 2.0


def test_tiny_is_tiny():
    c = measure("tiny")
    assert c.gflops < 0.02 and c.params < 300_000


@pytest.fixture(scope="module")
def table():
    """The table, measured once per module: measuring the 15 paper configs takes tens of seconds."""
    return comparison_table()


@pytest.fixture
def cli_table(table, monkeypatch):
    """The CLI prints the module's table instead of measuring it again (test_table_* and
    test_every_row_* check its figures); returns what the CLI will print."""
    monkeypatch.setattr(paper, "comparison_table", lambda: copy.deepcopy(table))
    return table


def test_table_has_every_paper_row(table):
    keys = {"table", "backbone", "strategy", "filters", "paper_gflops", "paper_size_mb", "gflops", "size_mb"}
    assert all(keys <= set(r) for r in table)
    got = {(r["table"], r["backbone"], r["strategy"], r["filters"]) for r in table}
    t3 = ["SSSS", "DSSS", "DDSS", "DSSD", "DSDS", "DDDS", "SSSD", "SDSD", "SSDD", "SDDD", "DDDD"]
    want = {("2", "MNetV2_0.25", s, 256) for s in ("SSSS", "DDDD")}
    want |= {("3", "MNetV2_0.25", s, 256) for s in t3}
    want |= {("4", "MNetV2_1.0", s, 128) for s in ("SSD", "SDD", "SSSD", "SDSD")}
    want |= {("6", b, "SDD", 128) for b in ("MNetV2_1.0", "ResNet18", "ResNet50")}
    assert got == want and len(table) == len(want) == 20
    # Table 4 gives no size; every other row gives both figures.
    assert all((r["paper_size_mb"] is None) == (r["table"] == "4") for r in table)
    assert all(r["paper_gflops"] is not None for r in table)


def _key(r, col):
    return (r["table"], r["strategy"], col) if r["backbone"].startswith("MNet") else \
        (r["table"], r["strategy"], col, r["backbone"])


def test_every_row_within_10_percent_except_resnet18_gflops(table):
    for r in table:
        for col in ("gflops", "size_mb"):
            paper = r[f"paper_{col}"]
            if paper is not None:
                within = abs(r[col] / paper - 1) <= 0.10
                assert within != (_key(r, col) == ("6", "SDD", "gflops", "ResNet18")), (r, col)


def test_every_row_within_about_1_percent_except_documented_errata(table):
    """The reading is far better than the 10% goal: ~1% GFLOPs (the paper rounds to
    0.01, i.e. up to 1.6% on 0.32), 0.1% size, except the two documented errata."""
    for r in table:
        for col, tol in (("gflops", 0.016), ("size_mb", 0.002)):
            paper = r[f"paper_{col}"]
            if paper is not None:
                assert (abs(r[col] / paper - 1) <= tol) != (_key(r, col) in KNOWN_PAPER_ERRATA), (r, col)
    assert {(r["table"], r["strategy"]) for r in table if r["note"]} == {("3", "DDSS"), ("6", "SDD")}


def test_paper_rows_point_at_zoo_configs():
    for row in PAPER_ROWS:
        cfg = load_config(row.config)
        assert cfg.input_size == 192


def test_cli_table_json(capsys, cli_table):
    assert main(["model", "table", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 20 and rows[0]["table"] == "2"
    assert rows == cli_table


def test_cli_table_text(capsys, cli_table):
    assert main(["model", "table"]) == 0
    out = capsys.readouterr().out
    assert "ResNet50" in out and "DDSS" in out and "2^20" in out
    assert len([ln for ln in out.splitlines() if ln[:1] in "2346" and ln[1:2] == " "]) == 20


def test_cli_info(capsys):
    assert main(["model", "info", "final"]) == 0
    out = capsys.readouterr().out
    assert "1x106x48x48" in out and "head.blocks.2.deconv" in out and "12.16 MB fp32" in out
    assert main(["model", "info", "tiny", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["output_shape"] == [1, 106, 24, 24]
    model = build_model("tiny")
    assert info["params"] == sum(p.numel() for p in model.parameters())
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert sum(layer["params"] for layer in info["layers"]) == info["params"] - bn


def test_cli_unknown_config_is_a_clear_error(capsys):
    assert main(["model", "info", "nope"]) == 2
    assert "unknown model config 'nope'" in capsys.readouterr().err


def test_cli_list(capsys):
    assert main(["model", "list"]) == 0
    out = capsys.readouterr().out
    assert "tiny_track" in out and "alias of mnv2_1.0_sdd128" in out
