"""Reading a Hugging Face `config.json` (parsed JSON, never executed) into a ModelSpec, through
one validation layer: every field sizer reads has a type and a physically meaningful range.

A config a user edited by hand gets one clear InputError naming the field, never a traceback or
a silent guess: NaN/inf/text/[] where a number belongs, 0 or negative sizes, 1e12 heads, a
`quantization_config` that is not an object, `mlp_only_layers: 5`. The bounds (BOUNDS) sit far
above every published model (largest seen: hidden 18,432, 126 layers, 384 experts, vocab
262,208, 10.5M positions) and far below what would make the analytical model loop for minutes.

Field names vary between architectures; `_ALIASES` maps them (Llama/Mistral/Qwen/DeepSeek/
gpt-oss/GPT-2/Falcon style names). Multimodal configs are unwrapped through `text_config`.
Where an official config leaves a field to its architecture's default (Gemma 2/3 do not write
`tie_word_embeddings` or `vocab_size`), the default comes from that architecture's Hugging Face
config class (ARCH_DEFAULTS), never from one global guess.
"""

import math

from sizer.errors import InputError
from .attention import LINEAR, layer_attention
from .precision import canonical
from .spec import ModelSpec

_ALIASES = {
    "hidden_size": ("hidden_size", "n_embd", "d_model", "dim", "model_dim"),
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "num_heads": ("num_attention_heads", "n_head", "n_heads", "num_heads"),
    "num_kv_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "n_head_kv",
                     "multi_query_group_num"),
    "intermediate_size": ("intermediate_size", "ffn_hidden_size", "n_inner", "ffn_dim"),
    "vocab_size": ("vocab_size", "padded_vocab_size", "n_vocab"),
    "num_experts": ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts"),
    "experts_per_token": ("num_experts_per_tok", "num_experts_per_token", "experts_per_token",
                          "moe_top_k", "top_k"),
    "moe_intermediate_size": ("moe_intermediate_size", "expert_intermediate_size",
                              "moe_ffn_hidden_size"),
    "num_shared_experts": ("n_shared_experts", "num_shared_experts"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "max_seq_len",
                                "seq_length"),
    # multi-token-prediction modules shipped with the checkpoint: DeepSeek-V3/R1, GLM-4.5, MiMo
    # `num_nextn_predict_layers`; Qwen3-Next `mtp_num_hidden_layers` (the model types of vLLM's
    # MTP_MODEL_TYPES, vllm/config/speculative.py v0.11.0)
    "mtp_layers": ("num_nextn_predict_layers", "mtp_num_hidden_layers"),
}

# Physically meaningful bounds, named in every message that enforces one.
MAX_LAYERS = 10_000
MAX_HIDDEN = 1 << 20  # 1,048,576
MAX_HEADS = 1 << 14
MAX_HEAD_DIM = 1 << 14
MAX_VOCAB = 1 << 24
MAX_WIDTH = 1 << 24  # FFN / expert intermediate widths
MAX_EXPERTS = 1 << 16
MAX_RANK = 1 << 16  # MLA ranks and rope dims
MAX_CONTEXT = 1 << 30  # positions, windows, chunks
BOUNDS = {  # field -> (lowest, highest)
    "hidden_size": (1, MAX_HIDDEN), "num_layers": (1, MAX_LAYERS), "num_heads": (1, MAX_HEADS),
    "num_kv_heads": (1, MAX_HEADS), "head_dim": (1, MAX_HEAD_DIM), "kv_channels": (1, MAX_HEAD_DIM),
    "v_head_dim": (1, MAX_HEAD_DIM), "vocab_size": (1, MAX_VOCAB),
    "intermediate_size": (1, MAX_WIDTH), "intermediate_size_mlp": (1, MAX_WIDTH),
    "moe_intermediate_size": (1, MAX_WIDTH), "shared_expert_intermediate_size": (0, MAX_WIDTH),
    "num_experts": (0, MAX_EXPERTS), "experts_per_token": (1, MAX_EXPERTS),
    "num_shared_experts": (0, MAX_EXPERTS), "kv_lora_rank": (0, MAX_RANK), "q_lora_rank": (0, MAX_RANK),
    "qk_rope_head_dim": (0, MAX_RANK), "qk_nope_head_dim": (0, MAX_RANK),
    "first_k_dense_replace": (0, MAX_LAYERS), "moe_layer_freq": (1, MAX_LAYERS),
    "decoder_sparse_step": (1, MAX_LAYERS), "interleave_moe_layer_step": (1, MAX_LAYERS),
    "max_position_embeddings": (1, MAX_CONTEXT), "sliding_window": (1, MAX_CONTEXT),
    "sliding_window_pattern": (1, MAX_LAYERS), "max_window_layers": (0, MAX_CONTEXT),
    "attention_chunk_size": (1, MAX_CONTEXT), "no_rope_layer_interval": (1, MAX_LAYERS),
    "mtp_layers": (0, MAX_LAYERS),
}
BOOLS = ("tie_word_embeddings", "attention_bias", "mlp_bias", "use_sliding_window", "multi_query")
LISTS = ("layer_types", "mlp_only_layers", "no_rope_layers", "moe_layers")
OBJECTS = ("quantization_config", "text_config", "vision_config")

