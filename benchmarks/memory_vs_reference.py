"""The memory model against every engine-memory row of data/reference/memory_facts.json (a copy
of the shared reference file, shipped with the repository) that sizer can model, and against
the hybrid-attention start-up logs of data/engine_kv_logs.json (gpt-oss: sliding-window + full
layers). Prints a table, then one JSON line (median / worst |error| % per family, and the worst
row signed; every hybrid row's signed error).

Usage: python benchmarks/memory_vs_reference.py [path/to/memory_facts.json]
"""

import json
import os
import statistics
import sys

from sizer.cost.engines import memory_plan
from sizer.hardware.gpus import get_gpu
from sizer.cost.memory import activation_bytes, kv_bytes_per_sequence, resolve_precision, stage_weight_bytes
from sizer.model.catalog import get_model, model_from_config
from sizer.model.split import Split

GIB = 2**30
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "data", "reference", "memory_facts.json")

# Architectures of the models in the vLLM rows that are not presets (official Meta configs).
LLAMA2_7B = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                 num_key_value_heads=32, intermediate_size=11008, vocab_size=32000,
                 torch_dtype="float16", max_position_embeddings=4096)
LLAMA2_70B = dict(LLAMA2_7B, hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                  num_key_value_heads=8, intermediate_size=28672)


def vllm_rows(facts):
    """(record id, what, measured, predicted) for the vLLM/SGLang rows."""
    h100, a100 = get_gpu("h100-sxm"), get_gpu("a100-80g-sxm")
    out = []
    by_id = {r["id"]: r for r in facts}
    l3 = get_model("llama-3.1-8b")  # Meta-Llama-3-8B has the same shapes as Llama-3.1-8B
    for tp, ids in ((1, ("R03097", "R03098", "R03099", "R03100")), (2, ("R03102", "R03103", "R03104", None))):
        plan = memory_plan(l3, h100, Split(tp=tp), engine="vllm", context=8192,
                           max_num_batched_tokens=8192, max_num_seqs=256)
        vals = (plan.weights_bytes, plan.overhead_bytes, plan.activation_bytes, plan.kv_cache_bytes)
        for rid, what, v in zip(ids, ("weights", "non-torch", "activation peak", "KV cache"), vals):
            if rid:
                out.append((rid, f"vLLM Llama-3-8B TP{tp} {what} (GiB)", by_id[rid]["value"], v / GIB))
    # Llama-2 on A100-80GB (Dec 2023): KV blocks of 16 tokens
    for cfg, tp, rid in ((LLAMA2_7B, 1, "R03105"), (LLAMA2_70B, 4, "R03106")):
        m = model_from_config(cfg, "llama-2")
        plan = memory_plan(m, a100, Split(tp=tp), engine="vllm", context=4096,
                           max_num_batched_tokens=4096, max_num_seqs=256)
        out.append((rid, f"vLLM Llama-2-{'7B' if tp == 1 else '70B'} TP{tp} KV blocks", by_id[rid]["value"],
                    plan.max_kv_tokens / 16))
    try:
        q = get_model("qwen3-235b-a22b")
    except Exception:
        q = None
    if q is not None:
        plan = memory_plan(q, h100, Split(tp=4), weight_dtype="fp8", engine="vllm", context=40960)
        out.append(("R03113", "vLLM Qwen3-235B-A22B-FP8 TP4 KV tokens", by_id["R03113"]["value"], plan.max_kv_tokens))
        out.append(("R03112", "vLLM Qwen3-235B-A22B-FP8 TP4 KV (GiB)", by_id["R03112"]["value"], plan.kv_cache_bytes / GIB))
        plan = memory_plan(q, h100, Split(tp=4), weight_dtype="fp8", engine="sglang", fraction=0.93, context=40960)
        out.append(("R03114", "SGLang Qwen3-235B-A22B-FP8 TP4 KV tokens", by_id["R03114"]["value"], plan.max_kv_tokens))
    return out


# checkpoint formats of the Qwen speed-benchmark rows -> sizer weight dtypes
PRECISIONS = {"BF16": "bf16", "FP8": "fp8", "GPTQ-Int8": "int8", "GPTQ-Int4": "int4",
              "AWQ": "int4", "AWQ-INT4": "int4"}


def transformers_rows(facts):
    """HF Transformers generate, batch 1: weights + KV of (input + output) tokens + the prefill
    activation peak (torch allocator only: no CUDA context)."""
    names = {"Qwen2.5-7B-Instruct": "qwen2.5-7b", "Qwen2.5-72B-Instruct": "qwen2.5-72b",
             "Qwen3-30B-A3B": "qwen3-30b-a3b"}
    out = []
    for r in facts:
        c = r["conditions"]
        pid = names.get(c.get("model"))
        if not pid or not r["metric"].startswith(("peak_gpu_memory", "gpu_memory_total")):
            continue
        try:
            m = get_model(pid)
        except Exception:
            continue
        n = int(c.get("num_gpus", 1))
        wdtype = PRECISIONS[c.get("precision", "BF16")]
        prec = resolve_precision(m, wdtype)
        split = Split(pp=n) if m.num_layers % n == 0 else Split()
        weights = sum(stage_weight_bytes(m, split, prec))
        ctx = int(c["input_len"]) + int(c["output_len"])
        kv = kv_bytes_per_sequence(m, Split(), prec, ctx)
        act = activation_bytes(m, Split(), prec, int(c["input_len"]), 1)
        predicted = weights + kv + act
        unit = GIB if r["unit"].startswith("GB") else 2**20
        out.append((r["id"], f"HF {c['model']} {c.get('precision')} x{n} in {c['input_len']}",
                    r["value"], predicted / unit))
    return out


