"""Per-op cost of one forward step on one rank: FLOPs, bytes, and time on a Device.

Each op is costed as a roofline with two corrections that matter for inference:
- GEMM efficiency falls for skinny shapes: F_eff(M) = F x M / (M + M_half), M = token rows;
- every kernel has a floor (launch/latency), lower when the engine replays CUDA graphs.
So t = max(FLOPs / F_eff, bytes / BW, kernels x floor). FLOP counts are 2 x M x N x K per GEMM
(scaling-book, 'Transformer math'); causal prefill attention does 2 x 2 x S^2/2 x heads x d
multiply-adds per sequence (FlashAttention paper's FLOP count with the causal half); decode
attention reads every cached K/V byte once. Sizes may be numpy arrays (vectorised over batch).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OpCost:
    name: str
    time_s: object  # float or ndarray
    flops: object
    bytes: object
    bound: str  # "compute" | "memory" | "latency" | "comm"
    count: int = 1  # kernels (or collectives) summed into this row

    def to_json(self) -> dict:
        def scalar(x):
            a = np.asarray(x, dtype=float)
            return float(a) if a.ndim == 0 else a.tolist()

        return {"name": self.name, "time_s": scalar(self.time_s), "flops": scalar(self.flops),
                "bytes": scalar(self.bytes), "bound": self.bound, "count": self.count}


def _bound(t_compute, t_memory, t_floor) -> str:
    tc, tm, tf = (float(np.max(np.asarray(x, dtype=float))) for x in (t_compute, t_memory, t_floor))
    if tf >= max(tc, tm):
        return "latency"
    return "compute" if tc >= tm else "memory"


def gemm(name, dev, m, n, k, w_bytes, a_bytes, dtype, floor_s, count=1) -> OpCost:
    """A [m, k] x [k, n] GEMM whose [k, n] weight is read from HBM once (w_bytes per element)
    and whose activations are a_bytes per element; `count` identical GEMMs (one per layer)."""
    m = np.asarray(m, dtype=float)
    flops = 2.0 * m * n * k
    byts = n * k * w_bytes + (m * k + m * n) * a_bytes
    rate = dev.matmul_rate(dtype) * m / (m + dev.matmul_half_rows)
    tc = flops / np.maximum(rate, 1.0)
    tm = byts / dev.hbm_bytes_per_s
    t = np.maximum(np.maximum(tc, tm), floor_s)
    return OpCost(name, t * count, flops * count, byts * count, _bound(tc, tm, floor_s), count)


def elementwise(name, dev, nbytes, floor_s, count=1, flops=0.0) -> OpCost:
    """A bandwidth-bound kernel (norm, rotary, activation, residual add) moving nbytes."""
    nbytes = np.asarray(nbytes, dtype=float)
    tm = nbytes / dev.hbm_bytes_per_s
    t = np.maximum(tm, floor_s)
    return OpCost(name, t * count, flops * count, nbytes * count, _bound(0.0, tm, floor_s), count)


def prefill_attention(name, dev, batch, seq, heads, head_dim, v_head_dim, kv_heads, a_bytes,
                      floor_s, count=1, window=0, chunk=0) -> OpCost:
    """Causal FlashAttention over `batch` prompts of `seq` tokens with `heads` query heads on
    this rank: QK^T and PV each 2 x S x keys x d FLOPs per head, keys = the mean number of keys
    a query attends to (S/2 causal, less with a sliding window or chunked attention); reads Q,
    K, V, writes O once."""
    batch = np.asarray(batch, dtype=float)
    # mean keys per query: S/2 causal; with a window w < S, w - w^2 / (2 S) (the first w
    # queries see a growing prefix, the rest exactly w keys); chunked attention of C tokens
    # (Llama 4): each chunk is causal on its own, (q C^2 + r^2) / (2 S) for S = q C + r
    keys = seq / 2.0 if not window or seq <= window else window - window**2 / (2.0 * seq)
    if chunk and seq > chunk:
        q, r = divmod(seq, chunk)
        keys = (q * chunk**2 + r**2) / (2.0 * seq)
    flops = 2.0 * batch * heads * seq * keys * (head_dim + v_head_dim)
    byts = batch * seq * a_bytes * (heads * (head_dim + v_head_dim) + kv_heads * (head_dim + v_head_dim))
    tc = flops / dev.attention_flops_per_s
    tm = byts / dev.hbm_bytes_per_s
    t = np.maximum(np.maximum(tc, tm), floor_s)
    return OpCost(name, t * count, flops * count, byts * count, _bound(tc, tm, floor_s), count)


def decode_attention(name, dev, batch, context, kv_bytes_per_token_layer, heads, head_dim,
                     v_head_dim, floor_s, count=1) -> OpCost:
    """One new token per sequence attends over `context` cached tokens: the KV bytes of the
    layer are read once (paged attention), 2 x context x (d_k + d_v) FLOPs per head."""
    batch = np.asarray(batch, dtype=float)
    byts = batch * context * kv_bytes_per_token_layer
    flops = 2.0 * batch * heads * context * (head_dim + v_head_dim)
    tm = byts / (dev.hbm_bytes_per_s * dev.decode_attention_bw_efficiency)
    tc = flops / dev.attention_flops_per_s
    t = np.maximum(np.maximum(tm, tc), floor_s)
    return OpCost(name, t * count, flops * count, byts * count, _bound(tc, tm, floor_s), count)


def expected_experts(num_experts: int, top_k: int, tokens) -> np.ndarray:
    """Expected number of distinct experts that `tokens` tokens reach under uniform top-k
    routing: E x (1 - (1 - k/E)^tokens) (each expert is missed by a token with prob. 1 - k/E)."""
    tokens = np.asarray(tokens, dtype=float)
    return num_experts * (1.0 - (1.0 - top_k / num_experts) ** tokens)


def moe_experts(name, dev, group_tokens, routed_rows, num_experts_rank, top_k, num_experts, hidden,
                inter, w_bytes, a_bytes, dtype, floor_s, mats=3, count=1, imbalance=1.0) -> OpCost:
    """Routed experts of one rank for one step: every expert of this rank that some token of
    the expert-parallel group reaches is read once (grouped GEMM), and each routed row costs
    mats x 2 x H x I FLOPs (I = this rank's shard of the expert width). Reached experts follow
    `expected_experts` over the group's `group_tokens`; `routed_rows` is the rank's share of
    token-expert pairs, times `imbalance` (>= 1) for the most loaded rank."""
    group_tokens = np.asarray(group_tokens, dtype=float)
    reached = expected_experts(num_experts, top_k, group_tokens) * (num_experts_rank / num_experts)
    routed = np.asarray(routed_rows, dtype=float) * imbalance
    flops = 2.0 * routed * mats * hidden * inter
    byts = reached * mats * hidden * inter * w_bytes + routed * (2 * hidden + mats * inter) * a_bytes
    per_expert_rows = routed / np.maximum(reached, 1e-9)
    rate = (dev.matmul_rate(dtype) * getattr(dev, "moe_gemm_efficiency", 1.0)
            * per_expert_rows / (per_expert_rows + dev.matmul_half_rows))
    tc = flops / np.maximum(rate, 1.0)
    tm = byts / dev.hbm_bytes_per_s
    t = np.maximum(np.maximum(tc, tm), floor_s)
    return OpCost(name, t * count, flops * count, byts * count, _bound(tc, tm, floor_s), count)


def comm(name, time_s, nbytes, count=1) -> OpCost:
    return OpCost(name, np.asarray(time_s, dtype=float) * count, 0.0,
                  np.asarray(nbytes, dtype=float) * count, "comm", count)
