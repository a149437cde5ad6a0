"""Model shapes the tests build without the preset files, each from its official config.json
(the same values as data/models/ and ../shared/reference/model_architecture.json)."""

# meta-llama/Llama-3.1-8B and -70B config.json (R00750.. in model_architecture.json)
LLAMA_70B = dict(model_type="llama", hidden_size=8192, num_hidden_layers=80, num_attention_heads=64,
                 num_key_value_heads=8, intermediate_size=28672, vocab_size=128256,
                 torch_dtype="bfloat16", max_position_embeddings=131072)
LLAMA_8B = dict(LLAMA_70B, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                intermediate_size=14336)
# mistralai/Mixtral-8x7B-v0.1 config.json
MIXTRAL_8X7B = dict(model_type="mixtral", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=8, intermediate_size=14336, vocab_size=32000, num_local_experts=8,
                    num_experts_per_tok=2, torch_dtype="bfloat16", max_position_embeddings=32768)
# Qwen/Qwen3-30B-A3B config.json: 128 experts, top-8, 48 layers
QWEN3_MOE = dict(model_type="qwen3_moe", hidden_size=2048, num_hidden_layers=48, num_attention_heads=32,
                 num_key_value_heads=4, head_dim=128, intermediate_size=6144, moe_intermediate_size=768,
                 num_experts=128, num_experts_per_tok=8, vocab_size=151936, torch_dtype="bfloat16",
                 max_position_embeddings=40960)
# deepseek-ai/DeepSeek-V3 config.json (MLA, 256 routed + 1 shared expert, 3 leading dense layers)
DSV3 = dict(model_type="deepseek_v3", hidden_size=7168, num_hidden_layers=61, num_attention_heads=128,
            num_key_value_heads=128, intermediate_size=18432, moe_intermediate_size=2048,
            n_routed_experts=256, n_shared_experts=1, num_experts_per_tok=8, first_k_dense_replace=3,
            moe_layer_freq=1, kv_lora_rank=512, q_lora_rank=1536, qk_rope_head_dim=64,
            qk_nope_head_dim=128, v_head_dim=128, vocab_size=129280, torch_dtype="bfloat16",
            max_position_embeddings=163840,
            quantization_config={"quant_method": "fp8", "weight_block_size": [128, 128]})
# GPT-3 175B (Brown et al. 2020, Table 2.1: d_model 12288, 96 layers, 96 heads, context 2048;
# GPT-2 BPE vocabulary of 50257; FFN 4 x d_model with GELU, i.e. not gated: model_type gpt2)
GPT3 = dict(model_type="gpt2", n_embd=12288, n_layer=96, n_head=96, vocab_size=50257, n_inner=4 * 12288,
            n_positions=2048, torch_dtype="bfloat16", tie_word_embeddings=True)
