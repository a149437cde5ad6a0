"""Engine memory rules and the per-GPU memory plan of a deployment.

Each serving engine turns "memory left after weights" into a KV-cache size its own way:
- vLLM (vllm/worker/worker.py, determine_num_available_blocks; V1 gpu_worker.py): the budget is
  `gpu_memory_utilization` x total memory; KV = budget - weights - peak activation of a profiling
  forward of `max_num_batched_tokens` tokens - non-torch memory; blocks of 16 tokens. Check:
  Llama-3-8B on H100, 0.9 x 79.22 = 71.29 GiB usable, 14.96 weights, 1.26 activations,
  1.79 non-torch -> 53.29 GiB KV (memory_facts R03097-R03101).
- SGLang (model_runner.py, profile_max_num_token): KV = memory free after loading weights -
  total x (1 - mem_fraction_static); activations and CUDA graphs must fit in that reserve.
  Tokens = KV / (kv heads per rank x head_dim x 2 x layers x bytes).
- TensorRT-LLM (KvCacheConfig.free_gpu_memory_fraction, default 0.9): KV = that fraction of the
  memory free after weights, activations and runtime buffers.
How each engine lays out the KV of hybrid-attention models (sliding window, chunked) and what
it prints at start-up: sizer/cost/kv_cache.py. With engine "none", the plan says how much KV
the given batch x context needs and whether it fits.
"""

from dataclasses import asdict, dataclass

from sizer.errors import InputError
from .memory import (activation_bytes, kv_bytes_per_sequence, kv_bytes_per_token, kv_stage_groups,
                     overhead_bytes, resolve_precision, stage_weight_bytes)
from sizer.model.split import Split, check_split

GIB = 2**30


@dataclass(frozen=True)
class EngineRules:
    name: str
    fraction: float  # gpu_memory_utilization | mem_fraction_static | free_gpu_memory_fraction
    fraction_flag: str
    block_tokens: int
    source: str
    entry_point: str = ""  # which of the engine's front ends the scheduler defaults model
    # scheduler caps (max_num_seqs, max_num_batched_tokens) depend on the GPU: scheduler_limits;
    # what the memory profile runs with them: profile_forward


ENGINES = {
    "vllm": EngineRules("vllm", 0.9, "--gpu-memory-utilization", 16,
                        "vLLM EngineArgs defaults: gpu_memory_utilization=0.9, block_size=16; scheduler caps "
                        "by GPU (scheduler_limits): vllm/engine/arg_utils.py _set_default_args",
                        "vllm serve (UsageContext.OPENAI_API_SERVER)"),
    "sglang": EngineRules("sglang", 0.88, "--mem-fraction-static", 1,
                          "SGLang ServerArgs: mem_fraction_static picked by GPU memory (0.88 for "
                          "80 GB-class GPUs at TP<=2), page_size=1; chunked_prefill_size and "
                          "max_running_requests by GPU (scheduler_limits)",
                          "python -m sglang.launch_server"),
    "trtllm": EngineRules("trtllm", 0.9, "--kv-cache-free-gpu-mem-fraction", 32,
                          "TensorRT-LLM KvCacheConfig.free_gpu_memory_fraction=0.9, tokens_per_block=32; "
                          "scheduler caps of trtllm-bench's tuning (scheduler_limits)",
                          "trtllm-bench throughput (the published performance tables)"),
}


