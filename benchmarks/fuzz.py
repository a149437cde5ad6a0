"""Generated inputs against the CLI contract, counted by cause (issue #16).

Runs hypothesis strategies from tests/contract.py (CLI argument lists over every sub-command,
hardware profiles, `nvidia-smi topo -m` matrices; valid and corrupted) through
`sizer.cli.main.main` in-process, and counts the breaches of the contract (tracebacks, hangs,
corrupted input accepted, valid input refused, multi-line errors, invalid JSON, numpy warnings,
slow answers) by cause. Nothing is asserted: the table is the result. The normal test suite runs a
few examples of the same properties (tests/test_contract.py); this runs many.

Usage: python benchmarks/fuzz.py [--examples N] [--seed S] [--only cli,profile,topology]
Prints a table, then one JSON line.
"""

import argparse
import collections
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

from hypothesis import HealthCheck, Phase, given, seed, settings  # noqa: E402

import contract  # noqa: E402
import file_strategies  # noqa: E402

FAMILIES = {"cli": contract.cli_cases(), "profile": file_strategies.profile_cases(),
            "topology": file_strategies.topology_cases()}


def fuzz(name: str, strategy, examples: int, rng_seed: int, tally: dict, slowest: list) -> int:
    ran = [0]

    @seed(rng_seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def one(case):
        found, outcome = contract.check(case, limit_s=30.0, slow_s=2.0)
        ran[0] += 1
        tally[name]["cases"] += 1
        tally[name]["corrupted" if case.corrupted else "valid"] += 1
        slowest.append((outcome.seconds, " ".join(case.argv)[:120]))
        for cause in found:
            tally[name]["breaches"] += 1
            key = (cause, case.kind if case.corrupted else f"{case.argv[0] if case.argv else '-'} valid")
            tally[name]["causes"][key] += 1
            if tally[name]["causes"][key] == 1:
                tally[name]["examples"][key] = (" ".join(case.argv)[:200],
                                                outcome.err.strip().splitlines()[-1:] if outcome.err else [])

    one()
    return ran[0]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("--examples", type=int, default=int(os.environ.get("SIZER_FUZZ_EXAMPLES", 600)),
                   help="generated cases per family (default 600, or SIZER_FUZZ_EXAMPLES)")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--only", default=",".join(FAMILIES))
    p.add_argument("--examples-out", help="write one example per cause to this JSON file")
    args = p.parse_args(argv)
    tally = {n: {"cases": 0, "valid": 0, "corrupted": 0, "breaches": 0,
                 "causes": collections.Counter(), "examples": {}} for n in FAMILIES}
    slowest = []
    start = time.perf_counter()
    for name in args.only.split(","):
        fuzz(name, FAMILIES[name], args.examples, args.seed, tally, slowest)
    wall = time.perf_counter() - start
    print(f"{'family':<10}{'cases':>7}{'valid':>7}{'corrupt':>8}{'breaches':>10}{'causes':>8}")
    for name in args.only.split(","):
        t = tally[name]
        print(f"{name:<10}{t['cases']:>7}{t['valid']:>7}{t['corrupted']:>8}{t['breaches']:>10}"
              f"{len(t['causes']):>8}")
    print()
    for name in args.only.split(","):
        for (cause, kind), count in tally[name]["causes"].most_common():
            print(f"{count:>5}  {name:<9} {cause:<42} {kind}")
            cmd, err = tally[name]["examples"][(cause, kind)]
            print(f"{'':>7}e.g. sizer {cmd}" + (f"\n{'':>7}-> {err[0][:160]}" if err else ""))
    slowest.sort(reverse=True)
    print("\nslowest cases:")
    for s, cmd in slowest[:5]:
        print(f"  {s:6.2f} s  sizer {cmd}")
    if args.examples_out:
        with open(args.examples_out, "w") as fh:
            json.dump({n: [{"cause": c, "kind": k, "count": v, "argv": tally[n]["examples"][(c, k)][0]}
                           for (c, k), v in tally[n]["causes"].most_common()] for n in tally}, fh, indent=1)
    summary = {
        "examples_per_family": args.examples, "seed": args.seed, "wall_s": round(wall, 1),
        "cases": sum(t["cases"] for t in tally.values()),
        "breaches": sum(t["breaches"] for t in tally.values()),
        "distinct_causes": sum(len(t["causes"]) for t in tally.values()),
        "by_family": {n: {"cases": t["cases"], "breaches": t["breaches"], "causes": len(t["causes"])}
                      for n, t in tally.items() if t["cases"]},
        "by_breach": dict(collections.Counter(c for t in tally.values() for (c, _k), v in t["causes"].items()
                                              for _ in range(v))),
        "max_case_s": round(slowest[0][0], 2) if slowest else None,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
