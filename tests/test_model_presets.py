"""The shipped model presets (data/models/*.json) are official Hugging Face config.json files:
each parses, each has an index entry with its provenance, and every architecture number equals the
value in data/reference/model_architecture.json (a verbatim copy of the shared reference file) (record ids cited beside each value).

Pure JSON: these tests read the files directly and do not import the sizer parser, so they check
the data itself. The parameter counts below are an independent recount from the config fields
(standard decoder shapes, no framework), used only to check that the configs reproduce the
official figures recorded in index.json.
"""

import json
import re
from pathlib import Path

import pytest
from reference_data import records

MODELS_DIR = Path(__file__).resolve().parents[1] / "data" / "models"
INDEX = json.loads((MODELS_DIR / "index.json").read_text())
PRESETS = sorted(p.stem for p in MODELS_DIR.glob("*.json") if p.name != "index.json")

REQUIRED = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b", "mixtral-8x22b",
            "qwen2.5-7b", "qwen2.5-72b", "qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v3",
            "gpt-oss-20b", "gpt-oss-120b", "llama-4-scout", "llama-4-maverick", "gemma-3-27b",
            "qwen3-32b", "kimi-k2"]


def cfg(pid):
    return json.loads((MODELS_DIR / f"{pid}.json").read_text())


# (preset, config key, expected value, reference record id). Values transcribed from
# model_architecture.json; test_expected_values_match_reference_records re-reads the records.
ARCH = [
    # Llama-3.1: Meta llama-models sku_list (R00750-R00779) and config copies (R00780-R00789)
    ("llama-3.1-8b", "hidden_size", 4096, "R00750"),
    ("llama-3.1-8b", "num_hidden_layers", 32, "R00751"),
    ("llama-3.1-8b", "num_attention_heads", 32, "R00752"),
    ("llama-3.1-8b", "num_key_value_heads", 8, "R00753"),
    ("llama-3.1-8b", "vocab_size", 128256, "R00754"),
    ("llama-3.1-8b", "rope_theta", 500000.0, "R00757"),
    ("llama-3.1-8b", "max_position_embeddings", 131072, "R00758"),
    ("llama-3.1-8b", "intermediate_size", 14336, "R00780"),
    ("llama-3.1-8b", "tie_word_embeddings", False, "R00781"),
    ("llama-3.1-70b", "hidden_size", 8192, "R00760"),
    ("llama-3.1-70b", "num_hidden_layers", 80, "R00761"),
    ("llama-3.1-70b", "num_attention_heads", 64, "R00762"),
    ("llama-3.1-70b", "num_key_value_heads", 8, "R00763"),
    ("llama-3.1-70b", "vocab_size", 128256, "R00764"),
    ("llama-3.1-70b", "rope_theta", 500000.0, "R00767"),
    ("llama-3.1-70b", "intermediate_size", 28672, "R00782"),
    ("llama-3.1-70b", "tie_word_embeddings", False, "R00783"),
    ("llama-3.1-70b", "max_position_embeddings", 131072, "R00784"),
    ("llama-3.1-70b", "rms_norm_eps", 1e-05, "R00785"),
    ("llama-3.1-405b", "hidden_size", 16384, "R00770"),
    ("llama-3.1-405b", "num_hidden_layers", 126, "R00771"),
    ("llama-3.1-405b", "num_attention_heads", 128, "R00772"),
    ("llama-3.1-405b", "num_key_value_heads", 8, "R00773"),
    ("llama-3.1-405b", "vocab_size", 128256, "R00774"),
    ("llama-3.1-405b", "rope_theta", 500000.0, "R00777"),
    ("llama-3.1-405b", "max_position_embeddings", 131072, "R00778"),
    ("llama-3.1-405b", "intermediate_size", 53248, "R00786"),
    ("llama-3.1-405b", "num_key_value_heads", 8, "R00788"),
    ("llama-3.1-405b", "tie_word_embeddings", False, "R00789"),
    # DeepSeek-V3: official inference config_671B.json (R00807-R00824)
    ("deepseek-v3", "hidden_size", 7168, "R00807"),
    ("deepseek-v3", "intermediate_size", 18432, "R00808"),
    ("deepseek-v3", "moe_intermediate_size", 2048, "R00809"),
    ("deepseek-v3", "num_hidden_layers", 61, "R00810"),
    ("deepseek-v3", "first_k_dense_replace", 3, "R00811"),
    ("deepseek-v3", "num_attention_heads", 128, "R00812"),
    ("deepseek-v3", "n_routed_experts", 256, "R00813"),
    ("deepseek-v3", "n_shared_experts", 1, "R00814"),
    ("deepseek-v3", "num_experts_per_tok", 8, "R00815"),
    ("deepseek-v3", "n_group", 8, "R00816"),
    ("deepseek-v3", "topk_group", 4, "R00817"),
    ("deepseek-v3", "routed_scaling_factor", 2.5, "R00818"),
    ("deepseek-v3", "q_lora_rank", 1536, "R00819"),
    ("deepseek-v3", "kv_lora_rank", 512, "R00820"),
    ("deepseek-v3", "qk_nope_head_dim", 128, "R00821"),
    ("deepseek-v3", "qk_rope_head_dim", 64, "R00822"),
    ("deepseek-v3", "v_head_dim", 128, "R00823"),
    ("deepseek-v3", "vocab_size", 129280, "R00824"),
    # Mixtral-8x7B: mistralai HF config (R00832-R00843)
    ("mixtral-8x7b", "hidden_size", 4096, "R00832"),
    ("mixtral-8x7b", "intermediate_size", 14336, "R00833"),
    ("mixtral-8x7b", "num_hidden_layers", 32, "R00834"),
    ("mixtral-8x7b", "num_attention_heads", 32, "R00835"),
    ("mixtral-8x7b", "num_key_value_heads", 8, "R00836"),
    ("mixtral-8x7b", "num_local_experts", 8, "R00837"),
    ("mixtral-8x7b", "num_experts_per_tok", 2, "R00838"),
    ("mixtral-8x7b", "vocab_size", 32000, "R00839"),
    ("mixtral-8x7b", "max_position_embeddings", 32768, "R00840"),
    ("mixtral-8x7b", "rope_theta", 1000000.0, "R00841"),
    ("mixtral-8x7b", "tie_word_embeddings", False, "R00842"),
    ("mixtral-8x7b", "sliding_window", None, "R00843"),
    # Mixtral-8x22B (R00845-R00855)
    ("mixtral-8x22b", "hidden_size", 6144, "R00845"),
    ("mixtral-8x22b", "intermediate_size", 16384, "R00846"),
    ("mixtral-8x22b", "num_hidden_layers", 56, "R00847"),
    ("mixtral-8x22b", "num_attention_heads", 48, "R00848"),
    ("mixtral-8x22b", "num_key_value_heads", 8, "R00849"),
    ("mixtral-8x22b", "num_local_experts", 8, "R00850"),
    ("mixtral-8x22b", "num_experts_per_tok", 2, "R00851"),
    ("mixtral-8x22b", "vocab_size", 32000, "R00852"),
    ("mixtral-8x22b", "max_position_embeddings", 65536, "R00853"),
    ("mixtral-8x22b", "rope_theta", 1000000, "R00854"),
    ("mixtral-8x22b", "tie_word_embeddings", False, "R00855"),
    # Qwen2.5-72B (R00858-R00865)
    ("qwen2.5-72b", "hidden_size", 8192, "R00858"),
    ("qwen2.5-72b", "intermediate_size", 29568, "R00859"),
    ("qwen2.5-72b", "num_hidden_layers", 80, "R00860"),
    ("qwen2.5-72b", "num_attention_heads", 64, "R00861"),
    ("qwen2.5-72b", "num_key_value_heads", 8, "R00862"),
    ("qwen2.5-72b", "vocab_size", 152064, "R00863"),
    ("qwen2.5-72b", "tie_word_embeddings", False, "R00864"),
    ("qwen2.5-72b", "rope_theta", 1000000.0, "R00865"),
    # Qwen3 MoE: technical report (R00867-R00882) and config copies (R00884-R00893)
    ("qwen3-30b-a3b", "num_hidden_layers", 48, "R00867"),
    ("qwen3-30b-a3b", "num_attention_heads", 32, "R00868"),
    ("qwen3-30b-a3b", "num_key_value_heads", 4, "R00869"),
    ("qwen3-30b-a3b", "num_experts", 128, "R00870"),
    ("qwen3-30b-a3b", "num_experts_per_tok", 8, "R00871"),
    ("qwen3-30b-a3b", "hidden_size", 2048, "R00889"),
    ("qwen3-30b-a3b", "moe_intermediate_size", 768, "R00890"),
    ("qwen3-30b-a3b", "head_dim", 128, "R00891"),
    ("qwen3-30b-a3b", "vocab_size", 151936, "R00892"),
    ("qwen3-30b-a3b", "tie_word_embeddings", False, "R00893"),
    ("qwen3-235b-a22b", "num_hidden_layers", 94, "R00874"),
    ("qwen3-235b-a22b", "num_attention_heads", 64, "R00875"),
    ("qwen3-235b-a22b", "num_key_value_heads", 4, "R00876"),
    ("qwen3-235b-a22b", "num_experts", 128, "R00877"),
    ("qwen3-235b-a22b", "num_experts_per_tok", 8, "R00878"),
    ("qwen3-235b-a22b", "hidden_size", 4096, "R00884"),
    ("qwen3-235b-a22b", "moe_intermediate_size", 1536, "R00885"),
    ("qwen3-235b-a22b", "head_dim", 128, "R00886"),
    ("qwen3-235b-a22b", "vocab_size", 151936, "R00887"),
    ("qwen3-235b-a22b", "tie_word_embeddings", False, "R00888"),
    # gpt-oss: openai/gpt-oss ModelConfig (120b, R00894-R00906) and 20b copies (R00911-R00918)
    ("gpt-oss-120b", "num_hidden_layers", 36, "R00894"),
    ("gpt-oss-120b", "num_local_experts", 128, "R00895"),
    ("gpt-oss-120b", "experts_per_token", 4, "R00896"),
    ("gpt-oss-120b", "num_experts_per_tok", 4, "R00896"),
    ("gpt-oss-120b", "vocab_size", 201088, "R00897"),
    ("gpt-oss-120b", "hidden_size", 2880, "R00898"),
    ("gpt-oss-120b", "intermediate_size", 2880, "R00899"),
    ("gpt-oss-120b", "head_dim", 64, "R00900"),
    ("gpt-oss-120b", "num_attention_heads", 64, "R00901"),
    ("gpt-oss-120b", "num_key_value_heads", 8, "R00902"),
    ("gpt-oss-120b", "sliding_window", 128, "R00903"),
    ("gpt-oss-120b", "initial_context_length", 4096, "R00904"),
    ("gpt-oss-120b", "rope_theta", 150000.0, "R00906"),
    ("gpt-oss-20b", "num_hidden_layers", 24, "R00911"),
    ("gpt-oss-20b", "num_local_experts", 32, "R00912"),
    ("gpt-oss-20b", "num_experts_per_tok", 4, "R00913"),
    ("gpt-oss-20b", "hidden_size", 2880, "R00914"),
    ("gpt-oss-20b", "num_attention_heads", 64, "R00915"),
    ("gpt-oss-20b", "num_key_value_heads", 8, "R00916"),
    ("gpt-oss-20b", "head_dim", 64, "R00917"),
    ("gpt-oss-20b", "vocab_size", 201088, "R00918"),
]


