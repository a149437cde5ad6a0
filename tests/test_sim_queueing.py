"""Queueing theory on the simulator itself (issue #12, "Done means").

One replica that runs one request at a time (max_num_seqs 1), fixed lengths and a fixed-cost
step model make every service time the same, S: Poisson arrivals then give an M/D/1 queue. Its
waiting times obey Lindley's recursion W[i] = max(0, W[i-1] + S - (A[i] - A[i-1])) exactly, and
its mean waiting time is Pollaczek-Khinchine's rho S / (2 (1 - rho)) (Kleinrock, Queueing
Systems Vol. 1, eq. 5.76 with zero service-time variance).
"""

import numpy as np
import pytest
from sim_helpers import FixedCosts, check_invariants

from sizer.model.split import Split
from sizer.sim import Deployment, Lengths, Traffic, generate, simulate

S = 0.01  # seconds per request: one prefill forward, one output token


@pytest.fixture(scope="module")
def one_at_a_time(l8, h100):
    dep = Deployment(l8, h100, Split(), max_num_seqs=1)
    dep.step_costs = FixedCosts(S)
    return dep


def traffic(rho, n, seed=0):
    return Traffic(rate_rps=rho / S, requests=n, isl=Lengths("fixed", 16), osl=Lengths("fixed", 1), seed=seed)


def test_waits_follow_lindleys_recursion_exactly(one_at_a_time):
    tr = traffic(0.8, 3000)
    res = simulate(one_at_a_time, tr)
    a = generate(tr).arrival_s
    w = np.zeros(len(a))
    for i in range(1, len(a)):
        w[i] = max(0.0, w[i - 1] + S - (a[i] - a[i - 1]))
    assert np.max(np.abs(res.per_request["queue"] - w)) < 1e-9
    assert np.allclose(res.per_request["ttft"], w + S)  # TTFT = wait + the one forward
    check_invariants(res)


@pytest.mark.parametrize("rho, n, tol", [(0.3, 6000, 0.05), (0.5, 10000, 0.05), (0.7, 20000, 0.05),
                                         (0.8, 30000, 0.10)])
def test_md1_mean_wait_is_pollaczek_khinchine(one_at_a_time, rho, n, tol):
    """Seed 0 with these counts: -2.2%, -0.3%, +2.6%, +1.9% (sampling error of the Poisson
    draws; the recursion above is exact)."""
    res = simulate(one_at_a_time, traffic(rho, n))
    wq = rho * S / (2 * (1 - rho))
    assert res.latency["queue_s"]["mean"] == pytest.approx(wq, rel=tol)
    assert res.littles_law["relative_error"] < 1e-9
    assert res.throughput["requests_per_s"] == pytest.approx(rho / S, rel=0.05)
