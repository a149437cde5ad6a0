"""Reading configs (issue #15 item 4, #16 item 2, #19): the new presets against their published
counts, per-architecture defaults, each layer's attention kind from every config dialect, model
directories (safetensors index cross-check, hf_quant_config.json), and one validation layer that
refuses out-of-range or mistyped fields with one line naming the field."""

import json
import math

import pytest
from shapes import LLAMA_8B

from sizer.errors import InputError
from sizer.model.attention import CHUNKED, FULL, LINEAR, SLIDING, LayerAttention
from sizer.model.catalog import checkpoint_bytes, get_model
from sizer.model.config import MAX_LAYERS, model_from_config


def kinds(m):
    return [(a.kind, a.window, a.rope) for a in m.layer_attention]


# ---- presets vs published counts ---------------------------------------------------------

def test_llama4_scout_counts_shared_expert_and_layers():
    """Llama-4-Scout text decoder, by hand: 48 layers x (attention 62,914,560 + norms 10,240 +
    16 routed experts 2,013,265,920 + 1 shared expert 125,829,120 + router 81,920) +
    embedding and untied head 2 x 1,034,485,760 + final norm 5,120 = 107,769,861,120. Meta's
    109B adds the 0.87B vision encoder; 17B active counts 1 routed + 1 shared expert per layer
    and both embeddings. Before this change sizer read 101.7B / 10.1B (no shared expert)."""
    m = get_model("llama-4-scout")
    assert m.params_total() == 107_769_861_120
    assert m.params_active() == pytest.approx(17.17e9, abs=0.01e9)
    assert len(m.moe_layers) == 48 and m.num_shared_experts == 1 and m.intermediate_size == 16384
    assert any("vision tower" in n for n in m.notes)


def test_llama4_scout_attention_kinds():
    """36 chunked layers of 8192 tokens with RoPE; layers 3, 7, ..., 47 are NoPE and full."""
    m = get_model("llama-4-scout")
    assert kinds(m)[:4] == [(CHUNKED, 8192, True)] * 3 + [(FULL, 0, False)]
    assert dict((a.kind, n) for a, n in m.attention_groups()) == {CHUNKED: 36, FULL: 12}


def test_llama4_maverick_interleaves_moe_layers():
    """interleave_moe_layer_step 2: MoE layers 1, 3, ..., 47 (128 experts + 1 shared); the
    other 24 layers are dense with intermediate_size_mlp 16,384. 400.7B text, 17.18B active."""
    m = get_model("llama-4-maverick")
    assert m.moe_layers == tuple(range(1, 48, 2))
    assert m.params_total() == pytest.approx(400.71e9, abs=0.01e9)
    assert m.params_active() == pytest.approx(17.18e9, abs=0.01e9)


def test_gemma2_ties_embeddings_by_default():
    """Gemma2Config defaults tie_word_embeddings to True and the official config omits it:
    27.23B (Gemma 2 report: 27.2B), not the 28.4B an untied head gives."""
    m = get_model("gemma-2-27b")
    assert m.tie_word_embeddings and m.params_total() == 27_227_128_320
    assert kinds(m)[:2] == [(SLIDING, 4096, True), (FULL, 0, True)]


def test_gemma3_reads_architecture_defaults():
    """The official gemma-3-27b text_config has no vocab_size, tie or max positions:
    Gemma3TextConfig's 262,208 / tied / 131,072 apply. 52 sliding (1024) + 10 global layers."""
    m = get_model("gemma-3-27b")
    assert (m.vocab_size, m.tie_word_embeddings, m.max_position_embeddings) == (262208, True, 131072)
    assert dict((a.kind, n) for a, n in m.attention_groups()) == {SLIDING: 52, FULL: 10}
    assert kinds(m)[5] == (FULL, 0, True) and m.norms_per_layer == 4 and m.qk_norm


def test_unknown_architecture_without_tie_says_what_it_assumed():
    m = model_from_config(dict(LLAMA_8B, model_type="mystery"))
    assert not m.tie_word_embeddings and any("tie_word_embeddings" in n for n in m.notes)


# ---- attention dialects ------------------------------------------------------------------

BASE = dict(hidden_size=64, num_hidden_layers=6, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=128, vocab_size=100, tie_word_embeddings=False)


@pytest.mark.parametrize("extra, expected", [
    ({"layer_types": ["sliding_attention", "full_attention"] * 3, "sliding_window": 32},
     [SLIDING, FULL] * 3),
    ({"model_type": "gemma3_text", "sliding_window": 32, "sliding_window_pattern": 3},
     [SLIDING, SLIDING, FULL] * 2),
    ({"model_type": "gemma2", "sliding_window": 32}, [SLIDING, FULL] * 3),
    ({"model_type": "qwen2", "sliding_window": 32, "use_sliding_window": True, "max_window_layers": 4},
     [FULL] * 4 + [SLIDING] * 2),
    ({"model_type": "qwen2", "sliding_window": 32, "use_sliding_window": False}, [FULL] * 6),
    ({"model_type": "mistral", "sliding_window": 32}, [SLIDING] * 6),
    ({"attention_chunk_size": 16, "no_rope_layers": [1, 0, 1, 0, 1, 0]}, [CHUNKED, FULL] * 3),
    ({"attention_chunk_size": 16, "no_rope_layer_interval": 3}, [CHUNKED, CHUNKED, FULL] * 2),
    ({"layer_types": ["linear_attention"] * 3 + ["full_attention"] * 3}, [LINEAR] * 3 + [FULL] * 3),
])
def test_every_config_dialect(extra, expected):
    m = model_from_config(dict(BASE, **extra))
    assert [a.kind for a in m.layer_attention] == expected


