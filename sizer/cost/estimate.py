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
chunked prefill (vLLM, SGLang) holding N sequences per replica in a closed loop (a finished
request is replaced at once, as a benchmark client at a fixed concurrency does). Requests are
taken out of phase (none waits for a wave of others), so per cycle of one request each of the
other N - 1 starts one prompt somewhere in its decode steps.
- TPOT: a round in which every sequence decodes once beside (N - 1) x isl / osl prompt tokens
  (the other requests' prompts, never its own), split into forwards of at most
  `max_num_tokens` tokens: the time of such a mixed step (sizer/cost/step.py,
  `prefill_tokens`); prompts come in whole chunks, so below one chunk per forward it is the
  mix of forwards with and without one, and under PP the round ticks at the clock of the
  micro-batch carrying it (chunk_clock). Alone (N = 1) it is the batch-1 decode step.
- TTFT: its own prompt cut into chunks of at most max_num_tokens minus the round's decode
  tokens per forward, each riding a forward of the round beside the others' prompt tokens that
  share it (under PP it passes all p stages; alone, a pure prefill, as a static batch of 1
  prices it), plus two waits. With others in flight a new request arrives as the engine starts
  their next forward (its predecessor just finished) and joins the one after it: one forward.
  And where the engine's work binds, the cycle (e2e) is at least osl rounds that carry all N
  prompts, the work-conserving cycle (N requests per cycle, Little's law), which is the
  saturated limit; the difference is time the request spends behind the others' prefills.
- e2e = TTFT + (osl - 1) x TPOT, so TPOT = (e2e - TTFT) / (osl - 1), the definition of vLLM's
  benchmarks/benchmark_serving.py (calculate_metrics: (latency - ttft) / (output_len - 1)); output tokens/s = dp x N x
  osl / e2e. Measured against sizer.sim's closed loop (tests/test_closed_loop.py): e2e within
  4%, TPOT within 7% and TTFT within 26% with desynchronised requests; equal-length requests
  started together stay in lockstep there, with TTFT up to a wave's prefill, which this steady
  state does not model.
- A concurrency C over the deployment spreads over its dp
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
sooner, so (N - 1) x isl x E / osl prompt tokens join each step. PP > 1 is refused with it (vLLM's
V1 engine runs speculative decoding with PP = 1).
"""

from dataclasses import dataclass, replace

import numpy as np

from .engines import DEFAULT_MAX_NUM_BATCHED_TOKENS, get_engine, memory_plan, replica_limits
from sizer.errors import InfeasibleError, InputError
from .pipeline import Schedule
from sizer.model.split import Split
from .step import step_time
from .speculative import Speculative
from .draft import draft_memory, draft_split, draft_step_s  # noqa: F401 (draft_memory, draft_split: re-exported)

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
    wait_s: object = 0.0  # continuous: TTFT spent before its prefill (the forward in flight, others' prefills)


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
    wait = np.zeros(b.shape)
    if mode == "static":
        chunks = np.maximum(np.ceil(b * isl / max_num_tokens), mb if p > 1 else 1)
        pre = step_time(model, device, split, phase="prefill", batch=b / chunks, seq_len=isl,
                        cuda_graphs=False if cuda_graphs is None else cuda_graphs, **kw)
        pre_clock = _stage_max(pre, b.shape)
        ttft = (chunks + p - 1) * pre_clock if p > 1 else chunks * np.broadcast_to(pre.time_s, b.shape)
        dec = step_time(model, device, split, phase="decode", batch=b / mb, context_len=mean_ctx,
                        cuda_graphs=cuda_graphs, query_tokens=q, **kw)
        draft = draft_step_s(speculative, device, split, b / mb, mean_ctx, dkw) if speculative else 0.0
        dec_time = np.broadcast_to(np.asarray(dec.time_s, dtype=float) + draft, b.shape)
        dec_clock = even_clock = _stage_max(dec, b.shape) if p > 1 else dec_time
        tpot = (p * dec_clock if p > 1 else dec_clock) / gain
        e2e = ttft + (osl - 1) * tpot
        tok_s = split.dp * b * osl / e2e
    else:
        def clock(r, shape=b.shape):
            t = np.asarray(r.time_s, float)
            return _stage_max(r, shape) if p > 1 else np.broadcast_to(t, shape)

        steps = {}

        def fwd(batch, prefill=None):
            """A decode-phase forward of `batch` sequences beside `prefill` prompt tokens (None:
            decode only), costed once per distinct vector: rounds and the prompt's own forward
            often coincide."""
            key = (np.asarray(batch, float).tobytes(), None if prefill is None else np.asarray(prefill, float).tobytes())
            if key not in steps:
                extra = {} if prefill is None else {"prefill_tokens": prefill, "seq_len": isl}
                steps[key] = step_time(model, device, split, phase="decode", batch=batch, context_len=mean_ctx,
                                       cuda_graphs=cuda_graphs, query_tokens=q, **extra, **kw)
            return steps[key]

        def rnd(prompt_tokens, like=None):
            """One round in which every sequence decodes once beside `prompt_tokens` prompt
            tokens, split into forwards of at most max_num_tokens tokens (module docstring).
            With `like` (another round) the even split (`dec`) is costed only where it sets
            the clock, and where it does the chunk forward borrows `like`'s (unused there)."""
            # each micro-batch in flight is its own scheduled forward with its own token budget
            forwards = np.maximum(1, np.ceil((b + prompt_tokens) / (mb * max_num_tokens)))
            per = mb * forwards
            draft = draft_step_s(speculative, device, split, b / per, mean_ctx, dkw) if speculative else 0.0
            # a forward that carries a prompt chunk: its micro-batch's decode tokens plus as much
            # of a prompt as the token budget leaves (at least the round's share)
            budget = np.maximum(max_num_tokens - b / per, 1.0)
            # prompt chunks per forward; below one, whole chunks ride some forwards and not others
            per_forward = prompt_tokens / per / np.minimum(isl, budget)
            piece = np.maximum(np.minimum(isl, budget), prompt_tokens / per)
            if like is not None:
                piece = np.where(per_forward >= 1.0, like["piece"], piece)
            heavy = fwd(b / per, piece)
            dec, even = None, np.zeros(b.shape)
            if like is None or np.any(per_forward >= 1.0):
                dec = fwd(b / per, prompt_tokens / per)
                even = _stage_max(dec, b.shape) if p > 1 else np.broadcast_to(np.asarray(dec.time_s, float) + draft, b.shape)
            tick = chunk_clock(even, clock(heavy) + draft, clock(fwd(b / per)) + draft, per_forward, p)
            return {"forwards": forwards, "per": per, "shared": prompt_tokens / per, "dec": dec,
                    "piece": piece, "draft": draft, "even": even,
                    "clock": tick, "tpot": forwards * (p * tick if p > 1 else tick) / gain}

        # one request's decode steps carry the other N - 1 requests' prompts, never its own
        seen = rnd(np.maximum(b - 1.0, 0.0) * isl * gain / osl)
        # the work-conserving round carries all N requests' prompts: its osl rounds are the
        # shortest cycle the engine's work allows (what saturated serving runs at)
        work = rnd(b * isl * gain / osl, like=seen)
        dec, draft, even_clock, dec_clock, tpot = (seen[k] for k in ("dec", "draft", "even", "clock", "tpot"))
        dec_time = np.broadcast_to(np.asarray(dec.time_s, dtype=float) + draft, b.shape)
        pre, pre_clock, chunks = _own_prefill(model, device, split, b, seen["per"], seen["shared"], isl,
                                              max_num_tokens, cuda_graphs, kw, fwd)
        pre_clock = pre_clock + np.where(b > 1, draft, 0.0)
        own = chunks * (p * pre_clock if p > 1 else pre_clock)
        # a new request arrives as the engine starts the others' next forward (its predecessor
        # just finished) and joins the one after: it waits one forward, none when alone
        arrive = np.where(b > 1, dec_clock, 0.0)
        free = arrive + own + (osl - 1) * tpot  # then its own prefill and osl - 1 decode steps
        # with others in flight it may also wait for their prefills: the cycle is at least
        # the work-conserving one (Little's law: N requests per cycle)
        e2e = np.where(b > 1, np.maximum(free, osl * work["tpot"]), free)
        wait = arrive + e2e - free
        ttft = own + wait
        tok_s = split.dp * b * osl / e2e
    share_pre = np.broadcast_to(np.asarray(pre.comm_s) / np.asarray(pre.time_s), b.shape)
    share_dec = np.broadcast_to(np.asarray(dec.comm_s) / dec_time, b.shape)
    costs = pp_costs(dec, even_clock, dec_clock, p, b.shape) if p > 1 else None
    return Curve(mode, b, np.asarray(ttft, float), np.asarray(tpot, float), np.asarray(e2e, float),
                 tok_s, tok_s / split.gpus, share_dec, np.broadcast_to(share_pre, b.shape),
                 np.broadcast_to(1 - mb / p, b.shape), mb, chunks, pre_clock, dec_clock, pre, dec,
                 np.broadcast_to(np.asarray(draft, float), b.shape), costs,
                 np.broadcast_to(np.asarray(wait, float), b.shape))


def _own_prefill(model, device, split: Split, b, per, shared, isl: int, max_num_tokens: int,
                 cuda_graphs, kw, fwd):
    """A request's own prompt in continuous batching: equal chunks of at most max_num_tokens
    minus the forward's decode tokens, each riding a forward of the round (b / per decode
    tokens, `fwd(batch, prefill)`) beside the others' prompt tokens that share it (`shared` per
    forward, at least the chunk: with several prompts per forward it is the round's own
    forward). Alone (N = 1) a chunk is a pure prefill forward, priced as a static batch of 1
    prices it (isl / chunks tokens each). Returns (StepResult, clock, chunks)."""
    alone = np.asarray(b <= 1)
    decode = np.where(alone, 0.0, b / per)
    chunks = np.ceil(isl / np.minimum(isl, np.maximum(max_num_tokens - decode, 1.0)))
    shape = np.shape(b)
    res = None
    if np.any(alone):
        res = step_time(model, device, split, phase="prefill", batch=1.0 / chunks, seq_len=isl,
                        cuda_graphs=False if cuda_graphs is None else cuda_graphs, **kw)
    if not np.all(alone):
        mixed = fwd(np.where(alone, 1.0, decode), np.maximum(isl / chunks, shared))
        if res is None:
            res = mixed
        else:  # a vector holding both: pick per batch (the ops are the mixed forward's)
            res = replace(mixed, time_s=np.where(alone, res.time_s, mixed.time_s),
                          compute_s=np.where(alone, res.compute_s, mixed.compute_s),
                          comm_s=np.where(alone, res.comm_s, mixed.comm_s),
                          stage_times_s=tuple(np.where(alone, x, y) for x, y in
                                              zip(res.stage_times_s, mixed.stage_times_s)))
    clock = (_stage_max(res, shape) if split.pp > 1
             else np.broadcast_to(np.asarray(res.time_s, float), shape))
    return res, clock, chunks


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
    held = batch
    if load is not None and rules is not None:  # an engine runs what it holds; the rest wait
        held = min(batch, max_batch, plan.max_sequences)
        if 1 <= held < batch:
            load.update(running_batch=held, waiting_batch=batch - held)
            batch = held
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
            rest = float(serving_curve(model, gpu, split, min(load["rest_batch"], held), isl=isl, osl=osl,
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
    else:  # continuous: the forwards that carry the prompt's chunks, and the wait before them
        wait = float(c.wait_s)
        scale = (first["ttft_s"] - wait) / float(c.prefill.time_s)
        breakdown["prefill"] = {"compute_s": float(c.prefill.compute_s) * scale,
                                "comm_s": float(c.prefill.comm_s) * scale, "bubble_s": 0.0,
                                "wait_s": wait}
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
    if load is not None and "running_batch" in load:
        # a closed loop of N over the M the engine runs: each running slot is refilled from the
        # queue, so the replica serves M / e2e_M requests/s and, by Little's law, each request
        # spends N / M x e2e_M in the system; the difference is its wait before admission
        n = load["running_batch"] + load["waiting_batch"]
        e2e = first["e2e_s"] * n / load["running_batch"]
        load["queue_s"] = e2e - first["e2e_s"]
        breakdown["prefill"]["queue_s"] = load["queue_s"]
        first["ttft_s"] += load["queue_s"]
        first["e2e_s"] = e2e
    return Estimate(first["ttft_s"], first["tpot_s"], first["e2e_s"], first["output_tok_s"],
                    first["output_tok_s_per_gpu"], int(batch), mode, plan.to_json(), breakdown,
                    pipeline, [o.to_json() for o in c.prefill.ops],
                    [o.to_json() for o in dec.ops], spec, load)
