"""Where a collective's group sits on a Topology, and what its links offer: the slowest hop of
its in-node ring, its send_recv shift, the NIC bandwidth a node gives it, NVLink SHARP, peer
access for the engines' custom all-reduce. sizer/cost/collectives.py prices the algorithms
over this description; keeping the placement analysis apart lets both stay small, and lets a
million-GPU group be analysed once (cached) and priced for many sizes.

Nodes are identical, so a group is described by the distinct sets of local GPUs it holds in
a node and the distinct numbers of its GPUs per node, never by its GPU pairs.
"""

from dataclasses import dataclass

import numpy as np

from sizer.hardware.links import Protocol, nvls_latency_s
from sizer.hardware.placement import local_order

PROTOS = (("ll", "LL"), ("ll128", "LL128"), ("simple", "Simple"))
DOMAIN_NET_CHANNELS = 8  # fitted: CoreWeave GB200 NVL72 2 and 20 racks (data/nccl_multinode.json
# M00006-17: busbw 810 GB/s over 2 racks, ~430 GB/s asymptote over 20, with 72 NDR NICs per
# rack); binds only where a node has more than 8 NICs (NVL72 racks), never on HGX nodes.


@dataclass(frozen=True)
class Hop:
    """A path's cost per protocol: bandwidth (bytes/s), base latency, hop latency."""

    bw: dict
    base_s: dict
    hop_s: float
    p2p_bw: float
    p2p_s: float


def _hop(links, parallel: int = 1) -> Hop:
    bw = {p: min(lk.bytes_per_s * lk.protocols[p].efficiency for lk in links) * parallel
          for p, _ in PROTOS}
    base = {p: max(lk.protocols[p].latency_s for lk in links) for p, _ in PROTOS}
    p2p_bw = min(lk.bytes_per_s * lk.p2p.efficiency for lk in links)
    return Hop(bw, base, sum(lk.hop_latency_s for lk in links), p2p_bw,
               max(lk.p2p.latency_s for lk in links))


def _worst(hops) -> Hop:
    return Hop({p: min(h.bw[p] for h in hops) for p, _ in PROTOS},
               {p: max(h.base_s[p] for h in hops) for p, _ in PROTOS},
               max(h.hop_s for h in hops), min(h.p2p_bw for h in hops),
               max(h.p2p_s for h in hops))


@dataclass(frozen=True)
class Group:
    """One group of ranks as the algorithms see it (collectives._candidates)."""

    n: int
    nodes: int
    per_node: int
    ring: Hop | None  # slowest hop of the intra-node ring (None for one GPU per node)
    shift: Hop  # slowest hop of the send_recv ring shift
    net: object  # LinkClass between nodes (or None)
    nic_bytes_per_s: float  # NIC line rate one node offers this group
    rail_bytes_per_s: float  # NIC line rate of one GPU
    nvls: object  # Protocol or None
    nvlink_bytes_per_s: float  # per-GPU switch bandwidth when on an NVSwitch, else 0
    peer_bytes_per_s: float  # what one GPU can pull from all its peers at once
    peer_access: bool  # custom all-reduce possible
    local_sets: tuple  # distinct sets of local GPU indices the group holds in a node
    node_counts: tuple  # distinct numbers of group GPUs per node
    mnnvl: bool = False  # spans hosts of one rack-scale NVLink domain (multi-node NVLink)


_CACHE: dict = {}


def analyse_group(ranks: tuple, topo) -> Group:
    """The Group of `ranks` on `topo`, cached: a step costs the same groups for many sizes."""
    key = (id(topo), ranks)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is topo:
        return hit[1]
    if len(_CACHE) > 4096:
        _CACHE.clear()
    group = _build_group(ranks, topo)
    _CACHE[key] = (topo, group)
    return group


def _build_group(ranks: tuple, topo) -> Group:
    """Where the group sits, vectorised over ranks: nodes are identical, so what a node's share
    of the group costs depends only on which local GPUs it holds (a few distinct sets), and a
    million-GPU group is analysed in well under a second."""
    per = topo.gpus_per_node
    rank_in_node = np.empty(per, dtype=np.int64)  # position of each local GPU in rank order
    rank_in_node[list(local_order(topo))] = np.arange(per)
    r = np.asarray(ranks, dtype=np.int64)
    node, loc = r // per, r % per
    sort = np.lexsort((rank_in_node[loc], node))
    r, node, loc = r[sort], node[sort], loc[sort]
    _, start, count = np.unique(node, return_index=True, return_counts=True)
    k = len(start)
    locals_ = {tuple(int(x) for x in loc[a:a + c]) for a, c in zip(start, count)}
    big = int(np.argmax(count))
    sub = [int(x) for x in r[start[big]:start[big] + count[big]]]
    m = len(sub)

    def hop(i, j, parallel=1):
        return _hop(tuple(topo.links[key] for key in topo.paths[i][j]), parallel)

    ring = None
    sub_local = [g % per for g in sub]
    if m > 1:
        mesh = all(topo.is_direct(a, b) for a in sub for b in sub if a != b)
        parallel = m - 1 if mesh else 1  # a full mesh runs one ring per link
        ring = _worst([hop(i, j, parallel) for i, j in zip(sub_local, sub_local[1:] + sub_local[:1])])
    pairs = set()  # the send_recv ring shift: consecutive ranks, node by node
    for lt in locals_:
        pairs.update(zip(lt, lt[1:]))
        if k == 1 and len(lt) > 1:
            pairs.add((lt[-1], lt[0]))
    shift_hops = [hop(i, j) for i, j in pairs]
    if k > 1:
        shift_hops.append(_hop((topo.inter_node,)))
    shift = _worst(shift_hops)
    net = topo.inter_node if k > 1 else None
    nic = rail = 0.0
    if net is not None:
        rail = net.bytes_per_s * (1.0 / m if net.per_node else max(topo.nics_per_gpu, 1e-9))
        nics = 1.0 if net.per_node else min(max(m * topo.nics_per_gpu, 1.0), DOMAIN_NET_CHANNELS)
        nic = net.bytes_per_s * nics
    first = [topo.links[key] for i in sub_local for j in sub_local if i != j for key in topo.paths[i][j]]
    switched = bool(first) and all(lk.kind == "nvswitch" for lk in first)
    nvls = first[0].nvls if switched and m > 1 else None
    if nvls is not None:  # on a rack fabric NVLS latency grows with the ranks (links.py)
        nvls = Protocol(nvls_latency_s(first[0], m), nvls.efficiency)
    host = any(lk.kind in ("host", "net") for lk in first)
    mesh = m > 1 and all(topo.is_direct(a, b) for a in sub for b in sub if a != b)
    one_host = int(r.min()) // topo.host_gpus == int(r.max()) // topo.host_gpus  # CUDA IPC: one OS
    peer = k == 1 and one_host and not host and m <= 8 and (m == 2 or mesh or switched)
    # trays of one NVL72 domain: peer memory through fabric handles, not CUDA IPC
    mnnvl = k == 1 and not one_host and switched and topo.host_gpus < topo.gpus_per_node
    switch_bw = first[0].bytes_per_s if switched else 0.0
    pull = switch_bw or (min((lk.bytes_per_s for lk in first), default=0.0) * max(m - 1, 1))
    return Group(len(r), k, m, ring, shift, net, nic, rail, nvls, switch_bw, pull, peer,
                 tuple(sorted(locals_)), tuple(sorted({int(c) for c in count})), mnnvl)
