"""Placement: which GPUs a replica's TP groups, pipeline stages and EP groups occupy.

Engines number ranks with tensor parallelism innermost, then pipeline stages, then data-parallel
replicas (vLLM and Megatron-LM: rank = (dp * pp + stage) * tp + tp_rank), and launchers fill a
node before the next. So a TP group takes consecutive GPUs, and we order the GPUs of a node so that
consecutive means *close*: same NVLink island (pair), then same socket, then the rest. A TP group
that does not fit a socket or a node therefore crosses the slow link, and pays for it in
sizer.collectives. Expert parallelism, as vLLM and SGLang build it, spans the TP x DP ranks of one
pipeline stage.
"""

from dataclasses import dataclass

from sizer.errors import InputError


@dataclass(frozen=True)
class Layout:
    """GPU indices (global, as in the Topology) used by the first replica and its stage peers.

    Rank r runs on GPU (r // per) x per + local[r % per] (nodes are identical; `local` is
    local_order's ordering of a node), so a layout of a million ranks is a few tuples: only the
    first replica's groups are spelled out, every other position is computed (issue #16: a
    65,536-GPU recommend spent seconds listing every GPU of every replica)."""

    tp: int
    pp: int
    dp: int
    local: tuple  # local_order(topology): rank order inside a node
    tp_group: tuple  # first replica, first stage
    stage_groups: tuple  # first replica: the TP group of each pipeline stage
    pp_links: tuple  # ((gpu of stage i, gpu of stage i+1), ...) for TP rank 0

    def gpu(self, rank: int) -> int:
        """The GPU global rank `rank` runs on."""
        per = len(self.local)
        return (rank // per) * per + self.local[rank % per]

    def rank_gpu(self, dp: int, stage: int, tp_rank: int) -> int:
        return self.gpu((dp * self.pp + stage) * self.tp + tp_rank)

    @property
    def dp_group(self) -> tuple:
        """TP rank 0 of stage 0 in every replica."""
        return tuple(self.rank_gpu(d, 0, 0) for d in range(self.dp))

    def stage_ranks(self, stage: int = 0, count: int | None = None) -> tuple:
        """The TP x DP GPUs of one pipeline stage, replica-major (the EP domain); the first
        `count` of them when given."""
        n = self.tp * self.dp if count is None else count
        return tuple(self.rank_gpu(i // self.tp, stage, i % self.tp) for i in range(n))

    def ep_group(self, ep: int, stage: int = 0) -> tuple:
        """GPUs of the first EP group of a stage: `ep` ranks out of that stage's TP x DP ranks."""
        pool = self.tp * self.dp
        if not isinstance(ep, int) or ep < 1 or pool % ep:
            raise InputError(f"EP size {ep} must divide TP x DP = {pool} "
                             "(experts are spread over the TP and DP ranks of a stage)")
        return self.stage_ranks(stage, ep)


_LOCAL: dict = {}


def local_order(topology) -> tuple:
    """The local GPUs of a node ordered by (socket, NVLink island, index): consecutive ranks
    land close. Computed once per topology."""
    hit = _LOCAL.get(id(topology))
    if hit is not None and hit[0] is topology:
        return hit[1]
    order = tuple(sorted(range(topology.gpus_per_node),
                         key=lambda i: (topology.socket_of[i], min(topology.fast_island(i)), i)))
    if len(_LOCAL) > 256:
        _LOCAL.clear()
    _LOCAL[id(topology)] = (topology, order)
    return order


def gpu_order(topology, count: int | None = None) -> tuple:
    """The first `count` GPUs (default: all) in rank order, node by node, each node in
    local_order."""
    per, local = topology.gpus_per_node, local_order(topology)
    n = topology.n_gpus if count is None else count
    return tuple((r // per) * per + local[r % per] for r in range(n))


def layout(topology, tp: int, pp: int = 1, dp: int = 1) -> Layout:
    """Place tp x pp x dp ranks on the topology (InputError if they do not fit)."""
    for label, value in (("TP", tp), ("PP", pp), ("DP", dp)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{label} must be a positive integer, got {value!r}")
    need = tp * pp * dp
    if need > topology.n_gpus:
        raise InputError(f"TP {tp} x PP {pp} x DP {dp} = {need} GPUs, but the topology has "
                         f"{topology.n_gpus}")
    local = local_order(topology)
    first = gpu_order(topology, tp * pp)
    stages = tuple(tuple(first[s * tp + t] for t in range(tp)) for s in range(pp))
    pp_links = tuple((stages[s][0], stages[s + 1][0]) for s in range(pp - 1))
    return Layout(tp, pp, dp, local, stages[0], stages, pp_links)
