"""Per-op time (issue 14): benchmark_model's --enable_op_profiling tables, parsed into records,
shown by `bench report`; the virtual device's stand-in prints the same tables from its own timings."""
from __future__ import annotations

import json

import numpy as np
import pytest

from facelm.android_bench.parse import (op_profile_record, parse_benchmark_output, parse_op_profile,
                                        split_op_profile)

pytestmark = pytest.mark.timeout(180)

# Written by hand in the layout of TFLite's StatsCalculator (2.x): tab before each right-aligned
# field, a [start] column, an initialization block, then the regular-run block.
T = "\t"
PUBLISHED = "\n".join([
    "STARTING!",
    "count=3 first=2100 curr=1800 min=1750 max=2100 avg=1883.33 std=150",
    "",
    "count=20 first=1700 curr=1650 min=1600 max=1900 avg=1690.5 std=60",
    "",
    "Inference timings in us: Init: 5120, First inference: 2100, Warmup (avg): 1883.33, Inference (avg): 1690.5",
    "Memory footprint delta from the start of the tool (MB): init=3.5 overall=7.25",
    "Profiling Info for Benchmark Initialization:",
    "============================== Run Order ==============================",
    f"{T}             [node type]{T}          [start]{T}  [first]{T} [avg ms]{T}     [%]{T}  [cdf%]{T}  [mem KB]"
    f"{T}[times called]{T}[Name]",
    f"{T} ModifyGraphWithDelegate{T}            0.000{T}    2.500{T}    2.500{T} 62.500%{T} 62.500%{T}  1024.000"
    f"{T}        1{T}ModifyGraphWithDelegate/0",
    f"{T}         AllocateTensors{T}            2.500{T}    1.500{T}    1.500{T} 37.500%{T}100.000%{T}     0.000"
    f"{T}        1{T}AllocateTensors/0",
    "",
    "Timings (microseconds): count=1 curr=4000",
    "Memory (bytes): count=0",
    "2 nodes observed",
    "",
    "",
    "",
    "Operator-wise Profiling Info for Regular Benchmark Runs:",
    "============================== Run Order ==============================",
    f"{T}             [node type]{T}          [start]{T}  [first]{T} [avg ms]{T}     [%]{T}  [cdf%]{T}  [mem KB]"
    f"{T}[times called]{T}[Name]",
    f"{T}                 CONV_2D{T}            0.010{T}    0.700{T}    0.600{T} 40.000%{T} 40.000%{T}     0.000"
    f"{T}        1{T}[model/stem/conv;model/stem/relu]:0",
    f"{T}       DEPTHWISE_CONV_2D{T}            0.610{T}    0.300{T}    0.300{T} 20.000%{T} 60.000%{T}     0.000"
    f"{T}        1{T}[model/block 1/dw]:1",
    f"{T}                 CONV_2D{T}            0.910{T}    0.500{T}    0.450{T} 30.000%{T} 90.000%{T}     0.000"
    f"{T}        1{T}[model/head/conv]:2",
    f"{T}               TRANSPOSE{T}            1.360{T}    0.200{T}    0.150{T} 10.000%{T}100.000%{T}     0.000"
    f"{T}        1{T}[Identity]:3",
    "",
    "============================== Top by Computation Time ==============================",
    f"{T}             [node type]{T}          [start]{T}  [first]{T} [avg ms]{T}     [%]{T}  [cdf%]{T}  [mem KB]"
    f"{T}[times called]{T}[Name]",
    f"{T}                 CONV_2D{T}            0.010{T}    0.700{T}    0.600{T} 40.000%{T} 40.000%{T}     0.000"
    f"{T}        1{T}[model/stem/conv;model/stem/relu]:0",
    f"{T}                 CONV_2D{T}            0.910{T}    0.500{T}    0.450{T} 30.000%{T} 70.000%{T}     0.000"
    f"{T}        1{T}[model/head/conv]:2",
    "",
    "Number of nodes executed: 4",
    "============================== Summary by node type ==============================",
    f"{T}             [Node type]{T}  [count]{T}  [avg ms]{T}    [avg %]{T}    [cdf %]{T}  [mem KB]{T}[times called]",
    f"{T}                 CONV_2D{T}        2{T}     1.050{T}    70.000%{T}    70.000%{T}     0.000{T}        2",
    f"{T}       DEPTHWISE_CONV_2D{T}        1{T}     0.300{T}    20.000%{T}    90.000%{T}     0.000{T}        1",
    f"{T}               TRANSPOSE{T}        1{T}     0.150{T}    10.000%{T}   100.000%{T}     0.000{T}        1",
    "",
    "Timings (microseconds): count=20 first=1700 curr=1490 min=1450 max=1720 avg=1500 std=40",
    "Memory (bytes): count=0",
    "4 nodes observed",
    "",
])