def text(c):
    """The text decoder's config (multimodal configs nest it in text_config)."""
    return {**c, **c["text_config"]} if isinstance(c.get("text_config"), dict) else c


def dotted(c, key):
    for part in key.split("."):
        c = c[part]
    return c


def test_every_required_preset_ships_and_parses():
    assert set(REQUIRED) <= set(PRESETS)
    for pid in PRESETS:
        c = cfg(pid)
        assert isinstance(c, dict) and c["architectures"] and c["model_type"]


def test_index_and_files_correspond():
    """Every index entry has its file, and every preset file has an index entry."""
    assert set(INDEX) == set(PRESETS)


@pytest.mark.parametrize("pid", sorted(INDEX))
def test_index_entry_schema(pid):
    e = INDEX[pid]
    assert e["hf_repo"].count("/") == 1 and e["source"]
    assert isinstance(e["aliases"], list)
    off = e["official"]
    assert off["total_params"] >= off["active_params"] > 0
    assert off["rounding"] >= 0 and off["source"]
    # An entry is either a verbatim copy or says it was reconstructed and from which records.
    assert e.get("verbatim") is True or (e.get("reconstructed") is True and e["reconstructed_from"])


def test_reconstructed_entries_cite_existing_records():
    """A reconstruction cites reference record ids (R#####, which must exist) or named public
    sources (a repository file at a commit, a report, a search id); every changed key (dotted
    for nested text/vision configs) holds the value the entry says it was set to."""
    ids = {r["id"] for r in records("model_architecture.json")}
    for pid, e in INDEX.items():
        cited = e.get("reconstructed_from", [])
        assert {c for c in cited if re.fullmatch(r"R\d{5}", c)} <= ids
        assert all(len(c) > 20 for c in cited if not re.fullmatch(r"R\d{5}", c)), cited
        c = cfg(pid)
        for key, value in e.get("changed_keys", {}).items():
            assert dotted(c, key) == value, (pid, key)


