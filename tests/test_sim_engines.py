"""The engines' schedulers in the simulator: preemption, retraction, no-evict admission,
conservation and determinism on every engine, PP micro-batches, routing, client concurrency."""

import math

import numpy as np
import pytest
from sim_helpers import FixedCosts, check_invariants

from sizer.cost.estimate import estimate
from sizer.model.split import Split
from sizer.sim import Deployment, Lengths, Traffic, simulate

ENGINES = (None, "vllm", "sglang", "trtllm")


def fixed(isl, osl):
    return dict(isl=Lengths("fixed", isl), osl=Lengths("fixed", osl))


def test_vllm_preempts_the_last_admitted_request_and_recomputes_it(l8, h100):
    """KV of 64 tokens in vLLM's 16-token blocks, two requests of 16 + 40 tokens at t=0. Both
    fit at admission (1 block each); at their 33rd token both need a third block and none is
    free, so vLLM preempts the last running request (B), frees its 2 blocks and prepends it to
    the queue. B's 32 tokens (prompt + 16 generated) need 2 blocks, A leaves 1 free until it
    finishes, so B resumes only then and recomputes (past the one of its blocks A's third block
    did not evict from the prefix cache): exactly one preemption."""
    dep = Deployment(l8, h100, Split(), engine="vllm")
    dep.kv_tokens = 64
    dep.step_costs = FixedCosts(0.02, 0.01)
    res = simulate(dep, Traffic(rate_rps=math.inf, requests=2, **fixed(16, 40)))
    assert res.table["preemptions"].tolist() == [0, 1]
    assert res.preemptions == 1 and res.preempted_requests == 1
    t = res.table
    assert t["finish_s"][1] > t["finish_s"][0]  # B resumed after A finished
    check_invariants(res)


@pytest.fixture(scope="module")
def pressure(l8, h100):
    """200 requests at once with long outputs into a KV pool of 20,000 tokens."""
    out = {}
    for engine in ENGINES:
        dep = Deployment(l8, h100, Split(), engine=engine)
        dep.kv_tokens = 20000
        dep.step_costs = FixedCosts(0.02, 0.01)
        out[engine] = simulate(dep, Traffic(rate_rps=math.inf, requests=200, **fixed(100, 1000)))
    return out


def test_preemption_per_engine_under_kv_pressure(pressure):
    """vLLM admits on the prompt's blocks and preempts by recompute; SGLang admits on an
    estimate of the remaining output (new_token_ratio) and retracts when it was too low;
    TensorRT-LLM's GUARANTEED_NO_EVICT and the generic scheduler reserve whole sequences and
    never evict."""
    assert pressure["vllm"].preemptions > 0
    assert pressure["sglang"].preemptions > 0
    assert pressure["trtllm"].preemptions == 0
    assert pressure[None].preemptions == 0
    for res in pressure.values():
        check_invariants(res)


def test_no_evict_admission_runs_what_fits_whole(pressure):
    """1,100-token sequences in 20,000 tokens: 18 fit whole (in TensorRT-LLM's 32-token blocks,
    35 blocks each of 625), so that is the largest batch; no KV pool is ever over-used."""
    assert pressure["trtllm"].batch["max"] == 625 // 35 == 17
    assert pressure[None].batch["max"] == 20000 // 1100 == 18
    for res in pressure.values():
        assert res.kv_utilization["max"] <= 1.0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("rate", [3.0, 30.0, math.inf])
def test_conservation_and_littles_law_on_every_engine(l8, h100, engine, rate):
    dep = Deployment(l8, h100, Split(), engine=engine)
    res = simulate(dep, Traffic(rate_rps=rate, requests=120, isl=Lengths("uniform", 50, 800),
                                osl=Lengths("lognormal", 120, 80), seed=3))
    check_invariants(res)


def test_same_seed_same_numbers_other_seed_other_numbers(l8, h100):
    dep = Deployment(l8, h100, Split(), engine="vllm")
    tr = Traffic(rate_rps=20, requests=150, isl=Lengths("normal", 600, 200), osl=Lengths("uniform", 10, 300))
    a, b = simulate(dep, tr).to_json(), simulate(dep, tr).to_json()
    assert a == b
    c = simulate(dep, Traffic(rate_rps=20, requests=150, isl=Lengths("normal", 600, 200),
                              osl=Lengths("uniform", 10, 300), seed=1)).to_json()
    assert c["ttft_s"] != a["ttft_s"]