# Architectures without attention KV caches, or encoder(-decoder)s: the formulas do not apply.
NOT_DECODERS = ("mamba", "mamba2", "rwkv", "rwkv5", "rwkv6", "bert", "roberta", "t5", "mt5",
                "bart", "whisper", "vit", "clip")

# Architectures whose MLP is up -> activation -> down (no gate projection).
NON_GATED = ("gpt2", "opt", "gpt_neox", "falcon", "gpt_bigcode", "phi", "starcoder2", "mpt",
             "bloom", "gptj", "codegen", "gpt_neo")

# Defaults of each architecture's config class where official configs rely on them
# (transformers v4.56 models/<arch>/configuration_<arch>.py __init__ defaults).
ARCH_DEFAULTS = {
    "llama": {"tie_word_embeddings": False}, "mistral": {"tie_word_embeddings": False},
    "mixtral": {"tie_word_embeddings": False}, "qwen2": {"tie_word_embeddings": False},
    "qwen2_moe": {"tie_word_embeddings": False}, "qwen3": {"tie_word_embeddings": False},
    "qwen3_moe": {"tie_word_embeddings": False}, "deepseek_v2": {"tie_word_embeddings": False},
    "deepseek_v3": {"tie_word_embeddings": False}, "kimi_k2": {"tie_word_embeddings": False},
    "gpt_oss": {"tie_word_embeddings": False}, "phi3": {"tie_word_embeddings": False},
    "gpt_neox": {"tie_word_embeddings": False}, "gpt2": {"tie_word_embeddings": True},
    "gemma": {"tie_word_embeddings": True, "vocab_size": 256000},
    "gemma2": {"tie_word_embeddings": True, "vocab_size": 256000, "sliding_window": 4096,
               "max_position_embeddings": 8192},
    "gemma3_text": {"tie_word_embeddings": True, "vocab_size": 262208, "sliding_window": 4096,
                    "sliding_window_pattern": 6, "max_position_embeddings": 131072},
    "llama4_text": {"tie_word_embeddings": False, "vocab_size": 202048, "attention_chunk_size": 8192,
                    "interleave_moe_layer_step": 1, "intermediate_size_mlp": 16384,
                    "num_local_experts": 16, "num_experts_per_tok": 1, "head_dim": 128,
                    "max_position_embeddings": 131072},
}
SANDWICH_NORMS = ("gemma2", "gemma3_text")  # input, post-attention, pre- and post-feedforward
QK_NORM = ("qwen3", "qwen3_moe", "gemma3_text")  # q_norm/k_norm weights of head_dim each


def _get(cfg: dict, key: str, default=None):
    for name in _ALIASES.get(key, (key,)):
        if cfg.get(name) is not None:
            return cfg[name]
    return default


def _name_of(cfg: dict, key: str) -> str:
    return next((n for n in _ALIASES.get(key, (key,)) if cfg.get(n) is not None), key)