def hybrid_rows():
    """data/engine_kv_logs.json (shipped with sizer): what vLLM logged at start-up for gpt-oss
    vs sizer. K0002 tests the reporting rule alone (the log's own available memory in, the
    'GPU KV cache size' out); the others the weights and the available KV memory."""
    from sizer.cost import kv_cache
    from sizer.cost.memory import kv_stage_groups
    from sizer.model.resources import read_json

    by_id = {r["id"]: r for r in read_json("engine_kv_logs.json")}
    m20, m120 = get_model("gpt-oss-20b"), get_model("gpt-oss-120b")
    h100, a100 = get_gpu("h100-sxm"), get_gpu("a100-80g-sxm")
    out = []
    avail = by_id["K0001"]["value"] * GIB
    groups = kv_stage_groups(m120, Split(), resolve_precision(m120))
    pool = kv_cache.vllm_pool(m120, groups, [avail], 131072, 16, 8192)
    out.append(("K0002", "vLLM gpt-oss-120b 'GPU KV cache size' from its 5.38 GiB", by_id["K0002"]["value"],
                pool.reported_tokens))
    full, slide = groups[0][1].bytes_per_token, groups[0][0].bytes_per_token
    old = avail / (full + slide * 128 / 131072)  # sizer before #19: windowed layers amortised
    out.append(("K0002", "  (sizer before #19: tokens a full-length sequence holds)", by_id["K0002"]["value"], old))
    p = memory_plan(m20, a100, Split(), engine="vllm", fraction=0.65, context=131072)
    out.append(("K0003", "vLLM gpt-oss-20b A100 weights (GiB)", by_id["K0003"]["value"], p.weights_bytes / GIB))
    out.append(("K0004", "vLLM gpt-oss-20b A100 0.65 available KV (GiB)", by_id["K0004"]["value"],
                p.kv_cache_bytes / GIB))
    p = memory_plan(m120, h100, Split(), engine="vllm", fraction=0.95, context=131072, max_num_batched_tokens=1024)
    out.append(("K0005", "vLLM gpt-oss-120b H100 0.95 available KV (GiB)", by_id["K0005"]["value"],
                p.kv_cache_bytes / GIB))
    out.append(("K0006", "vLLM gpt-oss-120b H100 weights (GiB)", by_id["K0006"]["value"], p.weights_bytes / GIB))
    p = memory_plan(m20, h100, Split(tp=2), engine="vllm", context=131072)
    out.append(("K0007", "vLLM gpt-oss-20b TP2 weights per GPU (GiB)", by_id["K0007"]["value"], p.weights_bytes / GIB))
    return out


def main(argv):
    path = argv[1] if len(argv) > 1 else DEFAULT
    if not os.path.isfile(path):
        sys.stderr.write(f"memory_vs_reference: {path} not found; it ships with the repository as "
                         "data/reference/memory_facts.json (see data/reference/README.md)\n")
        sys.exit(2)
    with open(path) as fh:
        facts = json.load(fh)
    rows = vllm_rows(facts) + transformers_rows(facts)
    hybrid = hybrid_rows()
    print(f"{'record':<8} {'what':<58}{'measured':>12}{'sizer':>12}{'error':>9}")
    errs = {"engine": [], "transformers": [], "hybrid": []}
    signed = []
    for rid, what, meas, pred in rows + hybrid:
        err = (pred - meas) / meas * 100
        kind = "transformers" if what.startswith("HF") else "hybrid" if (rid, what, meas, pred) in hybrid else "engine"
        if not what.startswith("  ("):  # the 'before' line is shown, not scored
            errs[kind].append((abs(err), err, rid, what))
            if kind == "hybrid":
                signed.append(round(err, 2))
        print(f"{rid:<8} {what:<58}{meas:>12.2f}{pred:>12.2f}{err:>8.1f}%")
    summary = {}
    for k, v in errs.items():
        worst = max(v) if v else None
        summary[k] = {"rows": len(v), "median_abs_err_pct": round(statistics.median(e[0] for e in v), 2) if v else None,
                      "max_abs_err_pct": round(worst[0], 2) if v else None,
                      "worst_signed_err_pct": round(worst[1], 2) if v else None,
                      "worst_record": f"{worst[2]} {worst[3]}" if v else None}
    summary["hybrid"]["signed_err_pct"] = signed
    print(json.dumps({"benchmark": "memory_vs_reference", **summary}))


if __name__ == "__main__":
    main(sys.argv)