@dataclass(frozen=True)
class MemoryPlan:
    """The most loaded GPU of a split, in bytes, plus the per-replica KV capacity."""

    weights_bytes: float
    kv_cache_bytes: float
    activation_bytes: float
    overhead_bytes: float
    total_bytes: float
    capacity_bytes: float
    fits: bool
    kv_bytes_per_token: float  # per GPU, every attention layer (windowed ones while < window)
    max_kv_tokens: int  # per replica: the engine's own start-up figure (kv_reported_as)
    max_sequences: int  # at `context` tokens each, as the engine actually allocates them
    params_total: int
    params_active: int
    precision: dict
    engine: str | None
    batch: int
    context: int
    stage_weights_bytes: tuple
    kv_groups: tuple = ()  # per attention kind on the limiting stage (KVGroup.to_json + pool)
    kv_rule: str = ""
    kv_reported_as: str = ""
    notes: tuple = ()
    # the binding limit (memory_budget): what the engine lets the parts below fill, and how
    budget_bytes: float = 0.0
    budget_fixed_bytes: float = 0.0  # what the budget holds before any KV cache
    budget: str = ""  # "71.30 GiB (vLLM --gpu-memory-utilization 0.9 x 79.22 GiB)"
    kv_bytes_per_sequence: float = 0.0  # per GPU at `context` tokens, as the engine keeps them
    kv_bytes_first_sequence: float = 0.0  # the one in prefill, if the engine holds it apart (vLLM)

    def to_json(self) -> dict:
        keys = ("weights_bytes", "kv_cache_bytes", "activation_bytes", "overhead_bytes",
                "total_bytes", "capacity_bytes", "fits", "budget_bytes")
        d = asdict(self)
        return {
            "per_gpu": {k: d[k] for k in keys},
            "kv_bytes_per_token": self.kv_bytes_per_token,
            "max_kv_tokens": self.max_kv_tokens,
            "max_sequences": self.max_sequences,
            "kv_groups": list(self.kv_groups),
            "kv_rule": self.kv_rule,
            "kv_reported_as": self.kv_reported_as,
            "params_total": self.params_total,
            "params_active": self.params_active,
            "precision": self.precision,
            "engine": self.engine or "none",
            "batch": self.batch,
            "context": self.context,
            "stage_weights_bytes": list(self.stage_weights_bytes),
            "notes": list(self.notes),
            "budget": self.budget,
        }

    def shortfall(self, need_bytes: float, verb: str = "needs") -> str:
        """'needs N GiB per GPU of the B GiB budget (how)': the sentence every "does not fit"
        message ends in, naming the binding limit rather than the raw capacity."""
        return f"{verb} {need_bytes / GIB:.1f} GiB per GPU of the {self.budget}"


def memory_budget(rules, fraction, cap: float, weights: float, act: float, over: float,
                  over_no_graphs: float) -> tuple[float, float, str]:
    """(budget, what it holds before KV, description) of one GPU: the limit "does not fit" means.

    - vLLM (worker/gpu_worker.py determine_available_memory): gpu_memory_utilization x total
      memory holds weights, the profiled activation peak, non-torch memory and the KV cache.
    - SGLang (model_runner.py profile_max_num_token): mem_fraction_static x total holds weights
      and the KV pool; activations and CUDA graphs live in the rest.
    - TensorRT-LLM (KvCacheConfig.free_gpu_memory_fraction): the GPU holds weights, activations
      and runtime buffers, and the KV cache gets the fraction f of what they leave, so the
      budget is fixed + f x (capacity - fixed).
    - No engine: the whole GPU holds everything."""
    gib = cap / GIB
    if rules is None:
        return cap, weights + act + over, f"{gib:.2f} GiB GPU capacity (engine none)"
    f = rules.fraction if fraction is None else fraction
    flag = f"{rules.fraction_flag} {f:g}"
    if rules.name == "vllm":
        return cap * f, weights + act + over, f"{cap * f / GIB:.2f} GiB budget (vLLM {flag} x {gib:.2f} GiB)"
    if rules.name == "sglang":
        return (cap * f, weights + over_no_graphs,
                f"{cap * f / GIB:.2f} GiB budget (SGLang {flag} x {gib:.2f} GiB, for weights and KV)")
    fixed = weights + act + over
    budget = fixed + f * max(cap - fixed, 0.0)
    return (budget, fixed,
            f"{budget / GIB:.2f} GiB budget (TensorRT-LLM free_gpu_memory_fraction {f:g}, sizer's "
            f"{rules.fraction_flag}: weights, activations and buffers {fixed / GIB:.2f} GiB + {f:g} x "
            f"the {max(cap - fixed, 0.0) / GIB:.2f} GiB they leave of {gib:.2f} GiB)")


DEFAULT_MAX_NUM_SEQS = 256  # vLLM's max_num_seqs on a GPU without the large-memory default
DEFAULT_MAX_NUM_BATCHED_TOKENS = 8192  # chunked-prefill token budget when none is known
PROFILE_SAMPLER_SEQS = 256  # SGLang / TensorRT-LLM: logit rows of the profiled peak (profile_forward)
VLLM_LARGE_GPU_BYTES = 70 * GIB
SGLANG_MAX_RUNNING_REQUESTS = 2048
TRTLLM_BENCH_MAX_BATCH, TRTLLM_BENCH_MAX_NUM_TOKENS = 4096, 8192


