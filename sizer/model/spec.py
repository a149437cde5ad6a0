"""ModelSpec: the shapes of a decoder-only transformer, and the parameter counts and KV elements
that follow from them exactly (they reproduce the official counts; see tests/test_models.py).

Attention (MHA/GQA/MQA, MLA), dense and MoE feed-forward layers (routed + shared experts,
leading dense layers, interleaved MoE layers), each layer's attention kind
(sizer/model/attention.py), tied embeddings and the checkpoint's own quantization. Counting is
per kind of layer, never per layer index, so a 10,000-layer config costs the same as a 2-layer
one.
"""

from bisect import bisect_left
from dataclasses import dataclass, field

from .attention import CHUNKED, FULL, SLIDING, group_counts


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
    qk_norm: bool = False  # q/k RMSNorm weights of head_dim each (Qwen3, Gemma 3)
    norms_per_layer: int = 2  # weight vectors of hidden size per layer (Gemma 2/3: 4, sandwich norms)
    attention_sinks: bool = False
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    num_shared_experts: int = 0
    shared_expert_intermediate_size: int = 0
    router_bias: bool = False
    moe_layers: tuple = ()  # sorted indices of MoE layers
    kv_lora_rank: int = 0  # MLA (DeepSeek-V2/V3): latent KV rank
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    layer_attention: tuple = ()  # one attention.LayerAttention per layer (empty: all full)
    quantization: str | None = None  # checkpoint's own weight format for linear layers
    quantized_modules: str = "linear"  # "linear" | "experts" (gpt-oss: only MoE experts)
    block_scaled_fp8: bool = False
    active_counts_embedding: bool = False  # publisher's convention for "active" (see params_active)
    arch: str = ""  # the config's model_type (engines' KV managers choose by architecture)
    mtp_layers: int = 0  # multi-token-prediction modules in the checkpoint (not in the counts)
    kv_quantization: str = ""  # the KV format the checkpoint declares ("fp8"), what "auto" means
    notes: tuple = field(default=(), compare=False)  # what was assumed or left out, said once

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    # ----- layer kinds ------------------------------------------------------------------------
    def moe_count(self, layers: range) -> int:
        """How many of `layers` are MoE layers (moe_layers is sorted: two bisections)."""
        return bisect_left(self.moe_layers, layers.stop) - bisect_left(self.moe_layers, layers.start)

    def attention_groups(self, layers: range | None = None) -> list:
        """[(LayerAttention, layer count)] over `layers` (default: all), first-seen order."""
        return group_counts(self.layer_attention, layers if layers is not None else range(self.num_layers))

    @property
    def sliding_layers(self) -> tuple:
        """Indices of the layers that attend to a bounded window (sliding or chunked)."""
        return tuple(i for i, a in enumerate(self.layer_attention) if a.kind in (SLIDING, CHUNKED))

    @property
    def sliding_window(self) -> int:
        """The largest window W of the sliding / chunked layers (0: none)."""
        return max((a.window for a in set(self.layer_attention) if a.kind in (SLIDING, CHUNKED)), default=0)

    @property
    def is_hybrid(self) -> bool:
        """Layers of more than one attention kind (the case engines' KV managers differ on)."""
        return len(set(self.layer_attention)) > 1

    @property
    def all_full(self) -> bool:
        return all(a.kind == FULL for a in set(self.layer_attention))

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
            return self.num_shared_experts * self.mlp_params(self.shared_expert_intermediate_size)
        return self.num_shared_experts * self.mlp_params(self.moe_intermediate_size)

    def router_params(self) -> int:
        return self.hidden_size * self.num_experts + (self.num_experts if self.router_bias else 0)

    def norm_params(self) -> int:
        """The RMSNorm/LayerNorm weight vectors of one layer (2, or 4 with sandwich norms)."""
        return self.norms_per_layer * self.hidden_size

    def dense_layer_params(self) -> int:
        return self.attention_params() + self.norm_params() + self.mlp_params(self.intermediate_size)

    def moe_layer_params(self, active: bool = False) -> int:
        """An MoE layer; with active=True only what one token uses (top-k experts)."""
        n = self.experts_per_token if active else self.num_experts
        return (self.attention_params() + self.norm_params() + self.router_params()
                + self.shared_expert_params() + n * self.expert_params())

    def layer_params(self, i: int, active: bool = False) -> int:
        """Parameters of layer i; with active=True only those one token uses (top-k experts)."""
        if self.moe_count(range(i, i + 1)):
            return self.moe_layer_params(active)
        return self.dense_layer_params()

    def layers_params(self, layers: range, active: bool = False) -> int:
        """Parameters of the layers in `layers` (a pipeline stage), counted per kind."""
        moe = self.moe_count(layers)
        return moe * self.moe_layer_params(active) + (len(layers) - moe) * self.dense_layer_params()

    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    def params_total(self) -> int:
        """All weights (embedding, layers, final norm, untied LM head); excludes DeepSeek's MTP
        module, which serving engines load only for speculative decoding, and any vision tower
        (the catalog says so when a config has one)."""
        return (self.embedding_params() + self.lm_head_params() + self.hidden_size
                + self.layers_params(range(self.num_layers)))

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
        return emb + vh + self.hidden_size + self.layers_params(range(self.num_layers), active=True)

    # ----- KV cache -----------------------------------------------------------------------
    def kv_elements_per_token_per_layer(self) -> int:
        """K and V elements cached per token per attention layer, whole model (no TP split).

        Standard/GQA/MQA: 2 * kv_heads * head_dim (scaling-book, 'KV cache size').
        MLA: kv_lora_rank + qk_rope_head_dim (one latent + the decoupled rope key; DeepSeek-V2
        paper, Sec. 2.1.3; vLLM caches exactly this, 576 per layer for DeepSeek-V3).
        """
        if self.is_mla:
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.num_kv_heads * (self.head_dim + self.v_head_dim)
