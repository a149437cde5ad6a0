"""`estimate --concurrency N`: the closed loop of N requests per replica (trial 2 item 1).

A request's decode steps carry the other N - 1 requests' prompts, never its own; its TTFT is its
own prefill (plus any wait the work-conserving cycle forces); TPOT is (e2e - TTFT) / (osl - 1),
as vLLM's benchmarks/benchmark_serving.py (calculate_metrics) defines it. Checked against the
request-level simulator (sizer.sim) in the same closed loop: rate inf, N outstanding requests.
"""

import numpy as np
import pytest

from sizer.cost.estimate import estimate, serving_curve
from sizer.cost.step import step_time
from sizer.model.split import Split
from sizer.sim.arrivals import Lengths, Traffic
from sizer.sim.run import Deployment, simulate


def test_one_request_is_the_batch_one_step_not_its_own_prefill_amortised(l70, h100):
    """Trial 2: 70B TP4, 100000/10, --concurrency 1 said TPOT 1.419 s (its own 100k-token
    prefill spread over its 10 tokens); alone, TPOT is the batch-1 decode step (20.27 ms) and
    TTFT the batch-1 prefill (`estimate --batch 1`), exactly."""
    split = Split(tp=4)
    for isl, osl in ((100_000, 10), (8192, 128)):
        one = estimate(l70, h100, split, isl=isl, osl=osl, concurrency=1, engine="vllm")
        static = estimate(l70, h100, split, isl=isl, osl=osl, batch=1, engine="vllm")
        step = step_time(l70, h100, split, phase="decode", batch=1, context_len=round(isl + (osl - 1) / 2))
        assert one.tpot_s == float(step.time_s) == static.tpot_s
        assert one.ttft_s == static.ttft_s
        assert one.e2e_s == pytest.approx(one.ttft_s + (osl - 1) * one.tpot_s, rel=1e-12)
        assert one.output_tok_s == pytest.approx(osl / one.e2e_s, rel=1e-12)
    assert one.tpot_s == pytest.approx(17.9e-3, abs=0.1e-3)  # sizer step, batch 1 at 8255 tokens


def test_tpot_is_e2e_minus_ttft_over_the_later_tokens_and_littles_law_holds(l8, h100):
    """At every N: TPOT = (e2e - TTFT) / (osl - 1), N requests per cycle: tok/s = N osl / e2e,
    and more requests in flight never make a token faster."""
    b = np.array([1.0, 2, 4, 16, 64, 256])
    c = serving_curve(l8, h100, Split(), b, isl=1024, osl=256)
    assert np.allclose(c.tpot_s, (c.e2e_s - c.ttft_s) / 255, rtol=1e-12)
    assert np.allclose(c.output_tok_s, b * 256 / c.e2e_s, rtol=1e-12)
    assert np.all(np.diff(c.tpot_s) > 0) and np.all(np.diff(c.e2e_s) > 0)
    assert np.all(c.ttft_s >= c.ttft_s[0])  # never below a lone prompt's prefill
    assert c.wait_s[0] == 0.0 and np.all(c.wait_s >= 0)


def test_saturated_rounds_carry_every_prompt(l8, h100):
    """Where the engine's work binds (many sequences, long prompts) the cycle is osl rounds
    that carry all N prompts: the request waits for the others' prefills, and tok/s is the
    work-conserving N / round time (what recommend and the published rows rest on)."""
    c = serving_curve(l8, h100, Split(), np.array([256.0]), isl=4096, osl=64)
    assert c.wait_s[0] > 0
    assert c.ttft_s[0] == pytest.approx(c.e2e_s[0] - 63 * c.tpot_s[0], rel=1e-12)


def _sim(model, gpu, split, isl, osl, n, osl_lengths=None):
    dep = Deployment(model, gpu, split, engine="vllm", context=isl + 2 * osl)
    traffic = Traffic(requests=20 * n + 20, warmup=8 * n + 8, concurrency=n, isl=Lengths("fixed", isl),
                      osl=osl_lengths or Lengths("fixed", osl))
    return simulate(dep, traffic).to_json()


CASES = [("l70", 4, 8192, 128, (1, 4, 16, 32), 0.20), ("l8", 1, 1024, 256, (1, 4, 16, 64), 0.10)]


