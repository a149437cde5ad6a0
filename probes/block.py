"""One Llama/Mixtral-style transformer block and its shards, as plain torch functions.

RMSNorm, GQA attention with rotary, a SwiGLU MLP or a top-k routed MoE layer; the Megatron-LM
column/row cuts of each weight (Shoeybi et al. 2019, sec. 3) and the single-device `reference`
the sharded runs of probes/parallel.py are checked against. Every weight is drawn from a
generator seeded by (seed, layer), so each rank builds the full weights and keeps its shard. An
`inject` of "wrong-shard" takes one shard from the neighbouring rank (the check must catch it).
Communication enters only through the `comm` argument (probes/parallel.py's Comm).
"""

from dataclasses import dataclass
import math

import torch
import torch.nn.functional as F

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
STRATEGIES = ("dp", "tp", "pp", "ep", "tp+pp")


@dataclass(frozen=True)
class Dims:
    """Shapes of the stack (elements); moe_layers holds the indices of MoE layers."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    inter: int
    experts: int = 0
    top_k: int = 0
    moe_inter: int = 0
    moe_layers: tuple = ()
    seed: int = 0
    rope_theta: float = 10000.0


@dataclass(frozen=True)
class Layout:
    """How one strategy places the stack on the world: degrees, micro-batches, the bug."""

    strategy: str
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    micro: int = 1
    inject: str | None = None


# ----- weights ------------------------------------------------------------------------------

def layer_weights(dims: Dims, i: int, dtype=torch.float32, device="cpu") -> dict:
    """Full (unsharded) weights of layer i, N(0, 1/fan_in) so activations keep their scale.
    Drawn on `device` by a generator seeded by (seed, i): every rank of one device type draws
    the same numbers."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(dims.seed * 100003 + i)
    h, d = dims.hidden, dims.head_dim

    def w(*shape):
        return torch.randn(*shape, generator=g, device=device) / math.sqrt(shape[-2])

    def norm():
        return 1 + 0.1 * torch.randn(h, generator=g, device=device)

    out = {"norm1": norm(), "wq": w(h, dims.heads * d), "wk": w(h, dims.kv_heads * d),
           "wv": w(h, dims.kv_heads * d), "wo": w(dims.heads * d, h), "norm2": norm()}
    if i in dims.moe_layers:
        e, f = dims.experts, dims.moe_inter
        out.update(router=w(h, e), eg=w(e, h, f), eu=w(e, h, f), ed=w(e, f, h))
    else:
        out.update(wg=w(h, dims.inter), wu=w(h, dims.inter), wd=w(dims.inter, h))
    return {k: v.to(dtype=dtype) for k, v in out.items()}


def kv_range(dims: Dims, tp: int, r: int) -> tuple[int, int]:
    """KV heads a TP rank needs: those its query heads read (replicated when TP > kv heads,
    as vLLM's QKVParallelLinear does)."""
    hq, group = dims.heads // tp, dims.heads // dims.kv_heads
    return (r * hq) // group, ((r + 1) * hq - 1) // group + 1


def tp_shard(w: dict, dims: Dims, tp: int, r: int, inject=None) -> dict:
    """Rank r's Megatron shard: column-parallel Q/K/V, gate/up (and expert gate/up), row-parallel
    O and down; norms and router replicated. "wrong-shard" takes gate/up from rank r+1."""
    if tp == 1:
        return dict(w)
    d, hq = dims.head_dim, dims.heads // tp
    k0, k1 = kv_range(dims, tp, r)
    col = (r + 1) % tp if inject == "wrong-shard" else r
    out = {"norm1": w["norm1"], "norm2": w["norm2"], "wq": w["wq"][:, r * hq * d:(r + 1) * hq * d],
           "wk": w["wk"][:, k0 * d:k1 * d], "wv": w["wv"][:, k0 * d:k1 * d],
           "wo": w["wo"][r * hq * d:(r + 1) * hq * d]}
    if "router" in w:
        f = dims.moe_inter // tp
        out.update(router=w["router"], eg=w["eg"][:, :, col * f:(col + 1) * f],
                   eu=w["eu"][:, :, col * f:(col + 1) * f], ed=w["ed"][:, r * f:(r + 1) * f])
    else:
        f = dims.inter // tp
        out.update(wg=w["wg"][:, col * f:(col + 1) * f], wu=w["wu"][:, col * f:(col + 1) * f],
                   wd=w["wd"][r * f:(r + 1) * f])
    return {k: v.contiguous() for k, v in out.items()}


