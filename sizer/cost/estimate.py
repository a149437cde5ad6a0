"""A whole deployment: TTFT, TPOT, end-to-end latency and throughput for a split.

Two serving modes, per DP replica (replicas multiply throughput, not speed):

Static batch (`--batch B`): B prompts arrive together.
- TTFT: prefill of the B prompts, chunked into forwards of at most `max_num_tokens` tokens; under
  PP the chunks are micro-batches of a fill-run-drain schedule (sizer/cost/pipeline.py).
- TPOT: the decode step at the mean KV length over the output, isl + (osl - 1) / 2. A decode
  step's cost is affine in the KV length (only attention reads grow with it), so this equals the
  mean over the output exactly. Under PP, min(B, p) micro-batches are in flight and TPOT =
  p x the slowest stage's time for one micro-batch.
- e2e = TTFT + (osl - 1) x TPOT; output tokens/s = dp x B x osl / e2e.

Continuous batching (`--concurrency N`, or the default): the steady state of an engine with
chunked prefill (vLLM, SGLang) holding N sequences per replica. Each sequence lives osl steps, so
N / osl new prompts start per step and every step carries N decode tokens plus N x isl / osl
prompt tokens, split into forwards of at most `max_num_tokens` tokens.
- TPOT: the time of such a mixed step (sizer/cost/step.py, `prefill_tokens`); prompts come
  in whole chunks, so below one chunk per forward it is the mix of forwards with and without
  one, and under PP the round ticks at the clock of the micro-batch carrying it (chunk_clock).
- TTFT: a new prompt is cut into chunks of at most max_num_tokens minus the forward's decode
  tokens; each chunk rides in a forward with the running decode batch (under PP it passes all
  p stages). No queueing: the steady state has none by construction.
- output tokens/s = dp x N / TPOT. A concurrency C over the deployment spreads over its dp
  replicas as a load balancer that sends each request to the least-loaded replica leaves it:
  r = C mod dp replicas hold ceil(C / dp) sequences, the other dp - r hold floor(C / dp) (none
  when C < dp: those replicas idle). Throughput is the sum over replicas; TTFT and TPOT are the
  busier replicas' (the latency the slowest requests see), and memory is planned for them.
  With neither batch nor concurrency, N is the largest
  concurrency whose KV (isl + osl tokens each) fits, capped by `max_batch` (max_num_seqs): the
  max-throughput point benchmarks publish.

Speculative decoding (`speculative`, sizer/cost/speculative.py): every decode step is a verify
step with k + 1 query tokens per sequence plus the draft's k forwards, and yields E tokens per
sequence, so TPOT = (verify + draft) / E; in continuous batching sequences finish E times
sooner, so N x isl x E / osl prompt tokens join each step. PP > 1 is refused with it (vLLM's
V1 engine runs speculative decoding with PP = 1).
"""

from dataclasses import dataclass

import numpy as np

from .engines import DEFAULT_MAX_NUM_BATCHED_TOKENS, get_engine, memory_plan, replica_limits
from sizer.errors import InfeasibleError, InputError
from .pipeline import Schedule
from sizer.model.split import Split
from .step import step_time
from .speculative import Speculative

MODES = ("static", "continuous")


@dataclass(frozen=True)
class Curve:
    """One split over a vector of batch sizes (every array shares the batch axis)."""

    mode: str
    batch: np.ndarray
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    e2e_s: np.ndarray
    output_tok_s: np.ndarray
    output_tok_s_per_gpu: np.ndarray
    comm_share_decode: np.ndarray
    comm_share_prefill: np.ndarray
    bubble_decode: np.ndarray  # idle share of pipeline stages in a decode step
    microbatches: np.ndarray
    prefill_chunks: np.ndarray
    prefill_clock_s: np.ndarray  # static: one prefill chunk on the slowest stage
    decode_clock_s: np.ndarray  # one micro-batch's forward on the slowest stage
    prefill: object  # StepResult: the prefill chunk (static) or the forward carrying a prompt
    decode: object  # StepResult of the decode (or mixed) forward (the verify step when speculating)
    draft_s: object = 0.0  # the draft's forwards per decode step (speculative decoding)
    pp_costs: dict | None = None  # PP only: shares of TPOT each pipeline cost takes (pp_costs())


