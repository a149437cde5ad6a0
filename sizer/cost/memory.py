"""Per-GPU memory of a split: weights, KV cache, activations and runtime overhead.

Weights and KV bytes are exact identities of the shapes (see each function). Activations and the
runtime overhead are estimates whose constants are fitted to engine logs and cited
(../shared/reference/memory_facts.json, record ids below).
"""

from dataclasses import dataclass

from sizer.model.attention import FULL, LINEAR, LayerAttention
from sizer.model.spec import ModelSpec
from sizer.model.precision import canonical, kv_bytes_per_element, weight_bytes_per_param
from sizer.model.split import Split, stage_layers

GIB = 2**30

# Runtime overhead outside the torch allocator, from vLLM's "Memory profiling results" logs:
#  - eager (no CUDA graphs), TP=1: 0.16 GiB non-torch (R03108, H100, Llama-3.2-11B, enforce_eager)
#  - CUDA graphs, TP=1: 1.79 GiB non-torch (R03098, Llama-3-8B): graphs add 1.79 - 0.16 GiB
#  - CUDA graphs, TP=2: 3.58 GiB (R03103): NCCL + custom all-reduce buffers add 1.79 GiB
CONTEXT_BYTES = int(0.16 * GIB)
CUDA_GRAPH_BYTES = int((1.79 - 0.16) * GIB)
COMM_BUFFER_BYTES = int((3.58 - 1.79) * GIB)
# Sampler working set per sequence in the profiling run: copies of fp32 logits (softmax, logprobs,
# top-k/p sorting). 10 copies reproduce vLLM's 1.26 GiB activation peak for Llama-3-8B at TP=1
# and TP=2 alike (R03099, R03104; independent of TP because logits are gathered on every rank).
SAMPLER_LOGIT_COPIES = 10


@dataclass(frozen=True)
class Precision:
    """Resolved formats: linear layers (attention/MLP), experts, embeddings/norms, KV cache."""

    linear: str
    experts: str
    base: str  # embeddings, LM head, norms, router: the dtype the model runs in
    kv: str
    block_scaled_fp8: bool = False

    def bytes(self, kind: str) -> float:
        dtype = {"linear": self.linear, "experts": self.experts, "base": self.base}[kind]
        return weight_bytes_per_param(dtype, self.block_scaled_fp8 and dtype == "fp8")


RUN_DTYPES = ("bf16", "fp16", "fp32")  # a --weight-dtype the model runs in (not a quantization)


def resolve_precision(model: ModelSpec, weight_dtype: str | None = None,
                      kv_dtype: str | None = "auto") -> Precision:
    """--weight-dtype applies to linear layers (attention + MLP + experts); without it, the
    checkpoint's own quantization_config decides (gpt-oss: MXFP4 experts only). KV `auto` is the
    dtype the model runs in: the checkpoint's, or a 16/32-bit --weight-dtype, which is the
    engine's --dtype and then also holds the norms and embeddings (vLLM: `--kv-cache-dtype auto`
    "will use model data type", ModelConfig.dtype, which --dtype sets; vllm/config/cache.py
    CacheConfig.cache_dtype). A quantized --weight-dtype (fp8, int4, ...) keeps the
    checkpoint's activation dtype. A checkpoint that declares its KV format (ModelSpec.
    kv_quantization: ModelOpt kv_cache_quant_algo FP8) makes `auto` that format, as every
    engine does (sizer/model/config.py _kv_quantization)."""
    kv = canonical(kv_dtype or "auto", ("auto", "bf16", "fp16", "fp32", "fp8", "int8"))
    w = canonical(weight_dtype) if weight_dtype else None
    run = w if w in RUN_DTYPES else model.dtype
    kv = (getattr(model, "kv_quantization", "") or run) if kv == "auto" else kv
    if weight_dtype:
        return Precision(w, w, run, kv, block_scaled_fp8=False)
    if model.quantization:
        q = model.quantization
        linear = q if model.quantized_modules == "linear" else model.dtype
        return Precision(linear, q, model.dtype, kv, model.block_scaled_fp8)
    return Precision(model.dtype, model.dtype, model.dtype, kv)


