"""The model catalog: Hugging Face `config.json` files read as plain JSON, never executed.

A ModelSpec holds what the memory and time models need: shapes of attention (MHA/GQA/MQA, MLA),
dense and MoE feed-forward layers (routed + shared experts, leading dense layers), sliding-window
layers, tied embeddings, and the checkpoint's own quantization. Parameter counts follow from the
shapes exactly (they reproduce the official counts; see tests/test_models.py).

Field names vary between architectures; `_ALIASES` maps them (Llama/Mistral/Qwen/DeepSeek/
gpt-oss/GPT-2/Falcon style names). Multimodal configs are unwrapped through `text_config`.
"""

from dataclasses import dataclass
from functools import lru_cache

from sizer.errors import InputError, closest_names
from .precision import canonical
from .resources import read_json

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
}


# Architectures without attention KV caches, or encoder(-decoder)s: the formulas do not apply.
NOT_DECODERS = ("mamba", "mamba2", "rwkv", "rwkv5", "rwkv6", "bert", "roberta", "t5", "mt5",
                "bart", "whisper", "vit", "clip")


# Architectures whose MLP is up -> activation -> down (no gate projection).
NON_GATED = ("gpt2", "opt", "gpt_neox", "falcon", "gpt_bigcode", "phi", "starcoder2", "mpt",
             "bloom", "gptj", "codegen", "gpt_neo")