def test_pipeline_single_request_matches_estimate(l70, h100):
    """PP=2, one request alone: each forward passes both stages, so TTFT = 2 x the prefill
    clock and TPOT = 2 x the decode clock, as sizer estimate's batch-1 numbers (and as the
    fixed-cost model shows exactly)."""
    split = Split(tp=4, pp=2)
    dep = Deployment(l70, h100, split)
    res = simulate(dep, Traffic(rate_rps=0.01, requests=3, arrival="constant", **fixed(1024, 64)))
    est = estimate(l70, h100, split, isl=1024, osl=64, batch=1)
    assert res.latency["ttft_s"]["mean"] == pytest.approx(est.ttft_s, rel=1e-4)
    assert res.latency["tpot_s"]["mean"] == pytest.approx(est.tpot_s, rel=1e-4)
    check_invariants(res)
    dep.step_costs = FixedCosts(0.1, 0.05)
    res = simulate(dep, Traffic(rate_rps=0.01, requests=1, **fixed(128, 4)))
    assert res.latency["ttft_s"]["mean"] == pytest.approx(0.2)  # 2 stages x 0.1 s
    assert res.latency["tpot_s"]["mean"] == pytest.approx(0.1)  # 2 stages x 0.05 s


def test_pipeline_keeps_micro_batches_in_flight(l70, h100, tmp_path):
    """PP=2 with a 0.1 s prefill clock: A and B arrive at t=0 and share the first micro-batch
    (stage 0 over [0, 0.1], stage 1 over [0.1, 0.2]); C arrives at 0.05 and gets its own
    micro-batch as soon as stage 0 frees (0.1), leaving stage 1 at 0.3: TTFT 0.2, 0.2, 0.25.
    Without micro-batches in flight C would wait for the first to leave: 0.35."""
    from sizer.sim import read_trace

    f = tmp_path / "t.csv"
    f.write_text("arrival_s,input_tokens,output_tokens\n0,128,4\n0,128,4\n0.05,128,4\n")
    dep = Deployment(l70, h100, Split(tp=4, pp=2))
    dep.step_costs = FixedCosts(0.1, 0.05)
    res = simulate(dep, Traffic(trace=read_trace(str(f))))
    assert res.per_request["ttft"].tolist() == pytest.approx([0.2, 0.2, 0.25])
    assert res.batch["max"] == 2
    check_invariants(res)


def test_round_robin_alternates_and_least_loaded_balances(l8, h100):
    split = Split(dp=2)
    rr = simulate(Deployment(l8, h100, split), Traffic(rate_rps=50, requests=40, **fixed(256, 64)))
    assert rr.table["replica"].tolist() == [0, 1] * 20
    ll = simulate(Deployment(l8, h100, split, router="least-loaded"),
                  Traffic(rate_rps=math.inf, requests=41, **fixed(256, 64)))
    assert sorted(np.bincount(ll.table["replica"]).tolist()) == [20, 21]
    check_invariants(ll)


def test_client_concurrency_caps_requests_in_flight(l8, h100):
    res = simulate(Deployment(l8, h100, Split()), Traffic(rate_rps=math.inf, requests=60, concurrency=4,
                                                          **fixed(512, 32)))
    t = res.table
    starts, ends = t["arrival_s"], t["finish_s"]
    for s in starts:
        assert np.sum((starts <= s + 1e-12) & (ends > s + 1e-12)) <= 4
    assert res.verdict == "closed loop"
    check_invariants(res)


def test_warmup_requests_are_not_measured(l8, h100):
    dep = Deployment(l8, h100, Split())
    res = simulate(dep, Traffic(rate_rps=10, requests=50, warmup=10, **fixed(256, 16)))
    assert res.measured == 40 and res.requests == 50
    assert len(res.per_request["ttft"]) == 40


def test_goodput_counts_requests_meeting_every_slo(l8, h100):
    dep = Deployment(l8, h100, Split())
    res = simulate(dep, Traffic(rate_rps=40, requests=200, **fixed(1024, 128)), ttft_slo_s=0.05, tpot_slo_s=0.02)
    pr = res.per_request
    good = (pr["ttft"] <= 0.05) & (pr["tpot"] <= 0.02)
    assert res.goodput["fraction"] == pytest.approx(good.mean())
    assert res.goodput["requests_per_s"] == pytest.approx(good.sum() / res.duration_s)