def attention_params_per_rank(model: ModelSpec, tp: int) -> tuple[float, float]:
    """(linear, base) attention parameters one TP rank holds for one layer.

    Q and O are split by heads. K/V are split by KV heads, and replicated when TP exceeds the KV
    head count: each rank keeps max(kv_heads / TP, 1) heads (vLLM QKVParallelLinear). MLA: the
    down-projections q_a and kv_a (and their norms) are replicated, q_b/kv_b/o split by heads
    (vLLM DeepseekV2MLAAttention). Norm weights stay whole on every rank.
    """
    h, nh, hd, vd = model.hidden_size, model.num_heads, model.head_dim, model.v_head_dim
    if model.is_mla:
        rope, r_kv, r_q = model.qk_rope_head_dim, model.kv_lora_rank, model.q_lora_rank
        replicated = h * (r_kv + rope) + (h * r_q if r_q else 0)
        sharded = (r_q * nh * hd if r_q else h * nh * hd) + r_kv * nh * (hd - rope + vd) + nh * vd * h
        return replicated + sharded / tp, r_kv + r_q
    kv_per_rank = max(model.num_kv_heads / tp, 1)
    q = h * nh * hd + (nh * hd if model.qkv_bias else 0)
    kv = (hd + vd) * kv_per_rank * (h + (1 if model.qkv_bias else 0))
    o = nh * vd * h
    base = (h if model.o_bias else 0) + (2 * hd if model.qk_norm else 0) + (nh / tp if model.attention_sinks else 0)
    return q / tp + kv + o / tp, base


def _layer_bytes(model: ModelSpec, moe: bool, split: Split, prec: Precision) -> float:
    """Bytes of one dense or MoE layer on one rank (the most loaded rank of its EP group)."""
    lin, base = attention_params_per_rank(model, split.tp)
    total = lin * prec.bytes("linear") + (base + model.norm_params()) * prec.bytes("base")
    if moe:
        experts_per_rank = (model.num_experts + getattr(split, "redundant_experts", 0)) / split.ep
        expert_bytes = model.expert_params() / split.expert_tp * prec.bytes("experts")
        total += experts_per_rank * expert_bytes
        total += model.shared_expert_params() / split.tp * prec.bytes("linear")
        total += model.router_params() * prec.bytes("base")
    else:
        total += model.mlp_params(model.intermediate_size) / split.tp * prec.bytes("linear")
    return total


def layer_weight_bytes(model: ModelSpec, i: int, split: Split, prec: Precision) -> float:
    """Bytes of layer i on one rank of the split (the most loaded rank of its EP group)."""
    return _layer_bytes(model, bool(model.moe_count(range(i, i + 1))), split, prec)


def stage_weight_bytes(model: ModelSpec, split: Split, prec: Precision) -> list[float]:
    """Weights per rank for each pipeline stage: its layers (counted per kind: dense or MoE);
    the vocab-parallel embedding (V/TP rows) on the first stage; final norm and LM head (V/TP
    rows) on the last; a tied head is a second copy when the first and last stages differ
    (vLLM, Megatron)."""
    emb = model.embedding_params() / split.tp * prec.bytes("base")
    dense, moe = _layer_bytes(model, False, split, prec), _layer_bytes(model, True, split, prec)
    out = []
    for s, layers in enumerate(stage_layers(model, split.pp)):
        n_moe = model.moe_count(layers)
        b = n_moe * moe + (len(layers) - n_moe) * dense
        if s == 0:
            b += emb
        if s == split.pp - 1:
            b += model.hidden_size * prec.bytes("base")
            if not model.tie_word_embeddings or split.pp > 1:
                b += model.vocab_size * model.hidden_size / split.tp * prec.bytes("base")
        out.append(b)
    return out


@dataclass(frozen=True)
class KVGroup:
    """The layers of one attention kind on one GPU of a pipeline stage, and their KV."""

    attention: LayerAttention
    layers: int
    bytes_per_token_layer: float  # one layer, one token, this GPU's share of the KV heads

    @property
    def bytes_per_token(self) -> float:
        return self.layers * self.bytes_per_token_layer

    def bytes_per_sequence(self, context: int) -> float:
        return self.bytes_per_token * self.attention.kv_tokens(context)

    def to_json(self, context: int) -> dict:
        return {"kind": self.attention.kind, "window": self.attention.window,
                "rope": self.attention.rope, "label": self.attention.label(), "layers": self.layers,
                "kv_bytes_per_token": self.bytes_per_token,
                "kv_tokens_per_sequence": self.attention.kv_tokens(context)}


