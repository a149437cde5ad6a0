"""Time one `sizer recommend ... --json` in a fresh process (start-up included), as a user runs
it: the speed benchmarks share this runner."""

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_recommend(args) -> tuple[dict, float]:
    """(the JSON document, wall seconds) of `sizer recommend *args --json`; exit 0 or 1 only."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "sizer", "recommend", *args, "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"sizer recommend {' '.join(args)} failed: {proc.stderr.strip()}")
    return json.loads(proc.stdout), wall
