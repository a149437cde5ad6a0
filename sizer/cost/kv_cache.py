"""How each serving engine lays out the KV cache of a model whose layers attend differently
(full, sliding window, chunked): what it allocates per token per layer group, how many
sequences that holds, and the number it prints at start-up. They differ by up to 2x.

vLLM (V1 hybrid KV cache manager; vllm-project/vllm commit 001cabc1be16,
vllm/v1/core/kv_cache_utils.py `_get_kv_cache_groups_uniform_page_size`,
`get_kv_cache_config_from_groups`, `_report_kv_cache_config`; kv_cache_interface.py):
layers of each attention type are cut into groups of `group_size` layers (the smallest type's
layer count, or the largest's when the types are within 1.5x); every group draws blocks of
`block_size` tokens from one shared pool whose block costs group_size layers' pages, so
num_blocks = available // (page x group_size). A full-attention group keeps ceil(L / 16) blocks
of an L-token sequence, a sliding-window group ceil((W - 1 + 1) / 16) + 1, a chunked group one
chunk. It prints "GPU KV cache size: num_blocks // groups x block_size tokens", i.e. the
tokens every layer could hold if all were full attention, which for gpt-oss is half what it
can actually hold at long contexts. Llama 4's chunked layers use this manager since
VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to 1 (vllm/envs.py, same
commit; from v0.10.1 to then it defaulted to 0 and every layer was kept as full).

SGLang (python/sglang/srt/model_executor/pool_configurator.py at commit 003fca80,
HybridSWAPoolConfigurator; configs/model_config.py `is_hybrid_swa_model`): for gpt-oss and
Llama 4 only, two pools: full-layer tokens F and window-layer tokens r x F with
r = --swa-full-tokens-ratio (default 0.8, server_args.py), F = available / (full bytes/token +
r x window bytes/token); it logs "full_layer_tokens=F, swa_layer_tokens=rF". Other hybrids
(Gemma 2/3, Mistral) go through DefaultPoolConfigurator: every layer counted as full.

TensorRT-LLM (KV cache manager V1, cpp/tensorrt_llm/batch_manager/kvCacheManager.cpp at
commit b35ac1b6, BlockManager::calculateWindowSizeToShare): memory is divided between the
attention-window sizes in proportion to (bytes/token of the window's layers) x window, the
full layers' window being the maximum sequence length, so each pool holds the same number of
maximum-length sequences. (The V2 manager, default for gpt-oss since TensorRT-LLM PR #16942,
sizes the pools independently and is not modelled.)
"""

from dataclasses import dataclass
from functools import lru_cache

from sizer.model.attention import FULL, FULL_LAYER, LINEAR, SLIDING
from sizer.model.split import stage_layers

SGLANG_HYBRID_SWA = ("gpt_oss", "llama4_text")  # is_hybrid_swa_model's list, as far as sizer reads
SGLANG_SWA_FULL_TOKENS_RATIO = 0.8