# ----- the block ----------------------------------------------------------------------------

def rmsnorm(x, w, eps=1e-6):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotary(dims: Dims, seq: int, dtype, device):
    """cos, sin of shape (seq, head_dim) for rotate-half RoPE (Su et al. 2021; Llama's layout)."""
    inv = 1.0 / dims.rope_theta ** (torch.arange(0, dims.head_dim, 2, dtype=torch.float32) / dims.head_dim)
    ang = torch.outer(torch.arange(seq, dtype=torch.float32), inv)
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(device=device, dtype=dtype), ang.sin().to(device=device, dtype=dtype)


def _rope(x, cos, sin):
    a, b = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-b, a], dim=-1) * sin


def attention(x, w, dims: Dims, rope):
    """Causal GQA attention of the heads whose weights `w` holds; x is (B, S, H)."""
    bsz, s, _ = x.shape
    d = dims.head_dim
    nh, nkv = w["wq"].shape[1] // d, w["wk"].shape[1] // d
    h = rmsnorm(x, w["norm1"])
    q = (h @ w["wq"]).view(bsz, s, nh, d).transpose(1, 2)
    k = (h @ w["wk"]).view(bsz, s, nkv, d).transpose(1, 2)
    v = (h @ w["wv"]).view(bsz, s, nkv, d).transpose(1, 2)
    q, k = _rope(q, *rope), _rope(k, *rope)
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=nh != nkv)
    return a.transpose(1, 2).reshape(bsz, s, nh * d) @ w["wo"]


def mlp(x, w):
    h = rmsnorm(x, w["norm2"])
    return (F.silu(h @ w["wg"]) * (h @ w["wu"])) @ w["wd"]


def route(h, router, top_k, forced=None):
    """Top-k experts per token and their softmax weights over the chosen logits (Mixtral).

    `forced` (tokens x top_k expert ids) replaces the top-k choice: a sharded run routes as the
    reference did. Exact top-k on fp32 logits is fragile at near-ties -- on a GPU the sharded
    run's GEMMs sum in another order than the reference's (other shapes, other cuBLAS kernels),
    a 1-ulp change flips an expert, and a correct forward would report a mismatch. The gate
    weights are still computed from this run's own logits."""
    logits = (h @ router).float()
    if forced is None:
        top = logits.topk(top_k, dim=-1)
        return top.indices, torch.softmax(top.values, dim=-1).to(h.dtype)
    idx = forced.to(device=logits.device, dtype=torch.long)
    return idx, torch.softmax(logits.gather(-1, idx), dim=-1).to(h.dtype)


def run_experts(rows, expert_ids, w, first: int):
    """SwiGLU of each row by its expert; w holds experts first, first+1, ... of the model."""
    out = torch.zeros_like(rows)
    for j in range(w["eg"].shape[0]):
        sel = (expert_ids == first + j).nonzero(as_tuple=True)[0]
        if sel.numel():
            xe = rows[sel]
            out[sel] = (F.silu(xe @ w["eg"][j]) * (xe @ w["eu"][j])) @ w["ed"][j]
    return out


