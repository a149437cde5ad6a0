"""How fast `sizer recommend` answers (issue #5: 8 GPUs well under a second in a fresh process,
64 GPUs over 8 nodes in a few seconds), with a latency target (the batch refinement) and with
idle GPUs allowed (every GPU count searched).

Each case runs `python -m sizer recommend ... --json` in a fresh interpreter; end-to-end time is
the wall time of that process (interpreter start, imports, search, JSON out), search time and the
number of (split, precision, batch) points evaluated come from the JSON document. Prints a
table, then one JSON line. The median of REPEATS runs is reported.

Usage: python benchmarks/recommend_speed.py
"""

import json
import statistics
import subprocess
import sys

from _fresh import ROOT, run_recommend

REPEATS = 3  # the largest cases once: each takes seconds
ONCE = ("16384gpu_moe", "1e6gpu_moe")
CASES = (  # (key, arguments)
    ("8gpu", ["--model", "70b", "--gpus", "8"]),
    ("64gpu_8nodes", ["--model", "70b", "--gpus", "64", "--nodes", "8"]),
    ("8gpu_moe_2dtypes", ["--model", "qwen3-235b-a22b", "--gpus", "8", "--weight-dtype", "bf16,fp8"]),
    ("64gpu_8nodes_moe", ["--model", "deepseek-v3", "--gpus", "64", "--nodes", "8"]),
    # a TPOT target: each split's best grid batch is refined over every integer around it
    ("8gpu_moe_tpot", ["--model", "mixtral-8x22b", "--gpus", "8", "--weight-dtype", "fp8,int4",
                       "--tpot", "25ms"]),
    # idle GPUs allowed: every GPU count 1..16
    ("16gpu_idle_moe", ["--model", "qwen3-235b-a22b", "--gpus", "16", "--nodes", "2", "--allow-idle"]),
    # the largest requests (issue #16): a dense model over 65,536 GPUs, DeepSeek-V3 over 16,384
    # and over the 1,000,000-GPU bound (every TP, PP <= 61 and EP <= 256 its divisors allow)
    ("65536gpu", ["--model", "8b", "--gpus", "65536", "--nodes", "8192"]),
    ("16384gpu_moe", ["--model", "deepseek-v3", "--gpus", "16384", "--nodes", "2048"]),
    ("1e6gpu_moe", ["--model", "deepseek-v3", "--gpus", "1000000", "--nodes", "125000"]),
)


def run_case(args) -> dict:
    """One fresh process; returns wall time and the document's search statistics."""
    doc, wall = run_recommend(args)
    return {"e2e_s": wall, "search_s": doc["search_time_s"], "points": doc["evaluated_points"],
            "splits": doc["evaluated_splits"], "winner": doc["candidates"][0]["label"]}


def main() -> None:
    subprocess.run([sys.executable, "-c", "import sizer.cli.recommend"], cwd=ROOT, check=True)  # bytecode
    print(f"{'case':<20}{'splits':>8}{'points':>8}{'search s':>10}{'points/s':>11}{'e2e s':>8}  winner")
    summary = {}
    for key, args in CASES:
        runs = [run_case(args) for _ in range(1 if key in ONCE else REPEATS)]
        med = {k: statistics.median(r[k] for r in runs) for k in ("e2e_s", "search_s")}
        r0 = runs[0]
        rate = r0["points"] / med["search_s"] if med["search_s"] else float("inf")
        print(f"{key:<20}{r0['splits']:>8}{r0['points']:>8}{med['search_s']:>10.3f}{rate:>11,.0f}"
              f"{med['e2e_s']:>8.2f}  {r0['winner']}")
        summary[key] = {"e2e_s": round(med["e2e_s"], 3), "search_s": round(med["search_s"], 4),
                        "points": r0["points"], "points_per_s": round(rate)}
    print(json.dumps({"benchmark": "recommend_speed", "repeats": REPEATS, **summary}))


if __name__ == "__main__":
    main()
