"""Expert-parallel dispatch and combine: the all-to-all of a MoE layer, by algorithm.

An EP rank sends each of its T tokens to the k experts the router picked (dispatch) and gets the
k expert outputs back (combine). Three named algorithms price it (the engines' choices: vLLM's
all2all backends naive / deepep_high_throughput / deepep_low_latency, SGLang's
--moe-a2a-backend deepep with --deepep-mode normal | low_latency | auto):

- "nccl": NCCL all-to-all (torch.distributed all_to_all_single), every token copy sent to its
  expert's rank in the activation dtype both ways; sizer.cost.collectives prices it ("direct":
  the busiest NIC, NVLink port or socket link).
- "deepep": DeepEP's normal (high-throughput) kernels, hierarchical: a token crosses the network
  once per destination node (to the GPU of the same local index there), then NVLink forwards it
  to the experts inside that node; the RDMA and NVLink legs are pipelined, so the slower sets
  the time. DeepEP reports the network leg as logical bandwidth (every token copy bound for a
  rank in another node, over the time), which its deduplication keeps at the NIC's line rate:
  the RDMA leg is priced as those copies at 1.0 x the NIC. FP8 dispatch (1 byte + one fp32
  scale per 128 values), BF16 combine.
- "deepep-ll": DeepEP's low-latency kernels, pure RDMA point-to-point (IBGDA) for every token
  copy to another node, NVLink inside the node, no forwarding; built for decode batches.
- "auto": SGLang's --deepep-mode auto: low-latency for decode, normal for prefill.

Constants (DeepEP docs/legacy.md, deepseek-ai/DeepEP commit dd758caf, H800 with ~160 GB/s
NVLink measured maximum and one CX7 400 Gb/s NIC per GPU):
- normal: intranode EP8 153 GB/s NVLink bottleneck bandwidth (0.77 of H800's 200 GB/s per
  direction; V2 on SM100 reaches 726 of 900, 0.81: NVLink efficiency 0.8); internode EP16/32/64
  43 / 58 / 51 GB/s RDMA logical bandwidth (efficiency 1.0 of the NIC's 50 GB/s, their median).
- low-latency (128 tokens, hidden 7168, top-8): dispatch 118-194 us and combine 195-369 us at
  EP16-256 = 37-40 GB/s of remote traffic (efficiency 0.75); EP8 (all in one node) 77 / 114 us
  (NVLink efficiency 0.55); ~10 us fixed latency.
Routing is taken as uniform over experts; `imbalance` (>= 1, max over mean rank load) scales
the busiest rank's bytes, after EPLB's redundant experts relieve it (effective_imbalance).
"""

from dataclasses import dataclass

from sizer.errors import InputError

A2A_ALGORITHMS = ("nccl", "deepep", "deepep-ll", "auto")
DEEPEP_LATENCY_S = 20e-6  # normal kernels: notify + launch (no public small-size number; nominal)
DEEPEP_NVLINK_EFF, DEEPEP_RDMA_EFF = 0.8, 1.0
LL_LATENCY_S, LL_NVLINK_EFF, LL_RDMA_EFF = 10e-6, 0.55, 0.75
FP8_WITH_SCALES = 1.0 + 4.0 / 128  # bytes per value: FP8 + one fp32 scale per 128 (DeepEP)
COMBINE_BYTES = 2.0  # BF16 combine


@dataclass(frozen=True)
class EPComm:
    """One MoE layer's dispatch and combine on the busiest EP rank."""

    algorithm: str
    dispatch_s: float
    combine_s: float
    dispatch_bytes: float  # bytes this rank sends (every token copy)
    combine_bytes: float


def check_a2a(name) -> str:
    key = str(name or "nccl").strip().lower().replace("_", "-")
    key = {"deepep-normal": "deepep", "deepep-ht": "deepep", "low-latency": "deepep-ll",
           "deepep-low-latency": "deepep-ll", "naive": "nccl"}.get(key, key)
    if key not in A2A_ALGORITHMS:
        raise InputError(f"unknown EP all-to-all algorithm {name!r} (known: {', '.join(A2A_ALGORITHMS)})")
    return key