def test_expert_parallel_across_replicas_steps_in_lockstep(h100):
    """EP2 over TP1 x DP2 (vLLM DP attention with an EP MoE): the two engine replicas share
    every MoE layer's all-to-all, so they are simulated as one lockstep group with twice the
    caps; EP inside one replica (TP2 EP2) leaves replicas independent."""
    from sizer.model.catalog import get_model

    m = get_model("mixtral-8x7b")
    wide = Deployment(m, h100, Split(tp=1, dp=2, ep=2), engine="vllm")
    assert (wide.replicas, wide.group) == (1, 2)
    res = simulate(wide, Traffic(rate_rps=math.inf, requests=600, **fixed(256, 32)))
    assert res.batch["max"] > 256  # one forward of the group carries both replicas' sequences
    check_invariants(res)
    narrow = Deployment(m, h100, Split(tp=2, ep=2), engine="vllm")
    assert (narrow.replicas, narrow.group) == (1, 1)


def _thrash(l8, h100, **kw):
    """Nine 16,000 + 2,000-token requests at once into 147,200 tokens of KV (8.2 of them): all
    nine prompts fit when admitted, their outputs do not, and the ninth is preempted when the
    others' decodes need blocks (the trial's case, 8B on one GPU)."""
    dep = Deployment(l8, h100, Split(), engine="vllm", **kw)
    dep.kv_tokens = 147_200
    dep.step_costs = FixedCosts(0.02, 0.01)
    return simulate(dep, Traffic(rate_rps=math.inf, requests=9, **fixed(16000, 2000)))


def test_vllm_preempted_request_resumes_from_its_cached_prefix(l8, h100):
    """Admitting on the first chunk (--no-scheduler-reserve-full-isl, vLLM before PR #37307):
    with vLLM's prefix caching (its default) the preempted ninth request's blocks stay in the
    free queue; re-admitting it needs them back plus its next chunk, which do not fit until a
    request finishes, so it waits instead of being re-admitted and preempted every few steps:
    one preemption (511 when every resume recomputed from scratch)."""
    res = _thrash(l8, h100, reserve_full_isl=False)
    assert res.deployment["prefix_caching"] is True and res.deployment["reserve_full_isl"] is False
    assert res.table["preemptions"].tolist() == [0] * 8 + [1]
    check_invariants(res)
    # without the cache and without the gate the resume needs only its first chunk's blocks:
    # vLLM re-admits it and preempts it again (the --no-enable-prefix-caching thrash of old vLLM)
    off = _thrash(l8, h100, prefix_caching=False, reserve_full_isl=False)
    assert off.deployment["prefix_caching"] is False
    assert off.table["preemptions"][8] == 511 and off.table["preemptions"][:8].sum() == 0
    check_invariants(off)


def test_vllm_full_sequence_gate_stops_the_thrash_without_the_cache(l8, h100):
    """vLLM's default gate (scheduler_reserve_full_isl) re-admits the preempted request only
    when the blocks of its whole known sequence (16,000 prompt + outputs so far) are free, i.e.
    after a request finishes: one preemption with or without the prefix cache, 511 without both."""
    for cache in (True, False):
        res = _thrash(l8, h100, prefix_caching=cache)
        assert res.deployment["reserve_full_isl"] is True
        assert res.table["preemptions"].tolist() == [0] * 8 + [1]
        check_invariants(res)


def test_vllm_gate_admits_on_the_whole_prompt_not_its_first_chunk(l8, h100):
    """Two 6,000-token prompts into 10,000 tokens of KV with 2,048-token chunks: the second's
    first chunk fits beside the first request, its prompt does not. The gate keeps it waiting
    until the first finishes (no preemption); admitting on the first chunk lets it in and one
    of the two is preempted when the pool runs out."""
    def run(gate):
        dep = Deployment(l8, h100, Split(), engine="vllm", max_num_batched_tokens=2048, reserve_full_isl=gate)
        dep.kv_tokens = 10_000
        dep.step_costs = FixedCosts(0.02, 0.01)
        return simulate(dep, Traffic(rate_rps=math.inf, requests=2, **fixed(6000, 100)))

    on, off = run(None), run(False)  # the default is the gate
    assert on.deployment["reserve_full_isl"] is True
    for res in (on, off):
        check_invariants(res)
    assert on.table["preemptions"].sum() == 0
    assert on.table["first_token_s"][1] > on.table["finish_s"][0]  # admitted once the first is done
    assert off.table["preemptions"].sum() >= 1


def test_vllm_lone_request_near_the_pool_size_never_preempts(l8, h100):
    """A request alone whose whole sequence fills the pool to the last block makes progress:
    no preemption, exactly its tokens generated."""
    dep = Deployment(l8, h100, Split(), engine="vllm")
    dep.kv_tokens = 18_000
    dep.step_costs = FixedCosts(0.02, 0.01)
    res = simulate(dep, Traffic(rate_rps=math.inf, requests=1, **fixed(16000, 2000)))
    assert res.preemptions == 0
    check_invariants(res)