def scheduler_limits(engine: "EngineRules | None", gpu=None) -> tuple[int, int]:
    """(max_num_seqs, max_num_batched_tokens) the engine schedules with on `gpu`: the one place
    every command (estimate, recommend, simulate) takes its scheduler caps from. Each is the
    engine's current default for the entry point its preset models; without an engine, vLLM's.

    - vLLM, `vllm serve` (vllm/engine/arg_utils.py EngineArgs._set_default_args, commit
      99d7eb5d6a51, v0.11): on a GPU with >= 70 GiB that is not an A100 ("for GPUs like H100
      and MI300x"), max_num_seqs 1024 and max_num_batched_tokens 8192; elsewhere 256 and 2048
      (the offline LLM class gets 16384 / 8192 tokens instead). Caps the replica's running
      requests across all pipeline micro-batches in flight (one scheduler per replica).
    - SGLang (python/sglang/srt/arg_groups/memory_hook.py handle_gpu_memory_settings, commit
      a82da8da159e): chunked_prefill_size 2048 below 20 GB of GPU memory, 4096 below 60 GB,
      8192 below 160 GB (H100, A100 80GB, H200), 16384 above (B200, MI300X);
      max_running_requests from the KV pool: min(clamp(tokens / context_len x 512, 2048,
      4096), tokens / 2) (model_runner.py resolve_max_num_reqs), i.e. 2048 for long-context
      models unless the KV pool binds first (which memory_plan models). Under PP each
      micro-batch admits max_running_requests / pp (pp_max_micro_batch_size).
    - TensorRT-LLM, trtllm-bench (tensorrt_llm/bench/build/tuning.py finetune_setting, commit
      a7e572fb20c6): max batch min(KV requests, 4096) / pp per micro-batch, so 4096 in flight
      per replica; max_num_tokens min(batch x (1 + isl / osl), 32768) rounded up, at least
      2048 (8192 here, the workload-free middle). trtllm-serve instead takes BuildConfig's
      defaults with runtime batch-size tuning.
    """
    name = engine.name if engine is not None else "vllm"
    if name == "vllm":
        large = (gpu is not None and gpu.capacity_bytes >= VLLM_LARGE_GPU_BYTES
                 and "a100" not in f"{gpu.id} {gpu.name}".lower())
        return (1024, 8192) if large else (256, 2048)
    if name == "sglang":
        mib = gpu.capacity_bytes / 2**20 if gpu is not None else None
        if mib is None:
            chunk = 4096
        else:
            chunk = next(c for limit, c in ((20 * 1024, 2048), (60 * 1024, 4096), (160 * 1024, 8192),
                                            (float("inf"), 16384)) if mib < limit)
        return SGLANG_MAX_RUNNING_REQUESTS, chunk
    return TRTLLM_BENCH_MAX_BATCH, TRTLLM_BENCH_MAX_NUM_TOKENS


def caps_share(engine: "EngineRules | None", split) -> int:
    """How many sizer replicas share one set of the engine's scheduler caps: k for SGLang with
    data-parallel attention (sizer's EP = TP x k, `--tp-size TP*k --dp-size k
    --enable-dp-attention`), whose caps are the deployment's, split over its k attention ranks
    (managers/scheduler.py per_dp_max_running_requests = max_running_requests // dp_size;
    server_args.py _handle_data_parallelism: chunked_prefill_size //= dp_size); else 1."""
    if engine is not None and engine.name == "sglang" and split.ep > split.tp:
        return split.ep // split.tp
    return 1


