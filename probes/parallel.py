"""The parallel strategies, run for real: a transformer block stack sharded over a process group.

One Llama/Mixtral-style block (RMSNorm, GQA attention with rotary, SwiGLU MLP or a top-k routed
MoE layer) and its shardings, as plain torch functions over torch.distributed:

* dp    -- the batch is split over the ranks; no communication in the forward.
* tp    -- Megatron-LM tensor parallelism (Shoeybi et al. 2019, sec. 3): Q/K/V and gate/up are
           split by columns (heads / FFN width), O and down by rows, and one all-reduce sums the
           partial outputs of each sub-layer. MoE experts are cut the same way inside each expert.
* pp    -- stages of consecutive layers; micro-batches run fill-run-drain (GPipe forward,
           Huang et al. 2019, Fig. 2); each clock's sends and receives go in one
           batch_isend_irecv.
* ep    -- expert parallelism as the serving engines run it (attention data-parallel, experts
           split over the same ranks): all-to-all dispatch of the routed token copies, local
           experts, all-to-all combine (GShard, Lepikhin et al. 2020, sec. 2.2).
* tp+pp -- TP groups inside pipeline stages.

Every weight is drawn from a generator seeded by (seed, layer), so each rank builds the full
weights and keeps its shard, and `reference` computes the same stack on one device. An
`inject` of "wrong-shard" takes one shard from the neighbouring rank (the check must catch it).
"""

from dataclasses import dataclass
import math

import torch
import torch.distributed as dist
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


# ----- communication, optionally traced -----------------------------------------------------

@dataclass
class Comm:
    """The collectives of a forward. With `trace` a list, each call is synchronised, timed on
    its own and appended as (op, label, bytes, seconds); bytes follow nccl-tests' size
    (all_reduce: the buffer; all_to_all: this rank's send buffer; send_recv: bytes sent)."""

    ctx: object = None
    trace: list | None = None

    def _fence(self, group):
        t = torch.zeros(1, device=self.ctx.device)
        dist.all_reduce(t, group=group)
        self.ctx.sync()

    def _timed(self, op, label, nbytes, call, group):
        if self.trace is None:
            return call()
        # Everyone in the group arrives first, so the time is the collective's, not the wait
        # for a slower peer's compute.
        self._fence(group)
        timer = self.ctx.timer()
        timer.start()
        out = call()
        self.trace.append((op, label, int(nbytes), timer.stop()))
        return out

    def all_reduce(self, t, group, label):
        if group is None:
            return t
        self._timed("all_reduce", label, t.numel() * t.element_size(),
                    lambda: dist.all_reduce(t, group=group), group)
        return t

    def all_to_all(self, out, inp, out_splits, in_splits, group, label):
        self._timed("all_to_all", label, inp.numel() * inp.element_size(),
                    lambda: dist.all_to_all_single(out, inp, out_splits, in_splits, group=group),
                    group)
        return out

    def p2p(self, ops, nbytes, label):
        """One pipeline clock's sends and receives; every rank calls it every clock (with no ops
        when idle) so that a traced run can line all ranks up first. Only sends are recorded."""
        def call():
            if ops:
                for req in dist.batch_isend_irecv(ops):
                    req.wait()
        if self.trace is None or not nbytes:
            if self.trace is not None:
                self._fence(dist.group.WORLD)
            return call()
        self._timed("send_recv", label, nbytes, call, dist.group.WORLD)


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


def route(h, router, top_k):
    """Top-k experts per token and their softmax weights over the chosen logits (Mixtral)."""
    top = (h @ router).float().topk(top_k, dim=-1)
    return top.indices, torch.softmax(top.values, dim=-1).to(h.dtype)


def run_experts(rows, expert_ids, w, first: int):
    """SwiGLU of each row by its expert; w holds experts first, first+1, ... of the model."""
    out = torch.zeros_like(rows)
    for j in range(w["eg"].shape[0]):
        sel = (expert_ids == first + j).nonzero(as_tuple=True)[0]
        if sel.numel():
            xe = rows[sel]
            out[sel] = (F.silu(xe @ w["eg"][j]) * (xe @ w["eu"][j])) @ w["ed"][j]
    return out


