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

The block, its weights, shards and single-device reference are in probes/block.py; this module
holds what runs them over a process group: the traced collectives, the groups, one rank's shard
of the stack and the per-strategy runs.
"""


from dataclasses import dataclass

import torch
import torch.distributed as dist

from .block import (DTYPES, STRATEGIES, Dims, Layout, block, inputs, kv_range,  # noqa: F401
                    layer_weights, reference, rotary, tp_shard)


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

    def input_rows(self, batch: int) -> slice:
        """The batch rows this rank reads (`rows`, or the wrong replica's under the bug)."""
        r = self.rows(batch)
        if self.lay.inject == "wrong-shard" and self.lay.dp > 1 and self.lay.ep == 1:
            n = r.stop - r.start
            nxt = (self.replica + 1) % self.lay.dp
            r = slice(nxt * n, (nxt + 1) * n)
        return r

    def local_input(self, x):
        return x[self.input_rows(x.shape[0])]

    def local_routes(self, routes: dict | None, batch: int) -> dict | None:
        """The reference's expert ids for this rank's input rows and layers."""
        if not routes:
            return None
        r = self.input_rows(batch)
        return {i: routes[i][r] for i in self.layer_ids if i in routes}

    def expected(self, ref):
        """The part of the reference output this rank must hold (None: it holds none)."""
        if self.lay.pp > 1 and self.stage != self.lay.pp - 1:
            return None
        return ref[self.rows(ref.shape[0])]

    def _stack(self, x, rope, routes=None):
        for i, w in zip(self.layer_ids, self.weights):
            r = routes.get(i) if routes else None
            x = block(x, w, self.dims, rope, self.comm, self.tp_group, self.ep, routes=r)
        return x

    def forward(self, x, routes=None):
        """This rank's output (None on pipeline stages other than the last). `routes`: the
        reference's expert ids for x's rows, {layer: (rows, S, top_k)} (local_routes)."""
        rope = rotary(self.dims, x.shape[1], x.dtype, x.device)
        pp = self.lay.pp
        if pp == 1:
            return self._stack(x, rope, routes)
        micro_routes = ([{i: r.chunk(self.lay.micro)[m] for i, r in routes.items()}
                         for m in range(len(x.chunk(self.lay.micro)))] if routes else None)
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
                y = self._stack(micro[m] if s == 0 else buf, rope,
                                micro_routes[m] if micro_routes else None)
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
        routes = {}
        ref = reference(dims, x32, routes)
        rs = RankShard(dims, lay, ctx.rank, ctx.world_size, groups, torch.float32, ctx.device, comm)
        mine = rs.local_routes(routes, batch)
        out = rs.forward(rs.local_input(x32), mine)
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
        rs.forward(x, mine)  # warm-up
        times = []
        timer = ctx.timer()
        for _ in range(reps):
            _fence(ctx)
            timer.start()
            rs.forward(x, mine)
            times.append(timer.stop())
        comm.trace = []
        for _ in range(max(1, (reps + 1) // 2)):  # traced forwards: every collective timed alone
            _fence(ctx)
            rs.forward(x, mine)
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