@dataclass(frozen=True)
class ModelSpec:
    """Shapes of a decoder-only transformer (sizes in elements; dtype names canonical)."""

    name: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int  # query/key head size (MLA: qk_nope_head_dim + qk_rope_head_dim)
    v_head_dim: int
    intermediate_size: int  # dense FFN width (0 when every layer is MoE)
    vocab_size: int
    tie_word_embeddings: bool
    dtype: str
    max_position_embeddings: int
    gated_mlp: bool = True
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    attention_sinks: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    router_bias: bool = False
    moe_layers: tuple = ()  # indices of MoE layers
    kv_lora_rank: int = 0  # MLA (DeepSeek-V2/V3): latent KV rank
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    sliding_window: int = 0
    sliding_layers: tuple = ()  # indices of sliding-window layers
    quantization: str | None = None  # checkpoint's own weight format for linear layers
    quantized_modules: str = "linear"  # "linear" | "experts" (gpt-oss: only MoE experts)
    block_scaled_fp8: bool = False
    active_counts_embedding: bool = False  # publisher's convention for "active" (see params_active)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    # ----- parameter counts (elements) -----------------------------------------------------
    def attention_params(self) -> int:
        """Q/K/V/O projections (+biases, q/k norms, sinks) of one layer.

        MLA (DeepSeek-V3 modeling code): q_a [H, q_lora] + q_a_norm + q_b [q_lora, heads*qk_dim],
        kv_a_with_mqa [H, kv_lora + rope] + kv_a_norm + kv_b [kv_lora, heads*(nope + v)],
        o [heads*v, H].
        """
        h, nh, hd = self.hidden_size, self.num_heads, self.head_dim
        if self.is_mla:
            nope = hd - self.qk_rope_head_dim
            q = (h * self.q_lora_rank + self.q_lora_rank + self.q_lora_rank * nh * hd
                 if self.q_lora_rank else h * nh * hd)
            kv = (h * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
                  + self.kv_lora_rank * nh * (nope + self.v_head_dim))
            return q + kv + nh * self.v_head_dim * h
        q = h * nh * hd + (nh * hd if self.qkv_bias else 0)
        kv = 2 * (h * self.num_kv_heads * hd + (self.num_kv_heads * hd if self.qkv_bias else 0))
        o = nh * self.v_head_dim * h + (h if self.o_bias else 0)
        extra = (2 * hd if self.qk_norm else 0) + (nh if self.attention_sinks else 0)
        return q + kv + o + extra

    def mlp_params(self, width: int) -> int:
        """One feed-forward block of inner width `width`: gate+up+down (SwiGLU) or up+down."""
        mats = 3 if self.gated_mlp else 2
        bias = ((2 if self.gated_mlp else 1) * width + self.hidden_size) if self.mlp_bias else 0
        return mats * self.hidden_size * width + bias

    def expert_params(self) -> int:
        return self.mlp_params(self.moe_intermediate_size)

    def shared_expert_params(self) -> int:
        if self.shared_expert_intermediate_size:
            return self.mlp_params(self.shared_expert_intermediate_size)
        return self.num_shared_experts * self.mlp_params(self.moe_intermediate_size)

    def router_params(self) -> int:
        return self.hidden_size * self.num_experts + (self.num_experts if self.router_bias else 0)

    def norm_params(self) -> int:
        """Two RMSNorm/LayerNorm weight vectors per layer."""
        return 2 * self.hidden_size

    def layer_params(self, i: int, active: bool = False) -> int:
        """Parameters of layer i; with active=True only those one token uses (top-k experts)."""
        base = self.attention_params() + self.norm_params()
        if i in self.moe_layers:
            n = self.experts_per_token if active else self.num_experts
            return base + self.router_params() + self.shared_expert_params() + n * self.expert_params()
        return base + self.mlp_params(self.intermediate_size)

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def params_total(self) -> int:
        """All weights (embedding, layers, final norm, untied LM head); excludes DeepSeek's MTP
        module, which serving engines load only for speculative decoding."""
        return (self.embedding_params() + self.lm_head_params() + self.hidden_size
                + sum(self.layer_params(i) for i in range(self.num_layers)))

    def params_active(self) -> int:
        """Weights one token's forward uses: top-k routed (+ shared) experts, attention, norms,
        the LM head. The input embedding is a one-row lookup and is left out, as DeepSeek
        (36.6B incl. the output head, R00829's older revision; "37B") and OpenAI (gpt-oss-120b
        5.1B, R00908) count; Mistral's 12.88B for Mixtral-8x7B includes it, so presets may set
        `active_counts_embedding` to follow their publisher. A dense model uses every weight:
        its active count is its total, as model cards state it."""
        if not self.is_moe:
            return self.params_total()
        vh = self.vocab_size * self.hidden_size
        emb = vh if self.active_counts_embedding and not self.tie_word_embeddings else 0
        return (emb + vh + self.hidden_size
                + sum(self.layer_params(i, active=True) for i in range(self.num_layers)))

    # ----- KV cache -----------------------------------------------------------------------
    def kv_elements_per_token_per_layer(self) -> int:
        """K and V elements cached per token per layer, whole model (no TP split).

        Standard/GQA/MQA: 2 * kv_heads * head_dim (scaling-book, 'KV cache size').
        MLA: kv_lora_rank + qk_rope_head_dim (one latent + the decoupled rope key; DeepSeek-V2
        paper, Sec. 2.1.3; vLLM caches exactly this, 576 per layer for DeepSeek-V3).
        """
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.num_kv_heads * (self.head_dim + self.v_head_dim)


def _get(cfg: dict, key: str, default=None):
    for name in _ALIASES.get(key, (key,)):
        if cfg.get(name) is not None:
            return cfg[name]
    return default


def _positive_int(cfg: dict, key: str, path: str, default=None) -> int:
    value = _get(cfg, key, default)
    if value is None:
        raise InputError(f"{path}: config has no {key} (looked for {', '.join(_ALIASES.get(key, (key,)))})")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value <= 0:
        raise InputError(f"{path}: {key} must be a positive integer, got {value!r}")
    return int(value)


def _quantization(cfg: dict, path: str):
    q = cfg.get("quantization_config") or cfg.get("quantization")
    if not q:
        return None, "linear", False
    method = str(q.get("quant_method", q.get("quant_algo", ""))).lower()
    bits = q.get("bits") or q.get("w_bit")
    if method in ("fp8", "fbgemm_fp8") or "fp8" in method:
        return "fp8", "linear", bool(q.get("weight_block_size"))
    if method == "mxfp4":
        skip = " ".join(q.get("modules_to_not_convert") or [])
        return "fp4", ("experts" if "self_attn" in skip or "attn" in skip else "linear"), False
    if method == "compressed-tensors" and not bits:  # RedHatAI/llm-compressor checkpoints
        for group in (q.get("config_groups") or {}).values():
            w = (group or {}).get("weights") or {}
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


