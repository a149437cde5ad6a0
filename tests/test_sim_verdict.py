"""The simulator's verdict (sizer/sim/metrics.py stability): a trend test on the number in
system over the second half of the arrivals, "too short to tell" for runs still filling, and
the header's rate for replayed traces.

Measured (8B on one H100, vLLM, 1024 in / 256 out; find-rate maximum 21.5 req/s for P99 TTFT
2 s / TPOT 50 ms, steady-state maximum 22.1), seeds 0-2: at half that rate, 1,000 and 3,000
requests stable (pile-up -0.9% to +0.2%); 300 requests 1 stable, 2 too short (pile-up 12% and
24%: a burst of arrivals at the end of seed 2 raised the count from 35 to 65). At twice it:
1,000 and 3,000 requests saturated (pile-up 40-67%, S = 45 of 45); 300 requests 2 saturated,
1 too short. 70B TP4 DP2 at 16 req/s, 6,000 requests, seeds 0-5: stable (S from -21 to 29,
pile-up at most 3.2%, under the 5% that counts; the old verdict called seed 0 saturated).
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.split import Split
from sizer.sim import Deployment, Traffic, find_rate, read_trace, simulate
from sizer.sim.metrics import kendall_s_critical, stability


@pytest.fixture(scope="module")
def h100():
    return get_gpu("h100-sxm")


@pytest.fixture(scope="module")
def dep8(h100):
    return Deployment(get_model("8b"), h100, Split(), engine="vllm")


def test_mann_kendall_critical_values():
    """Exact one-sided critical values of S (Kendall's tables): n = 4, P(S = 6) = 1/24; n = 10,
    P(S >= 29) = 0.0046 and P(S >= 27) = 0.0083."""
    assert kendall_s_critical(4, 0.05) == 6
    assert kendall_s_critical(4, 0.04) == 6 + 2  # nothing reaches 1/24 < 0.04: beyond the maximum
    assert kendall_s_critical(10, 0.005) == 29
    assert kendall_s_critical(10, 0.009) == 27


def _synthetic(finish_gap: float, n: int = 2000, rate: float = 10.0, seed: int = 0):
    """Poisson arrivals at `rate`; a server finishing one request every `finish_gap` s in order
    (a stable one when finish_gap < 1 / rate)."""
    rng = np.random.default_rng(seed)
    arr = np.concatenate([[0.0], np.cumsum(rng.exponential(1 / rate, n - 1))])
    fin = np.empty(n)
    t = 0.0
    for i, a in enumerate(arr):
        t = max(t, a) + finish_gap
        fin[i] = t
    return SimpleNamespace(release_t=arr, finish_t=fin, n=n)


def test_growth_test_on_known_queues():
    """An M/D/1 queue at load 0.8 is stable over 5 seeds; at load 2 half the window's arrivals
    pile up; at load 1.1, a tenth."""
    for seed in range(5):
        assert stability(_synthetic(0.08, seed=seed), service_s=0.08)["reason"] == "flat"
    over = stability(_synthetic(0.2), service_s=0.2)
    assert over["reason"] == "grows" and over["pile_up"] == pytest.approx(0.5, abs=0.05)
    mild = stability(_synthetic(0.11), service_s=0.11)
    assert mild["reason"] == "grows" and mild["pile_up"] == pytest.approx(0.09, abs=0.03)


def test_trace_replay_is_labelled_with_its_own_rate_and_reads_stable(dep8, tmp_path):
    """The trial's case: 500 timestamped rows at about 5 req/s replayed as they are (rate inf
    means the trace's own timing), then rescaled by a rate."""
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.exponential(0.2, 500))
    t -= t[0]
    f = tmp_path / "trace.csv"
    f.write_text("arrival_s,input_tokens,output_tokens\n" + "".join(
        f"{x:.4f},{rng.integers(200, 2000)},{rng.integers(50, 400)}\n" for x in t))
    tr = read_trace(str(f))
    own = 499 / float(t[-1])
    res = simulate(dep8, Traffic(trace=tr))
    assert res.traffic.startswith(f"{own:.3g} req/s (trace timestamps)")
    assert "inf" not in res.traffic and "poisson" not in res.traffic
    assert res.verdict == "stable" and res.advice() is None
    fast = simulate(dep8, Traffic(trace=tr, rate_rps=10.0))
    assert fast.traffic.startswith(f"10 req/s (trace timestamps rescaled from {own:.3g} req/s)")
    assert "poisson" not in fast.traffic


def test_short_run_is_too_short_to_tell(dep8):
    """The trial's case: 8B at 10 req/s for 5 s (44 arrivals, a request spends ~2 s in the engine)."""
    res = simulate(dep8, Traffic(rate_rps=10.0, duration_s=5.0))
    assert res.verdict == "too short"
    assert "run longer" in res.advice() and "--requests" in res.advice()


def test_noisy_but_flat_70b_runs_read_stable(h100):
    """The trial's case: 70B TP4 DP2 at 16 req/s, 6,000 requests; seed 0 read saturated before."""
    dep = Deployment(get_model("70b"), h100, Split(tp=4, dp=2), engine="vllm")
    for seed in range(6):
        res = simulate(dep, Traffic(rate_rps=16.0, requests=6000, seed=seed))
        assert res.verdict == "stable", (seed, res.stability)


def test_twice_the_found_rate_reads_saturated_and_says_what_to_do(dep8):
    search = find_rate(dep8, Traffic(requests=1000), ttft_slo_s=2.0, tpot_slo_s=0.05)
    assert 15 < search.max_rate_rps < 25
    for seed in range(2):
        res = simulate(dep8, Traffic(rate_rps=2 * search.max_rate_rps, requests=1000, seed=seed))
        assert res.verdict == "saturated" and res.stability["pile_up"] > 0.25
        msg = res.advice()
        assert "lower --rate" in msg and "replicas" in msg and "depend on --requests" not in msg
    half = simulate(dep8, Traffic(rate_rps=search.max_rate_rps / 2, requests=1000))
    assert half.verdict == "stable"


def test_everything_at_once_is_saturated_without_a_warning(dep8):
    res = simulate(dep8, Traffic(rate_rps=math.inf, requests=100))
    assert res.verdict == "saturated" and res.stability["reason"] == "all at once"
    assert res.advice() is None
