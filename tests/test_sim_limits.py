"""The simulator's limits agree with the steady-state model (sizer estimate), and its
interpolated step costs with sizer's step model.

Measured ratios (simulated / estimate, 1024 in / 256 out, H100, no engine):
- rate -> 0 (requests 100 s apart): mean TTFT and mean TPOT equal estimate --batch 1 to 1e-5
  (8B TP1, 70B TP4, 70B TP2 PP2, Mixtral TP2 EP2; any engine);
- rate inf, 3,000 requests: the same largest batch (the KV pool holds 368 sequences of 8B, 388
  of 70B TP4) and output tok/s / estimate's max-throughput point = 0.978 (8B TP1), 1.016 (70B
  TP4), 0.967 (Mixtral TP2 EP2: bursty prefill chunks on a cost that is not linear in the
  tokens) and 1.152 (70B TP2 PP2: each simulated stage works through unequal micro-batches one
  after the other, a flow shop, where estimate ticks every micro-batch in flight at the
  heaviest one's clock, sizer/cost/estimate.py chunk_clock).
"""

import math

import numpy as np
import pytest

from sizer.cost.estimate import estimate
from sizer.cost.step import step_time
from sizer.hardware.constants import device_for
from sizer.hardware.topology import default_topology
from sizer.model.catalog import get_model
from sizer.model.split import Split
from sizer.sim import Deployment, Lengths, Traffic, simulate
from sizer.sim.costs import StepCosts

FIXED = dict(isl=Lengths("fixed", 1024), osl=Lengths("fixed", 256))


@pytest.mark.parametrize("model, split, engine", [
    ("llama-3.1-8b", Split(), None),
    ("llama-3.1-8b", Split(), "vllm"),
    ("llama-3.1-70b", Split(tp=4), "sglang"),
    ("llama-3.1-70b", Split(tp=2, pp=2), None),
    ("mixtral-8x7b", Split(tp=2, ep=2), "trtllm"),
])
def test_rate_near_zero_gives_estimates_batch_1_latencies(h100, model, split, engine):
    m = get_model(model)
    res = simulate(Deployment(m, h100, split, engine=engine),
                   Traffic(rate_rps=0.01, requests=4, arrival="constant", **FIXED))
    est = estimate(m, h100, split, isl=1024, osl=256, batch=1, engine=engine)
    assert res.latency["ttft_s"]["mean"] / est.ttft_s == pytest.approx(1.0, abs=1e-4)
    assert res.latency["tpot_s"]["mean"] / est.tpot_s == pytest.approx(1.0, abs=1e-4)
    assert res.latency["queue_s"]["max"] == 0.0


@pytest.mark.parametrize("model, split, lo, hi", [
    ("llama-3.1-8b", Split(), 0.95, 1.05),
    ("llama-3.1-70b", Split(tp=4), 0.95, 1.05),
    ("llama-3.1-70b", Split(tp=2, pp=2), 1.0, 1.25),
])
def test_rate_inf_throughput_approaches_estimates_max_throughput(h100, model, split, lo, hi):
    m = get_model(model)
    res = simulate(Deployment(m, h100, split), Traffic(rate_rps=math.inf, requests=3000, **FIXED))
    est = estimate(m, h100, split, isl=1024, osl=256)
    assert lo <= res.throughput["output_tok_s"] / est.output_tok_s <= hi
    assert res.batch["max"] <= est.batch  # the same KV / max_num_seqs cap, over PP micro-batches
    if split.pp == 1:
        assert res.batch["max"] == est.batch
    assert res.verdict == "saturated"


@pytest.mark.parametrize("model, split", [("llama-3.1-8b", Split()), ("llama-3.1-70b", Split(tp=4, pp=2)),
                                          ("mixtral-8x7b", Split(tp=2, ep=2))])
def test_interpolated_step_costs_match_the_step_model(h100, model, split):
    """Random mixed forwards (decode batch, KV length, prefill tokens, prompt length): the
    tables' multilinear interpolation stays within 0.1% of step_time's slowest stage."""
    m = get_model(model)
    dev = device_for(h100)
    topo = default_topology(h100, split.gpus) if split.gpus > 1 else None
    costs = StepCosts(m, dev, split, max_num_seqs=256, max_num_batched_tokens=8192, topology=topo)
    rng = np.random.default_rng(0)
    errors = []
    for _ in range(25):
        b = int(rng.integers(0, 257))
        ctx = int(rng.integers(100, 8000))
        p = int(rng.integers(1, 8192 - b)) if rng.random() < 0.6 or b == 0 else 0
        L = int(rng.integers(max(p, 64), 16000)) if p else 1
        if b == 0:
            r = step_time(m, dev, split, phase="prefill", batch=p / L, seq_len=L, cuda_graphs=False, topology=topo)
        else:
            r = step_time(m, dev, split, phase="decode", batch=b, context_len=ctx, prefill_tokens=p,
                          seq_len=L if p else None, topology=topo)
        exact = max(float(np.max(t)) for t in r.stage_times_s)
        errors.append(abs(costs.time(b, ctx, p, L) / exact - 1))
    assert max(errors) < 1e-3


@pytest.mark.parametrize("engine, split, seqs", [
    ("vllm", Split(tp=4), None),
    ("vllm", Split(tp=4), 64),   # a given max_num_seqs sizes vLLM's profiling sampler too
    ("sglang", Split(tp=1, dp=8, ep=8), None),  # DP attention: each rank gets its share
])
def test_caps_and_kv_pool_are_estimates(h100, engine, split, seqs):
    """The simulator's replica caps and KV pool are the ones `sizer estimate` plans with
    (cost.engines.replica_limits; memory_plan sized with the configured max_num_seqs): SGLang
    splits max_running_requests over its data-parallel attention ranks (managers/scheduler.py
    per_dp_max_running_requests), and vLLM profiles min(max_num_batched_tokens, max_num_seqs)
    sampler rows (gpu_model_runner.py profile_run)."""
    model = get_model("llama-3.1-70b" if split.ep == 1 else "qwen3-30b-a3b")
    est = estimate(model, h100, split, isl=1024, osl=256, engine=engine, max_batch=seqs)
    dep = Deployment(model, h100, split, engine=engine, max_num_seqs=seqs, context=1280)
    assert dep.kv_tokens == est.memory["max_kv_tokens"]
    from sizer.cost.engines import get_engine, replica_limits
    assert dep.max_num_seqs == (seqs or replica_limits(get_engine(engine), h100, split)[0])
