"""How long the largest valid `sizer comm` requests take (issue #16 item 1: all_to_all over
4,096 GPUs took 18-26 s when it looped over every GPU pair; sizer now bounds GPUs at 1,000,000
and groups the work by node and link class). Each case runs in a fresh process, as a user's
command would. Prints a table, then one JSON line.

Usage: python benchmarks/comm_speed.py
"""

import json
import subprocess
import sys
import time

CASES = [
    ("all_to_all", 4096, 512, "h100-sxm"),
    ("all_to_all", 1_000_000, 125_000, "h100-sxm"),
    ("all_reduce", 1_000_000, 125_000, "h100-sxm"),
    ("send_recv", 1_000_000, 125_000, "h100-sxm"),
    ("all_to_all", 999_936, 13_888, "gb200"),  # 13,888 NVL72 racks
]


def main():
    rows = []
    for op, gpus, nodes, gpu in CASES:
        argv = [sys.executable, "-m", "sizer", "comm", "--op", op, "--gpus", str(gpus), "--nodes",
                str(nodes), "--gpu", gpu, "--bytes", "1GiB", "--json"]
        t0 = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        wall = time.perf_counter() - t0
        rows.append({"op": op, "gpus": gpus, "nodes": nodes, "gpu": gpu, "wall_s": round(wall, 3),
                     "busbw_GBps": json.loads(out)["busbw_GBps"]})
    print(f"{'op':11s} {'gpus':>9s} {'nodes':>7s} {'gpu':9s} {'wall s':>7s} {'busbw GB/s':>11s}")
    for r in rows:
        print(f"{r['op']:11s} {r['gpus']:9d} {r['nodes']:7d} {r['gpu']:9s} {r['wall_s']:7.2f} "
              f"{r['busbw_GBps']:11.2f}")
    print(json.dumps({"benchmark": "comm_speed", "cases": rows,
                      "max_wall_s": max(r["wall_s"] for r in rows), "target_s": 2.0}))


if __name__ == "__main__":
    main()
