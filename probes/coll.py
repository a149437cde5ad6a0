"""Collective sweeps and the pairwise P2P matrix (nccl-tests methodology, torch.distributed calls).

Each collective is four small pieces, as in nccl-tests' `*_perf` files: how many elements a
`size_bytes` means (`SIZE_MEANING` in harness), the per-rank input, the expected output, and the
call. Values are small integers in float32 so every sum is exact and `wrong` must be 0.
The sweep runs over the whole world and over sub-groups of the first 2, 4, 8 ranks (and, across
nodes, one rank per node); every row says its group size (`ranks`) and how many nodes it spans.
"""

import torch
import torch.distributed as dist

from .device import GraphUnsupported
from .harness import OPS, Progress, group_mean, group_sum, row, sweep_sizes, time_iters

DTYPE = torch.float32
ELEM = 4
# Collectives at or below this size are timed by replaying a CUDA graph of the timed loop (as
# nccl-tests' -G graph mode does, and as engines replay decode steps): eager dispatch costs
# 10-30 us a call on the host, more than such a collective takes on NVLink, so an eager loop
# would measure PyTorch's dispatch. send_recv (batch_isend_irecv) stays eager.
GRAPH_MAX_BYTES = 1 << 20
GRAPH_OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all")


def _all_gather(out, inp, group):
    """all_gather_single on torch >= 2.13, all_gather_into_tensor before (same call), looked up
    at call time so a wrapper (probes/strict.py) sees it."""
    fn = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
    return fn(out, inp, group=group)


def _reduce_scatter(out, inp, group):
    fn = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
    return fn(out, inp, group=group)


def _pattern(n_elems: int, device) -> torch.Tensor:
    """i % 7, the index-dependent part of every input (exact in float32)."""
    return (torch.arange(n_elems, device=device) % 7).to(DTYPE)