def _stage_max(result, shape) -> np.ndarray:
    return np.max(np.stack([np.broadcast_to(np.asarray(t, dtype=float), shape)
                            for t in result.stage_times_s]), axis=0)


def chunk_clock(mean_clock, heavy_clock, light_clock, per_forward, stages: int):
    """The clock of a steady-state forward when prompts arrive in whole chunks.

    A request rides one forward at a time (vLLM's scheduler does not schedule a request that
    is in an in-flight batch, v1/engine/core.py step_with_batch_queue), so a prompt chunk is
    indivisible within a round. With `per_forward` >= 1 chunks per forward every forward is
    full and the even split (`mean_clock`) holds. Below one:
    - no PP: a share `per_forward` of the forwards carries a chunk (`heavy_clock`), the rest
      are decode only (`light_clock`); the mean is their mix, not a forward with a fraction
      of a chunk;
    - PP: the p micro-batches in flight move in lockstep (stage j holds micro-batch i - j at
      clock i; GPipe's schedule, sizer/cost/pipeline.py), so every tick lasts as long as the
      heaviest micro-batch in flight: one chunk in a round slows all p micro-batches. A round
      carries per_forward x p chunks; with at least one, every tick is a heavy one.
    """
    heavy_share = np.minimum(np.asarray(per_forward, dtype=float) * stages, 1.0)
    mixed = heavy_share * heavy_clock + (1.0 - heavy_share) * light_clock
    return np.where(np.asarray(per_forward) >= 1.0, mean_clock, mixed)


def _draft_s(spec: Speculative, device, split: Split, batch, ctx, kw) -> np.ndarray:
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