# Space-aligned, no [start] column, "INFO: " prefixes, XNNPACK kernel names with spaces, two subgraphs.
SPACED = """INFO: Operator-wise Profiling Info for Regular Benchmark Runs:
Primary graph profile:
============================== Run Order ==============================
                     [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB]        [times called]  [Name]
   Convolution (NHWC, QC8) IGEMM            0.400           0.410         82.000%         82.000%             0.000                1       Delegate/Convolution (NHWC, QC8) IGEMM:0
                      DEQUANTIZE            0.100           0.090         18.000%        100.000%             0.000                1       [out]:4

Number of nodes executed: 2
============================== Summary by node type ==============================
                     [Node type]          [count]         [avg ms]          [avg %]         [cdf %]       [mem KB]        [times called]
   Convolution (NHWC, QC8) IGEMM                1            0.410          82.000%         82.000%          0.000                1
                      DEQUANTIZE                1            0.090          18.000%        100.000%          0.000                1

Timings (microseconds): count=10 first=520 curr=500 min=490 max=530 avg=500 std=10
Memory (bytes): count=0
2 nodes observed
Subgraph (index: 1) profile:
============================== Run Order ==============================
                     [node type]          [first]        [avg ms]            [%]          [cdf%]          [mem KB]        [times called]  [Name]
                             ADD            0.020           0.025        100.000%        100.000%             0.000                1       [sg1/add]:0

Subgraph (index: 1) Timings (microseconds): count=10 first=20 curr=25 min=20 max=30 avg=25 std=3
Memory (bytes): count=0
1 nodes observed
INFO: Inference timings in us: Init: 900, First inference: 700, Warmup (avg): 650, Inference (avg): 600
"""


