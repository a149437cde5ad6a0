"""Per-op cost of one forward step on one rank: FLOPs, bytes, and time on a Device.

Kernel times follow the forms fitted to vidur's per-kernel H100/A100/A40 measurements
(benchmarks/kernel_fit.py, constants in data/kernel_fit.json, sizer/hardware/kernels.py):
- GEMM: t = floor + floor_k x K + (t_mem^p + t_comp^p)^(1/p), t_mem = bytes / BW, t_comp =
  FLOPs / F_eff(M), F_eff(M) = F x M / (M + M_half). The fixed floor makes the achieved
  bandwidth grow with the bytes moved (a TP8 shard of Llama-2-70B's gate+up reaches 0.81 of
  datasheet, a TP1 one 0.90); its K term is the serial walk of one output tile down the
  reduction, which a skinny shard with a long K (QKV, down) cannot spread; the p-norm is the
  partial overlap of loads and math near the ridge (p = 1: none, p -> inf: a hard roofline).
- elementwise (norms, rotary, activation, residual add, copies): t = floor +
  max(ceil(rows / rows_per_wave) x row_bytes / row_rate, rows x row_bytes / BW). vLLM's norm,
  rotary and activation kernels run one thread block per token (csrc/layernorm_kernels.cu,
  pos_encoding_kernels.cu, activation_kernels.cu): a block walks its row at a latency-bound
  row_rate, blocks run in waves of rows_per_wave, and big batches become bandwidth-bound.
- every kernel also occupies at least the launch floor of its mode (`floor_s`: CUDA graphs or
  eager dispatch).
FLOP counts are 2 x M x N x K per GEMM (scaling-book, 'Transformer math'); causal prefill
attention does 2 x 2 x S^2/2 x heads x d multiply-adds per sequence (FlashAttention paper's FLOP
count with the causal half); decode attention reads every cached K/V byte once. Sizes may be
numpy arrays (vectorised over batch).
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


def _peak(x) -> float:
    return float(x.max()) if isinstance(x, np.ndarray) else float(x)


def _bound(t_compute, t_memory, t_floor) -> str:
    tc, tm, tf = _peak(t_compute), _peak(t_memory), _peak(t_floor)
    if tf >= max(tc, tm):
        return "latency"
    return "compute" if tc >= tm else "memory"


def gemm_time(dev, flops, nbytes, rows, dtype, k=0.0, efficiency=1.0):
    """(time, compute time, memory time) of one GEMM kernel moving `nbytes` and doing `flops`
    over `rows` token rows with reduction length `k` (module docstring; `efficiency` scales the
    compute rate, e.g. for grouped expert GEMMs). Without a fitted floor and overlap (a
    profile-built device) it is the plain roofline max(t_comp, t_mem)."""
    rows = np.asarray(rows, dtype=float)
    rate = dev.matmul_rate(dtype) * efficiency * rows / (rows + dev.matmul_half_rows)
    tc = flops / np.maximum(rate, 1.0)
    tm = nbytes / dev.hbm_bytes_per_s
    p = dev.gemm_overlap
    core = np.maximum(tc, tm) if not p else (tc**p + tm**p) ** (1.0 / p)
    return dev.gemm_floor_s + dev.gemm_floor_s_per_k * k + core, tc, tm


def gemm(name, dev, m, n, k, w_bytes, a_bytes, dtype, floor_s, count=1) -> OpCost:
    """A [m, k] x [k, n] GEMM whose [k, n] weight is read from HBM once (w_bytes per element)
    and whose activations are a_bytes per element; `count` identical GEMMs (one per layer)."""
    m = np.asarray(m, dtype=float)
    flops = 2.0 * m * n * k
    byts = n * k * w_bytes + (m * k + m * n) * a_bytes
    t, tc, tm = gemm_time(dev, flops, byts, m, dtype, k)
    t = np.maximum(t, floor_s)
    return OpCost(name, t * count, flops * count, byts * count, _bound(tc, tm, t - np.maximum(tc, tm)), count)


def elementwise_time(dev, kind, rows, row_bytes):
    """Time of one elementwise kernel of `kind` over `rows` rows of `row_bytes` bytes each
    (module docstring). A device without a fit for `kind` streams the bytes at its HBM rate."""
    rows = np.asarray(rows, dtype=float)
    fit = (dev.elementwise or {}).get(kind)
    if fit is None:
        return rows * row_bytes / dev.hbm_bytes_per_s
    waves = np.ceil(rows / fit.rows_per_wave)
    return fit.floor_s + np.maximum(waves * row_bytes / fit.row_bytes_per_s,
                                    rows * row_bytes / fit.bytes_per_s)


def elementwise(name, dev, kind, rows, row_bytes, floor_s, count=1, flops=0.0) -> OpCost:
    """A memory- or latency-bound kernel (norm, rotary, activation, residual add, copy) over
    `rows` token rows of `row_bytes` bytes read + written each."""
    rows = np.asarray(rows, dtype=float)
    nbytes = rows * row_bytes
    t_gpu = elementwise_time(dev, kind, rows, row_bytes)
    t = np.maximum(t_gpu, floor_s)
    tm = nbytes / dev.hbm_bytes_per_s
    bound = "memory" if float(np.max(tm)) >= 0.5 * float(np.max(t)) else "latency"
    return OpCost(name, t * count, flops * count, nbytes * count, bound, count)


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
    t, tc, tm = gemm_time(dev, flops, byts, per_expert_rows, dtype, hidden, getattr(dev, "moe_gemm_efficiency", 1.0))
    # two grouped GEMMs (gate+up over K = hidden, down over K = inter): each pays the fitted
    # per-GEMM floor and its K term; gemm_time charged the first
    t = np.maximum(t + dev.gemm_floor_s + dev.gemm_floor_s_per_k * inter, floor_s)
    return OpCost(name, t * count, flops * count, byts * count, _bound(tc, tm, floor_s), count)


def comm(name, time_s, nbytes, count=1) -> OpCost:
    return OpCost(name, np.asarray(time_s, dtype=float) * count, 0.0,
                  np.asarray(nbytes, dtype=float) * count, "comm", count)