def replica_limits(engine: "EngineRules | None", gpu, split) -> tuple[int, int]:
    """scheduler_limits per sizer replica of `split` (caps_share)."""
    seqs, tokens = scheduler_limits(engine, gpu)
    k = caps_share(engine, split)
    return max(seqs // k, 1), max(tokens // k, 1)


def profile_forward(engine: "EngineRules | None", gpu=None, max_num_seqs: int | None = None,
                    max_num_batched_tokens: int | None = None) -> tuple[int, int]:
    """(tokens, logit rows) of the forward whose activation peak the engine reserves before it
    sizes the KV cache, for its configured caps (default: scheduler_limits for the GPU).

    - vLLM V1 (vllm/v1/worker/gpu_model_runner.py, profile_run, since PRs #13594 / #14508):
      `_dummy_run(max_num_tokens)` over min(max_num_tokens, max_num_seqs) requests, then
      `_dummy_sampler_run` over their last-token logits with top-k and top-p on, "a dummy sampler
      run with max number of possible [sequences]" (vllm-project/vllm#15357, comment by
      ywang96); its out-of-memory hint asks to lower max_num_seqs. So on an H100, whose
      default is 1024 sequences, the sampler's logits are four times those of the 256 the
      V0 logs of memory_facts R03099 were fitted at. Check: gpt-oss-120b at 0.95 on one H100
      (data/engine_kv_logs.json K0005, K0006) leaves 9.17 GiB beside 64.38 GiB of weights and
      1.71 GiB of KV; 1,024 rows of its 201,088-token vocabulary (7.67 GiB) and the non-torch
      1.79 GiB make 9.46 GiB (+3%), where 256 rows made 3.7 GiB.
    - SGLang: the KV pool is what the (1 - mem_fraction_static) reserve leaves (memory_plan);
      the forward only has to fit it. TensorRT-LLM profiles a forward of max_num_tokens
      context tokens over a few requests (KvCacheCreator's dummy context requests); both are
      given PROFILE_SAMPLER_SEQS rows, sizer's assumption, not read from their profilers.
    Without an engine: max_num_seqs as given (the batch) over DEFAULT_MAX_NUM_BATCHED_TOKENS."""
    seqs_cap, tokens_cap = scheduler_limits(engine, gpu)
    tokens = max_num_batched_tokens or (tokens_cap if engine is not None else DEFAULT_MAX_NUM_BATCHED_TOKENS)
    if engine is not None and engine.name == "vllm":
        rows = max_num_seqs or seqs_cap
    elif engine is not None:
        rows = PROFILE_SAMPLER_SEQS
    else:
        rows = max_num_seqs or 1
    return int(tokens), int(min(rows, tokens))


def get_engine(name: str | None) -> EngineRules | None:
    """The engine's rules; None (or "none") for raw capacity with no engine's reserves."""
    if name is None or str(name).strip().lower() == "none":
        return None
    key = str(name).lower().replace("-", "").replace("_", "")
    key = {"tensorrtllm": "trtllm", "trt": "trtllm"}.get(key, key)
    if key not in ENGINES:
        raise InputError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}, none")
    return ENGINES[key]


DEFAULT_ENGINE = "vllm"  # what the command line uses without --engine (issue #15 item 1)
DEFAULT_CONTEXT_CAP = 131_072  # context when none is given and the model allows more


def default_context(model, context: int | None) -> tuple[int, tuple]:
    """(context, notes): the given one, else the model's maximum up to DEFAULT_CONTEXT_CAP
    (128K, the longest context of the Llama-3.1/Qwen/gpt-oss presets; Llama-4-Scout's
    10,485,760 would make every plan 'does not fit'), saying so when it caps."""
    if context:
        return int(context), ()
    top = model.max_position_embeddings or 4096
    if top <= DEFAULT_CONTEXT_CAP:
        return top, ()
    return DEFAULT_CONTEXT_CAP, (f"no --context given: using {DEFAULT_CONTEXT_CAP:,} tokens, not "
                                 f"{model.name}'s maximum of {top:,} (pass --context to change it)",)