def _int(cfg: dict, key: str, path: str, default=None, required: bool = False):
    """A validated integer field (aliases allowed), within BOUNDS[key]; `default` when absent."""
    value = _get(cfg, key)
    if value is None:
        if required and default is None:
            raise InputError(f"{path}: config has no {key} "
                             f"(looked for {', '.join(_ALIASES.get(key, (key,)))})")
        return default
    field = _name_of(cfg, key)
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or (isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()))):
        raise InputError(f"{path}: {field} must be an integer, got {value!r}")
    value = int(value)
    lo, hi = BOUNDS.get(key, (0, MAX_CONTEXT))
    if value < lo:
        raise InputError(f"{path}: {field} must be {'positive' if lo == 1 else f'>= {lo}'}, got {value}")
    if value > hi:
        raise InputError(f"{path}: {field} = {value:,} exceeds sizer's bound of {hi:,} for it "
                         "(far above any published model)")
    return value


def check_types(cfg: dict, path: str) -> None:
    """Booleans are JSON booleans, lists are lists, objects are objects (or null)."""
    for key in BOOLS:
        if cfg.get(key) is not None and not isinstance(cfg[key], bool):
            raise InputError(f"{path}: {key} must be true or false, got {cfg[key]!r}")
    for key in LISTS:
        if cfg.get(key) is not None and not isinstance(cfg[key], list):
            raise InputError(f"{path}: {key} must be a list, got {cfg[key]!r}")
    for key in OBJECTS:
        if cfg.get(key) is not None and not isinstance(cfg[key], dict):
            raise InputError(f"{path}: {key} must be a JSON object, got {cfg[key]!r}")
    for key in ("model_type", "torch_dtype", "dtype"):
        if cfg.get(key) is not None and not isinstance(cfg[key], str):
            raise InputError(f"{path}: {key} must be a string, got {cfg[key]!r}")


def _index_list(cfg: dict, key: str, layers: int, path: str) -> list:
    values = cfg.get(key) or []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < layers:
            raise InputError(f"{path}: {key} entries must be layer indices 0..{layers - 1}, got {v!r}")
    return values


def _kv_quantization(cfg: dict, path: str, notes: list) -> str:
    """The KV cache format a ModelOpt checkpoint declares: "fp8", or "" for none. Read as vLLM
    reads it (get_kv_cache_quant_algo_string, vllm/utils/torch_utils.py): only for a
    quant_method starting with "modelopt", `kv_cache_scheme` first (a string, or a dict where
    {dynamic: false, num_bits: 8, type: float} is fp8 and {num_bits: 4, type: float} nvfp4), then
    `kv_cache_quant_algo`, each in the inner "quantization" object or at the top. Every engine
    stores KV in it when the KV dtype is left at auto: vLLM resolve_kv_cache_dtype_string (same
    file, commit 959009b4; called by EngineArgs.create_engine_config), SGLang
    ModelRunner.configure_kv_cache_dtype (python/sglang/srt/model_executor/model_runner.py,
    commit 01cc04e2: "FP8" -> fp8_e4m3), TensorRT-LLM ("inherited from the checkpoint with
    dtype='auto'", nvidia.github.io/TensorRT-LLM/1.4.0rc4/features/quantization.html)."""
    q = cfg.get("quantization_config") or cfg.get("quantization")
    if not isinstance(q, dict) or not str(q.get("quant_method", "")).lower().startswith("modelopt"):
        return ""
    inner = q.get("quantization") if isinstance(q.get("quantization"), dict) else q
    algo = (inner.get("kv_cache_scheme") or q.get("kv_cache_scheme")
            or inner.get("kv_cache_quant_algo") or q.get("kv_cache_quant_algo"))
    if not algo:
        return ""
    if isinstance(algo, dict):
        if algo.get("dynamic") is False and algo.get("num_bits") == 8 and algo.get("type") == "float":
            return "fp8"
        algo = "NVFP4" if algo.get("num_bits") == 4 and algo.get("type") == "float" else str(algo)
    if not isinstance(algo, str):
        raise InputError(f"{path}: kv_cache_quant_algo must be a string, got {algo!r}")
    if algo.upper() == "FP8":
        return "fp8"
    notes.append(f"the checkpoint's {algo} KV cache (kv_cache_quant_algo / kv_cache_scheme) is not "
                 "modelled: KV is sized at the model dtype unless --kv-dtype says otherwise")
    return ""


