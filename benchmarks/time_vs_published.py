"""The time model (sizer.cost.estimate) against published inference measurements on A100/H100/H200:
TensorRT-LLM's performance tables (static batch, max-throughput and online serving), gpt-fast's
batch-1 decode and NVIDIA NIM's concurrency sweeps, one record each in data/published_perf.json.

Each record names its workload mode, which picks the estimate() call:
- static: `batch=B`, the whole batch prefilled then decoded (gptSessionBenchmark, gpt-fast);
- steady: `concurrency=N`, a serving engine holding N sequences (NIM, Triton at a fixed QPS,
  where N comes from Little's law on the published row);
- max_throughput: neither, the largest batch whose KV fits (trtllm-bench throughput).

Prints a table (record, setup, published, sizer, error %), then one JSON line with the median and
worst |error| per metric and the median signed error (the bias).

Usage: python benchmarks/time_vs_published.py [path/to/published_perf.json]
"""

import json
import os
import statistics
import sys

from sizer.errors import InfeasibleError, InputError
from sizer.cost.estimate import estimate
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model, model_from_config
from sizer.model.split import Split

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "data", "published_perf.json")

# Models in the records that are not presets: official Meta Llama-2 configs (meta-llama/Llama-2-7b-hf,
# Llama-2-70b-hf config.json; the same shapes as benchmarks/memory_vs_reference.py).
LLAMA2_7B = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, intermediate_size=11008, vocab_size=32000,
                 torch_dtype="float16", max_position_embeddings=4096)
LLAMA2_70B = dict(LLAMA2_7B, hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                  num_key_value_heads=8, intermediate_size=28672)
EXTRA_MODELS = {"llama-2-7b": LLAMA2_7B, "llama-2-70b": LLAMA2_70B}


def load_model(name):
    if name in EXTRA_MODELS:
        return model_from_config(EXTRA_MODELS[name], name)
    return get_model(name)


def predict(rec):
    """sizer's value for the record's metric, and the Estimate it came from."""
    model, gpu = load_model(rec["model"]), get_gpu(rec["gpu"])
    split = Split(tp=rec["tp"], pp=rec.get("pp", 1), dp=rec.get("dp", 1), ep=rec.get("ep", 1))
    kw = dict(isl=rec["isl"], osl=rec["osl"], weight_dtype=rec["weight_dtype"],
              kv_dtype=rec.get("kv_dtype") or "auto", engine=rec.get("engine"))
    mode = rec["mode"]
    if mode == "static":
        kw["batch"] = rec["batch"]
    elif mode == "steady":
        kw["concurrency"] = rec["concurrency"]
    elif mode == "max_throughput":
        kw.update(max_batch=rec.get("max_batch"), fraction=rec.get("fraction"))
    else:
        raise InputError(f"{rec['id']}: unknown mode {mode!r}")
    e = estimate(model, gpu, split, **kw)
    metric = rec["metric"]
    if metric == "decode_tok_s_per_user":
        # batch-1 tokens/s over the whole generate() call (gpt-fast's definition), else 1 / TPOT
        value = rec["osl"] / e.e2e_s if e.batch == 1 else 1.0 / e.tpot_s
    else:
        value = getattr(e, metric)
    return float(value), e


def setup(rec):
    load = {"static": f"B={rec['batch']}", "steady": f"N={rec['concurrency']}", "max_throughput": "max"}[rec["mode"]]
    return (f"{rec['model']} {rec['gpu']} TP{rec['tp']} {rec['weight_dtype']}/{rec.get('kv_dtype') or 'auto'} "
            f"{rec['isl']}/{rec['osl']} {load}")


def fmt(metric, v):
    if metric in ("tpot_s", "ttft_s"):
        return f"{v * 1e3:.1f} ms"
    return f"{v:,.0f} tok/s" if v >= 100 else f"{v:.1f} tok/s"


def stats(rows) -> dict:
    """Median / worst |error| and the median signed error (the bias) of (record, error %) rows."""
    if not rows:
        return {"n": 0}
    errs = [err for _, err in rows]
    worst = max(rows, key=lambda r: abs(r[1]))
    return {"n": len(rows), "median_abs_error_pct": round(statistics.median(abs(x) for x in errs), 1),
            "worst_abs_error_pct": round(abs(worst[1]), 1), "worst_record": worst[0]["id"],
            "median_signed_error_pct": round(statistics.median(errs), 1)}


def main(path=DEFAULT):
    with open(path) as f:
        records = json.load(f)
    rows = []  # (record, error %)
    print(f"{'record':46s} {'setup':52s} {'published':>14s} {'sizer':>14s} {'err %':>7s}  batch")
    for rec in records:
        try:
            value, e = predict(rec)
        except (InputError, InfeasibleError) as exc:
            print(f"{rec['id']:46s} {setup(rec):52s} {fmt(rec['metric'], rec['value']):>14s} {'--':>14s}  {exc}")
            continue
        err = 100.0 * (value - rec["value"]) / rec["value"]
        rows.append((rec, err))
        print(f"{rec['id']:46s} {setup(rec):52s} {fmt(rec['metric'], rec['value']):>14s} "
              f"{fmt(rec['metric'], value):>14s} {err:+7.1f}  {e.batch}")
    summary = {"records": len(records), "compared": len(rows), "per_metric": {},
               "high_confidence": stats([r for r in rows if r[0].get("confidence") == "high"])}
    for metric in sorted({r[0]["metric"] for r in rows}):
        summary["per_metric"][metric] = stats([r for r in rows if r[0]["metric"] == metric])
    summary.update(stats(rows))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
