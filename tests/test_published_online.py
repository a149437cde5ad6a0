"""The published online-serving rows (data/published_online.json) are complete, cite their
table, resolve to presets, and the simulator reproduces the lightest-load rows it should: at
concurrency 1 nothing queues, so the simulated TTFT and TPOT are the step model's (measured
errors when recorded: NIM 70B TP2 fp8 5000/500, TTFT +2%, TPOT +8%)."""

import pytest

from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.resources import read_json
from sizer.model.split import Split
from sizer.sim import Deployment, Lengths, Traffic, simulate

ROWS = read_json("published_online.json")


def test_rows_are_complete_and_resolve():
    ids = [r["id"] for r in ROWS]
    assert len(ids) == len(set(ids)) == 80
    for r in ROWS:
        assert r["source"] and r["confidence"] in ("high", "medium", "low") and r["notes"]
        assert all(v > 0 for v in r["measured"].values())
        assert (r["rate_rps"] is None) or r["rate_rps"] > 0
        assert r["concurrency"] is None or r["rate_rps"] is None
        get_model(r["model"])
        get_gpu(r["gpu"])


def test_concurrency_one_row_is_the_step_model():
    r = next(x for x in ROWS if x["id"] == "nim18-l33-70b-h100-tp2-5000-500-c1")
    dep = Deployment(get_model(r["model"]), get_gpu(r["gpu"]), Split(tp=r["tp"]), engine=r["engine"],
                     weight_dtype=r["weight_dtype"], kv_dtype=r["kv_dtype"], context=5500)
    res = simulate(dep, Traffic(requests=20, concurrency=1, isl=Lengths("fixed", 5000), osl=Lengths("fixed", 500)))
    assert res.latency["ttft_s"]["mean"] == pytest.approx(r["measured"]["ttft_mean_s"], rel=0.15)
    assert res.latency["tpot_s"]["mean"] == pytest.approx(r["measured"]["tpot_mean_s"], rel=0.15)
    assert res.batch["max"] == 1