def test_published_format_parses_every_table():
    p = parse_op_profile(PUBLISHED)
    init, runs = p["init"][0], p["runs"][0]
    assert [r["name"] for r in init["run_order"]] == ["ModifyGraphWithDelegate/0", "AllocateTensors/0"]
    assert init["run_order"][0]["mem_kb"] == pytest.approx(1024.0)
    order = runs["run_order"]
    assert [r["type"] for r in order] == ["CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "TRANSPOSE"]
    assert order[1]["name"] == "[model/block 1/dw]:1"  # names keep their spaces
    assert order[2] == {"type": "CONV_2D", "start_ms": 0.91, "first_ms": 0.5, "avg_ms": 0.45, "pct": 30.0,
                        "cdf_pct": 90.0, "mem_kb": 0.0, "times_called": 1, "name": "[model/head/conv]:2"}
    assert [r["name"] for r in runs["top_by_time"]] == ["[model/stem/conv;model/stem/relu]:0", "[model/head/conv]:2"]
    assert [(t["type"], t["count"], t["avg_ms"]) for t in runs["by_type"]] == [
        ("CONV_2D", 2, 1.05), ("DEPTHWISE_CONV_2D", 1, 0.3), ("TRANSPOSE", 1, 0.15)]
    assert runs["timings_us"]["avg"] == 1500 and runs["nodes"] == 4


def test_profile_does_not_leak_into_latency():
    lat = parse_benchmark_output(PUBLISHED)
    # the measured-run block, not the profiler's "Timings (microseconds)" lines
    assert lat["count"] == 20 and lat["min_ms"] == pytest.approx(1.6) and lat["max_ms"] == pytest.approx(1.9)
    assert lat["avg_ms"] == pytest.approx(1.6905) and lat["memory_overall_mb"] == pytest.approx(7.25)
    rest, prof = split_op_profile(PUBLISHED)
    assert "CONV_2D" not in rest and "Inference timings" in rest and "4 nodes observed" in prof
    assert parse_op_profile(rest) is None


def test_spaced_prefixed_subgraphs_without_start_column():
    p = parse_op_profile(SPACED)
    g0, g1 = p["runs"][0], p["runs"][1]
    assert [(r["type"], r["name"], r["avg_ms"]) for r in g0["run_order"]] == [
        ("Convolution (NHWC, QC8) IGEMM", "Delegate/Convolution (NHWC, QC8) IGEMM:0", 0.41),
        ("DEQUANTIZE", "[out]:4", 0.09)]
    assert "start_ms" not in g0["run_order"][0]
    assert g0["by_type"][0]["type"] == "Convolution (NHWC, QC8) IGEMM" and g0["timings_us"]["avg"] == 500
    assert [r["name"] for r in g1["run_order"]] == ["[sg1/add]:0"] and g1["timings_us"]["avg"] == 25
    assert parse_benchmark_output(SPACED)["avg_ms"] == pytest.approx(0.6)


def test_record_averages_invocations():
    slower = PUBLISHED.replace("    0.600\t 40.000%", "    0.800\t 40.000%").replace(
        "     1.050\t", "     1.250\t").replace("avg=1500 std=40", "avg=1700 std=40")
    rec = op_profile_record([parse_op_profile(PUBLISHED), parse_op_profile(slower)])
    assert rec["available"] and rec["invocations"] == 2 and rec["total_ms"] == pytest.approx(1.6)
    ops = {o["name"]: o for o in rec["ops"]}
    assert ops["[model/stem/conv;model/stem/relu]:0"]["avg_ms"] == pytest.approx(0.7)
    assert [o["order"] for o in rec["ops"]] == [0, 1, 2, 3]
    assert sum(o["pct"] for o in rec["ops"]) == pytest.approx(100.0)
    types = {t["type"]: t for t in rec["by_type"]}
    assert types["CONV_2D"]["avg_ms"] == pytest.approx(1.15) and rec["by_type"][0]["type"] == "CONV_2D"
    assert [i["name"] for i in rec["init"]] == ["ModifyGraphWithDelegate/0", "AllocateTensors/0"]
    assert op_profile_record([None, parse_op_profile("no tables here")]) == {
        "available": False, "reason": "benchmark_model printed no op-profile tables"}


def test_one_op_models_are_the_graphs_ops(models):
    """Each cut model holds one op of the graph and computes what that op computed in the full run."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from facelm.android_bench.virtual_device.benchmark_model import one_op_models

    builtin = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    for path in (models["fp32"], models["dyn"]):
        full = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                           experimental_op_resolver_type=builtin)
        full.allocate_tensors()
        d = full.get_input_details()[0]
        full.set_tensor(d["index"], np.random.default_rng(1).uniform(-1, 1, d["shape"]).astype(np.float32))
        full.invoke()
        ops = one_op_models(path.read_bytes())
        assert [o["index"] for o in ops] == list(range(len(full._get_ops_details())))
        assert [o["type"] for o in ops] == [o["op_name"] for o in full._get_ops_details()]
        for item, detail in zip(ops, full._get_ops_details()):
            small = Interpreter(model_content=item["model"], experimental_op_resolver_type=builtin)
            small.allocate_tensors()
            assert len(small._get_ops_details()) == 1
            for det, t in zip(small.get_input_details(), item["inputs"]):
                small.set_tensor(det["index"], full.get_tensor(t))
            small.invoke()
            out = small.get_tensor(small.get_output_details()[0]["index"])
            np.testing.assert_allclose(out, full.get_tensor(int(detail["outputs"][0])), rtol=1e-6, atol=1e-6)


def test_virtual_device_bench_op_profile_and_report(adb, vdev, artifact_dir, models, tmp_path):
    """--op-profile end to end: flag -> stand-in tables -> record -> report (Markdown and HTML)."""
    from facelm.android_bench.bench import bench
    from facelm.android_bench.config import BenchOptions
    from facelm.android_bench.records import read_records
    from facelm.android_bench.report import report
    from facelm.cli import main

    opts = BenchOptions(op_profile=True, runs=5, warmup=1, repeats=2, timeout_s=20, bench_timeout_s=120)
    results = tmp_path / "r.jsonl"
    res = bench(artifact_dir, opts, serials=[vdev.serial], results=results, adb=adb)
    assert [r["status"] for r in res.records] == ["ok", "ok"]
    for r in read_records(results):
        prof = r["latency_ms"]["op_profile"]
        assert r["options"]["op_profile"] is True
        assert prof["available"] and prof["invocations"] == 2 and "one-op model" in prof["method"]
        # the model's own three convolutions, in execution order, each measured (> 0 ms)
        assert [o["type"] for o in prof["ops"]] == ["CONV_2D"] * 3 and [o["order"] for o in prof["ops"]] == [0, 1, 2]
        assert all(o["avg_ms"] > 0 for o in prof["ops"])
        assert prof["ops"][-1]["name"].endswith(":2")
        assert prof["by_type"][0]["count"] == 3
        assert prof["by_type"][0]["avg_ms"] == pytest.approx(sum(o["avg_ms"] for o in prof["ops"]), abs=0.01)
    # the record's latency is the benchmark's, not the op profile's summary
    assert all(r["latency_ms"]["count"] == 10 for r in res.records)
    out = report(results, tmp_path / "rep")
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Per-op time" in md and md.count("| op type | count | avg ms | % |") == 2
    assert "| CONV_2D | 3 |" in md and "[Identity]:2" in md and "## Per-op time" in out["text"]
    assert main(["bench", "report", str(results), "--format", "html", "--out", str(tmp_path / "h")]) == 0
    assert "<h2>Per-op time</h2>" in (tmp_path / "h" / "report.html").read_text()


def test_local_runner_op_profile_and_unprofiled_records(models, tmp_path):
    from facelm.android_bench.config import BenchOptions
    from facelm.android_bench.records import write_records
    from facelm.android_bench.report import op_profile_tables, report
    from facelm.android_bench.runners import LocalTfliteRunner

    m = LocalTfliteRunner(BenchOptions(op_profile=True, runs=5, threads=1)).benchmark(models["dyn"])
    prof = m.latency["op_profile"]
    assert prof["source"].startswith("local:") and [o["type"] for o in prof["ops"]] == ["CONV_2D"] * 3
    base = {"schema": 1, "backend": "local-tflite", "status": "ok", "device": {"serial": "local", "model": "host"},
            "artifact": {"name": "dyn"}, "options": {"delegate": "xnnpack", "threads": 1, "op_profile": True}}
    emulated = dict(base, emulated=True, latency_ms={"mean": 1.0, "op_profile": prof})
    missing = dict(base, backend="local-tvm", latency_ms={"mean": 1.0})
    note, tables = op_profile_tables(emulated)
    assert "not comparable" in note and tables[0][1][0][3] == "not comparable (emulated)"
    note, tables = op_profile_tables(missing)
    assert tables == [] and note.startswith("no op profile")
    write_records(tmp_path / "x.jsonl", [dict(base, latency_ms=m.latency), missing])
    text = report(tmp_path / "x.jsonl", tmp_path / "rep")["text"]
    assert text.count("### ") == 2 and "no op profile for this backend" in text
    assert json.loads(json.dumps(prof)) == prof