def memory_plan(model, gpu, split: Split, *, weight_dtype=None, kv_dtype="auto", batch: int = 1,
                context: int | None = None, engine: str | None = None, fraction: float | None = None,
                max_num_batched_tokens: int | None = None, max_num_seqs: int | None = None,
                cuda_graphs: bool = True, gpus: int | None = None,
                draft_weight_bytes: float = 0.0, draft_kv_bytes_per_token: float = 0.0) -> MemoryPlan:
    """Memory of the most loaded GPU of `split` serving `batch` sequences of `context` tokens.

    With an engine, the engine's rule sizes the KV cache (kv_cache_bytes is what it allocates,
    sizer/cost/kv_cache.py how it lays it out per attention kind) and `context` is its maximum
    model length; without one, kv_cache_bytes is what the workload needs. The activation term
    is the peak of the engine's profiling forward for its configured caps (profile_forward:
    `max_num_seqs` / `max_num_batched_tokens` as given, else the engine's defaults for the GPU);
    without an engine, a forward of min(batch x context, 8192) tokens and `batch` logit rows.

    A speculative decoder's draft (sizer/cost/speculative.py) lives on the same GPUs: its
    weights per GPU (`draft_weight_bytes`; an MTP block or EAGLE head shares the target's
    embedding and LM head) sit beside the target's, and its layers cache KV for every token
    from the same pool (vLLM registers the draft's attention layers in the model's KV cache
    config, v1/spec_decode/eagle.py; SGLang and TensorRT-LLM size a draft KV pool beside the
    target's): `draft_kv_bytes_per_token` per GPU takes its share of the KV memory.
    """
    from . import kv_cache

    check_split(model, split, gpus)
    context, notes = default_context(model, context)
    if batch < 1 or context < 1:
        raise InputError("--batch and --context must be positive")
    rules = get_engine(engine)
    if fraction is not None and not 0 < fraction <= 1:
        raise InputError(f"memory fraction must be in (0, 1], got {fraction}")
    prec = resolve_precision(model, weight_dtype, kv_dtype)
    stages = [w + draft_weight_bytes for w in stage_weight_bytes(model, split, prec)]
    weights = max(stages)
    if rules is None:
        tokens = max_num_batched_tokens or min(batch * context, DEFAULT_MAX_NUM_BATCHED_TOKENS)
        rows = min(max_num_seqs or batch, tokens)
    else:
        tokens, rows = profile_forward(rules, gpu, max_num_seqs, max_num_batched_tokens)
    act = activation_bytes(model, split, prec, tokens, rows)
    over = overhead_bytes(split, cuda_graphs)
    full_tok, slide_tok = kv_bytes_per_token(model, split, prec)
    groups = kv_stage_groups(model, split, prec)
    seq_bytes = kv_bytes_per_sequence(model, split, prec, context)
    cap = float(gpu.capacity_bytes)
    # the target's share of the KV memory when a draft caches KV beside it (every token, every
    # draft layer: its share is its bytes per cached token over the target's per sequence)
    target_tok = seq_bytes / context
    keep = target_tok / (target_tok + draft_kv_bytes_per_token) if draft_kv_bytes_per_token else 1.0
    if rules is None:
        kv = batch * seq_bytes / keep
        pool = kv_cache.raw_pool(groups, (cap - weights - act - over) * keep, context)
    else:
        f = rules.fraction if fraction is None else fraction
        if rules.name == "vllm":
            pool = kv_cache.vllm_pool(model, groups, [(cap * f - w - act - over) * keep for w in stages], context,
                                      rules.block_tokens, tokens)
        elif rules.name == "sglang":
            # CUDA graphs and activations live in the (1 - fraction) reserve
            pool = kv_cache.sglang_pool(model, groups,
                                        (cap * f - weights - overhead_bytes(split, cuda_graphs=False)) * keep,
                                        context, rules.block_tokens)
        else:
            pool = kv_cache.trtllm_pool(groups, (cap - weights - act - over) * f * keep, context, rules.block_tokens)
        kv = pool.kv_bytes_allocated / keep
    total = weights + max(kv, 0.0) + act + over
    # with an engine: the batch's sequences must fit the KV the engine allocates (else the
    # engine queues them), and the fixed parts must fit the GPU
    fits = total <= cap if rules is None else (pool.max_sequences >= batch and weights + act + over <= cap)
    limiting = max(groups, key=lambda gs: sum(g.bytes_per_sequence(context) for g in gs))
    budget, fixed, budget_text = memory_budget(rules, fraction, cap, weights, act, over,
                                               overhead_bytes(split, cuda_graphs=False))
    return MemoryPlan(
        weights_bytes=weights, kv_cache_bytes=max(kv, 0.0), activation_bytes=act,
        overhead_bytes=over, total_bytes=total, capacity_bytes=cap, fits=bool(fits),
        kv_bytes_per_token=full_tok + slide_tok, max_kv_tokens=int(pool.reported_tokens),
        max_sequences=int(pool.max_sequences),
        params_total=model.params_total(), params_active=model.params_active(),
        precision={"weights": prec.linear, "experts": prec.experts, "embeddings": prec.base,
                   "kv_cache": prec.kv},
        engine=rules.name if rules else None, batch=batch, context=context,
        stage_weights_bytes=tuple(stages),
        kv_groups=tuple(dict(g.to_json(context), engine_pool_tokens=t)
                        for g, t in zip(limiting, pool.group_tokens)),
        kv_rule=pool.rule, kv_reported_as=pool.reported_as, notes=notes + pool.notes,
        budget_bytes=budget, budget_fixed_bytes=fixed, budget=budget_text,
        kv_bytes_per_sequence=pool.steady_sequence_bytes or seq_bytes,
        kv_bytes_first_sequence=pool.first_sequence_bytes or pool.steady_sequence_bytes or seq_bytes,
    )