@pytest.mark.parametrize("name,tp,isl,osl,ns,tpot_tol", CASES)
def test_estimate_matches_the_simulated_closed_loop(request, h100, name, tp, isl, osl, ns, tpot_tol):
    """sizer.sim, rate inf, N outstanding (vLLM scheduler), against estimate at the same N.
    Measured (20N + 20 requests, 8N + 8 warm-up): N = 1 equal; e2e +0.9% / +2.8% / +3.5% at
    N = 4 / 16 / 32 for 70B 8192/128 and -0.0% / -1.1% / -1.3% at N = 4 / 16 / 64 for 8B
    1024/256; TPOT +17% / +13% / +9% (70B) and +3% / +8% / +5% (8B). TTFT is 46-85% under the
    simulator's: with equal lengths all N requests start at t = 0 and stay in lockstep (each
    wave prefills together), which the steady state does not model; see the desynchronised
    test below. (70B N = 64 does not fit: 47 sequences of 8320 tokens fill TP4's KV, and
    estimate says so.)"""
    model, split = request.getfixturevalue(name), Split(tp=tp)
    for n in ns:
        est = estimate(model, h100, split, isl=isl, osl=osl, concurrency=n, engine="vllm")
        sim = _sim(model, h100, split, isl, osl, n)
        assert est.memory["max_sequences"] >= n
        if n == 1:
            for k in ("ttft_s", "tpot_s", "e2e_s"):
                assert getattr(est, k) == pytest.approx(sim[k]["mean"], rel=1e-3)
            continue
        assert est.e2e_s == pytest.approx(sim["e2e_s"]["mean"], rel=0.045)
        assert est.tpot_s == pytest.approx(sim["tpot_s"]["mean"], rel=tpot_tol)
        assert est.tpot_s > sim["tpot_s"]["mean"] * 0.99  # lockstep waves see fewer prefills
        assert est.ttft_s < sim["ttft_s"]["mean"]


def test_desynchronised_closed_loop_ttft_and_tpot(l70, l8, h100):
    """Output lengths uniform over osl / 2 .. 3 osl / 2 spread the requests' phases, the case
    the steady state describes. Measured TPOT +1.7% / +6.1% / +5.3% and TTFT -3% / -11% / -26%
    at N = 4 / 16 / 32 for 70B TP4 8192/128 (the rest of the TTFT gap: a new prompt queued
    behind another's 8192-token chunk waits for it, which grows with N), TPOT +0.1% / +0.9% /
    +1.4% and TTFT +1% / -1% / -9% at N = 4 / 16 / 64 for 8B 1024/256. Without the wait for
    the forward in flight TTFT was 8-31% under."""
    for model, tp, isl, osl, ns in ((l70, 4, 8192, 128, (4, 16, 32)), (l8, 1, 1024, 256, (4, 16, 64))):
        for n in ns:
            est = estimate(model, h100, Split(tp=tp), isl=isl, osl=osl, concurrency=n, engine="vllm")
            sim = _sim(model, h100, Split(tp=tp), isl, osl, n, Lengths("uniform", osl // 2, osl * 3 // 2))
            assert est.tpot_s == pytest.approx(sim["tpot_s"]["mean"], rel=0.07)
            assert est.ttft_s == pytest.approx(sim["ttft_s"]["mean"], rel=0.27)


def test_70b_at_64_does_not_fit_its_kv(l70, h100):
    est = estimate(l70, h100, Split(tp=4), isl=8192, osl=128, concurrency=64, engine="vllm")
    assert est.memory["max_sequences"] == 47  # 392,800 KV tokens / 8,320 per sequence (sizer memory)


def test_recommend_prices_its_continuous_points_with_the_same_closed_loop(l70, h100):
    """sizer/plan/search.py evaluate() costs recommend's points with estimate's serving_curve:
    at N = 1 and 16 its TTFT/TPOT/e2e are estimate's, exactly."""
    from sizer.plan.search import Workload, evaluate

    split = Split(tp=4)
    pts = evaluate(l70, h100, split, [1, 16], Workload(isl=8192, osl=128, max_batch=1024, max_num_tokens=8192))
    for i, n in enumerate((1, 16)):
        est = estimate(l70, h100, split, isl=8192, osl=128, concurrency=n, engine="vllm")
        assert (pts.ttft_s[i], pts.tpot_s[i], pts.e2e_s[i]) == pytest.approx((est.ttft_s, est.tpot_s, est.e2e_s), rel=1e-12)


def test_concurrency_beyond_the_engines_room_queues_for_a_slot():
    """Trial 3: `estimate --model 70b --tp 4 --concurrency 2000` timed a batch of 2,000 that the
    engine cannot hold (room for 306) and exited 0 with TTFT 817 ms. An engine runs what it holds
    and the rest wait: a closed loop of N over M slots serves what M serve (TPOT and tok/s of
    concurrency M) and, by Little's law, keeps each request N/M x e2e_M in the system."""
    from sizer.cost.estimate import estimate
    from sizer.hardware.gpus import get_gpu
    from sizer.model.catalog import get_model
    from sizer.model.split import Split

    m, g, s = get_model("70b"), get_gpu("h100-sxm"), Split(tp=4)
    big = estimate(m, g, s, isl=1024, osl=256, concurrency=2000, engine="vllm")
    held = big.spread["running_batch"]
    assert held == big.batch == big.memory["max_sequences"] and big.memory["per_gpu"]["fits"]
    assert big.spread["waiting_batch"] == 2000 - held
    ref = estimate(m, g, s, isl=1024, osl=256, concurrency=held, engine="vllm")
    assert big.tpot_s == ref.tpot_s and big.output_tok_s == ref.output_tok_s
    assert big.e2e_s == pytest.approx(ref.e2e_s * 2000 / held, rel=1e-12)
    assert big.ttft_s == pytest.approx(big.e2e_s - 255 * big.tpot_s, rel=1e-9)
    # within the room nothing queues
    assert "running_batch" not in estimate(m, g, s, isl=1024, osl=256, concurrency=held, engine="vllm").spread
