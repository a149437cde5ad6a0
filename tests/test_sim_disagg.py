"""The simulator's disaggregated mode (issue #18 item 1): two pools of the engine's schedulers,
a transfer queue, and the decode pool's admission limited by its KV memory."""

import json

import numpy as np
import pytest

from sizer.cli.main import main
from sizer.cost.disagg import Pools, estimate_disagg
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.split import Split
from sizer.sim import Lengths, Traffic, simulate
from sizer.sim.disagg import DisaggDeployment


@pytest.fixture(scope="module")
def llama8():
    return get_model("8b"), get_gpu("h100-sxm")


@pytest.mark.parametrize("engine", ["vllm", "sglang", None])
def test_one_request_at_a_time_is_the_steady_state_at_concurrency_1(llama8, engine):
    """At a rate near zero every request meets idle pools: its TTFT is one prompt's prefill plus
    its KV transfer and its TPOT the decode step of one sequence, what estimate --disagg
    --concurrency 1 prices (the prompt length is a grid anchor: exact to rounding)."""
    model, gpu = llama8
    pools = Pools(Split(tp=2), Split(tp=1, dp=2), 1, 2)
    est = estimate_disagg(model, gpu, pools, isl=8192, osl=64, engine=engine, concurrency=1).doc
    assert est["prefill"]["prompts_per_forward"] == 1
    dep = DisaggDeployment(model, gpu, pools, engine=engine, context=8192 + 64)
    res = simulate(dep, Traffic(rate_rps=0.001, requests=4, isl=Lengths("fixed", 8192), osl=Lengths("fixed", 64)))
    assert res.latency["ttft_s"]["max"] == pytest.approx(est["ttft_s"], rel=1e-9)
    assert res.latency["tpot_s"]["max"] == pytest.approx(est["tpot_s"], rel=1e-9)
    assert res.stages["kv_transfer_s"]["max"] == pytest.approx(est["kv_transfer_s"], rel=1e-12)
    assert res.stages["decode_admission_wait_s"]["max"] == 0.0


def test_every_request_completes_once_through_both_pools(llama8):
    """Mixed lengths under load: one completion per request, Little's law on the whole system,
    and no first token before the request's own KV transfer could have ended."""
    model, gpu = llama8
    pools = Pools(Split(tp=1, dp=2), Split(tp=1, dp=2), 2, 2)
    dep = DisaggDeployment(model, gpu, pools, engine="vllm", context=6000, router="least-loaded")
    res = simulate(dep, Traffic(rate_rps=20, requests=300, isl=Lengths("uniform", 200, 4000),
                                osl=Lengths("uniform", 1, 300), seed=3))
    t = res.table
    assert np.all(t["completions"] == 1) and res.completed == 300
    assert res.littles_law["relative_error"] < 1e-9
    xfer = dep.transfer_times(t["input_tokens"])
    assert np.all(t["first_token_s"] - t["arrival_s"] >= xfer - 1e-12)
    assert np.all(np.isin(t["replica"], [2, 3]))  # the decode replica each request finished on


@pytest.mark.parametrize("engine", ["trtllm", None, "vllm"])
def test_decode_admission_is_limited_by_its_kv_memory(llama8, engine):
    """Three TP1 prefill replicas feed one TP1 decode replica 16k-token prompts faster than it
    drains 2000-token outputs: requests wait for the decode replica's KV, it never runs more
    than its memory holds (whole sequences under whole-sequence admission, prompts under vLLM's
    block-by-block allocation), and the prefill replicas, holding each prompt's KV until it is
    sent, fill up behind it."""
    model, gpu = llama8
    pools = Pools(Split(tp=1, dp=3), Split(tp=1), 3, 1)
    dep = DisaggDeployment(model, gpu, pools, engine=engine, context=18000,
                           max_num_batched_tokens=16384 if engine == "trtllm" else None)
    res = simulate(dep, Traffic(rate_rps=float("inf"), requests=100, isl=Lengths("fixed", 16000),
                                osl=Lengths("fixed", 2000)))
    kv = dep.decode.kv_tokens
    held = 16000 + (2000 if engine != "vllm" else 1)
    assert res.batch["max"] <= kv // held
    assert res.kv_utilization["max"] <= 1.0
    assert res.stages["decode_admission_wait_s"]["p99"] > 60
    assert res.stages["prefill_kv_utilization"]["max"] > 0.8
    if engine != "vllm":
        assert res.preemptions == 0


def test_simulate_cli_disagg(capsys):
    argv = ["simulate", "--model", "8b", "--disagg", "--prefill-replicas", "2", "--isl", "2000", "--osl", "100",
            "--requests", "200"]
    assert main(argv + ["--rate", "10", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["deployment"]["mode"] == "disaggregated" and d["pools"]["prefill"]["replicas"] == 2
    assert d["split"]["gpus"] == 3 and d["completed"] == 200
    assert set(d["stages"]) >= {"prefill_s", "decode_admission_wait_s", "kv_transfer_queue_s", "kv_transfer_s"}
    assert main(argv + ["--find-rate", "--ttft-slo", "500ms", "--tpot-slo", "20ms", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert 0 < s["max_rate_rps"] <= 1.5 * s["steady_state_rps"]
    # as in aggregated --find-rate, a run whose queue grows meets nothing
    assert not any(p["verdict"] == "saturated" and p["meets"] for p in s["curve"])