class Coll:
    """One collective on a group of n ranks, this rank being number g in it."""

    def __init__(self, op, n, g, group, global_ranks, device):
        self.op, self.n, self.g, self.group = op, n, g, group
        self.global_ranks, self.device = global_ranks, device

    def count(self, size_bytes: int) -> int:
        """Elements of the buffer that `size_bytes` (nccl-tests size) measures, rounded down so
        it divides among the ranks; 0 when the size is too small."""
        if self.op in ("all_reduce", "send_recv"):
            return size_bytes // ELEM
        return (size_bytes // (ELEM * self.n)) * self.n

    def count_column(self, elems: int) -> int:
        """nccl-tests' `count` column: the per-rank chunk for all_gather / reduce_scatter /
        all_to_all, the whole buffer for all_reduce and send_recv."""
        return elems if self.op in ("all_reduce", "send_recv") else elems // self.n

    def buffers(self, count: int, fill: bool):
        """(send, recv) for this rank; filled with the known pattern when `fill`."""
        n, g, dev = self.n, self.g, self.device
        if self.op == "all_gather":
            chunk = count // n
            send = torch.zeros(chunk, dtype=DTYPE, device=dev)
            recv = torch.empty(chunk * n, dtype=DTYPE, device=dev)
        elif self.op == "reduce_scatter":
            send = torch.zeros(count, dtype=DTYPE, device=dev)
            recv = torch.empty(count // n, dtype=DTYPE, device=dev)
        else:
            send = torch.zeros(count, dtype=DTYPE, device=dev)
            recv = send if self.op == "all_reduce" else torch.empty_like(send)
        if fill:
            if self.op == "all_to_all":
                chunk = count // n
                dst = torch.arange(count, device=dev) // chunk
                send.copy_(g * n + dst + 100 * _pattern(count, dev))
            else:
                send.copy_((g + 1) + _pattern(send.numel(), dev))
        return send, recv

    def expected(self, recv: torch.Tensor) -> torch.Tensor:
        """What `recv` must hold after one call on filled buffers."""
        n, g, dev, m = self.n, self.g, self.device, recv.numel()
        if self.op == "all_reduce":
            return n * (n + 1) / 2 + n * _pattern(m, dev)
        if self.op == "all_gather":
            chunk = m // n
            src = torch.arange(m, device=dev) // chunk
            return (src + 1) + _pattern(chunk, dev).repeat(n)
        if self.op == "reduce_scatter":
            idx = torch.arange(g * m, (g + 1) * m, device=dev) % 7
            return n * (n + 1) / 2 + n * idx.to(DTYPE)
        if self.op == "all_to_all":
            chunk = m // n
            src = torch.arange(m, device=dev) // chunk
            idx = (torch.arange(m, device=dev) % chunk + g * chunk) % 7
            return src * n + g + 100 * idx.to(DTYPE)
        if self.op == "send_recv":
            return ((g - 1) % n + 1) + _pattern(m, dev)
        raise ValueError(self.op)

    def call(self, send, recv):
        grp = self.group
        if self.op == "all_reduce":
            dist.all_reduce(send, group=grp)
        elif self.op == "all_gather":
            _all_gather(recv, send, group=grp)
        elif self.op == "reduce_scatter":
            _reduce_scatter(recv, send, group=grp)
        elif self.op == "all_to_all":
            dist.all_to_all_single(recv, send, group=grp)
        elif self.op == "send_recv":  # ring: send to g+1, receive from g-1 (nccl-tests sendrecv)
            to = self.global_ranks[(self.g + 1) % self.n]
            frm = self.global_ranks[(self.g - 1) % self.n]
            ops = [dist.P2POp(dist.isend, send, to, group=grp),
                   dist.P2POp(dist.irecv, recv, frm, group=grp)]
            for req in dist.batch_isend_irecv(ops):
                req.wait()

    def check(self, count: int) -> int:
        """Elements of one fresh run that differ from the expected values (on this rank)."""
        send, recv = self.buffers(count, fill=True)
        self.call(send, recv)
        return int((recv != self.expected(recv)).sum().item())


def plan_groups(world: int, nodes: int) -> list[tuple[list[int], int]]:
    """(global ranks, nodes spanned) of every group swept: the world, the first 2/4/8 ranks,
    and one rank per node when there are several nodes. Rank 0 is in every group."""
    per_node = max(1, world // max(1, nodes))
    out, seen = [], set()

    def add(ranks):
        if len(ranks) >= 2 and tuple(ranks) not in seen:
            seen.add(tuple(ranks))
            out.append((list(ranks), len({r // per_node for r in ranks})))

    add(list(range(world)))
    for k in (2, 4, 8):
        if k < world:
            add(list(range(k)))
    if nodes > 1:
        add([i * per_node for i in range(nodes)])
    return out


def iters_for(size_bytes: int, quick: bool, gpu: bool) -> tuple[int, int]:
    """(warmup, iters): nccl-tests' -w 5 -n 20 on GPUs, fewer for big CPU messages/--quick."""
    if gpu:
        return (5, 20) if size_bytes <= 256 << 20 else (2, 5)
    if quick:
        return (1, 3) if size_bytes >= 1 << 20 else (2, 5)
    return (2, 10) if size_bytes < 4 << 20 else (1, 4)


def _timed(ctx, coll, count: int, size: int, quick: bool, grp) -> tuple[float, str]:
    """(seconds per call, timing mode) of one collective at `count` elements: a CUDA-graph
    replay of the timed loop for small messages on a GPU, else an eager loop; both after a
    warm-up and a group barrier (harness.time_iters)."""
    gpu = ctx.dev.supports_graphs
    send, recv = coll.buffers(count, fill=False)
    warm, iters = iters_for(size, quick, ctx.device.type == "cuda")
    mode = "eager"
    if gpu and size <= GRAPH_MAX_BYTES and coll.op in GRAPH_OPS:
        replay, why = None, ""
        try:
            replay = ctx.dev.capture(lambda: coll.call(send, recv), iters)
        except (RuntimeError, GraphUnsupported) as exc:
            why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        # Every rank of the group replays, or every rank runs eagerly: a mix would issue
        # different numbers of collectives and hang the group.
        if group_sum(ctx, replay is None, grp) == 0:
            return time_iters(ctx, replay, 1, 3, grp, barrier=True) / iters, "cuda_graph"
        mode = f"eager (graph capture failed{': ' + why if why else ' on a peer'})"
    return time_iters(ctx, lambda: coll.call(send, recv), warm, iters, grp, barrier=True), mode


def sweep_collectives(ctx, max_bytes: int, quick: bool, ops=OPS, min_bytes: int = 8,
                      factor: int = 2, checkpoint=None) -> list[dict]:
    """Every op over every size for every group; rank 0 returns the rows (others: their own).
    `checkpoint(rows)` is called after each (group, op) so an interrupted run keeps them."""
    groups = plan_groups(ctx.world_size, ctx.nodes)
    handles = [(ranks, span, dist.new_group(ranks)) for ranks, span in groups]
    sizes = sweep_sizes(min_bytes, max_bytes, factor)
    prog = Progress("coll", len(handles) * len(ops) * len(sizes), enabled=ctx.rank == 0)
    rows = []
    for ranks, span, grp in handles:
        member = ctx.rank in ranks
        for op in ops:
            coll = (Coll(op, len(ranks), ranks.index(ctx.rank), grp, ranks, ctx.device)
                    if member else None)
            for size in sizes:
                prog.step(note=f"{op} n={len(ranks)} {size}B")
                if not member:
                    continue
                count = coll.count(size)
                if count < 1 or (op in ("all_gather", "reduce_scatter", "all_to_all")
                                 and count < len(ranks)):
                    continue
                t, mode = _timed(ctx, coll, count, size, quick, grp)
                wrong = coll.check(count)
                t_mean = group_mean(ctx, t, grp)
                wrong = group_sum(ctx, wrong, grp)
                rows.append(row(op, count * ELEM, coll.count_column(count), "float", len(ranks),
                                op == "all_reduce", t_mean, wrong, nodes=span, timing=mode))
            if checkpoint is not None and member:
                checkpoint(rows)
    prog.close()
    return rows


def p2p_matrix(ctx, big_bytes: int, iters: int = 5) -> list[dict]:
    """Unidirectional bandwidth (big messages) and latency (8-byte ping-pong / 2) for every
    ordered pair src < dst; a world barrier between pairs keeps pairs from overlapping."""
    n, me, dev = ctx.world_size, ctx.rank, ctx.device
    big = torch.ones(max(1, big_bytes // ELEM), dtype=DTYPE, device=dev)
    small = torch.ones(2, dtype=DTYPE, device=dev)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    prog = Progress("p2p", len(pairs), enabled=me == 0)
    out = []
    for src, dst in pairs:
        prog.step(note=f"{src}<->{dst}")
        if me in (src, dst):
            peer = dst if me == src else src

            def push():
                (dist.send if me == src else dist.recv)(big, peer)

            def pingpong():
                if me == src:
                    dist.send(small, peer)
                    dist.recv(small, peer)
                else:
                    dist.recv(small, peer)
                    dist.send(small, peer)

            t_bw = time_iters(ctx, push, 1, iters)
            t_rt = time_iters(ctx, pingpong, 2, iters * 2)
            out.append({"src": src, "dst": dst, "bytes": big.numel() * ELEM,
                        "time_us": t_bw * 1e6, "bw_GBps": big.numel() * ELEM / t_bw / 1e9,
                        "latency_us": t_rt / 2 * 1e6, "rank": me})
        dist.barrier()
    prog.close()
    return out


def merge_p2p(per_rank: list[list[dict]]) -> list[dict]:
    """One row per pair: the mean of the sender's and receiver's views."""
    by_pair = {}
    for rows in per_rank:
        for r in rows or ():
            by_pair.setdefault((r["src"], r["dst"]), []).append(r)
    out = []
    for (src, dst), views in sorted(by_pair.items()):
        k = len(views)
        t = sum(v["time_us"] for v in views) / k
        out.append({"src": src, "dst": dst, "bytes": views[0]["bytes"], "time_us": t,
                    "bw_GBps": views[0]["bytes"] / (t * 1e-6) / 1e9,
                    "latency_us": sum(v["latency_us"] for v in views) / k})
    return out
