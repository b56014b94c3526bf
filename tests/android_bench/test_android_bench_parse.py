"""parse_benchmark_output on every known benchmark_model output variant, and facts parsing."""
from __future__ import annotations

import pytest

from facelm.android_bench import parse_benchmark_output
from facelm.android_bench.adb import DeviceNoPermissionsError, parse_devices, state_error
from facelm.android_bench.device import big_cores, core_mask, parse_facts, Core
from facelm.android_bench.runners import combine_invocations

pytestmark = pytest.mark.timeout(30)

REQUIRED = ("init_ms", "first_ms", "warmup_avg_ms", "avg_ms", "min_ms", "max_ms", "std_ms", "count",
            "memory_init_mb", "memory_overall_mb")

# TFLite 2.4+ native binary (android_aarch64_benchmark_model), XNNPACK, peak memory on.
MODERN = """\
STARTING!
Log parameter values verbosely: [0]
Num threads: [4]
Graph: [/data/local/tmp/facelm/3f1c-mnv2_sdd.tflite]
Enable op profiling: [0]
#threads used for CPU inference: [4]
Use xnnpack: [1]
Loaded model /data/local/tmp/facelm/3f1c-mnv2_sdd.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
The input model file size (MB): 12.1604
Initialized session in 48.129ms.
Running benchmark for at least 5 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=5 first=79449 curr=68011 min=67702 max=79449 avg=70233.4 std=4564

Running benchmark for at least 50 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=50 first=68120 curr=67350 min=66980 max=71210 avg=67612.3 std=822

Inference timings in us: Init: 48129, First inference: 79449, Warmup (avg): 70233.4, Inference (avg): 67612.3
Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
Memory footprint delta from the start of the tool (MB): init=31.1758 overall=44.3125
Overall peak memory footprint (MB) via periodic monitoring: 52.3789
"""

# TF 1.15-2.2 era: "Average inference timings", "Peak memory footprint".
OLD = """\
STARTING!
Min num runs: [50]
Graph: [/data/local/tmp/model.tflite]
Loaded model /data/local/tmp/model.tflite
resolved reporter
Initialized session in 4.254ms.
Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
count=6 first=83235 curr=81002 min=80911 max=83235 avg=81605 std=790

Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
count=50 first=81120 curr=81440 min=80102 max=84007 avg=81556.6 std=655

Average inference timings in us: Warmup: 81605, Init: 4254, Inference: 81556.6
Peak memory footprint (MB): init=2.27734 overall=9.36719
"""

# TF 1.x tflite benchmark: stats prefixed, no summary line.
TF1 = """\
Initialized session in 5.31ms
Running benchmark for 1 iterations
Timings (microseconds): count=1 curr=95342

Running benchmark for 50 iterations
Timings (microseconds): count=50 first=91003 curr=90102 min=89877 max=93321 avg=90512.5 std=702

Average inference timings in us: Warmup: 95342, Init: 5310, no stats: 90512.5
"""

# The Android benchmark app: everything goes to logcat with a tag prefix.
LOGCAT = """\
11-27 21:01:02.123  4567  4567 I tflite  : Initialized session in 41.7ms.
11-27 21:01:02.456  4567  4567 I tflite  : count=3 first=30211 curr=25102 min=25102 max=30211 avg=26905 std=2311
11-27 21:01:03.789  4567  4567 I tflite  : count=100 first=24998 curr=24877 min=24390 max=26120 avg=24880.1 std=301
11-27 21:01:03.790  4567  4567 I tflite  : Inference timings in us: Init: 41700, First inference: 30211, Warmup (avg): 26905, Inference (avg): 24880.1
11-27 21:01:03.791  4567  4567 I tflite  : Memory footprint delta from the start of the tool (MB): init=12.5 overall=20.25
"""

# A run where the warmup block printed no statistics and the GPU delegate was used.
NO_STATS = """\
STARTING!
Use gpu: [1]
INFO: Created TensorFlow Lite delegate for GPU.
GPU delegate created.
Initialized session in 812.4ms.
Running benchmark for at least 0 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=0

Running benchmark for at least 20 iterations and at least 0 seconds but terminate if exceeding 150 seconds.
count=20 first=9120 curr=8870 min=8801 max=9120 avg=8903.55 std=77

Inference timings in us: Init: 812400, First inference: 9120, Warmup (avg): no stats, Inference (avg): 8903.55
Memory footprint delta from the start of the tool (MB): init=120.3 overall=121
"""


def _check_keys(d: dict) -> None:
    for k in REQUIRED:
        assert k in d


def test_modern_format():
    d = parse_benchmark_output(MODERN)
    _check_keys(d)
    assert d["init_ms"] == pytest.approx(48.129)
    assert d["first_ms"] == pytest.approx(79.449)
    assert d["warmup_avg_ms"] == pytest.approx(70.2334)
    assert d["avg_ms"] == pytest.approx(67.6123)
    assert (d["min_ms"], d["max_ms"], d["std_ms"]) == pytest.approx((66.98, 71.21, 0.822))
    assert d["count"] == 50 and isinstance(d["count"], int)
    assert (d["memory_init_mb"], d["memory_overall_mb"]) == pytest.approx((31.1758, 44.3125))
    assert d["peak_memory_mb"] == pytest.approx(52.3789)
    assert d["model_size_mb"] == pytest.approx(12.1604)


