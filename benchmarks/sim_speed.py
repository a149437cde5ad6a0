"""How fast `sizer simulate` runs (issue #12: 10,000 requests through 8 replicas at a rate that
saturates them in under 2 s of wall time on one core), and simulated time / wall time for a few
other cases.

Each case builds its Deployment (memory plan, step-cost tables: timed separately as `setup`),
then times one simulation with `time.perf_counter` (wall) and `time.process_time` (CPU of this
process, the better figure on a shared machine). The machine's 1-minute load average is printed
with the results: on a loaded box wall time exceeds CPU time. The median of REPEATS runs is
reported. Prints a table, then one JSON line.

Usage: python benchmarks/sim_speed.py
"""

import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sizer.hardware.gpus import get_gpu  # noqa: E402
from sizer.model.catalog import get_model  # noqa: E402
from sizer.model.split import Split  # noqa: E402
from sizer.sim import Deployment, Lengths, Traffic, simulate  # noqa: E402

REPEATS = 3
TARGET_S = 2.0
FIXED = dict(isl=Lengths("fixed", 1024), osl=Lengths("fixed", 256))
CASES = (  # key, model, split, engine, traffic (rate None: 1.5 x the steady-state maximum)
    ("8b_dp8_10k_saturating", "llama-3.1-8b", Split(dp=8), "vllm", dict(rate_rps=None, requests=10000, **FIXED)),
    ("8b_dp8_10k_half_load", "llama-3.1-8b", Split(dp=8), "vllm", dict(rate_rps=0.5, requests=10000, **FIXED)),
    ("70b_tp4_dp2_sglang", "llama-3.1-70b", Split(tp=4, dp=2), "sglang", dict(rate_rps=None, requests=3000, **FIXED)),
    ("70b_tp2_pp2_vllm", "llama-3.1-70b", Split(tp=2, pp=2), "vllm", dict(rate_rps=0.8, requests=2000, **FIXED)),
    ("70b_tp8_lognormal", "llama-3.1-70b", Split(tp=8), "vllm",
     dict(rate_rps=0.8, requests=3000, isl=Lengths("lognormal", 1500, 1000), osl=Lengths("lognormal", 300, 200))),
    ("mixtral_tp2_ep2_inf", "mixtral-8x7b", Split(tp=2, ep=2), None, dict(rate_rps=math.inf, requests=5000, **FIXED)),
)


def main() -> None:
    gpu = get_gpu("h100-sxm")
    print(f"{'case':<24}{'requests':>9}{'rate':>9}{'forwards':>10}{'setup s':>9}{'wall s':>8}{'cpu s':>8}"
          f"{'sim s':>9}{'sim/wall':>10}")
    summary = {}
    for key, model, split, engine, tkw in CASES:
        t0 = time.perf_counter()
        dep = Deployment(get_model(model), gpu, split, engine=engine, context=4096)
        tkw = dict(tkw)
        steady = dep.steady_state_rps(Traffic(**{**tkw, "rate_rps": 1.0}))
        if tkw["rate_rps"] is None:
            tkw["rate_rps"] = 1.5 * steady
        elif math.isfinite(tkw["rate_rps"]):
            tkw["rate_rps"] *= steady  # a fraction of the steady-state maximum
        traffic = Traffic(**tkw)
        simulate(dep, Traffic(**{**tkw, "requests": 50}))  # builds the step-cost tables
        setup = time.perf_counter() - t0
        runs = []
        for _ in range(REPEATS):
            w, c = time.perf_counter(), time.process_time()
            res = simulate(dep, traffic)
            runs.append((time.perf_counter() - w, time.process_time() - c))
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rate = "inf" if math.isinf(traffic.rate_rps) else f"{traffic.rate_rps:.1f}"
        print(f"{key:<24}{res.requests:>9}{rate:>9}{res.forwards:>10,}{setup:>9.2f}{wall:>8.2f}{cpu:>8.2f}"
              f"{res.duration_s:>9.1f}{res.duration_s / wall:>10,.0f}")
        summary[key] = {"requests": res.requests, "rate_rps": None if math.isinf(traffic.rate_rps) else
                        round(traffic.rate_rps, 3), "replicas": dep.replicas, "forwards": res.forwards,
                        "setup_s": round(setup, 3), "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                        "simulated_s": round(res.duration_s, 2), "sim_per_wall": round(res.duration_s / wall, 1),
                        "verdict": res.verdict}
    main_case = summary["8b_dp8_10k_saturating"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"\n10,000 requests through 8 replicas at 1.5x their steady-state maximum: {main_case['cpu_s']:.2f} s CPU, "
          f"{main_case['wall_s']:.2f} s wall (target < {TARGET_S:.0f} s); load average {load:.1f}")
    print(json.dumps({"benchmark": "sim_speed", "target_s": TARGET_S, "target_met_cpu": main_case["cpu_s"] < TARGET_S,
                      "load_average_1m": load, "cases": summary}))


if __name__ == "__main__":
    main()
