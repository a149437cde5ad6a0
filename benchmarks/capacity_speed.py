"""How fast rate-driven capacity planning answers (issue #13 item 4: a rate-driven recommend for
Llama-3.1-70B on up to 64 H100s in under 10 s on 2 cores) and how many simulations it runs; and
that a rate the steady-state bound already rules out is answered (exit 1) without simulating.

Each case runs `python -m sizer recommend ... --json` in a fresh interpreter: end-to-end time is
that process's wall time (interpreter start, imports, bounds, simulations, JSON out); the search
time, the simulation count and the answer come from the document. The machine's 1-minute load
average is printed with the results: on a shared box wall time exceeds CPU time. The median of
REPEATS runs is reported. Then the stand-in's error: one replica with its round-robin share of the
arrivals, as the planner simulates it, against the whole deployment simulated. Prints tables,
then one JSON line.

Usage: python benchmarks/capacity_speed.py
"""

import json
import os
import statistics
import subprocess
import sys

from _fresh import ROOT, run_recommend

REPEATS = 3
TARGET_S = 10.0
SLO = ["--ttft-slo", "2s", "--tpot-slo", "50ms"]
CASES = (  # (key, arguments); the first is the claim
    ("70b_100rps_64xh100", ["--model", "70b", "--rate", "100", "--nodes", "8", *SLO]),
    ("70b_100rps_64xh200", ["--model", "70b", "--rate", "100", "--nodes", "8", "--gpu", "h200", *SLO]),
    ("70b_100rps_whole_nodes", ["--model", "70b", "--rate", "100", "--nodes", "8", "--per-node", "8", *SLO]),
    ("70b_10rps_at_8xh100", ["--model", "70b", "--rate", "10", "--gpus", "8", *SLO]),
    # trial 2 item 7: the bound rules it out (needs >= 2,768 GPUs); was 25 simulations, 3 min 50 s
    ("405b_100rps_2_nodes", ["--model", "405b", "--rate", "100", "--nodes", "2", *SLO]),
    ("8b_50rps_3_types", ["--model", "8b", "--rate", "50", "--isl", "512", "--osl", "128", "--ttft-slo", "1s",
                          "--tpot-slo", "30ms", "--gpu", "h100-sxm,h200,a100-80g-sxm", "--gpu-hour-price", "2.5,3.5,1.5"]),
)


def run_case(args) -> dict:
    doc, wall = run_recommend(args)
    w = doc.get("winner") or {}
    return {"e2e_s": wall, "search_s": doc["search_time_s"], "simulations": doc["simulations"],
            "gpus": doc.get("gpus_needed"), "winner": w.get("label", "-"),
            "sustains": w.get("sustainable_rate_rps")}


def stand_in_error() -> dict:
    """One replica fed its round-robin share (what the planner simulates) against the whole
    deployment simulated at R, 3 seeds each, the same window (600 requests per replica): the
    signed error of the mean P99 and the worst seed's |error|, per metric."""
    sys.path.insert(0, ROOT)
    import numpy as np

    from sizer.hardware.gpus import get_gpu
    from sizer.hardware.topology import default_topology
    from sizer.model.catalog import get_model
    from sizer.model.split import Split
    from sizer.plan.capacity import replica_traffic
    from sizer.sim import Deployment, Lengths, Traffic, simulate

    out = {}
    for key, model, tp, d, rate, isl, osl in (("70b_tp4_x15_100rps", "llama-3.1-70b", 4, 15, 100.0, 1024, 256),
                                              ("8b_x4_200rps", "llama-3.1-8b", 1, 4, 200.0, 256, 64)):
        gpu, m = get_gpu("h100-sxm"), get_model(model)
        traffic = Traffic(isl=Lengths("fixed", isl), osl=Lengths("fixed", osl))
        topo = default_topology(gpu, tp * d, tp * d // 4) if tp * d > 8 else None
        whole = Deployment(m, gpu, Split(tp=tp, dp=d), engine="vllm", context=isl + osl, topology=topo)
        one = Deployment(m, gpu, Split(tp=tp), engine="vllm", context=isl + osl)
        w, p = {"ttft": [], "tpot": []}, {"ttft": [], "tpot": []}
        for seed in (0, 1, 2):
            rw = simulate(whole, Traffic(rate_rps=rate, requests=600 * d, seed=seed, isl=traffic.isl, osl=traffic.osl))
            rp = simulate(one, replica_traffic(traffic, d, rate, seed, 600))
            for k in w:
                w[k].append(rw.percentile(k, 99))
                p[k].append(rp.percentile(k, 99))
        out[key] = {f"{k}_p99": {"signed": round(float(np.mean(p[k]) / np.mean(w[k]) - 1), 4),
                                 "worst_seed": round(float(np.max(np.abs(np.array(p[k]) / np.array(w[k]) - 1))), 4)}
                    for k in w}
        print(f"{key:<26}" + "".join(f"  {k} P99 {v['signed']:+.1%} (worst seed {v['worst_seed']:.1%})"
                                     for k, v in out[key].items()))
    return out


def main() -> None:
    subprocess.run([sys.executable, "-c", "import sizer.cli.recommend"], cwd=ROOT, check=True)  # bytecode
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{'case':<26}{'sims':>6}{'search s':>10}{'e2e s':>8}{'GPUs':>6}  winner (sustains req/s)")
    summary = {}
    for key, args in CASES:
        runs = [run_case(args) for _ in range(REPEATS)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("e2e_s", "search_s")}
        r0 = runs[0]
        sus = f"{r0['sustains']:.3g}" if r0["sustains"] else "-"
        print(f"{key:<26}{r0['simulations']:>6}{med['search_s']:>10.2f}{med['e2e_s']:>8.2f}{r0['gpus'] or '-':>6}  "
              f"{r0['winner']} ({sus})")
        summary[key] = {"e2e_s": round(med["e2e_s"], 2), "search_s": round(med["search_s"], 2),
                        "simulations": r0["simulations"], "gpus_needed": r0["gpus"], "winner": r0["winner"]}
    print("\none replica for the round-robin deployment (signed error of the mean P99 over 3 seeds):")
    stand_in = stand_in_error()
    head = summary[CASES[0][0]]
    ok = head["e2e_s"] < TARGET_S
    print(f"\n{CASES[0][0]}: {head['e2e_s']:.2f} s end to end, {head['simulations']} simulations "
          f"({'under' if ok else 'OVER'} the {TARGET_S:g} s target); load average {load:.1f}")
    print(json.dumps({"benchmark": "capacity_speed", "target_s": TARGET_S, "meets_target": ok,
                      "load_average_1min": round(load, 2), "cases": summary, "stand_in": stand_in}))


if __name__ == "__main__":
    main()
