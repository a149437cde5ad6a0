"""Fuzz every model-level command with generated config.json files (tests/config_cases.py):
valid ones must answer (exit 0/1, one finite JSON document), corrupted ones must exit 2 with one
line on stderr, none may raise. Prints breaches by kind, then one JSON line.

Usage: python benchmarks/fuzz_configs.py [cases per kind, default 2000]
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from config_cases import COMMANDS, check_contract, corrupted_configs, run_case, valid_configs  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def fuzz(strategy, corrupted: bool, n: int) -> dict:
    stats = {"cases": 0, "breaches": 0, "exit_codes": {}, "examples": []}

    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(cfg=strategy, argv=st.sampled_from(COMMANDS))
    def one(cfg, argv):
        stats["cases"] += 1
        try:
            code, out, err = run_case(cfg, argv)
            stats["exit_codes"][code] = stats["exit_codes"].get(code, 0) + 1
            check_contract(code, out, err, corrupted)
        except Exception as exc:  # a breach: record it and go on
            stats["breaches"] += 1
            if len(stats["examples"]) < 5:
                stats["examples"].append(f"{argv} {type(exc).__name__}: {str(exc)[:160]}")

    one()
    return stats


def main(argv):
    n = int(argv[1]) if len(argv) > 1 else 2000
    start = time.perf_counter()
    results = {"valid": fuzz(valid_configs(), False, n), "corrupted": fuzz(corrupted_configs(), True, n)}
    elapsed = time.perf_counter() - start
    print(f"{'kind':<10}{'cases':>8}{'breaches':>10}  exit codes")
    for kind, r in results.items():
        print(f"{kind:<10}{r['cases']:>8}{r['breaches']:>10}  {dict(sorted(r['exit_codes'].items()))}")
        for e in r["examples"]:
            print(f"    {e}")
    print(json.dumps({"benchmark": "fuzz_configs", "elapsed_s": round(elapsed, 1),
                      **{k: {"cases": r["cases"], "breaches": r["breaches"]} for k, r in results.items()}}))


if __name__ == "__main__":
    main(sys.argv)