def test_aliases_unique_and_required():
    """Aliases are unique case-insensitively and never shadow another preset id (issue #2)."""
    seen = {}
    for pid, e in INDEX.items():
        for name in [pid] + e["aliases"]:
            assert name.lower() not in seen, (name, pid, seen.get(name.lower()))
            seen[name.lower()] = pid
    expected = {"8b": "llama-3.1-8b", "70b": "llama-3.1-70b", "405b": "llama-3.1-405b",
                "deepseek-r1": "deepseek-v3", "llama3.1-70b": "llama-3.1-70b",
                "meta-llama/llama-3.1-70b": "llama-3.1-70b", "mixtral": "mixtral-8x7b",
                "qwen3-235b": "qwen3-235b-a22b", "openai/gpt-oss-120b": "gpt-oss-120b"}
    for alias, pid in expected.items():
        assert seen[alias] == pid


@pytest.mark.parametrize("pid, key, value, rid", ARCH, ids=[f"{p}-{k}-{r}" for p, k, _, r in ARCH])
def test_config_matches_reference_architecture(pid, key, value, rid):
    """Each config field equals the published value (record id in the test id)."""
    c = cfg(pid)
    assert key in c, f"{pid} lacks {key}"
    assert c[key] == value
    if value is None or isinstance(value, bool):
        assert c[key] is value


