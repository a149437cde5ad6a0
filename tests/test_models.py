"""The model catalog: every preset's parameter counts against the official figures, aliases,
architecture coverage (GQA, MoE, MLA, sliding windows, tied embeddings, checkpoint quantization)
and config-parsing errors."""

import json

import pytest

from sizer.errors import InputError
from sizer.model.catalog import get_model, model_from_config, preset_names, resolve_preset

# Exact counts (issue #2; Hugging Face safetensors metadata of the official checkpoints).
EXACT = {
    "llama-3.1-8b": (8_030_261_248, None),
    "llama-3.1-70b": (70_553_706_496, None),
    "llama-3.1-405b": (405_853_388_800, None),
    "mixtral-8x7b": (46_702_792_704, 12_879_925_248),
}
# Official rounded figures: (total, active, half a unit of the last printed digit), from
# ../shared/reference/model_architecture.json.
ROUNDED = {
    "deepseek-v3": (671e9, 37e9, 0.5e9),  # R00826, R00827
    "qwen3-235b-a22b": (235e9, 22e9, 0.5e9),  # R00881, R00882
    "gpt-oss-120b": (117e9, 5.1e9, 0.05e9),  # R00907, R00908 (total "117B": +-0.5B)
    "gpt-oss-20b": (21e9, 3.6e9, 0.05e9),  # R00909, R00910
    "mixtral-8x22b": (141e9, 39e9, 0.5e9),  # R00856, R00857
    "qwen3-32b": (32.8e9, 32.8e9, 0.1e9),  # Qwen3-32B model card "32.8B" (index.json official)
    "kimi-k2": (1.0e12, 32e9, 0.5e9),  # Kimi-K2 model card "1T total, 32B activated"
}
REQUIRED = ["llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b", "mixtral-8x7b", "mixtral-8x22b",
            "qwen2.5-7b", "qwen2.5-72b", "qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v3",
            "gpt-oss-20b", "gpt-oss-120b", "llama-4-scout", "llama-4-maverick", "gemma-3-27b",
            "qwen3-32b", "kimi-k2"]


def test_every_required_preset_ships():
    assert set(REQUIRED) <= set(preset_names())


@pytest.mark.parametrize("pid", sorted(EXACT))
def test_exact_parameter_counts_within_1pct(pid):
    total, active = EXACT[pid]
    m = get_model(pid)
    assert m.params_total() == pytest.approx(total, rel=0.01)
    assert m.params_active() == pytest.approx(active or total, rel=0.01)


@pytest.mark.parametrize("pid", sorted(ROUNDED))
def test_official_rounded_counts(pid):
    total, active, half = ROUNDED[pid]
    m = get_model(pid)
    total_half = 0.05e12 if total >= 1e12 else 0.5e9  # whole billions ("117B"), "1T"
    assert abs(m.params_total() - total) <= total_half, m.params_total()
    assert abs(m.params_active() - active) <= half, m.params_active()


@pytest.mark.parametrize("alias, pid", [("8b", "llama-3.1-8b"), ("70b", "llama-3.1-70b"),
                                        ("405b", "llama-3.1-405b"), ("deepseek-r1", "deepseek-v3"),
                                        ("Llama-3.1-70B", "llama-3.1-70b")])
def test_aliases(alias, pid):
    assert resolve_preset(alias) == pid


def test_gqa_and_405b_kv_heads():
    """Llama-3.1-405B's official config has 8 KV heads (R-notes: early copies said 16)."""
    assert get_model("405b").num_kv_heads == 8
    assert get_model("70b").num_kv_heads == 8 and get_model("70b").num_heads == 64


def test_mla_shapes():
    m = get_model("deepseek-v3")
    assert m.is_mla and m.kv_lora_rank == 512 and m.qk_rope_head_dim == 64
    assert m.kv_elements_per_token_per_layer() == 576
    assert len(m.moe_layers) == 61 - 3 and m.num_shared_experts == 1
    assert m.quantization == "fp8" and m.block_scaled_fp8