def _quantization(cfg: dict, path: str):
    q = cfg.get("quantization_config") or cfg.get("quantization")
    if not q:
        return None, "linear", False
    if not isinstance(q, dict):
        raise InputError(f"{path}: quantization_config must be a JSON object, got {q!r}")
    method = str(q.get("quant_method", q.get("quant_algo", ""))).lower()
    bits = q.get("bits", q.get("w_bit"))
    if bits is not None and (isinstance(bits, bool) or not isinstance(bits, int)):
        raise InputError(f"{path}: quantization_config bits must be an integer, got {bits!r}")
    if method == "modelopt":  # hf_quant_config.json / ModelOpt: {"quant_algo": "FP8" | "NVFP4"}
        algo = str(q.get("quant_algo", "")).lower()
        if "nvfp4" in algo or algo == "fp4":
            return "nvfp4", "linear", False
        if "fp8" in algo:
            return "fp8", "linear", "block" in algo
        if "w4a16" in algo or "int4" in algo:
            return "int4", "linear", False
        raise InputError(f"{path}: ModelOpt quant_algo {q.get('quant_algo')!r} is not supported")
    if method in ("fp8", "fbgemm_fp8") or "fp8" in method:
        return "fp8", "linear", bool(q.get("weight_block_size"))
    if method == "mxfp4":
        skip = q.get("modules_to_not_convert") or []
        if not isinstance(skip, list):
            raise InputError(f"{path}: modules_to_not_convert must be a list, got {skip!r}")
        skip = " ".join(str(s) for s in skip)
        return "fp4", ("experts" if "self_attn" in skip or "attn" in skip else "linear"), False
    if method == "compressed-tensors" and not bits:  # RedHatAI/llm-compressor checkpoints
        groups = q.get("config_groups") or {}
        if not isinstance(groups, dict):
            raise InputError(f"{path}: config_groups must be a JSON object, got {groups!r}")
        for group in groups.values():
            w = (group or {}).get("weights") if isinstance(group, dict) else None
            w = w if isinstance(w, dict) else {}
            if w.get("num_bits") == 8 and w.get("type") == "float":
                return "fp8", "linear", False
            if w.get("num_bits") in (4, 8):
                return ("int4" if w["num_bits"] == 4 else "int8"), "linear", False
    if method in ("gptq", "awq", "compressed-tensors") and bits in (4, 8):
        return ("int4" if bits == 4 else "int8"), "linear", False
    if method in ("bitsandbytes",) and q.get("load_in_4bit"):
        return "int4", "linear", False
    if method in ("bitsandbytes",) and q.get("load_in_8bit"):
        return "int8", "linear", False
    raise InputError(f"{path}: quantization_config with quant_method {method!r} is not supported")


def _unwrap(cfg: dict, path: str) -> tuple[dict, list]:
    """The text decoder's config (multimodal: `text_config`, inheriting the outer dtype, tie
    and quantization), and the notes to say about what is left out."""
    check_types(cfg, path)
    notes = []
    if isinstance(cfg.get("text_config"), dict):
        outer, cfg = cfg, {**cfg["text_config"]}
        for key in ("torch_dtype", "tie_word_embeddings", "quantization_config"):
            if key not in cfg and key in outer:
                cfg[key] = outer[key]
        if isinstance(outer.get("vision_config"), dict):
            notes.append("the vision tower (vision_config) is not counted: parameters, weights and "
                         "KV are the text decoder's; the checkpoint is larger by the vision encoder")
        check_types(cfg, path)
    return cfg, notes