def kv_bytes_per_token_layer(model: ModelSpec, split: Split, prec: Precision) -> float:
    """KV bytes one token costs in one attention layer on one GPU.

    Per layer: 2 x kv_heads x head_dim x bytes (scaling-book), with kv_heads per rank =
    max(kv_heads/TP, 1); MLA: (kv_lora_rank + rope_dim) x bytes on every TP rank (not sharded).
    """
    elem = kv_bytes_per_element(prec.kv)
    if model.is_mla:
        return (model.kv_lora_rank + model.qk_rope_head_dim) * elem
    return max(model.num_kv_heads / split.tp, 1) * (model.head_dim + model.v_head_dim) * elem


def kv_stage_groups(model: ModelSpec, split: Split, prec: Precision) -> list[tuple]:
    """For each pipeline stage, its KVGroups (one per attention kind, first-seen order;
    linear-attention layers hold no per-token KV and are left out)."""
    per_layer = kv_bytes_per_token_layer(model, split, prec)
    return [tuple(KVGroup(a, n, per_layer) for a, n in model.attention_groups(layers) if a.kind != LINEAR)
            for layers in stage_layers(model, split.pp)]


def kv_bytes_per_token(model: ModelSpec, split: Split, prec: Precision) -> tuple[float, float]:
    """(full-attention, windowed) KV bytes per cached token on one rank, on the stage with the
    most full-attention layers (it needs the most KV at long contexts; gpt-oss alternates
    sliding and full layers, so stages differ under PP). Windowed: sliding and chunked layers.
    Llama-3.1-70B bf16: 2*8*128*2*80 = 327,680 B/token; at TP=4, 81,920 per GPU.
    """
    counts = []
    for groups in kv_stage_groups(model, split, prec):
        full = sum(g.bytes_per_token for g in groups if g.attention.kind == FULL)
        counts.append((full, sum(g.bytes_per_token for g in groups) - full))
    return max(counts)


def kv_bytes_per_sequence(model: ModelSpec, split: Split, prec: Precision, context: int) -> float:
    """KV bytes one sequence of `context` tokens needs on one rank of the stage that needs the
    most: each layer keeps LayerAttention.kv_tokens(context) tokens (all of them, the last W of a
    sliding window, at most one chunk), as vLLM's hybrid KV cache manager frees the rest."""
    return max(sum(g.bytes_per_sequence(context) for g in groups)
               for groups in kv_stage_groups(model, split, prec))


def activation_bytes(model: ModelSpec, split: Split, prec: Precision, tokens: int,
                     sequences: int) -> float:
    """Peak transient activation bytes on one rank for a forward of `tokens` tokens
    (the prefill chunk / max-num-batched-tokens budget) over `sequences` sequences.

    Layer peak: residual + normed hidden (2H), plus the largest block's live tensors: QKV out +
    attention out, or the MLP's gate_up (2I/TP) + activation (I/TP), or for MoE the routed
    tokens' expert intermediates (top_k x 3 x I_e / expert_tp). FlashAttention keeps no S x S
    matrix. Sampler peak: SAMPLER_LOGIT_COPIES fp32 copies of [sequences, vocab] logits. The two
    do not coexist (the layer's tensors are freed before sampling), so the peak is their max.
    """
    act = weight_bytes_per_param(prec.base)
    h, tp = model.hidden_size, split.tp
    kv_rank = max(model.num_kv_heads / tp, 1)
    attn = (model.num_heads / tp * (model.head_dim + model.v_head_dim)
            + kv_rank * (model.head_dim + model.v_head_dim))
    mlp = 3 * model.intermediate_size / tp if model.intermediate_size else 0
    # routed rows per rank x this rank's expert width (as sizer/cost/step.py counts them)
    if not model.is_moe:
        moe = 0
    elif split.ep > 1:
        moe = model.experts_per_token / min(split.ep, split.tp) * 3 * model.moe_intermediate_size / split.expert_tp
    else:
        moe = model.experts_per_token * 3 * model.moe_intermediate_size / split.tp
    layer = tokens * act * (2 * h + max(attn, mlp, moe))
    sampler = sequences * model.vocab_size * 4 * SAMPLER_LOGIT_COPIES
    return max(layer, sampler)


def overhead_bytes(split: Split, cuda_graphs: bool = True) -> int:
    """CUDA context and workspaces, captured CUDA graphs, and communication buffers (NCCL,
    custom all-reduce) when the rank talks to others. Constants: see the top of this module."""
    comm = split.tp * split.pp > 1 or split.ep > 1
    return CONTEXT_BYTES + (CUDA_GRAPH_BYTES if cuda_graphs else 0) + (COMM_BUFFER_BYTES if comm else 0)