def test_layer_kv_and_decode_keys():
    """A sliding layer keeps and reads min(context, W); a chunked layer keeps at most C and
    reads its own chunk, (C + 1) / 2 on average past the first chunk; linear keeps none."""
    s, c = LayerAttention(SLIDING, 128), LayerAttention(CHUNKED, 8192)
    assert (s.kv_tokens(100), s.kv_tokens(10_000), s.decode_keys(10_000)) == (100, 128, 128)
    assert (c.kv_tokens(5000), c.kv_tokens(100_000), c.decode_keys(5000)) == (5000, 8192, 5000)
    assert c.decode_keys(100_000) == 4096.5 and LayerAttention(LINEAR).kv_tokens(10) == 0


# ---- model directories -------------------------------------------------------------------

def _folder(tmp_path, cfg, total_size=None, quant=None):
    d = tmp_path / "My-Llama"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(cfg))
    if total_size is not None:
        (d / "model.safetensors.index.json").write_text(json.dumps(
            {"metadata": {"total_size": total_size}, "weight_map": {}}))
    if quant is not None:
        (d / "hf_quant_config.json").write_text(json.dumps(quant))
    return d


def test_directory_cross_checks_the_safetensors_index(tmp_path, capsys):
    """Llama-3.1-8B in bf16 is 16,060,522,496 bytes (its index's total_size): no warning;
    a total_size 10% larger (a vision tower, say) is named on stderr with both figures."""
    m = get_model(str(_folder(tmp_path, LLAMA_8B, total_size=16_060_522_496)))
    assert m.name == "My-Llama" and checkpoint_bytes(m) == 16_060_522_496
    assert "total_size" not in capsys.readouterr().err
    other = tmp_path / "b"
    other.mkdir()
    get_model(str(_folder(other, LLAMA_8B, total_size=int(16_060_522_496 * 1.1))))
    err = capsys.readouterr().err
    assert "metadata.total_size" in err and "-9.1%" in err