def model_from_config(cfg: dict, name: str = "custom", path: str = "config.json") -> ModelSpec:
    """Build a ModelSpec from a parsed HF config.json (InputError when fields are missing or
    out of range; see the module docstring)."""
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: a config.json must be a JSON object")
    cfg, notes = _unwrap(cfg, path)
    arch = str(cfg.get("model_type", "")).lower()
    if arch in NOT_DECODERS or any(k in cfg for k in ("ssm_cfg", "state_size", "d_state")):
        raise InputError(f"{path}: model_type {arch or 'with SSM state'!r} is not an attention "
                         "decoder; sizer models transformer decoders (dense, MoE, MLA)")
    if arch == "llama4":  # a text-only copy of Llama 4 with the outer type
        arch = "llama4_text"
    defaults = ARCH_DEFAULTS.get(arch, {})
    cfg = {**{k: v for k, v in defaults.items() if cfg.get(k) is None}, **{k: v for k, v in cfg.items() if v is not None}}
    if "tie_word_embeddings" not in cfg:
        cfg["tie_word_embeddings"] = False
        notes.append(f"tie_word_embeddings is not set and model_type {arch or '(none)'!r} has no known "
                     "default: the LM head is counted as its own matrix")
    hidden = _int(cfg, "hidden_size", path, required=True)
    layers = _int(cfg, "num_layers", path, required=True)
    heads = _int(cfg, "num_heads", path, required=True)
    kv_heads = 1 if cfg.get("multi_query") else _int(cfg, "num_kv_heads", path, heads)
    if kv_heads > heads or heads % kv_heads:
        raise InputError(f"{path}: {heads} attention heads are not a multiple of {kv_heads} KV heads")
    vocab = _int(cfg, "vocab_size", path, required=True)
    kv_lora = _int(cfg, "kv_lora_rank", path, 0)
    rope_dim = _int(cfg, "qk_rope_head_dim", path, 0)
    if kv_lora:
        head_dim = _int(cfg, "qk_nope_head_dim", path, 0) + rope_dim
        if head_dim < 1:
            raise InputError(f"{path}: MLA needs qk_nope_head_dim + qk_rope_head_dim > 0")
        v_head_dim = _int(cfg, "v_head_dim", path, head_dim)
    else:
        head_dim = _int(cfg, "head_dim", path) or _int(cfg, "kv_channels", path)
        if head_dim is None:
            if hidden < heads:
                raise InputError(f"{path}: no head_dim, and hidden_size {hidden} / {heads} heads "
                                 "is below 1")
            head_dim = hidden // heads
        v_head_dim = head_dim
    llama4 = arch == "llama4_text" or "intermediate_size_mlp" in cfg
    n_exp = _int(cfg, "num_experts", path, 0)
    moe_layers, moe_inter, shared_inter, n_shared, top_k = (), 0, 0, 0, 0
    inter = _int(cfg, "intermediate_size", path, 0)
    if n_exp:
        top_k = _int(cfg, "experts_per_token", path, required=True)
        if top_k > n_exp:
            raise InputError(f"{path}: experts per token ({top_k}) exceeds experts ({n_exp})")
        moe_layers = _moe_layers(cfg, layers, path)
        if llama4:  # Llama4TextMoe: experts of intermediate_size + one shared expert of the same
            moe_inter, n_shared, shared_inter = inter, 1, inter
            inter = _int(cfg, "intermediate_size_mlp", path, inter)
        else:
            moe_inter = _int(cfg, "moe_intermediate_size", path, 0) or inter
            if not moe_inter:
                raise InputError(f"{path}: config has no moe_intermediate_size for its experts")
            shared_inter = _int(cfg, "shared_expert_intermediate_size", path, 0)
            n_shared = _int(cfg, "num_shared_experts", path, 1 if shared_inter else 0)
    if len(moe_layers) < layers and not inter:
        raise InputError(f"{path}: config has no intermediate_size for its dense layers")
    attention = layer_attention(_window_fields(cfg, path), arch, layers, path)
    if any(a.kind == LINEAR for a in set(attention)):
        notes.append("linear-attention layers hold a fixed state, not per-token KV; their "
                     "parameters are counted with the attention projection shapes")
    quant, qmodules, block_fp8 = _quantization(cfg, path)
    kv_quant = _kv_quantization(cfg, path, notes)
    dtype = canonical(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16", ("bf16", "fp16", "fp32"))
    return ModelSpec(
        name=name, hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads,
        head_dim=head_dim, v_head_dim=v_head_dim, intermediate_size=inter, vocab_size=vocab,
        tie_word_embeddings=cfg["tie_word_embeddings"], dtype=dtype,
        max_position_embeddings=_int(cfg, "max_position_embeddings", path, 0),
        gated_mlp=arch not in NON_GATED,
        qkv_bias=bool(cfg.get("attention_bias", arch in ("qwen2", "qwen2_moe"))),
        o_bias=bool(cfg.get("attention_bias", False)) and arch != "qwen2",
        mlp_bias=bool(cfg.get("mlp_bias", arch == "gpt_oss")),
        qk_norm=arch in QK_NORM, norms_per_layer=4 if arch in SANDWICH_NORMS else 2,
        attention_sinks=arch == "gpt_oss", num_experts=n_exp, experts_per_token=top_k,
        moe_intermediate_size=moe_inter, num_shared_experts=n_shared,
        shared_expert_intermediate_size=shared_inter if n_shared and shared_inter != moe_inter else 0,
        router_bias=arch == "gpt_oss", moe_layers=moe_layers, kv_lora_rank=kv_lora,
        q_lora_rank=_int(cfg, "q_lora_rank", path, 0), qk_rope_head_dim=rope_dim,
        layer_attention=attention, quantization=quant, quantized_modules=qmodules,
        block_scaled_fp8=block_fp8, arch=arch, mtp_layers=_int(cfg, "mtp_layers", path, 0),
        kv_quantization=kv_quant, notes=tuple(notes),
    )


def _moe_layers(cfg: dict, layers: int, path: str) -> tuple:
    """Sorted indices of the MoE layers: an explicit `moe_layers` list (Llama 4), Llama 4's
    `interleave_moe_layer_step` s (layers s-1, 2s-1, ...; Llama4TextConfig), Qwen's
    `decoder_sparse_step` (layer i when (i + 1) % step == 0), else DeepSeek's `moe_layer_freq`
    counted from layer 0 after `first_k_dense_replace`; minus `mlp_only_layers`."""
    dense_only = set(_index_list(cfg, "mlp_only_layers", layers, path))
    if cfg.get("moe_layers"):
        chosen = set(_index_list(cfg, "moe_layers", layers, path))
        return tuple(i for i in sorted(chosen) if i not in dense_only)
    first_dense = _int(cfg, "first_k_dense_replace", path, 0)
    step = _int(cfg, "interleave_moe_layer_step", path) or _int(cfg, "decoder_sparse_step", path)
    if step:
        chosen = range(step - 1, layers, step)
    else:
        freq = _int(cfg, "moe_layer_freq", path, 1)
        chosen = range(0, layers, freq)
    return tuple(i for i in chosen if i >= first_dense and i not in dense_only)


def _window_fields(cfg: dict, path: str) -> dict:
    """The attention-kind fields of a config, validated (types, ranges, list entries)."""
    out = {k: cfg.get(k) for k in ("use_sliding_window",)}
    for key in ("sliding_window", "sliding_window_pattern", "max_window_layers",
                "attention_chunk_size", "no_rope_layer_interval"):
        out[key] = _int(cfg, key, path)
    types = cfg.get("layer_types")
    if types is not None and not all(isinstance(t, str) for t in types):
        raise InputError(f"{path}: layer_types entries must be strings, got {types!r:.80}")
    out["layer_types"] = types
    rope = cfg.get("no_rope_layers")
    if rope is not None and not all(v in (0, 1) and not isinstance(v, float) for v in rope):
        raise InputError(f"{path}: no_rope_layers entries must be 0 or 1, got {rope!r:.80}")
    out["no_rope_layers"] = rope
    return out