def test_old_format():
    d = parse_benchmark_output(OLD)
    _check_keys(d)
    assert d["init_ms"] == pytest.approx(4.254)
    assert d["warmup_avg_ms"] == pytest.approx(81.605)
    assert d["avg_ms"] == pytest.approx(81.5566)
    assert d["first_ms"] == pytest.approx(83.235)  # first of the warmup block
    assert d["count"] == 50 and d["min_ms"] == pytest.approx(80.102)
    assert (d["memory_init_mb"], d["memory_overall_mb"]) == pytest.approx((2.27734, 9.36719))


def test_tf1_format():
    d = parse_benchmark_output(TF1)
    assert d["init_ms"] == pytest.approx(5.31)
    assert d["avg_ms"] == pytest.approx(90.5125)
    assert d["count"] == 50 and d["std_ms"] == pytest.approx(0.702)
    assert d["memory_init_mb"] is None and d["memory_overall_mb"] is None


def test_logcat_prefixed():
    d = parse_benchmark_output(LOGCAT)
    assert d["init_ms"] == pytest.approx(41.7)
    assert d["avg_ms"] == pytest.approx(24.8801) and d["count"] == 100
    assert d["first_ms"] == pytest.approx(30.211)
    assert d["memory_overall_mb"] == pytest.approx(20.25)


def test_no_stats_warmup():
    d = parse_benchmark_output(NO_STATS)
    assert d["warmup_avg_ms"] is None
    assert d["init_ms"] == pytest.approx(812.4)
    assert d["first_ms"] == pytest.approx(9.12)
    assert d["avg_ms"] == pytest.approx(8.90355) and d["count"] == 20


def test_garbage_gives_all_none():
    d = parse_benchmark_output("Segmentation fault\nerror: cannot load model\n")
    _check_keys(d)
    assert all(d[k] is None for k in REQUIRED)


def test_combine_invocations_pools_statistics():
    a = parse_benchmark_output(MODERN)
    b = dict(a, avg_ms=70.0, std_ms=1.0, min_ms=69.0, max_ms=72.0, count=50)
    c = combine_invocations([a, b])
    assert c["mean"] == pytest.approx((67.6123 + 70.0) / 2)
    # pooled std includes the spread between the two means
    assert c["std"] == pytest.approx(((0.822 ** 2 + 1.0) / 2 + ((70.0 - 67.6123) / 2) ** 2) ** 0.5)
    assert c["min"] == pytest.approx(66.98) and c["max"] == pytest.approx(72.0)
    assert c["count"] == 100 and c["init"] == pytest.approx(48.129)
    assert c["median"] == pytest.approx(c["mean"])
    single = combine_invocations([a])
    assert single["median"] is None and single["basis"] == "aggregate only"


# ------------------------------------------------------------------------- devices
DEVICES = """\
List of devices attached
0123456789ABCDEF       device usb:1-1 product:beryllium model:POCOPHONE_F1 device:beryllium transport_id:3
R58M12345      unauthorized usb:1-2 transport_id:4
emulator-5554  offline transport_id:5
FA79B1A04567   no permissions (user in plugdev group; are your udev rules wrong?); see [http://developer.android.com/tools/device.html] usb:1-3 transport_id:6
"""


def test_parse_devices_states():
    e = parse_devices(DEVICES)
    assert [(x.serial, x.state) for x in e] == [
        ("0123456789ABCDEF", "device"), ("R58M12345", "unauthorized"), ("emulator-5554", "offline"),
        ("FA79B1A04567", "no permissions")]
    assert e[0].attrs["model"] == "POCOPHONE_F1" and e[3].attrs["usb"] == "1-3"
    err = state_error("FA79B1A04567", "no permissions")
    assert isinstance(err, DeviceNoPermissionsError) and "udev" in str(err)


SD855 = """\
@@props
[ro.product.model]: [Pixel 4]
[ro.soc.model]: [SM8150]
[ro.board.platform]: [msmnile]
[ro.product.cpu.abi]: [arm64-v8a]
[ro.build.version.sdk]: [33]
@@cpus
0 1785600 schedutil
1 1785600 schedutil
2 1785600 schedutil
3 1785600 schedutil
4 2419200 performance
5 2419200 performance
6 2419200 performance
7 2841600 performance
@@thermal
cpu-1-0-usr 55300
battery 36
skin-therm 412
@@battery
365
@@status
Thermal Status: 2
@@end
"""


def test_facts_three_clusters_and_units():
    f = parse_facts("X", SD855)
    assert f.soc == "SM8150" and f.api_level == 33
    assert f.big_cores == (4, 5, 6, 7) and f.big_core_mask == "f0"
    assert f.governors == {"schedutil": 4, "performance": 4}
    assert f.thermal.zones == {"cpu-1-0-usr": 55.3, "battery": 36.0, "skin-therm": 41.2}
    assert f.thermal.cpu_max_c == pytest.approx(55.3) and f.thermal.battery_c == pytest.approx(36.5)
    assert f.thermal.status == 2


def test_facts_fall_back_to_cpuinfo_hardware():
    text = "@@props\n[ro.product.model]: [X]\n@@cpus\n0 - -\n1 - -\n@@cpuinfo\nHardware\t: Qualcomm Technologies, Inc SDM845\n@@end\n"
    f = parse_facts("s", text)
    assert f.soc == "Qualcomm Technologies, Inc SDM845"
    assert f.big_cores == () and f.big_core_mask is None  # unknown frequencies: no pinning


def test_big_core_mask_rules():
    assert core_mask(big_cores([Core(i, 1000, None) for i in range(4)])) == "f"  # all equal: all cores
    assert core_mask([0, 2]) == "5"
    assert core_mask([]) is None
