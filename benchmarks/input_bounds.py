"""How fast sizer answers (or refuses) the largest inputs its bounds allow (issue #16 item 1).

Each case runs `python -m sizer ...` in a fresh interpreter and reports wall time and exit code:
the largest `nvidia-smi topo -m` file read (128 GPUs, 128 NICs), one past the bound (1,000 GPUs,
refused before any pair is read; it took 13 s to read before the bound), and the CLI's numeric
bounds (1e6 GPUs, 1e9 tokens and sequences, 1 PiB). The issue's target is < 2 s for the largest
valid request; cases past it are listed with the module that spends the time. A case is stopped
at TIMEOUT_S. Prints a table, then one JSON line.

Usage: python benchmarks/input_bounds.py [--quick]
"""

import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from file_strategies import topo_text  # noqa: E402

TIMEOUT_S = 60


def _matrix(n: int, rel: str) -> str:
    return topo_text([["X" if i == j else rel for j in range(n)] for i in range(n)], n_nics=min(n, 128))


def cases(tmp: str, quick: bool) -> list:
    files = {"topo128.txt": _matrix(128, "NV2"), "topo1000.txt": _matrix(1000, "SYS"),
             "topo200.txt": topo_text([["X" if i == j else "SYS" for j in range(200)] for i in range(200)])}
    for name, text in files.items():
        with open(os.path.join(tmp, name), "w") as fh:
            fh.write(text)
    t128, t200, t1000 = (os.path.join(tmp, f"topo{n}.txt") for n in (128, 200, 1000))
    out = [
        ("topology file 128 GPUs (largest read)", ["comm", "--op", "all_reduce", "--bytes", "16MiB",
                                                   "--gpus", "128", "--topology-file", t128, "--json"]),
        ("topology file 200 GPUs (refused: count)", ["comm", "--op", "all_reduce", "--bytes", "16MiB",
                                                     "--gpus", "8", "--topology-file", t200, "--json"]),
        ("topology file 1000 GPUs (refused: size)", ["comm", "--op", "all_reduce", "--bytes", "16MiB",
                                                     "--gpus", "8", "--topology-file", t1000, "--json"]),
        ("memory 8b, context 1e9 tokens", ["memory", "--model", "8b", "--context", "1000000000", "--json"]),
        ("step 8b, batch 1e9 x context 1e9", ["step", "--model", "8b", "--batch", "1000000000",
                                              "--context", "1000000000", "--json"]),
        ("estimate 8b, isl 1e9, concurrency 1e9", ["estimate", "--model", "8b", "--isl", "1000000000",
                                                   "--concurrency", "1000000000", "--json"]),
        ("comm all_reduce 1 PiB over 8", ["comm", "--op", "all_reduce", "--bytes", str(2**50), "--gpus", "8", "--json"]),
        ("comm all_reduce 1e6 GPUs / 125000 nodes", ["comm", "--op", "all_reduce", "--bytes", "1MiB",
                                                     "--gpus", "1000000", "--nodes", "125000", "--json"]),
        ("comm all_to_all 4096 GPUs / 512 nodes", ["comm", "--op", "all_to_all", "--bytes", "1MiB",
                                                   "--gpus", "4096", "--nodes", "512", "--json"]),
        ("recommend deepseek-v3 over 16384 GPUs", ["recommend", "--model", "deepseek-v3", "--gpus", "16384",
                                                   "--nodes", "2048", "--json"]),
        ("estimate PP2, isl 1e9 in 256-token chunks", ["estimate", "--model", "8b", "--pp", "2", "--batch", "8",
                                                       "--max-num-tokens", "256", "--isl", "1000000000", "--json"]),
        ("recommend 8b over 65536 GPUs / 8192 nodes", ["recommend", "--model", "8b", "--gpus", "65536",
                                                       "--nodes", "8192", "--json"]),
    ]
    if not quick:
        out.append(("recommend 8b over 1e6 GPUs / 125000 nodes", ["recommend", "--model", "8b", "--gpus",
                                                                  "1000000", "--nodes", "125000", "--json"]))
    return out


def run(argv: list) -> tuple:
    start = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", "sizer"] + argv, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
        code, err = p.returncode, p.stderr.strip().splitlines()[-1:] if p.stderr.strip() else []
    except subprocess.TimeoutExpired:
        code, err = None, [f"stopped after {TIMEOUT_S} s"]
    return time.perf_counter() - start, code, (err[0] if err else "")


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, argv in cases(tmp, quick):
            wall, code, err = run(argv)
            rows.append({"case": label, "wall_s": round(wall, 2), "exit": code, "stderr": err[:90]})
    print(f"{'case':<44}{'wall s':>8}{'exit':>6}  stderr (last line)")
    for r in rows:
        print(f"{r['case']:<44}{r['wall_s']:>8.2f}{str(r['exit']):>6}  {r['stderr']}")
    print(json.dumps({"cases": {r["case"]: {"wall_s": r["wall_s"], "exit": r["exit"]} for r in rows},
                      "over_2s": [r["case"] for r in rows if r["wall_s"] > 2 or r["exit"] is None]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
