"""KV capacity of hybrid-attention models as each engine allocates and reports it (issue #19).

Per-group KV bytes per token are pinned by hand (2 x KV heads per GPU x head_dim x 2 bytes
(bf16) x layers of the group); the engines' rules against their source (sizer/cost/kv_cache.py
cites each file) and against the published start-up logs in data/engine_kv_logs.json."""

import pytest

from sizer.cost import kv_cache
from sizer.cost.engines import memory_plan
from sizer.cost.memory import kv_bytes_per_sequence, kv_stage_groups, resolve_precision
from sizer.model.catalog import get_model
from sizer.model.resources import read_json
from sizer.model.split import Split

GIB = 2**30
LOGS = {r["id"]: r for r in read_json("engine_kv_logs.json")}


def groups(pid, tp=1, pp=1):
    m = get_model(pid)
    return m, kv_stage_groups(m, Split(tp=tp, pp=pp), resolve_precision(m))


def table(gs):
    return [(g.attention.kind, g.attention.window, g.layers, g.bytes_per_token) for g in gs]


@pytest.mark.parametrize("pid, tp, expected", [
    # gpt-oss-20b: 8 KV heads x 64; 12 sliding (128) + 12 full layers: 12 x 2x8x64x2 = 24,576
    ("gpt-oss-20b", 1, [("sliding", 128, 12, 24_576), ("full", 0, 12, 24_576)]),
    ("gpt-oss-20b", 2, [("sliding", 128, 12, 12_288), ("full", 0, 12, 12_288)]),  # 4 heads per GPU
    # gpt-oss-120b: 18 + 18 layers x 2,048
    ("gpt-oss-120b", 1, [("sliding", 128, 18, 36_864), ("full", 0, 18, 36_864)]),
    # Gemma-2-27B: 16 KV heads x 128 = 8,192 B/layer; even layers slide (4096): 23 + 23
    ("gemma-2-27b", 1, [("sliding", 4096, 23, 188_416), ("full", 0, 23, 188_416)]),
    # Gemma-3-27B: 8,192 B/layer; 5 local (1024) : 1 global over 62 layers = 52 + 10
    ("gemma-3-27b", 1, [("sliding", 1024, 52, 425_984), ("full", 0, 10, 81_920)]),
    # Llama-4-Scout: 8 KV heads x 128 = 4,096 B/layer; 36 chunked (8192) + 12 NoPE full
    ("llama-4-scout", 1, [("chunked", 8192, 36, 147_456), ("full", 0, 12, 49_152)]),
    ("llama-4-scout", 8, [("chunked", 8192, 36, 18_432), ("full", 0, 12, 6_144)]),  # 1 head per GPU
])
def test_kv_bytes_per_token_per_layer_group(pid, tp, expected):
    _, (stage,) = groups(pid, tp)
    assert table(stage) == expected


def test_sequence_keeps_only_the_window_in_windowed_layers():
    """gpt-oss-20b at 131,072 tokens: 12 full layers keep all, 12 sliding ones keep 128."""
    m = get_model("gpt-oss-20b")
    assert kv_bytes_per_sequence(m, Split(), resolve_precision(m), 131_072) == 24_576 * (131_072 + 128)


def test_vllm_reported_kv_size_is_available_over_all_layers():
    """K0001/K0002 (alvarobartt/hf-mem#60): vLLM printed 'Available KV cache memory: 5.38 GiB'
    then 'GPU KV cache size: 78,384 tokens' for gpt-oss-120b. vLLM's rule (2 groups of 18
    layers, num_blocks = avail // (16 x 2,048 x 18), reported num_blocks // 2 x 16) gives
    78,336 at 5.38 GiB (-0.06%); the log's two decimals allow 78,288..78,432. sizer's rule
    before #19 (windowed layers amortised) said 156,551: +99.7%."""
    m, stages = groups("gpt-oss-120b")

    def reported(gib):
        return kv_cache.vllm_pool(m, stages, [gib * GIB], 131_072, 16, 8192).reported_tokens

    assert reported(5.38) == 78_336
    assert reported(5.375) <= LOGS["K0002"]["value"] <= reported(5.385)
    assert LOGS["K0001"]["value"] == 5.38