def test_head_dim_not_hidden_over_heads():
    """Qwen3-235B: 64 heads x head_dim 128 = 8192 != hidden 4096 (R-notes trap)."""
    m = get_model("qwen3-235b-a22b")
    assert m.head_dim == 128 and m.num_heads * m.head_dim != m.hidden_size


def test_gpt_oss_sliding_layers_and_mxfp4_experts():
    m = get_model("gpt-oss-120b")
    assert m.sliding_window == 128 and len(m.sliding_layers) == m.num_layers // 2
    assert m.quantization == "fp4" and m.quantized_modules == "experts"


def test_qwen_use_sliding_window_false_means_no_window():
    m = get_model("qwen2.5-7b")
    assert m.sliding_window == 0 and not m.sliding_layers


def test_text_config_is_unwrapped():
    inner = json.loads(json.dumps({"hidden_size": 4096, "num_hidden_layers": 32, "num_attention_heads": 32,
                                   "num_key_value_heads": 8, "intermediate_size": 14336, "vocab_size": 128256}))
    m = model_from_config({"model_type": "mllama", "text_config": inner, "torch_dtype": "bfloat16"})
    assert m.num_layers == 32 and m.dtype == "bf16"


def test_tied_embeddings_counted_once():
    cfg = dict(hidden_size=1024, num_hidden_layers=2, num_attention_heads=8, intermediate_size=4096,
               vocab_size=1000, tie_word_embeddings=True)
    tied, untied = model_from_config(cfg), model_from_config(dict(cfg, tie_word_embeddings=False))
    assert untied.params_total() - tied.params_total() == 1000 * 1024


@pytest.mark.parametrize("cfg, needle", [
    ({"hidden_size": 10}, "num_hidden_layers"),
    ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 4,
      "vocab_size": 10, "intermediate_size": 8}, "multiple"),
    ({"hidden_size": -1, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 10}, "positive"),
    ([1, 2], "object"),
])
def test_bad_configs(cfg, needle):
    with pytest.raises(InputError, match=needle):
        model_from_config(cfg)


def test_unknown_model_suggests():
    with pytest.raises(InputError, match="did you mean"):
        get_model("llama-3.1-7b")


def test_non_decoder_configs_are_rejected():
    """An SSM (Mamba) has no KV cache: the formulas do not apply, so say so instead of guessing."""
    with pytest.raises(InputError, match="not an attention decoder"):
        model_from_config({"model_type": "mamba", "hidden_size": 768, "num_hidden_layers": 2,
                           "vocab_size": 10, "state_size": 16})


def test_custom_config_is_named_after_its_file(tmp_path):
    cfg = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
           "intermediate_size": 128, "vocab_size": 100}
    (tmp_path / "mistral.json").write_text(json.dumps(cfg))
    (tmp_path / "My-Model").mkdir()
    (tmp_path / "My-Model" / "config.json").write_text(json.dumps(cfg))
    assert get_model(str(tmp_path / "mistral.json")).name == "mistral"
    assert get_model(str(tmp_path / "My-Model" / "config.json")).name == "My-Model"
    assert get_model(str(tmp_path / "My-Model")).name == "My-Model"


def test_qwen_decoder_sparse_step_counts_from_one():
    """Qwen2/3-MoE: layer i is sparse when (i + 1) % decoder_sparse_step == 0 (HF modeling code)."""
    cfg = dict(model_type="qwen3_moe", hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
               intermediate_size=128, moe_intermediate_size=32, num_experts=4, num_experts_per_tok=2,
               vocab_size=100, decoder_sparse_step=2)
    assert model_from_config(cfg).moe_layers == (1, 3)


def test_compressed_tensors_fp8_checkpoint():
    cfg = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
               vocab_size=100, quantization_config={"quant_method": "compressed-tensors", "config_groups": {
                   "group_0": {"weights": {"num_bits": 8, "type": "float"}, "targets": ["Linear"]}}})
    assert model_from_config(cfg).quantization == "fp8"


def test_starcoder2_mlp_is_not_gated():
    cfg = dict(model_type="starcoder2", hidden_size=3072, num_hidden_layers=30, num_attention_heads=24,
               num_key_value_heads=2, intermediate_size=12288, vocab_size=49152)
    assert not model_from_config(cfg).gated_mlp