def model_from_config(cfg: dict, name: str = "custom", path: str = "config.json") -> ModelSpec:
    """Build a ModelSpec from a parsed HF config.json (InputError when fields are missing)."""
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: a config.json must be a JSON object")
    if isinstance(cfg.get("text_config"), dict):
        outer, cfg = cfg, {**cfg["text_config"]}
        for key in ("torch_dtype", "tie_word_embeddings", "quantization_config"):
            if key not in cfg and key in outer:
                cfg[key] = outer[key]
    arch0 = str(cfg.get("model_type", "")).lower()
    if arch0 in NOT_DECODERS or any(k in cfg for k in ("ssm_cfg", "state_size", "d_state")):
        raise InputError(f"{path}: model_type {arch0 or 'with SSM state'!r} is not an attention "
                         "decoder; sizer models transformer decoders (dense, MoE, MLA)")
    hidden = _positive_int(cfg, "hidden_size", path)
    layers = _positive_int(cfg, "num_layers", path)
    heads = _positive_int(cfg, "num_heads", path)
    kv_heads = 1 if cfg.get("multi_query") else _positive_int(cfg, "num_kv_heads", path, heads)
    if heads % kv_heads:
        raise InputError(f"{path}: {heads} attention heads are not a multiple of {kv_heads} KV heads")
    vocab = _positive_int(cfg, "vocab_size", path)
    kv_lora = int(cfg.get("kv_lora_rank") or 0)
    rope_dim = int(cfg.get("qk_rope_head_dim") or 0)
    if kv_lora:
        head_dim = int(cfg.get("qk_nope_head_dim", 0)) + rope_dim
        v_head_dim = int(cfg.get("v_head_dim") or head_dim)
    else:
        head_dim = int(cfg.get("head_dim") or cfg.get("kv_channels") or 0) or hidden // heads
        v_head_dim = head_dim
    n_exp = int(_get(cfg, "num_experts", 0) or 0)
    arch = str(cfg.get("model_type", "")).lower()
    moe_layers = ()
    moe_inter = shared_inter = 0
    if n_exp:
        top_k = _positive_int(cfg, "experts_per_token", path)
        moe_inter = int(_get(cfg, "moe_intermediate_size", 0) or 0) or _positive_int(cfg, "intermediate_size", path)
        shared_inter = int(cfg.get("shared_expert_intermediate_size") or 0)
        first_dense = int(cfg.get("first_k_dense_replace") or 0)
        dense_only = set(cfg.get("mlp_only_layers") or [])
        if cfg.get("decoder_sparse_step"):  # Qwen2/3-MoE: layer i is MoE when (i + 1) % step == 0
            step = int(cfg["decoder_sparse_step"])
            is_moe = [(i + 1) % step == 0 for i in range(layers)]
        else:  # DeepSeek: moe_layer_freq counts from layer 0, after first_k_dense_replace
            freq = int(cfg.get("moe_layer_freq") or 1)
            is_moe = [i % freq == 0 for i in range(layers)]
        moe_layers = tuple(i for i in range(layers)
                           if i >= first_dense and is_moe[i] and i not in dense_only)
        if top_k > n_exp:
            raise InputError(f"{path}: experts per token ({top_k}) exceeds experts ({n_exp})")
    else:
        top_k = 0
    inter = int(_get(cfg, "intermediate_size", 0) or 0)
    if len(moe_layers) < layers and not inter:
        raise InputError(f"{path}: config has no intermediate_size for its dense layers")
    window, sliding = 0, ()
    layer_types = cfg.get("layer_types")
    if cfg.get("sliding_window") and cfg.get("use_sliding_window", True):
        window = int(cfg["sliding_window"])
        if isinstance(layer_types, list):
            sliding = tuple(i for i, t in enumerate(layer_types) if "sliding" in str(t))
        elif arch in ("mistral", "mixtral") or cfg.get("max_window_layers") is None:
            sliding = tuple(range(layers))
        else:  # Qwen2-style: layers at or above max_window_layers use the window
            sliding = tuple(range(int(cfg["max_window_layers"]), layers))
    quant, qmodules, block_fp8 = _quantization(cfg, path)
    dtype = canonical(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16",
                      ("bf16", "fp16", "fp32"))
    return ModelSpec(
        name=name, hidden_size=hidden, num_layers=layers, num_heads=heads, num_kv_heads=kv_heads,
        head_dim=head_dim, v_head_dim=v_head_dim, intermediate_size=inter, vocab_size=vocab,
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)), dtype=dtype,
        max_position_embeddings=int(_get(cfg, "max_position_embeddings", 0) or 0),
        gated_mlp=arch not in NON_GATED,
        qkv_bias=bool(cfg.get("attention_bias", arch in ("qwen2", "qwen2_moe"))),
        o_bias=bool(cfg.get("attention_bias", False)) and arch != "qwen2",
        mlp_bias=bool(cfg.get("mlp_bias", arch == "gpt_oss")),
        qk_norm=arch in ("qwen3", "qwen3_moe"), attention_sinks=arch == "gpt_oss",
        num_experts=n_exp, experts_per_token=top_k, moe_intermediate_size=moe_inter,
        num_shared_experts=int(_get(cfg, "num_shared_experts", 0) or 0),
        shared_expert_intermediate_size=shared_inter, router_bias=arch == "gpt_oss",
        moe_layers=moe_layers, kv_lora_rank=kv_lora, q_lora_rank=int(cfg.get("q_lora_rank") or 0),
        qk_rope_head_dim=rope_dim, sliding_window=window, sliding_layers=sliding,
        quantization=quant, quantized_modules=qmodules, block_scaled_fp8=block_fp8,
    )