def test_vllm_holds_twice_what_it_reports_for_gpt_oss():
    """gpt-oss-20b TP2 on H100: vLLM's number counts every layer as full; the sliding groups
    need only 9 blocks per sequence, so at 131,072 tokens it holds ~2x the reported tokens."""
    plan = memory_plan(get_model("gpt-oss-20b"), get_gpu_h100(), Split(tp=2), engine="vllm", context=131_072)
    blocks = plan.max_kv_tokens * 2 // 16  # two groups share the pool
    assert plan.max_sequences == blocks // (131_072 // 16 + 9)
    assert abs(plan.max_sequences * 131_072 - 2 * plan.max_kv_tokens) < 1.01 * 131_072  # within a sequence
    assert "GPU KV cache size" in plan.kv_reported_as and plan.kv_rule.startswith("vLLM V1 hybrid")


def get_gpu_h100():
    from sizer.hardware.gpus import get_gpu

    return get_gpu("h100-sxm")


def test_vllm_groups_llama4_scout_as_its_pr_describes():
    """K0008 (vllm#21761): Scout's layers form (Full x 12) + 3 x (Chunked x 12) groups."""
    m = get_model("llama-4-scout")
    every = m.layer_attention
    kinds, sizes = kv_cache._vllm_layout((every,))
    assert [a.kind for a in kinds] == ["chunked", "chunked", "chunked", "full"] and sizes == (12,)
    assert LOGS["K0008"]["value"].count("x 12") == 4


def test_vllm_short_sequences_hold_no_extra_window_block():
    """A sequence shorter than the window holds ceil(L / 16) blocks in a sliding group, as in
    a full one; past the window ceil(W / 16) + 1 (the window straddles a block boundary)."""
    from sizer.model.attention import LayerAttention

    s = LayerAttention("sliding", 128)
    assert kv_cache._vllm_blocks(s, 100, 16) == 7 and kv_cache._vllm_blocks(s, 10_000, 16) == 9
    assert kv_cache._vllm_blocks(s, 10_000, 16, 8192) == (127 + 8192 + 15) // 16 + 1


def test_vllm_pads_unequal_groups_like_gemma3():
    """Gemma-3: 52 sliding + 10 full layers; group size 10 (min), 6 sliding groups + 1 full:
    7 groups, each block costing 10 layers' pages (vLLM pads the last sliding group)."""
    m = get_model("gemma-3-27b")
    kinds, sizes = kv_cache._vllm_layout((m.layer_attention,))
    assert len(kinds) == 7 and sizes == (10,)
    _, stages = groups("gemma-3-27b")
    pool = kv_cache.vllm_pool(m, stages, [10 * GIB], 32_768, 16, 8192)
    blocks = 10 * GIB // (16 * 8192) // 10
    assert pool.reported_tokens == blocks // 7 * 16
    steady = 32_768 // 16 + 6 * (1024 // 16 + 1)  # a sequence past its prefill: windows only
    in_prefill = 32_768 // 16 + 6 * ((1023 + 8192 + 15) // 16 + 1)  # an 8192-token chunk in flight
    assert pool.max_sequences == 1 + (blocks - in_prefill) // steady


def test_vllm_holds_one_prefill_chunk_beside_the_decoding_sequences():
    """At saturation one request is in prefill and holds its whole chunk in every group (vLLM's
    max_memory_usage_bytes); a request is admitted only when its chunk's blocks are free. So a
    hybrid model holds 1 + (blocks - chunk footprint) // steady footprint sequences, which the
    simulator reaches (tests/test_sim_hybrid_kv.py); with full attention only it is blocks //
    per-sequence blocks, as before."""
    m = get_model("gemma-3-27b")
    _, stages = groups("gemma-3-27b")
    small, big = (kv_cache.vllm_pool(m, stages, [20 * GIB], 8_500, 16, mnbt) for mnbt in (512, 8192))
    assert big.max_sequences < small.max_sequences  # a bigger chunk in flight leaves less room
    l8 = get_model("8b")
    _, full = groups("8b")
    pool = kv_cache.vllm_pool(l8, full, [20 * GIB], 8_500, 16, 8192)
    blocks = 20 * GIB // (16 * 4096) // 32  # 16-token pages of 4,096 B/token/layer, 32 layers a group
    assert pool.max_sequences == blocks // ((8_500 + 15) // 16) == 19