def moe(x, w, dims: Dims, comm=None, ep_group=None, ep: int = 1, ep_rank: int = 0, first: int = 0):
    """Routed experts of x (B, S, H). With ep > 1 the token copies go to the rank holding their
    expert (all_to_all dispatch), come back after it (combine), and are summed by their weights."""
    shape = x.shape
    h = rmsnorm(x, w["norm2"]).reshape(-1, shape[-1])
    idx, gate = route(h, w["router"], dims.top_k)
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


def block(x, w, dims: Dims, rope, comm, tp_group=None, ep=None):
    """One layer: x + attn(x), then x + mlp(x) or x + moe(x); under TP each sub-layer's partial
    sum is all-reduced once (Megatron's g operator). `ep` = (group, degree, rank, first expert)."""
    x = x + comm.all_reduce(attention(x, w, dims, rope), tp_group, "tp_all_reduce")
    if "router" in w:
        if ep is not None:
            y = moe(x, w, dims, comm, ep[0], ep[1], ep[2], ep[3])
        else:
            y = moe(x, w, dims)
    else:
        y = mlp(x, w)
    return x + comm.all_reduce(y, tp_group, "tp_all_reduce")


def inputs(dims: Dims, batch: int, seq: int, dtype, device):
    """The hidden states entering the stack (seeded), shape (batch, seq, hidden)."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(dims.seed * 100003 + 99991)
    return torch.randn(batch, seq, dims.hidden, generator=g, device=device).to(dtype)


def reference(dims: Dims, x):
    """The whole stack on one device: the answer every strategy must reproduce (each layer's
    full weights are drawn when it runs, so only one layer is held at a time)."""
    rope = rotary(dims, x.shape[1], x.dtype, x.device)
    comm = Comm()
    for i in range(dims.layers):
        x = block(x, layer_weights(dims, i, x.dtype, x.device), dims, rope, comm)
    return x


# ----- one rank's share of a layout ---------------------------------------------------------

def make_groups(world: int, layouts) -> dict:
    """Every TP sub-group the layouts need, keyed by (tp, stage). Collective call: every rank
    creates every group, in the same order (torch.distributed.new_group's contract)."""
    groups = {}
    for lay in layouts:
        if lay.tp > 1 and lay.tp < world:
            for s in range(world // lay.tp):
                key = (lay.tp, s)
                if key not in groups:
                    groups[key] = dist.new_group(list(range(s * lay.tp, (s + 1) * lay.tp)))
    return groups


class RankShard:
    """Rank `rank`'s weights and forward under `lay`. Rank order: tp fastest, then stage, then
    data-parallel replica (Megatron's default)."""

    def __init__(self, dims: Dims, lay: Layout, rank: int, world: int, groups: dict, dtype, device,
                 comm: Comm):
        self.dims, self.lay, self.rank, self.comm = dims, lay, rank, comm
        self.tp_rank = rank % lay.tp
        self.stage = (rank // lay.tp) % lay.pp
        self.replica = rank // (lay.tp * lay.pp)
        bug = lay.inject == "wrong-shard"
        self.tp_group = None
        if lay.tp > 1:
            self.tp_group = dist.group.WORLD if lay.tp == world else groups[(lay.tp, self.stage)]
        per = dims.layers // lay.pp
        stage = (self.stage + 1) % lay.pp if bug and lay.pp > 1 else self.stage
        self.layer_ids = list(range(stage * per, (stage + 1) * per))
        self.ep = None
        first = 0
        if lay.ep > 1:
            n = dims.experts // lay.ep
            owner = (self.replica + 1) % lay.ep if bug else self.replica
            first = owner * n
            self.ep = (dist.group.WORLD, lay.ep, self.replica, first)
        self.weights = []
        for i in self.layer_ids:
            w = tp_shard(layer_weights(dims, i, device=device), dims, lay.tp, self.tp_rank, lay.inject)
            if self.ep is not None and "router" in w:
                w.update(eg=w["eg"][first:first + n], eu=w["eu"][first:first + n],
                         ed=w["ed"][first:first + n])
            self.weights.append({k: v.to(dtype=dtype).contiguous() for k, v in w.items()})
            del w

    def rows(self, batch: int) -> slice:
        """The batch rows this rank computes (DP / EP replicas hold batch / dp each)."""
        n = batch // self.lay.dp
        return slice(self.replica * n, (self.replica + 1) * n)

    def local_input(self, x):
        r = self.rows(x.shape[0])
        if self.lay.inject == "wrong-shard" and self.lay.dp > 1 and self.lay.ep == 1:
            n = r.stop - r.start
            nxt = (self.replica + 1) % self.lay.dp
            r = slice(nxt * n, (nxt + 1) * n)
        return x[r]

    def expected(self, ref):
        """The part of the reference output this rank must hold (None: it holds none)."""
        if self.lay.pp > 1 and self.stage != self.lay.pp - 1:
            return None
        return ref[self.rows(ref.shape[0])]

    def _stack(self, x, rope):
        for w in self.weights:
            x = block(x, w, self.dims, rope, self.comm, self.tp_group, self.ep)
        return x

    def forward(self, x):
        """This rank's output (None on pipeline stages other than the last)."""
        rope = rotary(self.dims, x.shape[1], x.dtype, x.device)
        pp = self.lay.pp
        if pp == 1:
            return self._stack(x, rope)
        micro = x.chunk(self.lay.micro)
        m_count, s = len(micro), self.stage
        nxt, prv = self.rank + self.lay.tp, self.rank - self.lay.tp
        outs, pending = [], None
        for clock in range(m_count + pp - 1):  # fill, run, drain
            m = clock - s
            ops, buf, sent = [], None, 0
            if pending is not None:
                ops.append(dist.P2POp(dist.isend, pending, nxt))
                sent = pending.numel() * pending.element_size()
            if s > 0 and 0 <= m < m_count:
                buf = torch.empty_like(micro[m])
                ops.append(dist.P2POp(dist.irecv, buf, prv))
            self.comm.p2p(ops, sent, "pp_send_recv")
            pending = None
            if 0 <= m < m_count:
                y = self._stack(micro[m] if s == 0 else buf, rope)
                if s == pp - 1:
                    outs.append(y)
                else:
                    pending = y.contiguous()
        return torch.cat(outs) if outs else None


def _fence(ctx):
    """Every rank here, and its device idle (a one-element all-reduce, safe on NCCL and gloo)."""
    t = torch.zeros(1, device=ctx.device)
    dist.all_reduce(t)
    ctx.sync()


def run_layout(ctx, dims: Dims, lay: Layout, groups, batch: int, seq: int, dtype: str,
               reps: int) -> dict:
    """Check (fp32), time (`dtype`, `reps` times) and trace one layout on this rank."""
    comm = Comm(ctx)
    with torch.no_grad():
        x32 = inputs(dims, batch, seq, torch.float32, ctx.device)
        ref = reference(dims, x32)
        rs = RankShard(dims, lay, ctx.rank, ctx.world_size, groups, torch.float32, ctx.device, comm)
        out = rs.forward(rs.local_input(x32))
        want = rs.expected(ref)
        err = ref_max = None
        if want is not None:
            err = float((out - want).abs().max())
            ref_max = float(want.abs().max())
        del ref, out
        if dtype != "fp32":
            rs = RankShard(dims, lay, ctx.rank, ctx.world_size, groups, DTYPES[dtype], ctx.device, comm)
        x = rs.local_input(inputs(dims, batch, seq, DTYPES[dtype], ctx.device)) if dtype != "fp32" \
            else rs.local_input(x32)
        rs.forward(x)  # warm-up
        times = []
        timer = ctx.timer()
        for _ in range(reps):
            _fence(ctx)
            timer.start()
            rs.forward(x)
            times.append(timer.stop())
        comm.trace = []
        for _ in range(max(1, (reps + 1) // 2)):  # traced forwards: every collective timed alone
            _fence(ctx)
            rs.forward(x)
        trace, comm.trace = comm.trace, None
    return {"rank": ctx.rank, "max_abs_err": err, "ref_max": ref_max, "times_s": times,
            "trace": trace}


def run_all(ctx, dims: Dims, layouts, batch: int, seq: int, dtype: str, reps: int):
    """Every layout on this rank; rank 0 returns [[per-rank result, ...] per layout]."""
    groups = make_groups(ctx.world_size, layouts)
    mine = [run_layout(ctx, dims, lay, groups, batch, seq, dtype, reps) for lay in layouts]
    every = [None] * ctx.world_size
    dist.all_gather_object(every, mine)
    return [[every[r][i] for r in range(ctx.world_size)] for i in range(len(layouts))] \
        if ctx.rank == 0 else None