def _cdiv(a, b) -> int:
    return -(-int(a) // int(b))


@dataclass(frozen=True)
class KVPool:
    """What an engine makes of `kv_bytes` per GPU: sequences it holds, what it prints."""

    rule: str  # the engine rule that produced the numbers, with its source
    max_sequences: int  # sequences of `context` tokens that fit at once
    reported_tokens: int  # the engine's start-up figure (see `reported_as`)
    reported_as: str
    group_tokens: tuple  # tokens each KV group's pool holds (same order as the groups)
    kv_bytes_allocated: float  # bytes per GPU the engine actually carves out for KV
    notes: tuple = ()
    # what holding n sequences takes (vLLM): the one in prefill `first`, each other `steady`
    # bytes per GPU; 0 where the engine's rule is simply n x a sequence's KV
    first_sequence_bytes: float = 0.0
    steady_sequence_bytes: float = 0.0


def raw_pool(stages: list, kv_bytes: float, context: int) -> KVPool:
    """No engine: the free memory holds sequences of `context` tokens, each layer keeping only
    what it attends to (LayerAttention.kv_tokens)."""
    groups = max(stages, key=lambda gs: sum(g.bytes_per_sequence(context) for g in gs))
    seq = sum(g.bytes_per_sequence(context) for g in groups)
    per_token = seq / context if context else 0.0
    tokens = int(kv_bytes // per_token) if per_token and kv_bytes > 0 else 0
    return KVPool("no engine: free memory / KV bytes per sequence, windowed layers keeping their window",
                  int(kv_bytes // seq) if seq and kv_bytes > 0 else 0, tokens,
                  "tokens of full-length sequences that fit", tuple(tokens for _ in groups),
                  max(kv_bytes, 0.0))


@lru_cache(maxsize=256)
def _vllm_layout(stage_kinds: tuple) -> tuple:
    """(group kinds, per-stage group size) of vLLM's grouping. `stage_kinds` holds, per stage,
    the LayerAttention of each layer in order (global layer order across stages)."""
    order, layers = [], {}
    for s, kinds in enumerate(stage_kinds):
        for a in kinds:
            if a not in layers:
                order.append(a)
                layers[a] = []
            layers[a].append(s)
    if len(order) == 1:
        return (order[0],), tuple(len(k) for k in stage_kinds)
    counts = [len(layers[a]) for a in order]
    size = min(counts)
    if max(counts) < size * 1.5:
        size = max(counts)
    groups, per_stage = [], [0] * len(stage_kinds)
    for a in order:
        n_groups = _cdiv(len(layers[a]), size)
        for i in range(n_groups):
            members = layers[a][i::n_groups]  # layers[i::num_groups]: stage of each member
            groups.append(a)
            for s in range(len(stage_kinds)):
                per_stage[s] = max(per_stage[s], members.count(s))
    return tuple(groups), tuple(per_stage)


def _vllm_blocks(a, context: int, block: int, mnbt: int = 0) -> int:
    """Blocks one sequence of `context` tokens holds in a group of kind `a`; with `mnbt` the
    engine's own worst case (max_memory_usage_bytes: a prefill chunk of max_num_batched_tokens
    still in flight), which is what its "Maximum concurrency" line divides by."""
    if a.kind == FULL:
        return _cdiv(context, block)
    if a.kind == SLIDING:
        held = min(a.window - 1 + max(mnbt, 1), context)
        # +1: the window need not start at a block boundary (SlidingWindowSpec); vLLM's own
        # worst case always adds it, a sequence shorter than its window never needs it
        return _cdiv(held, block) + (1 if mnbt or held < context else 0)
    return _cdiv(min(a.window + mnbt, context), block)


def vllm_kv_groups(model, pp: int = 1) -> tuple:
    """(the LayerAttention of each vLLM KV cache group, layers per group on each stage): the
    groups every request allocates blocks in from the one shared pool (module docstring)."""
    every = model.layer_attention or (FULL_LAYER,) * model.num_layers
    return _vllm_layout(tuple(tuple(a for a in every[r.start:r.stop] if a.kind != LINEAR)
                              for r in stage_layers(model, pp)))


def vllm_pool(model, stages: list, kv_bytes: list, context: int, block: int,
              max_num_batched_tokens: int) -> KVPool:
    """vLLM V1 (module docstring). `stages`: KVGroups per stage; `kv_bytes`: available KV
    memory per GPU of each stage; every worker gets the smallest stage's block count."""
    per_layer = next((g.bytes_per_token_layer for gs in stages for g in gs), 0.0)
    kinds, sizes = vllm_kv_groups(model, len(stages))
    page = block * per_layer
    blocks = min(int(max(kv, 0.0) // page // size) if size and page else 0 for kv, size in zip(kv_bytes, sizes))
    per_seq = sum(_vllm_blocks(a, context, block) for a in kinds)
    worst = sum(_vllm_blocks(a, context, block, max_num_batched_tokens) for a in kinds)
    reported = blocks // len(kinds) * block
    notes = []
    # held at saturation: the one request in prefill holds its chunk in every group (`worst`,
    # vLLM's max_memory_usage_bytes), the others their context (their windows), and a request
    # is admitted only when its blocks are free (v1/core/sched/scheduler.py allocate_slots
    # returning None): its first chunk's, or with the full-sequence gate (scheduler_reserve_full_isl,
    # vLLM's default since PR #37307) its whole prompt's in full groups and its window's capped at
    # this same worst case in the others (max_admission_blocks_per_request), never more than
    # `worst`. One full-attention group: worst == per_seq, blocks // per_seq.
    held = (1 + (blocks - worst) // per_seq if blocks >= worst else 0) if per_seq else 0
    if len(kinds) > 1 and blocks == 0:
        notes.append(f"vLLM groups the layers into {len(kinds)} KV groups of {max(sizes)} layers per GPU; "
                     "here nothing is left for KV after the weights, activations and overhead, so vLLM "
                     "would refuse to start (no KV cache blocks)")
    elif len(kinds) > 1 and held == 0:
        notes.append(f"vLLM groups the layers into {len(kinds)} KV groups of {max(sizes)} layers per GPU; "
                     f"'GPU KV cache size: {reported:,} tokens', but one sequence of {context:,} tokens with a "
                     f"{max_num_batched_tokens:,}-token prefill chunk needs {worst:,} blocks of the {blocks:,} "
                     "(vLLM refuses a max_model_len its KV cache cannot hold at start-up)")
    elif len(kinds) > 1:
        notes.append(f"vLLM groups the layers into {len(kinds)} KV groups of {max(sizes)} layers per GPU; it prints "
                     f"'GPU KV cache size: {reported:,} tokens' (every layer counted as full) and "
                     f"'Maximum concurrency ... {blocks / worst if worst else 0:.2f}x', but holds {held:,} "
                     f"sequences of {context:,} tokens because windowed layers keep only their window "
                     f"(one of them in prefill with a {max_num_batched_tokens:,}-token chunk)")
    return KVPool("vLLM V1 hybrid KV cache manager (vllm/v1/core/kv_cache_utils.py @001cabc1)" if len(kinds) > 1
                  else "vLLM V1 KV cache manager, one group (vllm/v1/core/kv_cache_utils.py @001cabc1)",
                  held, reported, "GPU KV cache size (tokens)",
                  tuple(blocks * block for _ in stages[0]), blocks * page * max(sizes), tuple(notes),
                  worst * page * max(sizes), per_seq * page * max(sizes))


def sglang_pool(model, stages: list, kv_bytes: float, context: int, page: int,
                ratio: float = SGLANG_SWA_FULL_TOKENS_RATIO) -> KVPool:
    """SGLang (module docstring): a full pool and a window pool for gpt-oss / Llama 4, one pool
    counting every layer as full for the rest."""
    groups = max(stages, key=lambda gs: sum(g.bytes_per_token for g in gs))
    full = sum(g.bytes_per_token for g in groups if g.attention.kind == FULL)
    windowed = sum(g.bytes_per_token for g in groups if g.attention.kind != FULL)
    window = max((g.attention.window for g in groups if g.attention.kind != FULL), default=0)
    kv = max(kv_bytes, 0.0)
    if model.arch in SGLANG_HYBRID_SWA and windowed and full:
        cell = full + ratio * windowed
        full_tokens = int(kv // cell) // page * page
        swa_tokens = int(full_tokens * ratio) // page * page
        held = min(full_tokens // context, swa_tokens // min(context, window))
        return KVPool(f"SGLang hybrid SWA pools, swa_full_tokens_ratio {ratio} "
                      "(srt/model_executor/pool_configurator.py @003fca80)", held, full_tokens,
                      "full_layer_tokens (KV cache #tokens)",
                      tuple(full_tokens if g.attention.kind == FULL else swa_tokens for g in groups),
                      full_tokens * full + swa_tokens * windowed,
                      (f"SGLang logs full_layer_tokens={full_tokens:,}, swa_layer_tokens={swa_tokens:,}",),
                      # a sequence needs `context` full tokens and min(context, W) of r x as many window ones
                      0.0, max(context, min(context, window) / ratio) * cell)
    cell = full + windowed
    tokens = int(kv // cell) // page * page if cell else 0
    notes = ()
    if windowed:
        notes = (f"SGLang keeps every token in every layer for {model.arch or 'this model'} "
                 "(no hybrid SWA pool for this architecture): windowed layers cost as much as full ones",)
    return KVPool("SGLang token pool, every layer counted (srt/model_executor/pool_configurator.py @003fca80)",
                  tokens // context if context else 0, tokens, "max_total_num_tokens (KV cache #tokens)",
                  tuple(tokens for _ in groups), tokens * cell, notes, 0.0, context * cell)


def trtllm_pool(stages: list, kv_bytes: float, context: int, block: int) -> KVPool:
    """TensorRT-LLM V1 (module docstring): memory shared between window sizes in proportion to
    (bytes/token of the window's layers) x window; the full layers' window is `context`."""
    groups = max(stages, key=lambda gs: sum(g.bytes_per_token for g in gs))
    windows: dict = {}
    for g in groups:
        w = context if g.attention.kind == FULL else min(g.attention.window, context)
        windows[w] = windows.get(w, 0.0) + g.bytes_per_token
    weight = sum(cpt * w for w, cpt in windows.items())
    kv = max(kv_bytes, 0.0)
    pool_blocks = {w: int(kv * cpt * w / weight // (block * cpt)) if weight else 0 for w, cpt in windows.items()}
    per_seq = {w: _cdiv(min(context, w), block) + (1 if w < context else 0) for w in windows}
    held = min(pool_blocks[w] // per_seq[w] for w in windows) if windows else 0
    biggest = max(windows) if windows else 0
    return KVPool("TensorRT-LLM KV cache manager V1, memory split by attention window "
                  "(batch_manager/kvCacheManager.cpp calculateWindowSizeToShare @b35ac1b6)",
                  held, pool_blocks.get(biggest, 0) * block, "tokens in the largest window's pool",
                  tuple(pool_blocks[context if g.attention.kind == FULL else min(g.attention.window, context)] * block
                        for g in groups),
                  sum(pool_blocks[w] * block * cpt for w, cpt in windows.items()),
                  ("TensorRT-LLM pools per window size: "
                   + ", ".join(f"{w:,} tokens -> {b * block:,}" for w, b in sorted(pool_blocks.items())),)
                  if len(windows) > 1 else (),
                  0.0, sum(per_seq[w] * block * cpt for w, cpt in windows.items()))

