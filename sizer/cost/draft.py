"""The draft of speculative decoding on the target's GPUs: its forwards per decode step and its
memory (sizer/cost/speculative.py holds the method, acceptance and expected tokens per step;
sizer/cost/estimate.py prices TPOT with them). May import sizer/model, sizer/hardware and the
cost modules below it."""

import numpy as np

from sizer.model.split import Split
from .speculative import Speculative
from .step import step_time


def draft_step_s(spec: Speculative, device, split: Split, batch, ctx, kw) -> np.ndarray:
    """The draft's k forwards of one step (the first re-reads the k + 1 verified positions),
    without the engine's per-step overhead, which the verify step already pays."""
    d, dsplit = spec.draft, draft_split(spec, split)
    dkw = dict(kw, weight_dtype=None) if spec.method == "draft" else kw

    def one(q):
        r = step_time(d, device, dsplit, phase="decode", batch=batch, context_len=ctx,
                      query_tokens=q, **dkw)
        return np.asarray(r.time_s, float) - sum(np.asarray(o.time_s, float) for o in r.ops
                                                 if o.name == "engine_step_overhead")

    k = spec.num_tokens
    return one(k + 1) + (k - 1) * (one(1) if k > 1 else 0.0)


def draft_split(spec: Speculative, split: Split) -> Split:
    """The draft runs on the target's GPUs and TP (PP 1); an MoE draft keeps the target's EP."""
    moe = spec.draft.is_moe and split.ep > 1
    return Split(tp=split.tp, pp=1, dp=split.dp, ep=split.ep if moe else 1,
                 redundant_experts=split.redundant_experts if moe else 0)


def draft_memory(spec: Speculative | None, split: Split, weight_dtype=None, kv_dtype="auto") -> dict:
    """memory_plan's draft keywords: the draft's weights per GPU and its KV bytes per cached
    token per GPU. An MTP block or EAGLE head is one layer sharing the target's embedding and
    LM head (an MTP block adds its eh_proj, 2 x hidden x hidden, vLLM deepseek_mtp.py); a
    draft model is whole, in its own checkpoint's format."""
    if spec is None:
        return {}
    from .memory import kv_bytes_per_token, layer_weight_bytes, resolve_precision, stage_weight_bytes

    d, dsplit = spec.draft, draft_split(spec, split)
    prec = resolve_precision(d, None if spec.method == "draft" else weight_dtype, kv_dtype)
    if spec.method == "draft":
        weights = max(stage_weight_bytes(d, dsplit, prec))
    else:
        weights = layer_weight_bytes(d, 0, dsplit, prec)
        if spec.method == "mtp":
            weights += 2 * d.hidden_size * d.hidden_size * prec.bytes("base")
    return {"draft_weight_bytes": weights, "draft_kv_bytes_per_token": sum(kv_bytes_per_token(d, dsplit, prec))}