def serving_curve(model, device, split: Split, batches, *, isl: int, osl: int,
                  max_num_tokens: int = DEFAULT_MAX_NUM_BATCHED_TOKENS, mode: str = "continuous",
                  cuda_graphs=None, weight_dtype=None, kv_dtype="auto", topology=None,
                  profile=None, speculative: Speculative | None = None, ep_a2a: str = "nccl",
                  moe_imbalance: float = 1.0, engine=None) -> Curve:
    """TTFT/TPOT/throughput of `split` for every batch (module docstring), with one step_time
    call per phase over the whole vector: estimate() and the recommender share this."""
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    b = np.asarray(batches, dtype=float)  # a scalar stays 0-d: estimate() gets scalar ops
    p = split.pp
    if speculative is not None and p > 1:
        raise InputError("speculative decoding with PP > 1 is not modelled (vLLM's V1 engine "
                         "runs it with PP = 1); use TP/DP")
    q = 1 + speculative.num_tokens if speculative else 1
    gain = speculative.tokens_per_step if speculative else 1.0
    kw = dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, topology=topology, profile=profile,
              ep_a2a=ep_a2a, moe_imbalance=moe_imbalance, engine=engine)
    dkw = dict(kw, cuda_graphs=cuda_graphs)
    mb = np.maximum(1, np.minimum(b, p))
    mean_ctx = max(1, round(isl + (osl - 1) / 2.0))
    pre = None
    if mode == "static":
        chunks = np.maximum(np.ceil(b * isl / max_num_tokens), mb if p > 1 else 1)
        pre = step_time(model, device, split, phase="prefill", batch=b / chunks, seq_len=isl,
                        cuda_graphs=False if cuda_graphs is None else cuda_graphs, **kw)
        pre_clock = _stage_max(pre, b.shape)
        ttft = (chunks + p - 1) * pre_clock if p > 1 else chunks * np.broadcast_to(pre.time_s, b.shape)
        dec = step_time(model, device, split, phase="decode", batch=b / mb, context_len=mean_ctx,
                        cuda_graphs=cuda_graphs, query_tokens=q, **kw)
        draft = _draft_s(speculative, device, split, b / mb, mean_ctx, dkw) if speculative else 0.0
        forwards = np.ones_like(b)
    else:
        prompt_tokens = b * isl * gain / osl  # sequences live osl / gain steps
        # each micro-batch in flight is its own scheduled forward with its own token budget
        forwards = np.maximum(1, np.ceil((b + prompt_tokens) / (mb * max_num_tokens)))
        per = mb * forwards
        dec = step_time(model, device, split, phase="decode", batch=b / per, context_len=mean_ctx,
                        prefill_tokens=prompt_tokens / per, seq_len=isl, cuda_graphs=cuda_graphs,
                        query_tokens=q, **kw)
        draft = _draft_s(speculative, device, split, b / per, mean_ctx, dkw) if speculative else 0.0
        # the forward that carries a new prompt: its micro-batch's decode tokens plus as much of
        # the prompt as the token budget leaves (at least the steady-state share)
        budget = np.maximum(max_num_tokens - b / per, 1.0)
        piece = np.maximum(np.minimum(isl, budget), prompt_tokens / per)
        chunks = np.ceil(isl / np.minimum(isl, budget))
        pre = step_time(model, device, split, phase="decode", batch=b / per, context_len=mean_ctx,
                        prefill_tokens=piece, seq_len=isl, cuda_graphs=cuda_graphs, query_tokens=q, **kw)
        pre_clock = _stage_max(pre, b.shape) if p > 1 else np.broadcast_to(np.asarray(pre.time_s, float), b.shape)
        light = step_time(model, device, split, phase="decode", batch=b / per, context_len=mean_ctx,
                          cuda_graphs=cuda_graphs, query_tokens=q, **kw)
        light_clock = (_stage_max(light, b.shape) if p > 1
                       else np.broadcast_to(np.asarray(light.time_s, float), b.shape)) + draft
        # prompt chunks per forward; below one, whole chunks ride some forwards and not others
        per_forward = prompt_tokens / per / np.minimum(isl, budget)
        pre_clock = pre_clock + draft
    dec_time = np.broadcast_to(np.asarray(dec.time_s, dtype=float) + draft, b.shape)
    dec_clock = _stage_max(dec, b.shape) if p > 1 else dec_time
    even_clock = dec_clock
    if mode == "continuous":
        dec_clock = chunk_clock(dec_clock, pre_clock, light_clock, per_forward, p)
    tpot = forwards * (p * dec_clock if p > 1 else dec_clock) / gain
    share_pre = np.broadcast_to(np.asarray(pre.comm_s) / np.asarray(pre.time_s), b.shape)
    if mode == "static":
        e2e = ttft + (osl - 1) * tpot
        tok_s = split.dp * b * osl / e2e
    else:
        ttft = chunks * (p * pre_clock if p > 1 else pre_clock)
        e2e = ttft + (osl - 1) * tpot
        tok_s = split.dp * b / tpot
    share_dec = np.broadcast_to(np.asarray(dec.comm_s) / dec_time, b.shape)
    costs = pp_costs(dec, even_clock, dec_clock, p, b.shape) if p > 1 else None
    return Curve(mode, b, np.asarray(ttft, float), np.asarray(tpot, float), np.asarray(e2e, float),
                 tok_s, tok_s / split.gpus, share_dec, np.broadcast_to(share_pre, b.shape),
                 np.broadcast_to(1 - mb / p, b.shape), mb, chunks, pre_clock, dec_clock, pre, dec,
                 np.broadcast_to(np.asarray(draft, float), b.shape), costs)


def pp_costs(dec, even_clock, clock, stages: int, shape) -> dict:
    """What a pipeline pays per decode round beyond its compute, as shares of the round (TPOT):
    - chunk_stall: the lockstep clock set by a micro-batch carrying a prompt chunk
      (chunk_clock) over the even split;
    - per_forward_overhead: the engine's per-forward host work (scheduling, input preparation,
      sampling) paid once per micro-batch, p times a round where one replica without PP pays
      it once (vLLM schedules each micro-batch as its own batch, step_with_batch_queue);
    - stage_imbalance: the slowest stage over the mean one (embedding on the first, final norm,
      LM head and sampler on the last, uneven layer counts).
    A micro-batch smaller than the batch also re-reads the stage's weights p times a round,
    which the step times already hold."""
    stages_t = np.stack([np.broadcast_to(np.asarray(t, dtype=float), shape) for t in dec.stage_times_s])
    over = sum(np.broadcast_to(np.asarray(o.time_s, dtype=float), shape)
               for o in dec.ops if o.name == "engine_step_overhead") if dec.ops else np.zeros(shape)
    clock = np.broadcast_to(np.asarray(clock, dtype=float), shape)
    return {"chunk_stall": 1.0 - np.broadcast_to(even_clock, shape) / clock,
            "per_forward_overhead": (stages - 1) * np.asarray(over, dtype=float) / (stages * clock),
            "stage_imbalance": 1.0 - stages_t.mean(axis=0) / stages_t.max(axis=0)}


