"""sizer/charts.py: the figures draw the core's numbers unchanged (identities, not looks)."""

import json
import os
import subprocess
import sys

import pytest

from sizer import charts
from sizer.cost.estimate import estimate
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.split import Split
from sizer.hardware.topology import default_topology

GIB = 2**30
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def est70():
    """Llama-3.1-70B on 8 H100 SXM, TP4 PP2, batch 64, ISL 2048, OSL 256."""
    gpu = get_gpu("h100-sxm")
    e = estimate(get_model("llama-3.1-70b"), gpu, Split(tp=4, pp=2), isl=2048, osl=256, batch=64,
                 topology=default_topology(gpu, 8))
    return json.loads(json.dumps(e.to_json()))


def _sum(fig, x=None, axis="y", key=None):
    total = 0.0
    for t in fig.data:
        vals = getattr(t, axis)
        if key is None or t.name == key:
            total += sum(vals)
    return total


def test_memory_bars_stack_to_the_plan_total_and_capacity(est70):
    """Weights + KV + activations + overhead (+ headroom) stack to the GPU capacity in GiB."""
    mem = est70["memory"]
    fig = charts.memory_bars(mem)
    names = [t.name for t in fig.data]
    assert names[:4] == ["weights", "KV cache", "activations", "runtime overhead"]
    parts = sum(t.y[0] for t in fig.data[:4])
    assert parts == pytest.approx(mem["per_gpu"]["total_bytes"] / GIB, rel=1e-12)
    if mem["per_gpu"]["fits"]:
        assert _sum(fig) == pytest.approx(mem["per_gpu"]["capacity_bytes"] / GIB, rel=1e-12)
    (line,) = fig.layout.shapes
    assert line.y0 == pytest.approx(mem["per_gpu"]["capacity_bytes"] / GIB)


def test_latency_bars_add_up_to_ttft_and_tpot(est70):
    """Prefill: compute + comm + bubble = TTFT (the makespan of the fill-run-drain schedule).
    Decode with batch >= PP: compute + comm = TPOT, no bubble (sizer/cost/estimate.py)."""
    fig = charts.latency_breakdown(est70)
    prefill = sum(t.y[0] for t in fig.data if t.x[0] == "prefill")
    decode = sum(t.y[0] for t in fig.data if t.x[0] == "decode")
    assert prefill == pytest.approx(est70["ttft_s"] * 1e3, rel=1e-9)
    assert decode == pytest.approx(est70["tpot_s"] * 1e3, rel=1e-9)
    assert est70["breakdown"]["prefill"]["bubble_s"] > 0


def test_ops_bars_add_up_to_the_step(est70):
    """The per-op bars of one decode step sum to that stage's step time: TPOT / PP."""
    fig = charts.ops_breakdown(est70["decode_ops"], "decode")
    assert _sum(fig, axis="x") == pytest.approx(est70["tpot_s"] / 2 * 1e3, rel=1e-9)
    assert {t.name for t in fig.data} <= {"compute", "memory", "latency", "comm"}
    assert "comm" in {t.name for t in fig.data}  # TP4 all-reduces


def test_comm_curves_are_log_log_with_marks():
    """busbw = algbw x 2(n-1)/n for all-reduce (nccl-tests PERFORMANCE.md) survives the chart."""
    import numpy as np

    from sizer.cost.collectives import collective_time

    gpu = get_gpu("h100-sxm")
    topo = default_topology(gpu, 8)
    sizes = np.array([2.0**k for k in range(10, 31)])
    c = collective_time("all_reduce", sizes, tuple(range(8)), topo)
    curve = {"label": "nvswitch", "bytes": sizes.tolist(), "time_s": c.time_s.tolist(),
             "busbw_GBps": c.busbw_GBps.tolist(), "algorithm": c.algorithm}
    fig = charts.comm_curves([curve], [{"label": "decode", "bytes": 65536}])
    t, bus = fig.data
    for size, us, gbps in zip(t.x, t.y, bus.y):
        assert gbps == pytest.approx(size / (us * 1e-6) / 1e9 * 2 * 7 / 8, rel=1e-9)
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"
    assert [s.x0 for s in fig.layout.shapes] == [65536, 65536]