def test_sglang_splits_full_and_window_pools_for_gpt_oss_only():
    """SGLang: gpt-oss gets F = avail / (full + 0.8 x window bytes) full tokens and 0.8 F window
    tokens; Gemma 3 (not in is_hybrid_swa_model) counts every layer as full."""
    m, stages = groups("gpt-oss-20b")
    pool = kv_cache.sglang_pool(m, stages, 10 * GIB, 32_768, 1)
    full = int(10 * GIB // (24_576 + 0.8 * 24_576))
    assert pool.reported_tokens == full and pool.group_tokens == (int(full * 0.8), full)
    assert pool.max_sequences == full // 32_768
    g, gstages = groups("gemma-3-27b")
    pool = kv_cache.sglang_pool(g, gstages, 10 * GIB, 32_768, 1)
    assert pool.reported_tokens == int(10 * GIB // (425_984 + 81_920))
    assert "every layer" in pool.notes[0]


def test_trtllm_splits_memory_by_window():
    """TensorRT-LLM V1: window W's share of memory is (bytes/token x W) / sum over windows; at
    the maximum length every pool holds the same number of sequences."""
    m, stages = groups("gpt-oss-20b")
    pool = kv_cache.trtllm_pool(stages, 10 * GIB, 32_768, 32)
    weight = 24_576 * 32_768 + 24_576 * 128
    full_blocks = int(10 * GIB * 24_576 * 32_768 / weight // (32 * 24_576))
    assert pool.reported_tokens == full_blocks * 32
    assert pool.max_sequences == min(full_blocks // 1024, pool.group_tokens[0] // 32 // 5)


def test_engines_differ_by_up_to_2x_on_gpt_oss():
    """The same GPU and memory budget: vLLM and TensorRT-LLM keep only the window of the
    sliding layers; SGLang's 0.8 ratio holds fewer full-length sequences; the reported figures
    differ by ~2x (vLLM counts every layer as full)."""
    m = get_model("gpt-oss-20b")
    plans = {e: memory_plan(m, get_gpu_h100(), Split(tp=2), engine=e, context=131_072)
             for e in ("vllm", "sglang", "trtllm", "none")}
    assert plans["sglang"].max_kv_tokens > 1.1 * plans["vllm"].max_kv_tokens
    assert plans["vllm"].max_sequences > 1.9 * plans["vllm"].max_kv_tokens / 131_072


def test_memory_json_shows_groups_rule_and_report(capsys):
    import json

    from sizer.cli.main import main

    assert main(["memory", "--model", "gpt-oss-20b", "--tp", "2", "--context", "32768", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["engine"] == "vllm" and doc["kv_rule"].startswith("vLLM V1 hybrid KV cache manager")
    assert [(g["kind"], g["layers"], g["kv_bytes_per_token"]) for g in doc["kv_groups"]] == \
        [("sliding", 12, 12_288), ("full", 12, 12_288)]
    assert doc["kv_reported_as"] == "GPU KV cache size (tokens)" and doc["max_kv_tokens"] > 0
    assert main(["memory", "--model", "gpt-oss-20b", "--tp", "2", "--context", "32768"]) == 0
    out = capsys.readouterr().out
    assert "engine vllm" in out.splitlines()[0] and "sliding window 128" in out
    assert "engine reports: GPU KV cache size (tokens)" in out and "KV rule: vLLM V1" in out


def test_vllm_note_says_why_a_hybrid_model_holds_nothing():
    """Trial 3: Llama-4-Maverick at TP8 (104.6 GiB of weights per GPU against 71.3) was told vLLM
    'holds 0 sequences because windowed layers keep only their window'. With no KV room the note
    says vLLM would not start; with room short of one sequence, how many blocks one needs."""
    m = get_model("gemma-3-27b")
    _, stages = groups("gemma-3-27b")
    none = kv_cache.vllm_pool(m, stages, [0.0], 70_000, 16, 8192)
    short = kv_cache.vllm_pool(m, stages, [1 * GIB], 70_000, 16, 8192)
    assert none.max_sequences == short.max_sequences == 0
    assert "refuse to start" in none.notes[0] and "because windowed" not in none.notes[0]
    assert "needs" in short.notes[0] and "because windowed" not in short.notes[0]
