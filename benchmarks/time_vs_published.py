"""The time model (sizer.cost.estimate) against published inference measurements on A100/H100/H200:
TensorRT-LLM's performance tables (static batch, max-throughput and online serving), gpt-fast's
batch-1 decode and NVIDIA NIM's concurrency sweeps, and MoE serving runs (DeepSeek-R1 on SGLang),
one record each in data/published_perf.json.

Each record names its workload mode, which picks the estimate() call:
- static: `batch=B`, the whole batch prefilled then decoded (gptSessionBenchmark, gpt-fast);
- steady: `concurrency=N`, a serving engine holding N sequences (NIM, Triton at a fixed QPS,
  where N comes from Little's law on the published row);
- max_throughput: neither, the largest batch whose KV fits (trtllm-bench throughput).

Prints a table (record, setup, published, sizer, error %), then one JSON line with the median and
worst |error| per metric and the median signed error (the bias).

The summary is split by model kind (dense, MoE) and by GPU, each with its median |error| and
its median signed error (a sizing tool that is consistently pessimistic over-buys GPUs).

`--fit` refits the engine-level constants of sizer/hardware/constants.py, the step overhead
(per forward and per sequence in it) and the KV-read efficiency of decode attention, by grid search on the median
|log error| of the FIT rows (TensorRT-LLM v0.17 max-throughput and v0.14 online-serving tables),
with the kernel constants (data/kernel_fit.json) held fixed, and reports the held-out rows
(TensorRT-LLM v0.5 / v0.6.1, gpt-fast, NVIDIA NIM) at the optimum. It prints the grid's best
point; copying it into constants.py is a deliberate edit.

Usage: python benchmarks/time_vs_published.py [--fit] [path/to/published_perf.json]
"""

import itertools
import json
import math
import os
import statistics
import sys

from sizer.errors import InfeasibleError, InputError
from sizer.cost.estimate import estimate
from sizer.hardware import constants
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
FIT = ("trt17", "trt14")  # record id prefixes the engine-level constants are fitted on
STEP_OVERHEAD_GRID_S = tuple(x * 1e-4 for x in range(0, 21))  # 0 .. 2 ms per forward
PER_SEQ_GRID_S = (0.0, 1e-6, 2e-6)  # per sequence in it
KV_READ_GRID = (0.70, 0.75, 0.80, 0.85, 0.90, 0.95)  # of datasheet bandwidth


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
    if rec.get("nodes", 1) > 1:  # the catalog node over `nodes` nodes (its default network)
        from sizer.hardware.topology import default_topology

        kw["topology"] = default_topology(gpu, split.gpus, rec["nodes"])
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


def is_moe(rec) -> bool:
    return load_model(rec["model"]).is_moe


def breakdown(rows) -> dict:
    """stats() by model kind and by GPU."""
    out = {"dense": stats([r for r in rows if not is_moe(r[0])]), "moe": stats([r for r in rows if is_moe(r[0])])}
    for gpu in sorted({r[0]["gpu"] for r in rows}):
        out[gpu] = stats([r for r in rows if r[0]["gpu"] == gpu])
    return out


def errors(records):
    """(record, error %) for every record sizer can cost, and the ones it cannot."""
    rows, failed = [], []
    for rec in records:
        try:
            value, e = predict(rec)
        except (InputError, InfeasibleError) as exc:
            failed.append((rec, exc))
            continue
        rows.append((rec, 100.0 * (value - rec["value"]) / rec["value"], value, e))
    return rows, failed


def fit(records):
    """Grid search of (step overhead, KV-read efficiency) on the FIT rows' median |log error|."""
    fit_rows = [r for r in records if r["id"].startswith(FIT)]
    saved = _constants()
    grid = []
    try:
        for over, seq, kv in itertools.product(STEP_OVERHEAD_GRID_S, PER_SEQ_GRID_S, KV_READ_GRID):
            _set_constants((over, seq, kv))
            rows, _ = errors(fit_rows)
            grid.append((statistics.median(abs(math.log(1 + r[1] / 100)) for r in rows), over, seq, kv))
    finally:
        _set_constants(saved)
    grid.sort()
    print(f"{'step overhead':>14s} {'per sequence':>13s} {'KV read / datasheet':>20s} {'fit median |log err|':>21s}")
    for score, over, seq, kv in grid[:8]:
        print(f"{over * 1e3:11.2f} ms {seq * 1e6:10.2f} us {kv:20.2f} {score * 100:20.2f}%")
    best = grid[0]
    return {"step_overhead_s": best[1], "step_overhead_per_seq_s": best[2], "kv_read_efficiency": best[3],
            "fit_median_abs_log_error_pct": round(best[0] * 100, 2),
            "was": dict(zip(("step_overhead_s", "step_overhead_per_seq_s", "kv_read_efficiency"), saved))}


def _constants():
    return constants.STEP_OVERHEAD_S, constants.STEP_OVERHEAD_PER_SEQ_S, constants.KV_READ_EFFICIENCY


def _set_constants(values):
    constants.STEP_OVERHEAD_S, constants.STEP_OVERHEAD_PER_SEQ_S, constants.KV_READ_EFFICIENCY = values


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    do_fit = "--fit" in args
    args = [a for a in args if a != "--fit"]
    with open(args[0] if args else DEFAULT) as f:
        records = json.load(f)
    fitted = fit(records) if do_fit else None
    saved = _constants()
    if fitted:
        _set_constants((fitted["step_overhead_s"], fitted["step_overhead_per_seq_s"], fitted["kv_read_efficiency"]))
    try:
        rows, failed = errors(records)
    finally:
        _set_constants(saved)
    print(f"{'record':46s} {'setup':52s} {'published':>14s} {'sizer':>14s} {'err %':>7s}  batch")
    for rec, err, value, e in rows:
        print(f"{rec['id']:46s} {setup(rec):52s} {fmt(rec['metric'], rec['value']):>14s} "
              f"{fmt(rec['metric'], value):>14s} {err:+7.1f}  {e.batch}")
    for rec, exc in failed:
        print(f"{rec['id']:46s} {setup(rec):52s} {fmt(rec['metric'], rec['value']):>14s} {'--':>14s}  {exc}")
    pairs = [(r[0], r[1]) for r in rows]
    summary = {"records": len(records), "compared": len(pairs), "per_metric": {},
               "high_confidence": stats([r for r in pairs if r[0].get("confidence") == "high"]),
               "fit_rows": stats([r for r in pairs if r[0]["id"].startswith(FIT)]),
               "holdout_rows": stats([r for r in pairs if not r[0]["id"].startswith(FIT)]),
               "by_kind_and_gpu": breakdown(pairs)}
    for metric in sorted({r[0]["metric"] for r in pairs}):
        summary["per_metric"][metric] = stats([r for r in pairs if r[0]["metric"] == metric])
    if fitted:
        summary["fitted"] = fitted
    summary.update(stats(pairs))
    for name, s in summary["by_kind_and_gpu"].items():
        if s["n"]:
            print(f"  {name:14s} n={s['n']:3d}  median |error| {s['median_abs_error_pct']:5.1f}%  "
                  f"signed {s['median_signed_error_pct']:+5.1f}%  worst {s['worst_abs_error_pct']:.1f}% ({s['worst_record']})")
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