def effective_imbalance(imbalance: float, ep: int, redundant: int) -> float:
    """The busiest EP rank's load over the mean, after EPLB. Each redundant replica takes half
    a hot expert's tokens to another rank; sizer assumes R replicas relieve R of the EP ranks'
    excess, so with one replica per rank (DeepSeek's prefill: EP32, 32 redundant) the excess is
    gone: 1 + (imbalance - 1) x max(0, 1 - R / EP). An assumption, not a fit."""
    imb = float(imbalance)
    if not imb >= 1.0 or imb > 64:
        raise InputError(f"--moe-imbalance must be in [1, 64] (max / mean expert-rank load), got {imbalance!r}")
    return 1.0 + (imb - 1.0) * max(0.0, 1.0 - redundant / max(ep, 1))


def ep_all_to_all(algorithm: str, phase: str, tokens, top_k: int, hidden: int, act_bytes: float,
                  ranks, topology, imbalance: float = 1.0, profile=None) -> EPComm:
    """Dispatch and combine time of one MoE layer: `tokens` per EP rank (array or scalar) over
    the EP group `ranks` of `topology` (module docstring)."""
    import numpy as np

    from .collectives import collective_time

    algo = check_a2a(algorithm)
    if algo == "auto":
        algo = "deepep-ll" if phase == "decode" else "deepep"
    t = np.asarray(tokens, dtype=float) * imbalance
    copies = t * top_k * hidden  # values this rank sends (= receives, uniform routing)
    if len(ranks) < 2:
        zero = np.zeros_like(t)
        return EPComm(algo, zero, zero, zero, zero)
    if algo == "nccl":
        size = copies * act_bytes
        time = np.asarray(collective_time("all_to_all", size, tuple(ranks), topology, profile).time_s)
        return EPComm(algo, time, time, size, size)
    n = len(ranks)
    by_node: dict = {}
    for r in ranks:
        by_node.setdefault(topology.node_of(r), []).append(r)
    nodes, m = len(by_node), max(len(v) for v in by_node.values())
    nvlink = _nvlink_rate(topology, by_node)
    net = topology.inter_node
    nic = net.bytes_per_s * max(topology.nics_per_gpu, 1e-9) if nodes > 1 and net is not None else 0.0
    out = []
    for bytes_per_value in (FP8_WITH_SCALES, COMBINE_BYTES):
        volume = copies * bytes_per_value
        if algo == "deepep":
            rdma = volume * (n - m) / n  # logical: copies bound for other nodes
            nvl = volume * (m - 1) / m
            legs = [nvl / (nvlink * DEEPEP_NVLINK_EFF)]
            if nodes > 1:
                legs.append(rdma / (nic * DEEPEP_RDMA_EFF))
            out.append((DEEPEP_LATENCY_S + np.maximum.reduce(legs), volume))
        else:
            remote, local = volume * (n - m) / n, volume * (m - 1) / n
            legs = [local / (nvlink * LL_NVLINK_EFF)]
            if nodes > 1:
                legs.append(remote / (nic * LL_RDMA_EFF))
            out.append((LL_LATENCY_S + np.maximum.reduce(legs), volume))
    (d, db), (c, cb) = out
    return EPComm(algo, d, c, db, cb)


def _nvlink_rate(topology, by_node) -> float:
    """Per-direction NVLink rate of a GPU of the group; DeepEP needs NVLink inside the node."""
    group = max(by_node.values(), key=len)
    if len(group) < 2:
        return float("inf")  # one GPU per node: no in-node leg
    links = topology.path(group[0], group[1])
    if not all(lk.kind in ("nvlink", "nvswitch") for lk in links):
        raise InputError("DeepEP needs NVLink between the GPUs of a node (this topology has "
                         f"{'+'.join(lk.name for lk in links)}); use --ep-a2a nccl")
    return min(lk.bytes_per_s for lk in links)
