"""A whole deployment: TTFT, TPOT, end-to-end latency and throughput for a split.

Model of a serving run (per DP replica; replicas multiply throughput, not speed):
- TTFT: prefill of the batch's prompts, chunked into forwards of at most `max_num_tokens`
  tokens (as chunked prefill runs them); under PP the chunks are micro-batches of a
  fill-run-drain schedule (sizer/pipeline.py).
- TPOT: the decode step at the mean KV length over the output, isl + (osl - 1) / 2. A decode
  step's cost is affine in the KV length (only attention reads grow with it), so this equals
  the mean over the output exactly. Under PP, TPOT = p x the stage time of one micro-batch.
- e2e = TTFT + (osl - 1) x TPOT; output tokens/s = dp x batch x osl / e2e.
- With neither batch nor concurrency: the max-throughput point, the largest batch whose KV fits
  (isl + osl tokens each), capped by `max_batch` (the engine's max_num_seqs).
"""

import math
from dataclasses import dataclass

import numpy as np

from .engines import get_engine, memory_plan
from .errors import InfeasibleError, InputError
from .pipeline import Schedule, microbatches_for
from .split import Split
from .step import step_time

DEFAULT_MAX_BATCH = 256  # vLLM max_num_seqs default
DEFAULT_MAX_NUM_TOKENS = 8192  # vLLM max_num_batched_tokens default with chunked prefill


@dataclass(frozen=True)
class Estimate:
    ttft_s: float
    tpot_s: float
    e2e_s: float
    output_tok_s: float
    output_tok_s_per_gpu: float
    batch: int
    memory: dict
    breakdown: dict
    pipeline: dict | None
    prefill_ops: list
    decode_ops: list

    def to_json(self) -> dict:
        doc = {"ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s,
               "output_tok_s": self.output_tok_s, "output_tok_s_per_gpu": self.output_tok_s_per_gpu,
               "batch": self.batch, "memory": self.memory, "breakdown": self.breakdown,
               "prefill_ops": self.prefill_ops, "decode_ops": self.decode_ops}
        if self.pipeline is not None:
            doc["pipeline"] = self.pipeline
        return doc


def estimate(model, gpu, split: Split, *, isl: int, osl: int, batch: int | None = None,
             concurrency: int | None = None, weight_dtype=None, kv_dtype="auto", engine=None,
             fraction=None, max_batch: int | None = None, max_num_tokens: int | None = None,
             cuda_graphs=None, topology=None, profile=None, memory_kwargs=None) -> Estimate:
    """Latency and throughput of `split` (see the module docstring for the model)."""
    if isl < 1 or osl < 1:
        raise InputError("--isl and --osl must be positive")
    if batch is not None and concurrency is not None:
        raise InputError("give --batch or --concurrency, not both")
    rules = get_engine(engine)
    max_batch = max_batch or (rules.max_num_seqs if rules else DEFAULT_MAX_BATCH)
    max_num_tokens = max_num_tokens or (rules.max_num_batched_tokens if rules else DEFAULT_MAX_NUM_TOKENS)
    context = isl + osl
    mem_kw = dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, context=context, engine=engine,
                  fraction=fraction, max_num_batched_tokens=max_num_tokens,
                  cuda_graphs=True if cuda_graphs is None else cuda_graphs, **(memory_kwargs or {}))
    if concurrency is not None:
        batch = math.ceil(concurrency / split.dp)
    if batch is None:
        probe = memory_plan(model, gpu, split, batch=1, **mem_kw)
        batch = min(max_batch, probe.max_sequences)
        if batch < 1:
            raise InfeasibleError(f"{model.name} does not fit {split.label()} on {gpu.id} with "
                                  f"{context} tokens of context: no room for one sequence")
    plan = memory_plan(model, gpu, split, batch=batch, **mem_kw)
    kw = dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, topology=topology, profile=profile)
    p = split.pp
    # prefill: chunks of <= max_num_tokens tokens, each a micro-batch through the pipeline
    total_tokens = batch * isl
    chunks = max(math.ceil(total_tokens / max_num_tokens), microbatches_for(batch, p) if p > 1 else 1)
    chunk_tokens = total_tokens / chunks
    pre = step_time(model, gpu, split, phase="prefill", batch=chunk_tokens / isl, seq_len=isl,
                    cuda_graphs=False if cuda_graphs is None else cuda_graphs, **kw)
    pre_stage = float(np.max(pre.stage_times_s[pre.stage]))
    pre_sched = Schedule(p, chunks, pre_stage)
    ttft = pre_sched.makespan_s if p > 1 else chunks * float(pre.time_s)
    # decode: p micro-batches in flight, a token passes every stage once per step
    mb = microbatches_for(batch, p)
    mean_ctx = isl + (osl - 1) / 2.0
    dec = step_time(model, gpu, split, phase="decode", batch=batch / mb, context_len=max(1, round(mean_ctx)),
                    cuda_graphs=cuda_graphs, **kw)
    dec_stage = float(dec.stage_times_s[dec.stage])
    tpot = p * dec_stage if p > 1 else float(dec.time_s)
    e2e = ttft + (osl - 1) * tpot
    tok_s = split.dp * batch * osl / e2e
    dec_sched = Schedule(p, mb, dec_stage)
    bubble_decode = (1 - mb / p) * tpot if p > 1 else 0.0
    breakdown = {
        "prefill": {"compute_s": chunks * float(pre.compute_s), "comm_s": chunks * float(pre.comm_s),
                    "bubble_s": ttft - chunks * pre_stage if p > 1 else 0.0},
        "decode": {"compute_s": float(dec.compute_s) * (p if p > 1 else 1),
                   "comm_s": float(dec.comm_s) * (p if p > 1 else 1), "bubble_s": bubble_decode},
        "comm_share_decode": float(dec.comm_s) / float(dec.time_s) if float(dec.time_s) else 0.0,
        "comm_share_prefill": float(pre.comm_s) / float(pre.time_s) if float(pre.time_s) else 0.0,
    }
    pipeline = None
    if p > 1:
        pipeline = {"prefill": pre_sched.to_json(), "decode": dec_sched.to_json(),
                    "bubble_fraction_prefill": pre_sched.bubble_fraction,
                    "bubble_fraction_decode": 1 - mb / p}
    return Estimate(ttft, tpot, e2e, tok_s, tok_s / split.gpus, int(batch), plan.to_json(), breakdown,
                    pipeline, [o.to_json() for o in pre.ops], [o.to_json() for o in dec.ops])