def moe(x, w, dims: Dims, comm=None, ep_group=None, ep: int = 1, ep_rank: int = 0, first: int = 0,
        routes=None, record=None):
    """Routed experts of x (B, S, H). With ep > 1 the token copies go to the rank holding their
    expert (all_to_all dispatch), come back after it (combine), and are summed by their weights.
    `routes` (B, S, top_k): the expert ids to use (see route); `record`: a list that receives
    this call's ids, shaped (B, S, top_k)."""
    shape = x.shape
    h = rmsnorm(x, w["norm2"]).reshape(-1, shape[-1])
    forced = None if routes is None else routes.reshape(-1, dims.top_k)
    idx, gate = route(h, w["router"], dims.top_k, forced)
    if record is not None:
        record.append(idx.view(*shape[:-1], dims.top_k))
    rows, eids = h.repeat_interleave(dims.top_k, dim=0), idx.reshape(-1)
    if ep == 1:
        y = run_experts(rows, eids, w, first)
    else:
        per = dims.experts // ep
        dest = eids // per
        order = torch.argsort(dest, stable=True)
        send_counts = torch.bincount(dest, minlength=ep)
        recv_counts = torch.empty_like(send_counts)
        comm.all_to_all(recv_counts, send_counts, None, None, ep_group, "ep_counts")
        ins, outs = send_counts.tolist(), recv_counts.tolist()
        # Each row travels with its expert id in one extra column (DeepEP's dispatch also sends
        # topk_idx with the data); ids < 2^8 are exact in bf16/fp16/fp32.
        send = torch.cat([rows[order], eids[order].to(rows.dtype).unsqueeze(1)], dim=1)
        recv = rows.new_empty(sum(outs), shape[-1] + 1)
        comm.all_to_all(recv, send, outs, ins, ep_group, "ep_dispatch")
        done = run_experts(recv[:, :-1], recv[:, -1].long(), w, first)
        back = rows.new_empty(rows.shape)
        comm.all_to_all(back, done, ins, outs, ep_group, "ep_combine")
        y = torch.empty_like(back)
        y[order] = back
    out = (y.view(-1, dims.top_k, shape[-1]) * gate.unsqueeze(-1)).sum(1)
    return out.view(shape)


class _Local:
    """The communication of a one-device run: there is none (the reference's `comm`)."""

    @staticmethod
    def all_reduce(t, group, label):
        assert group is None, "the single-device reference has no process group"
        return t


def block(x, w, dims: Dims, rope, comm, tp_group=None, ep=None, routes=None, record=None):
    """One layer: x + attn(x), then x + mlp(x) or x + moe(x); under TP each sub-layer's partial
    sum is all-reduced once (Megatron's g operator). `ep` = (group, degree, rank, first expert);
    `routes` / `record`: the MoE layer's forced / recorded expert ids (moe)."""
    x = x + comm.all_reduce(attention(x, w, dims, rope), tp_group, "tp_all_reduce")
    if "router" in w:
        if ep is not None:
            y = moe(x, w, dims, comm, ep[0], ep[1], ep[2], ep[3], routes=routes, record=record)
        else:
            y = moe(x, w, dims, routes=routes, record=record)
    else:
        y = mlp(x, w)
    return x + comm.all_reduce(y, tp_group, "tp_all_reduce")


def inputs(dims: Dims, batch: int, seq: int, dtype, device):
    """The hidden states entering the stack (seeded), shape (batch, seq, hidden)."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(dims.seed * 100003 + 99991)
    return torch.randn(batch, seq, dims.hidden, generator=g, device=device).to(dtype)


def reference(dims: Dims, x, routes: dict | None = None):
    """The whole stack on one device: the answer every strategy must reproduce (each layer's
    full weights are drawn when it runs, so only one layer is held at a time). `routes`, a dict,
    receives each MoE layer's expert ids {layer: (B, S, top_k)} for the sharded runs to reuse."""
    rope = rotary(dims, x.shape[1], x.dtype, x.device)
    comm = _Local()
    for i in range(dims.layers):
        got = [] if routes is not None else None
        x = block(x, layer_weights(dims, i, x.dtype, x.device), dims, rope, comm, record=got)
        if got:
            routes[i] = got[0]
    return x