def test_gantt_has_one_box_per_cell_at_clock_times(est70):
    """Micro-batch i runs on stage j during clock i + j (GPipe fill-run-drain)."""
    sched = est70["pipeline"]["prefill"]
    fig = charts.gantt(sched, "prefill")
    boxes = [(int(t.name.split()[-1]), y, b, w) for t in fig.data for y, b, w in zip(t.y, t.base, t.x)]
    assert len(boxes) == sched["microbatches"] * sched["stages"]
    for mb, stage, base, width in boxes:
        j = int(stage.split()[-1])
        assert base == pytest.approx((mb + j) * sched["clock_s"] * 1e3)
        assert width == pytest.approx(sched["clock_s"] * 1e3)
    end = max(b + w for _, _, b, w in boxes)
    assert end == pytest.approx(sched["makespan_s"] * 1e3)


def test_pareto_shades_what_the_tpot_target_rules_out():
    rec = {"candidates": [{"tp": 8, "pp": 1, "ep": 1, "dp": 1, "batch": 64, "ttft_s": 0.5, "tpot_s": 0.02,
                           "output_tok_s_per_gpu": 900.0, "meets_targets": True},
                          {"tp": 4, "pp": 1, "ep": 1, "dp": 2, "batch": 128, "ttft_s": 1.5, "tpot_s": 0.04,
                           "output_tok_s_per_gpu": 1500.0, "meets_targets": False}],
           "pareto": [{"tpot_s": 0.02, "output_tok_s_per_gpu": 900.0},
                      {"tpot_s": 0.04, "output_tok_s_per_gpu": 1500.0}]}
    fig = charts.pareto(rec, ttft_s=1.0, tpot_s=0.025)
    (shade,) = fig.layout.shapes
    assert shade.x1 == pytest.approx(40.0)  # 1 / 25 ms
    ok = [t for t in fig.data if t.name == "meets targets"][0]
    assert list(ok.x) == [pytest.approx(50.0)] and list(ok.y) == [900.0]
    assert ok.text[0] == "TP8 PP1 EP1 DP1 b64"
    front = [t for t in fig.data if t.name == "Pareto front"][0]
    assert list(front.x) == [pytest.approx(25.0), pytest.approx(50.0)]


def test_calibration_charts_put_measured_points_against_curves():
    fig = charts.calibration_collectives([{"size_bytes": 1024, "busbw_GBps": 1.0}],
                                         [{"label": "model", "bytes": [1024, 2048], "busbw_GBps": [1.2, 2.0]}], "x")
    assert [t.name for t in fig.data] == ["measured", "model"] and fig.layout.xaxis.type == "log"
    fig = charts.calibration_rates([{"x": 1, "y": 2}], [{"label": "m", "x": [1, 2], "y": [2, 3]}], "t", "M", "TF")
    assert fig.layout.yaxis.title.text == "TF"


def test_html_export_is_standalone(est70):
    """The downloaded chart opens offline: plotly.js is inlined."""
    html = charts.to_html(charts.memory_bars(est70["memory"]))
    assert "<html>" in html[:200] and len(html) > 1_000_000
    assert "<script src=\"https://cdn.plot.ly" not in html


def test_no_streamlit_or_torch_in_the_core_or_the_app():
    """sizer/ (charts included) never imports streamlit or torch; app.py never imports torch."""
    code = ("import sys; import sizer.charts, sizer.cost.estimate, sizer.plan.recommend\n"
            "assert 'streamlit' not in sys.modules and 'torch' not in sys.modules, 'core'\n"
            "from streamlit.testing.v1 import AppTest\n"
            f"at = AppTest.from_file({os.path.join(ROOT, 'app.py')!r}, default_timeout=60); at.run()\n"
            "assert not at.exception\n"
            "assert 'torch' not in sys.modules, 'app'\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