@lru_cache(maxsize=None)
def _index() -> dict:
    try:
        return read_json("models/index.json")
    except FileNotFoundError:
        return {}


def preset_names() -> list[str]:
    return sorted(_index())


def resolve_preset(name: str) -> str | None:
    """Preset id for a name or alias (case-insensitive), or None."""
    key = str(name).strip().lower()
    for pid, entry in _index().items():
        if key == pid or key in (a.lower() for a in entry.get("aliases", ())):
            return pid
    return None


def get_model(name_or_path: str) -> ModelSpec:
    """A preset by id/alias (`70b`, `llama-3.1-70b`, `deepseek-r1`) or a path to a config.json."""
    import json
    import os

    pid = resolve_preset(name_or_path)
    if pid is not None:
        spec = model_from_config(read_json(f"models/{pid}.json"), name=pid, path=f"data/models/{pid}.json")
        official = _index()[pid].get("official", {})
        if official.get("active_counts_embedding"):
            import dataclasses

            spec = dataclasses.replace(spec, active_counts_embedding=True)
        return spec
    looks_like_path = os.sep in str(name_or_path) or str(name_or_path).endswith(".json")
    if looks_like_path or os.path.isfile(name_or_path):
        try:
            with open(name_or_path, encoding="utf-8") as fh:
                cfg = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"config file not found: {name_or_path}") from None
        except IsADirectoryError:
            return get_model(os.path.join(name_or_path, "config.json"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{name_or_path} is not valid JSON ({exc})") from None
        stem = os.path.splitext(os.path.basename(name_or_path))[0]
        if stem == "config":  # .../Llama-3.1-8B/config.json: the folder names the model
            stem = os.path.basename(os.path.dirname(os.path.abspath(name_or_path))) or "custom"
        return model_from_config(cfg, name=stem, path=name_or_path)
    names = preset_names() + [a for e in _index().values() for a in e.get("aliases", ())]
    hint = closest_names(str(name_or_path), names)
    raise InputError(f"unknown model {name_or_path!r}" + (f"; did you mean {hint}?" if hint else "")
                     + " (see `sizer models`, or pass a path to a config.json)")