@dataclass(frozen=True)
class Estimate:
    ttft_s: float
    tpot_s: float
    e2e_s: float
    output_tok_s: float
    output_tok_s_per_gpu: float
    batch: int
    mode: str
    memory: dict
    breakdown: dict
    pipeline: dict | None
    prefill_ops: list
    decode_ops: list
    speculative: dict | None = None
    spread: dict | None = None  # continuous --concurrency: sequences per replica (spread())

    def to_json(self) -> dict:
        doc = {"ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s,
               "output_tok_s": self.output_tok_s, "output_tok_s_per_gpu": self.output_tok_s_per_gpu,
               "batch": self.batch, "mode": self.mode, "memory": self.memory,
               "breakdown": self.breakdown, "prefill_ops": self.prefill_ops,
               "decode_ops": self.decode_ops}
        if self.pipeline is not None:
            doc["pipeline"] = self.pipeline
        if self.speculative is not None:
            doc["speculative"] = self.speculative
        if self.spread is not None:
            doc["spread"] = self.spread
        return doc


def spread(concurrency: int, dp: int) -> dict:
    """How `concurrency` requests sit on `dp` replicas behind a least-loaded balancer (module
    docstring): {concurrency, busy_batch, busy_replicas, rest_batch, rest_replicas}."""
    rest, busy = divmod(concurrency, dp)
    if busy == 0:  # an even spread: every replica holds the same
        return {"concurrency": concurrency, "busy_batch": rest, "busy_replicas": dp,
                "rest_batch": rest, "rest_replicas": 0}
    return {"concurrency": concurrency, "busy_batch": rest + 1, "busy_replicas": busy,
            "rest_batch": rest, "rest_replicas": dp - busy}


