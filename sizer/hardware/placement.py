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
    """GPU indices (global, as in the Topology) used by the first replica and its stage peers."""

    tp: int
    pp: int
    dp: int
    order: tuple  # global GPU indices in rank order (rank r runs on order[r])
    tp_group: tuple  # first replica, first stage
    stage_groups: tuple  # first replica: the TP group of each pipeline stage
    pp_links: tuple  # ((gpu of stage i, gpu of stage i+1), ...) for TP rank 0
    dp_group: tuple  # TP rank 0 of stage 0 in every replica

    def rank_gpu(self, dp: int, stage: int, tp_rank: int) -> int:
        return self.order[(dp * self.pp + stage) * self.tp + tp_rank]

    def stage_ranks(self, stage: int = 0) -> tuple:
        """All TP x DP GPUs of one pipeline stage, replica-major (the EP domain)."""
        return tuple(self.rank_gpu(d, stage, t) for d in range(self.dp) for t in range(self.tp))

    def ep_group(self, ep: int, stage: int = 0) -> tuple:
        """GPUs of the first EP group of a stage: `ep` ranks out of that stage's TP x DP ranks."""
        pool = self.stage_ranks(stage)
        if not isinstance(ep, int) or ep < 1 or len(pool) % ep:
            raise InputError(f"EP size {ep} must divide TP x DP = {len(pool)} "
                             "(experts are spread over the TP and DP ranks of a stage)")
        return pool[:ep]


_ORDER: dict = {}  # id(topology) -> (topology, order): fast_island is O(GPUs per node) per GPU


def gpu_order(topology) -> tuple:
    """All GPUs, node by node, each node ordered by (socket, NVLink island, index)."""
    hit = _ORDER.get(id(topology))
    if hit is not None and hit[0] is topology:
        return hit[1]
    per = topology.gpus_per_node
    local = sorted(range(per), key=lambda i: (topology.socket_of[i],
                                              min(topology.fast_island(i)), i))
    order = tuple(node * per + i for node in range(topology.nodes) for i in local)
    if len(_ORDER) > 256:
        _ORDER.clear()
    if topology.n_gpus <= 1 << 16:  # a million-GPU order is not worth keeping
        _ORDER[id(topology)] = (topology, order)
    return order


def layout(topology, tp: int, pp: int = 1, dp: int = 1) -> Layout:
    """Place tp x pp x dp ranks on the topology (InputError if they do not fit)."""
    for label, value in (("TP", tp), ("PP", pp), ("DP", dp)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"{label} must be a positive integer, got {value!r}")
    need = tp * pp * dp
    if need > topology.n_gpus:
        raise InputError(f"TP {tp} x PP {pp} x DP {dp} = {need} GPUs, but the topology has "
                         f"{topology.n_gpus}")
    order = gpu_order(topology)[:need]
    stages = tuple(tuple(order[s * tp + t] for t in range(tp)) for s in range(pp))
    pp_links = tuple((stages[s][0], stages[s + 1][0]) for s in range(pp - 1))
    dp_group = tuple(order[d * pp * tp] for d in range(dp))
    return Layout(tp, pp, dp, order, stages[0], stages, pp_links, dp_group)