def test_expected_values_match_reference_records():
    """The table above is a faithful transcription of model_architecture.json."""
    ref = {r["id"]: r["value"] for r in records("model_architecture.json")}
    for pid, key, value, rid in ARCH:
        assert ref[rid] == value, (pid, key, rid, ref[rid])


def test_qwen2_5_7b_model_card_shape():
    """Qwen2.5-7B model card: 28 layers, 28 query heads and 4 KV heads, 131,072 context (not in
    the shared reference; quoted from Qwen/Qwen2.5-7B's card)."""
    c = cfg("qwen2.5-7b")
    assert (c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"]) == (28, 28, 4)
    assert c["max_position_embeddings"] == 131072 and c["tie_word_embeddings"] is False


@pytest.mark.parametrize("pid", ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b"])
def test_llama_intermediate_size_follows_meta_ffn_formula(pid):
    """Meta's reference FeedForward: hidden = int(2*4*dim/3), scaled by ffn_dim_multiplier and
    rounded up to multiple_of (R00755/R00756, R00765/R00766, R00775/R00776)."""
    mult, multiple_of = {"llama-3.1-8b": (1.3, 1024), "llama-3.1-70b": (1.3, 4096),
                         "llama-3.1-405b": (1.2, 4096)}[pid]
    c = cfg(pid)
    hidden = int(mult * int(2 * 4 * c["hidden_size"] / 3))
    hidden = multiple_of * ((hidden + multiple_of - 1) // multiple_of)
    assert c["intermediate_size"] == hidden


def test_llama_405b_has_8_kv_heads_not_16():
    """Later official configs and Meta's sku_list say 8 KV heads (R00773, R00788); copies made in
    July-Aug 2024 say 16 (R00790), which would double the KV cache."""
    assert cfg("llama-3.1-405b")["num_key_value_heads"] == 8


def test_head_dim_differs_from_hidden_over_heads():
    """Qwen3-235B: 64 heads x head_dim 128 = 8192 != hidden 4096 (R00886 note); gpt-oss:
    64 x 64 = 4096 != 2880. A parser must read head_dim, not divide."""
    q = cfg("qwen3-235b-a22b")
    assert q["head_dim"] * q["num_attention_heads"] == 8192 != q["hidden_size"] == 4096
    g = cfg("gpt-oss-120b")
    assert g["head_dim"] * g["num_attention_heads"] == 4096 != g["hidden_size"] == 2880


def test_deepseek_mla_cache_width_and_fp8_checkpoint():
    """MLA caches kv_lora_rank + qk_rope_head_dim = 576 values per token per layer (R00825); the
    checkpoint is FP8 e4m3 with 128x128 block scales (official config quantization_config)."""
    c = cfg("deepseek-v3")
    assert c["kv_lora_rank"] + c["qk_rope_head_dim"] == 576
    q = c["quantization_config"]
    assert (q["quant_method"], q["fmt"], q["weight_block_size"]) == ("fp8", "e4m3", [128, 128])
    assert c["num_nextn_predict_layers"] == 1


@pytest.mark.parametrize("pid", ["gpt-oss-20b", "gpt-oss-120b"])
def test_gpt_oss_alternating_sliding_window_and_mxfp4_experts(pid):
    """gpt-oss alternates sliding-window (128) and full attention (R00903); MoE weights are MXFP4,
    attention, router, embedding and head stay BF16 (quantization_config)."""
    c = cfg(pid)
    assert len(c["layer_types"]) == c["num_hidden_layers"]
    assert c["layer_types"] == ["sliding_attention", "full_attention"] * (c["num_hidden_layers"] // 2)
    assert c["sliding_window"] == 128
    q = c["quantization_config"]
    assert q["quant_method"] == "mxfp4"
    assert set(q["modules_to_not_convert"]) == {"model.layers.*.self_attn", "model.layers.*.mlp.router",
                                                "model.embed_tokens", "lm_head"}


# ---- independent parameter recount -------------------------------------------------------

# Defaults the official Gemma and Llama 4 configs leave to their config classes (transformers
# Gemma2Config / Gemma3TextConfig / Llama4TextConfig __init__): tied or not, the vocabulary.
DEFAULTS = {"gemma2": {"tie_word_embeddings": True, "vocab_size": 256000},
            "gemma3_text": {"tie_word_embeddings": True, "vocab_size": 262208},
            "llama4_text": {"tie_word_embeddings": False}}


def _count(c):
    """(total, active excl. input embedding, input embedding) from standard decoder shapes:
    GQA or MLA attention (+ q/k/v biases for Qwen2, + all biases and sinks for gpt-oss, + q/k
    norms for Qwen3 and Gemma 3), SwiGLU MLPs (3 matrices), two RMSNorms per layer (four in
    Gemma 2/3), final norm, untied head. Llama 4: MoE layers every `interleave_moe_layer_step`
    with one shared expert as wide as a routed one, dense layers of intermediate_size_mlp. The
    text decoder of a multimodal config only (see _vision_count)."""
    c = text(c)
    c = {**DEFAULTS.get(c["model_type"], {}), **c}
    h, layers, vocab, nh = c["hidden_size"], c["num_hidden_layers"], c["vocab_size"], c["num_attention_heads"]
    kv, mt = c.get("num_key_value_heads", nh), c["model_type"]
    hd = c.get("head_dim") or h // nh
    if "kv_lora_rank" in c:
        q, r = c["q_lora_rank"], c["kv_lora_rank"]
        dn, dr, dv = c["qk_nope_head_dim"], c["qk_rope_head_dim"], c["v_head_dim"]
        attn = h * q + q + q * nh * (dn + dr) + h * (r + dr) + r + r * nh * (dn + dv) + nh * dv * h
    else:
        attn = 2 * h * nh * hd + 2 * h * kv * hd
        if mt == "qwen2":
            attn += nh * hd + 2 * kv * hd
        if mt == "gpt_oss":
            attn += nh * hd + 2 * kv * hd + h + nh
        if mt in ("qwen3_moe", "qwen3", "gemma3_text"):
            attn += 2 * hd
    base = attn + (4 if mt in ("gemma2", "gemma3_text") else 2) * h
    n_exp = c.get("num_local_experts") or c.get("num_experts") or c.get("n_routed_experts")
    if not n_exp:
        body = layers * (base + 3 * h * c["intermediate_size"])
        active = body
    elif mt == "llama4_text":
        fe, step = c["intermediate_size"], c["interleave_moe_layer_step"]
        moe = layers // step
        dense = (layers - moe) * (base + 3 * h * c["intermediate_size_mlp"])
        body = dense + moe * (base + h * n_exp + (n_exp + 1) * 3 * h * fe)
        active = dense + moe * (base + h * n_exp + (c["num_experts_per_tok"] + 1) * 3 * h * fe)
    else:
        fe = c.get("moe_intermediate_size") or c["intermediate_size"]
        expert = 3 * h * fe + (2 * fe + h if mt == "gpt_oss" else 0)
        router = h * n_exp + (n_exp if mt in ("gpt_oss", "deepseek_v3", "kimi_k2") else 0)
        shared = c.get("n_shared_experts", 0) * 3 * h * fe
        dense = c.get("first_k_dense_replace", 0)
        dense_part = dense * (base + 3 * h * c["intermediate_size"])
        moe = layers - dense
        body = dense_part + moe * (base + router + shared + n_exp * expert)
        active = dense_part + moe * (base + router + shared + c["num_experts_per_tok"] * expert)
    emb = vocab * h
    head = 0 if c["tie_word_embeddings"] else vocab * h
    return body + emb + head + h, active + head + h, emb


def _vision_count(c):
    """Llama 4's vision encoder, for the model card's totals that include it: a ViT of
    L x (QKVO with biases, GELU MLP with biases, two LayerNorms), patch and position
    embeddings, the pixel-shuffle adapter MLP and the projector into the text width
    (Llama4VisionModel / Llama4MultiModalProjector shapes)."""
    v, t = c["vision_config"], text(c)
    d, i, n = v["hidden_size"], v["intermediate_size"], v["num_hidden_layers"]
    layer = 4 * d * d + 4 * d + 2 * d * i + i + d + 4 * d
    patches = (v["image_size"] // v["patch_size"]) ** 2 + 1
    embed = 3 * v["patch_size"] ** 2 * d + patches * d + d + 4 * d
    shuffled = int(d / v["pixel_shuffle_ratio"] ** 2)
    adapter = shuffled * v["projector_input_dim"] + v["projector_input_dim"] * v["projector_output_dim"]
    return n * layer + embed + adapter + v["vision_output_dim"] * t["hidden_size"]


@pytest.mark.parametrize("pid", sorted(INDEX))
def test_configs_reproduce_official_parameter_counts(pid):
    """Exact counts (issue #2, HF safetensors metadata) for Llama-3.1 and Mixtral-8x7B; the
    publishers' rounded figures (index.json `official`, record ids there) for the others, within
    half a unit of the last printed digit. Whether "active" includes the input embedding follows
    the publisher (`active_counts_embedding`)."""
    off = INDEX[pid]["official"]
    total, active, emb = _count(cfg(pid))
    if off.get("includes_vision"):
        total += _vision_count(cfg(pid))
    if off.get("active_counts_embedding") or off["total_params"] == off["active_params"]:
        active += emb
    assert abs(total - off["total_params"]) <= off["rounding"], total
    assert abs(active - off["active_params"]) <= off.get("active_rounding", off["rounding"]), active


@pytest.mark.parametrize("pid", ["gemma-3-27b", "gemma-2-27b", "qwen3-32b"])
def test_non_embedding_counts_match_the_reports(pid):
    """Gemma 3 report Table 1 (27B: 25,600M non-embedding), Gemma 2 report Table 1 (27B:
    26,047M), Qwen3-32B card (31.2B non-embedding): the decoder layers alone, without the
    input embedding or an untied head. Within half a unit of the last printed digit."""
    off = INDEX[pid]["official"]
    total, _, emb = _count(cfg(pid))
    c = text(cfg(pid))
    head = 0 if c.get("tie_word_embeddings", True) else emb
    half = {"gemma-3-27b": 0.5e6, "gemma-2-27b": 0.005e9, "qwen3-32b": 0.1e9}[pid]
    assert abs(total - emb - head - off["non_embedding_params"]) <= max(half, 1e6), total - emb - head


def test_llama4_layouts():
    """Scout: 16 experts in all 48 layers; Maverick: 128 experts in every 2nd layer; both chunk
    attention at 8192 tokens with NoPE every 4th layer (Llama4TextConfig defaults: empty
    no_rope_layers, no_rope_layer_interval 4)."""
    s, m = text(cfg("llama-4-scout")), text(cfg("llama-4-maverick"))
    assert (s["num_local_experts"], s["interleave_moe_layer_step"]) == (16, 1)
    assert (m["num_local_experts"], m["interleave_moe_layer_step"]) == (128, 2)
    for c in (s, m):
        assert c["attention_chunk_size"] == 8192 and "no_rope_layers" not in c
        assert c["num_hidden_layers"] == 48 and c["intermediate_size_mlp"] == 16384