def estimate(model, gpu, split: Split, *, isl: int, osl: int, batch: int | None = None,
             concurrency: int | None = None, weight_dtype=None, kv_dtype="auto", engine=None,
             fraction=None, max_batch: int | None = None, max_num_tokens: int | None = None,
             cuda_graphs=None, topology=None, profile=None, speculative=None, ep_a2a="nccl",
             moe_imbalance=1.0) -> Estimate:
    """Latency and throughput of `split`: a static batch with `batch`, else continuous batching
    at `concurrency` (over the deployment) or at the largest concurrency that fits.
    `speculative` (sizer.cost.speculative.Speculative), `ep_a2a` and `moe_imbalance`
    (sizer.cost.moe_comm) as serving_curve takes them."""
    if isl < 1 or osl < 1:
        raise InputError("--isl and --osl must be positive")
    if batch is not None and concurrency is not None:
        raise InputError("give --batch or --concurrency, not both")
    rules = get_engine(engine)
    seqs_cap, tokens_cap = replica_limits(rules, gpu, split)
    max_batch = max_batch or seqs_cap
    max_num_tokens = max_num_tokens or tokens_cap
    # the configured max_num_seqs also sizes an engine's profiling sampler (profile_forward);
    # without an engine the sampler follows the batch
    mem_kw = dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, context=isl + osl, engine=engine,
                  fraction=fraction, max_num_batched_tokens=max_num_tokens,
                  max_num_seqs=max_batch if rules is not None else None,
                  cuda_graphs=True if cuda_graphs is None else cuda_graphs,
                  **draft_memory(speculative, split, weight_dtype, kv_dtype))
    mode = "static" if batch is not None else "continuous"
    load = None
    if concurrency is not None:
        load = spread(concurrency, split.dp)
        batch = load["busy_batch"]
    if batch is None:
        # probe at the cap: without an engine the activation term grows with the batch
        probe = memory_plan(model, gpu, split, batch=max_batch, **mem_kw)
        batch = min(max_batch, probe.max_sequences)
        if batch < 1:
            raise InfeasibleError(f"{model.name} does not fit {split.label()} on {gpu.id} with "
                                  f"{isl + osl} tokens of context: no room for one sequence; weights, "
                                  f"activations and overhead {probe.shortfall(probe.budget_fixed_bytes, 'take')}")
    plan = memory_plan(model, gpu, split, batch=batch, **mem_kw)
    c = serving_curve(model, gpu, split, batch, isl=isl, osl=osl, max_num_tokens=max_num_tokens,
                      mode=mode, cuda_graphs=cuda_graphs, weight_dtype=weight_dtype,
                      kv_dtype=kv_dtype, topology=topology, profile=profile,
                      speculative=speculative, ep_a2a=ep_a2a, moe_imbalance=moe_imbalance,
                      engine=engine)
    first = {k: float(getattr(c, k)) for k in ("ttft_s", "tpot_s", "e2e_s", "output_tok_s",
                                                   "output_tok_s_per_gpu", "comm_share_decode",
                                                   "comm_share_prefill", "bubble_decode")}
    if load is not None and load["rest_replicas"]:  # an uneven spread: sum over the replicas
        rest = 0.0
        if load["rest_batch"]:
            rest = float(serving_curve(model, gpu, split, load["rest_batch"], isl=isl, osl=osl,
                                       max_num_tokens=max_num_tokens, mode=mode,
                                       cuda_graphs=cuda_graphs, weight_dtype=weight_dtype,
                                       kv_dtype=kv_dtype, topology=topology, profile=profile,
                                       speculative=speculative, ep_a2a=ep_a2a,
                                       moe_imbalance=moe_imbalance,
                                       engine=engine).output_tok_s) / split.dp
        busy = first["output_tok_s"] / split.dp
        first["output_tok_s"] = load["busy_replicas"] * busy + load["rest_replicas"] * rest
        first["output_tok_s_per_gpu"] = first["output_tok_s"] / split.gpus
    p, dec = split.pp, c.decode
    dec_scale = float(c.tpot_s) / float(dec.time_s) if float(dec.time_s) else 0.0
    breakdown = {
        "decode": {"compute_s": float(dec.compute_s) * dec_scale, "comm_s": float(dec.comm_s) * dec_scale,
                   "bubble_s": first["bubble_decode"] * first["tpot_s"]},
        "comm_share_decode": first["comm_share_decode"],
        "comm_share_prefill": first["comm_share_prefill"],
    }
    if c.mode == "static":
        pre, chunks = c.prefill, float(c.prefill_chunks)
        busy = chunks * float(pre.time_s) if p == 1 else chunks * float(c.prefill_clock_s)
        breakdown["prefill"] = {"compute_s": chunks * float(pre.compute_s), "comm_s": chunks * float(pre.comm_s),
                                "bubble_s": first["ttft_s"] - busy if p > 1 else 0.0}
    else:  # continuous: the forwards that carry the prompt's chunks
        scale = first["ttft_s"] / float(c.prefill.time_s)
        breakdown["prefill"] = {"compute_s": float(c.prefill.compute_s) * scale,
                                "comm_s": float(c.prefill.comm_s) * scale, "bubble_s": 0.0}
    pipeline = None
    if p > 1:
        mb = int(c.microbatches)
        pipeline = {"decode": Schedule(p, mb, float(c.decode_clock_s)).to_json(),
                    "bubble_fraction_decode": first["bubble_decode"]}
        # static: the prompt chunks fill the pipeline; continuous: the forward carrying a prompt
        # chunk is one of the decode micro-batches in flight
        sched = Schedule(p, int(c.prefill_chunks) if c.mode == "static" else mb, float(c.prefill_clock_s))
        pipeline["prefill"] = sched.to_json()
        pipeline["bubble_fraction_prefill"] = (sched.bubble_fraction if c.mode == "static"
                                               else first["bubble_decode"])
    spec = None
    if speculative is not None:
        spec = {**speculative.to_json(), "verify_step_s": float(dec.time_s),
                "draft_s": float(c.draft_s),
                "tpot_without_s": None}
        plain = serving_curve(model, gpu, split, batch, isl=isl, osl=osl,
                              max_num_tokens=max_num_tokens, mode=mode, cuda_graphs=cuda_graphs,
                              weight_dtype=weight_dtype, kv_dtype=kv_dtype, topology=topology,
                              profile=profile, ep_a2a=ep_a2a, moe_imbalance=moe_imbalance,
                              engine=engine)
        spec["tpot_without_s"] = float(plain.tpot_s)
        spec["speedup_tpot"] = float(plain.tpot_s) / first["tpot_s"]
    return Estimate(first["ttft_s"], first["tpot_s"], first["e2e_s"], first["output_tok_s"],
                    first["output_tok_s_per_gpu"], int(batch), mode, plan.to_json(), breakdown,
                    pipeline, [o.to_json() for o in c.prefill.ops],
                    [o.to_json() for o in dec.ops], spec, load)
