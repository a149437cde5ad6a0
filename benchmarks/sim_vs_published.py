"""Simulated vs published online-serving measurements (data/published_online.json): request-rate
rows (TensorRT-LLM v0.14 through Triton, 500 requests per QPS) and fixed-concurrency rows
(NVIDIA NIM with AIPerf). Each row is simulated as published (model, GPUs, TP, precision,
engine, lengths, rate or client concurrency, request count, seed 0) and the mean TTFT, mean
TPOT (the tables' ITL) and throughput are compared: error = predicted / measured - 1.

Prints one line per row, the median / worst / signed-median error per metric (all rows and
high-or-medium-confidence rows), then one JSON line.

Usage: python benchmarks/sim_vs_published.py [--ids PREFIX]
"""

import argparse
import json
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from sizer.hardware.gpus import get_gpu  # noqa: E402
from sizer.model.catalog import get_model  # noqa: E402
from sizer.model.resources import read_json  # noqa: E402
from sizer.model.split import Split  # noqa: E402
from sizer.sim import Deployment, Lengths, Traffic, simulate  # noqa: E402

METRICS = (("ttft_mean_s", "TTFT"), ("tpot_mean_s", "TPOT"), ("throughput_rps", "req/s"), ("output_tok_s", "tok/s"))


def predict(row, cache) -> dict:
    key = (row["model"], row["gpu"], row["tp"], row["pp"], row["dp"], row["ep"], row["engine"],
           row["weight_dtype"], row["kv_dtype"], row["isl"] + row["osl"])
    if key not in cache:
        cache[key] = Deployment(get_model(row["model"]), get_gpu(row["gpu"]),
                                Split(tp=row["tp"], pp=row["pp"], dp=row["dp"], ep=row["ep"]), engine=row["engine"],
                                weight_dtype=row["weight_dtype"], kv_dtype=row["kv_dtype"],
                                context=row["isl"] + row["osl"])
    rate = math.inf if row["rate_rps"] is None else row["rate_rps"]
    res = simulate(cache[key], Traffic(rate_rps=rate, requests=row["requests"], concurrency=row["concurrency"],
                                       isl=Lengths("fixed", row["isl"]), osl=Lengths("fixed", row["osl"])))
    return {"ttft_mean_s": res.latency["ttft_s"]["mean"], "tpot_mean_s": res.latency["tpot_s"]["mean"],
            "throughput_rps": res.throughput["requests_per_s"], "output_tok_s": res.throughput["output_tok_s"],
            "preemptions": res.preemptions, "verdict": res.verdict}


def summary(errors) -> dict:
    if not errors:
        return {"n": 0}
    a = [abs(e) for e in errors]
    return {"n": len(errors), "median_abs_pct": round(100 * statistics.median(a), 1),
            "worst_abs_pct": round(100 * max(a), 1), "signed_median_pct": round(100 * statistics.median(errors), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ids", default="", help="only rows whose id starts with this")
    args = ap.parse_args()
    rows = [r for r in read_json("published_online.json") if r["id"].startswith(args.ids)]
    cache, out = {}, []
    start = time.perf_counter()
    print(f"{'id':<44}" + "".join(f"{label + ' pub':>11}{'sim':>9}{'err':>7}" for _, label in METRICS[:2])
          + f"{'tok/s pub':>11}{'sim':>9}{'err':>7}")
    for row in rows:
        pred = predict(row, cache)
        errs = {k: pred[k] / row["measured"][k] - 1 for k, _ in METRICS if k in row["measured"]}
        out.append({"id": row["id"], "confidence": row["confidence"], "errors": errs, "predicted": pred,
                    "measured": row["measured"]})
        cells = []
        for k, _ in (METRICS[0], METRICS[1], METRICS[3]):
            scale = 1e3 if k.endswith("_s") else 1.0
            cells.append(f"{row['measured'][k] * scale:>11.4g}{pred[k] * scale:>9.4g}{100 * errs[k]:>+6.0f}%")
        print(f"{row['id']:<44}" + "".join(cells))
    print(f"\n(latencies in ms; {len(rows)} rows simulated in {time.perf_counter() - start:.1f} s)")
    result = {}
    subsets = (("all", lambda r: True), ("medium_or_high", lambda r: r["confidence"] != "low"),
               ("trtllm_v0.14_rate", lambda r: r["id"].startswith("trt14")),
               ("nim_1.8_concurrency", lambda r: r["id"].startswith("nim18")))
    for subset, keep in subsets:
        result[subset] = {k: summary([o["errors"][k] for o in out if k in o["errors"] and keep(o)]) for k, _ in METRICS}
        print(f"\n{subset} rows: metric  n  median|err|  worst|err|  signed median")
        for k, label in METRICS:
            s = result[subset][k]
            if s["n"]:
                print(f"  {label:<7}{s['n']:>4}{s['median_abs_pct']:>10.1f}%{s['worst_abs_pct']:>11.1f}%"
                      f"{s['signed_median_pct']:>+13.1f}%")
    lat = [o["errors"][k] for o in out for k in ("ttft_mean_s", "tpot_mean_s") if o["confidence"] != "low"]
    result["latency_medium_or_high"] = summary(lat)
    print(json.dumps({"benchmark": "sim_vs_published", "rows": len(out), "summary": result,
                      "rows_detail": [{"id": o["id"], "errors_pct": {k: round(100 * v, 1) for k, v in o["errors"].items()}}
                                      for o in out]}))


if __name__ == "__main__":
    main()