def test_directory_reads_hf_quant_config(tmp_path):
    """NVIDIA ModelOpt checkpoints carry their format in hf_quant_config.json."""
    d = _folder(tmp_path, LLAMA_8B, quant={"producer": {"name": "modelopt"},
                                           "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}})
    assert get_model(str(d)).quantization == "fp8"


def test_checkpoint_fp8_kv_is_what_auto_means(tmp_path):
    """Trial 1 item 6: hf_quant_config.json's kv_cache_quant_algo FP8 was dropped. vLLM
    (resolve_kv_cache_dtype_string), SGLang (configure_kv_cache_dtype) and TensorRT-LLM (dtype
    auto inherits the checkpoint's) all store KV in fp8 for it, so sizer's auto is fp8: half the
    bf16 KV bytes per token, and --emit leaves the flag at auto; an explicit --kv-dtype wins."""
    from sizer.cost.memory import kv_bytes_per_token, resolve_precision
    from sizer.model.split import Split
    from sizer.plan.emit import precision_flags

    quant = {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "FP8"}}
    plain = get_model(str(_folder(tmp_path, LLAMA_8B, quant=quant)))
    other = tmp_path / "kv"
    other.mkdir()
    quant["quantization"]["kv_cache_quant_algo"] = "FP8"
    m = get_model(str(_folder(other, LLAMA_8B, quant=quant)))
    assert (plain.kv_quantization, m.kv_quantization) == ("", "fp8")
    assert (resolve_precision(plain).kv, resolve_precision(m).kv) == ("bf16", "fp8")
    assert resolve_precision(m, kv_dtype="bf16").kv == "bf16"
    one = Split(tp=1)
    assert sum(kv_bytes_per_token(m, one, resolve_precision(m))) * 2 == \
        sum(kv_bytes_per_token(plain, one, resolve_precision(plain)))  # 64 KiB -> 32 KiB
    prec = {"weights": "fp8", "experts": "fp8", "kv_cache": "fp8"}
    for engine in ("vllm", "sglang", "trtllm"):
        assert precision_flags(engine, m, prec)[2] == "auto"
    assert precision_flags("vllm", plain, prec)[2] == "fp8"
    inline = model_from_config({**LLAMA_8B, "quantization_config": {
        "quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}})
    assert inline.kv_quantization == "fp8"
    nvfp4 = model_from_config({**LLAMA_8B, "quantization_config": {
        "quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_quant_algo": "NVFP4"}})
    assert nvfp4.kv_quantization == "" and any("NVFP4 KV cache" in n for n in nvfp4.notes)



def test_modelopt_kv_cache_scheme_is_read_as_vllm_reads_it():
    """vLLM get_kv_cache_quant_algo_string reads kv_cache_scheme before kv_cache_quant_algo, and
    only for quant_method modelopt*: the dict {dynamic: false, num_bits: 8, type: float} is fp8;
    the same fields under another quant method leave KV at the model dtype."""
    scheme = {"dynamic": False, "num_bits": 8, "type": "float"}
    m = model_from_config({**LLAMA_8B, "quantization_config": {
        "quant_method": "modelopt", "quant_algo": "FP8", "kv_cache_scheme": scheme}})
    assert m.kv_quantization == "fp8"
    nested = model_from_config({**LLAMA_8B, "quantization_config": {
        "quant_method": "modelopt", "quant_algo": "FP8", "quantization": {"kv_cache_scheme": "fp8"}}})
    assert nested.kv_quantization == "fp8"
    four = model_from_config({**LLAMA_8B, "quantization_config": {
        "quant_method": "modelopt", "quant_algo": "NVFP4", "kv_cache_scheme": {"num_bits": 4, "type": "float"}}})
    assert four.kv_quantization == "" and any("NVFP4 KV cache" in n for n in four.notes)
    other = model_from_config({**LLAMA_8B, "quantization_config": {
        "quant_method": "fp8", "kv_cache_quant_algo": "FP8"}})
    assert other.kv_quantization == ""

def test_directory_without_config_is_refused(tmp_path):
    with pytest.raises(InputError, match="without a config.json"):
        get_model(str(tmp_path))


# ---- validation (issue #16 item 2) -------------------------------------------------------

@pytest.mark.parametrize("field, value, needle", [
    ("head_dim", 0, "head_dim must be positive"),
    ("head_dim", -128, "head_dim must be positive"),
    ("num_attention_heads", 1e12, "exceeds sizer's bound"),
    ("num_hidden_layers", 10**7, f"bound of {MAX_LAYERS:,}"),
    ("num_hidden_layers", float("nan"), "must be an integer"),
    ("hidden_size", float("inf"), "must be an integer"),
    ("vocab_size", "128256", "must be an integer"),
    ("intermediate_size", [], "must be an integer"),
    ("num_key_value_heads", 3, "not a multiple"),
    ("quantization_config", "fp8", "must be a JSON object"),
    ("mlp_only_layers", 5, "must be a list"),
    ("tie_word_embeddings", "yes", "true or false"),
    ("sliding_window", -4, "sliding_window must be positive"),
    ("layer_types", ["full_attention"], "layer_types has 1 entries for 32 layers"),
])
def test_out_of_range_or_mistyped_fields_are_refused(field, value, needle):
    with pytest.raises(InputError, match=needle):
        model_from_config(dict(LLAMA_8B, **{field: value}))


def test_moe_fields_are_validated():
    moe = dict(LLAMA_8B, num_local_experts=8, num_experts_per_tok=2)
    with pytest.raises(InputError, match="exceeds experts"):
        model_from_config(dict(moe, num_experts_per_tok=9))
    with pytest.raises(InputError, match="mlp_only_layers entries"):
        model_from_config(dict(moe, mlp_only_layers=[99]))
    with pytest.raises(InputError, match="num_local_experts must be >= 0"):
        model_from_config(dict(moe, num_local_experts=-1))


def test_deeply_nested_json_file_is_one_line(tmp_path):
    p = tmp_path / "config.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match="nested too deeply|not valid JSON"):
        get_model(str(p))


def test_largest_valid_config_counts_quickly():
    """10,000 layers (the bound) with 10,000 MoE layers: counting is per kind of layer."""
    import time

    cfg = dict(LLAMA_8B, num_hidden_layers=MAX_LAYERS, num_local_experts=64, num_experts_per_tok=2)
    t = time.perf_counter()
    m = model_from_config(cfg)
    assert m.params_total() > 0 and math.isfinite(m.params_active())
    assert time.perf_counter() - t < 1.0


@pytest.mark.parametrize("field, value", [("num_attention_heads", 1e12), ("head_dim", -128),
                                          ("num_hidden_layers", 10**9)])
def test_estimate_on_an_invalid_config_exits_2(tmp_path, capsys, field, value):
    """Before: 1e12 heads gave head_dim 0 and an 8B model read as 6.69B, `head_dim -128` 5.35B,
    and estimate exited 1 "does not fit"; 1e9 layers looped for minutes."""
    from sizer.cli.main import main

    p = tmp_path / "config.json"
    p.write_text(json.dumps(dict(LLAMA_8B, **{field: value})))
    assert main(["estimate", "--model", str(p)]) == 2
    err = capsys.readouterr().err
    assert field in err and len(err.strip().splitlines()) == 1
