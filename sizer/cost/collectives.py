"""Collective and point-to-point communication time over a Topology.

Every algorithm is priced as latency + bytes / bandwidth (the alpha-beta model NCCL's own tuner
uses, NVIDIA/nccl src/graph/tuning.cc), with per-protocol constants from sizer/hardware/links.py; the
cheapest candidate wins, as NCCL's tuner (or an engine's custom all-reduce) would pick it.

Sizes follow nccl-tests (doc/PERFORMANCE.md): `size` is the buffer on each rank for all_reduce and
broadcast, the whole gathered output for all_gather, the whole input for reduce_scatter, each
rank's send buffer for all_to_all, and the bytes each rank sends to the next for send_recv.
algbw = size / time and busbw = algbw * busbw_factor(op, n), in GB/s of 1e9 bytes. A ring moves
busbw_factor x size bytes over its slowest hop, so ring time = latency + size * factor / hop_bw.

Algorithms:
- ring (protocols LL / LL128 / Simple): every op but all_to_all and send_recv; across nodes the
  ring crosses the NICs of the node, so its bandwidth is min(intra-node hop, NICs of the node).
- tree (all_reduce across nodes): ring bandwidth, latency growing with log2(nodes) instead of n.
- nvls (all_reduce on NVSwitch with NVLink SHARP, Hopper and later): the switch reduces; cost
  latency + size / (link * efficiency), independent of n.
- hierarchical (all_reduce across nodes): reduce-scatter in the node, all-reduce of size/m over
  each GPU's own NIC ("rail"), all-gather in the node (NCCL NVLSTree / CollNet-like, 2D rings).
  The in-node and network phases are pipelined chunk by chunk, so the slower one sets the rate
  (NCCL's tuner takes min(intraBw, interBw) for NVLSTree, src/graph/tuning.cc).
- A node's traffic to other nodes spreads over at most DOMAIN_NET_CHANNELS of its NICs: on
  an NVL72 rack (72 NICs) NCCL's inter-rack bandwidth stays near 8 NICs' worth.
- one_shot / two_shot: the custom all-reduce of vLLM / SGLang (csrc/custom_all_reduce.cuh), one
  host with full peer access (NVSwitch, full mesh, or 2 GPUs; CUDA IPC handles, so not across the
  trays of an NVL72 rack), at most 8 MiB: one-shot reads
  the (n-1) peers' buffers, two-shot is reduce-scatter + all-gather through peer memory.
- mnnvl_one_shot / mnnvl_two_shot: TensorRT-LLM's multi-node-NVLink all-reduce, over the trays
  of one NVL72 domain (fabric-handle peer memory, Lamport flags). Only with engine "trtllm": its
  AllReduce(strategy=AUTO) tries MNNVLAllReduce first whenever the TP group spans hosts of an
  MNNVL domain (is_mnnvl: mapping.is_multi_node(), MnnvlMemory.supports_mnnvl(), aarch64), at every
  size, one-shot while size x ranks <= 512 KiB, two-shot above (NVIDIA/TensorRT-LLM
  tensorrt_llm/_torch/distributed/ops.py, commit 0071496d: MNNVLAllReduce.is_mnnvl,
  get_required_workspace_size). vLLM's flashinfer MNNVL all-reduce is opt-in
  (VLLM_ALLREDUCE_USE_FLASHINFER=0 by default, vllm/envs.py; backend "mnnvl" when the group spans
  nodes, vllm/distributed/device_communicators/flashinfer_all_reduce.py, commit 00545a8a; the
  gate's default is kept off by vLLM PR #53318), and SGLang's flashinfer all-reduce is opt-in too
  (--enable-flashinfer-allreduce-fusion; switched on by default only for some MoE models on
  Blackwell, sgl-project/sglang PR #28786): both run NCCL across trays by default, which is what
  sizer prices for them. Not modelled: vLLM's torch symmetric-memory all-reduce over trays
  (whether its rendezvous works across hosts is not established here) and NCCL 2.27's
  symmetric kernels (need registered windows, VLLM_USE_NCCL_SYMM_MEM=0 by default).
- direct (all_to_all): every rank writes size/n to every peer; time is set by the most loaded
  resource (a GPU's link, the socket link shared by a socket, the NICs of a GPU or a node).
- p2p (send_recv): a ring shift, priced on its slowest hop.
- measured: a hardware profile's fit for this (op, group size, nodes) replaces all of the above;
  "measured (extrapolated)" beyond the largest size the profile measured (profile_fit). Except
  (issue #15 item 7): a profile of NCCL (the probes time torch.distributed, i.e. NCCL) does not
  replace the engines' custom all-reduce where they use it; only a fit whose implementation is
  "custom" does.
"""

import math
from dataclasses import dataclass

import numpy as np

from sizer.errors import InputError, closest_names
from .comm_group import DOMAIN_NET_CHANNELS, PROTOS, Group, analyse_group  # noqa: F401 (re-exported)
from .engines import get_engine

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv", "broadcast")
CUSTOM_ALGOS = frozenset({"one_shot", "two_shot"})
MNNVL_ALGOS = frozenset({"mnnvl_one_shot", "mnnvl_two_shot"})
ENGINE_ALGOS = CUSTOM_ALGOS | MNNVL_ALGOS  # an engine's own kernels, never NCCL's
MNNVL_ONE_SHOT_BYTES = 64 * 1024 * 8  # TRT-LLM: one-shot while size x ranks <= 512 KiB (ops.py)
MNNVL_MAX_BYTES = (2**32 - 1) // 2  # two-shot workspace (2 x size) must fit uint32, else NCCL
NCCL_ALGOS = frozenset({"ring", "tree", "nvls", "hierarchical", "direct", "p2p"})
CUSTOM_MAX_BYTES = 8 * 2**20  # vLLM custom all-reduce default max_size (8 MiB)
MEASURED, EXTRAPOLATED = "measured", "measured (extrapolated)"  # a profile fit, within / beyond
# the largest size the profile measured
_CUSTOM = {"one_shot": (6e-6, 0.75), "two_shot": (10e-6, 0.75)}  # (latency_s, efficiency); no
# public curve in the reference set: vLLM's reported ~2x lower small-message latency than NCCL.
# MNNVL Lamport all-reduce (latency_s, efficiency of the per-GPU NVLink rate). One-shot: fitted to
# lightseekorg/tokenspeed PR #860 (8 GB200 over 2 trays, hidden 7168 bf16, fused with RMSNorm):
# 10.9 us at 14,336 and 114,688 bytes, 29.4 us at 1,835,008 (ingress (n-1) x size at 72% of
# 900 GB/s). Two-shot (2(n-1)/n x size): bandwidth from FlashInfer's mnnvl backend, the TRT-LLM
# kernel vLLM calls (flashinfer/comm/trtllm_mnnvl_ar.py; TRT-LLM PR #14476 ports its fixes back),
# on GB300 NVL72, TP8 over 2 trays: 180.87 us at 63.998 MiB, vLLM's fallback 183.79 us (PR #53318);
# its latency, 9.5 us, tokenspeed's two-shot intercept. tokenspeed's own two-shot is a slower
# kernel (55.8-380 us at 3.7-29 MB, 15% of the link). TRT-LLM publishes no GB200 curve of its own.
_MNNVL = {"mnnvl_one_shot": (9.7e-6, 0.72), "mnnvl_two_shot": (9.5e-6, 0.76)}
ENGINE_KERNELS = {"vllm": CUSTOM_ALGOS, "sglang": CUSTOM_ALGOS, "trtllm": ENGINE_ALGOS}


def engine_kernels(engine) -> frozenset:
    """The all-reduce kernels of their own an engine runs besides NCCL (module docstring):
    None (no engine named) keeps the custom one-/two-shot all engines share in one host."""
    if engine is None:
        return CUSTOM_ALGOS
    rules = get_engine(getattr(engine, "name", engine))  # unknown names: InputError
    return ENGINE_KERNELS.get(rules.name, CUSTOM_ALGOS) if rules is not None else CUSTOM_ALGOS


@dataclass(frozen=True)
class CommCost:
    """Time of one collective; arrays (and a list of algorithms) when sizes are an array."""

    time_s: object
    algorithm: object
    algbw_GBps: object
    busbw_GBps: object


def busbw_factor(op: str, n: int) -> float:
    """nccl-tests doc/PERFORMANCE.md: all_reduce 2(n-1)/n; all_gather, reduce_scatter and
    all_to_all (n-1)/n; broadcast and send_recv 1."""
    op = check_op(op)
    if n <= 1:
        return 1.0 if op in ("broadcast", "send_recv") else 0.0
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n
    return 1.0


def check_op(op: str) -> str:
    key = str(op).strip().lower().replace("-", "_")
    key = {"allreduce": "all_reduce", "allgather": "all_gather", "reducescatter": "reduce_scatter",
           "alltoall": "all_to_all", "sendrecv": "send_recv", "p2p": "send_recv"}.get(key, key)
    if key not in OPS:
        hint = closest_names(key, OPS)
        raise InputError(f"unknown collective {op!r}" + (f"; did you mean {hint}?" if hint else "")
                         + f" (known: {', '.join(OPS)})")
    return key


def _candidates(op: str, g: Group, topo):
    """(name, latency_s, seconds_per_byte) for every algorithm that applies."""
    n, k, m = g.n, g.nodes, g.per_node
    f = busbw_factor(op, n)
    out = []
    if op == "send_recv":
        return [("p2p", g.shift.p2p_s + g.shift.hop_s, 1.0 / g.shift.p2p_bw)]
    if op == "all_to_all":
        return [("direct", g.shift.p2p_s + g.shift.hop_s, _a2a_seconds_per_byte(g, topo))]
    steps = {"all_reduce": 2 * (n - 1)}.get(op, n - 1)
    for p, label in PROTOS:
        if k == 1:
            bw, base, hop = g.ring.bw[p], g.ring.base_s[p], g.ring.hop_s * steps
        else:
            net_bw = g.nic_bytes_per_s * g.net.protocols[p].efficiency
            bw = min(net_bw, g.ring.bw[p]) if g.ring else net_bw
            base = max(g.net.protocols[p].latency_s, g.ring.base_s[p] if g.ring else 0.0)
            hop = (g.ring.hop_s if g.ring else 0.0) * steps + g.net.hop_latency_s * 2 * k
        out.append((f"ring/{label}", base + hop, f / bw))
        if op == "all_reduce" and k > 1:
            tree_hops = 2 * math.ceil(math.log2(k)) * g.net.hop_latency_s
            intra = (g.ring.hop_s * 2 * (m - 1)) if g.ring else 0.0
            out.append((f"tree/{label}", base + tree_hops + intra, f / bw))
    if op == "all_reduce" and g.nvls is not None and k == 1:
        out.append(("nvls", g.nvls.latency_s, 1.0 / (g.nvlink_bytes_per_s * g.nvls.efficiency)))
    if op == "all_reduce" and k > 1 and m > 1:
        node_net = g.nic_bytes_per_s * g.net.protocols["simple"].efficiency
        intra_spb = 2 * (m - 1) / m / g.ring.bw["simple"]
        intra_lat = g.ring.base_s["simple"]
        if g.nvls is not None and 1.0 / (g.nvlink_bytes_per_s * g.nvls.efficiency) < intra_spb:
            intra_spb = 1.0 / (g.nvlink_bytes_per_s * g.nvls.efficiency)
            intra_lat = max(intra_lat, g.nvls.latency_s)
        lat = intra_lat + g.net.protocols["simple"].latency_s + 2 * (k - 1) * g.net.hop_latency_s
        out.append(("hierarchical", lat, max(intra_spb, 2 * (k - 1) / k / node_net)))
    if op == "all_reduce" and g.peer_access:
        bw = g.peer_bytes_per_s
        for name, (lat, eff) in _CUSTOM.items():
            spb = (n - 1) / (bw * eff) if name == "one_shot" else 2 * (n - 1) / n / (bw * eff)
            out.append((name, lat + g.ring.hop_s, spb))
    if op == "all_reduce" and g.mnnvl:
        bw = g.nvlink_bytes_per_s
        for name, (lat, eff) in _MNNVL.items():
            spb = (n - 1) / (bw * eff) if name == "mnnvl_one_shot" else 2 * (n - 1) / n / (bw * eff)
            out.append((name, lat + g.ring.hop_s, spb))
    return out


def _a2a_seconds_per_byte(g: Group, topo) -> float:
    """Most loaded resource when every rank sends 1/n of its buffer to every peer: a GPU's NIC
    (or a node's, for per-node NICs), the socket link a socket pair shares, a point-to-point
    NVLink/xGMI bond, a GPU's port into a switch or PCIe. Nodes are identical, so the in-node
    loads are computed once per distinct set of local GPUs and the NIC loads per node count:
    O(nodes + GPUs per node squared), not O(n squared) (issue #16: 4,096 GPUs took 18-26 s)."""
    share = 1.0 / g.n
    worst = 0.0
    net = topo.inter_node
    if g.nodes > 1 and net is not None:
        per_gpu = net.bytes_per_s * max(topo.nics_per_gpu, 1e-9) * net.p2p.efficiency
        per_node = net.bytes_per_s * net.p2p.efficiency
        for m_node in g.node_counts:
            remote = g.n - m_node
            worst = max(worst, (share * m_node * remote / per_node) if net.per_node
                        else (share * remote / per_gpu))
    for local in g.local_sets:
        worst = max(worst, _a2a_in_node(local, topo, share))
    return worst


def _a2a_in_node(local: tuple, topo, share: float) -> float:
    """Seconds per byte of the busiest in-node resource for one node's group members."""
    load: dict = {}
    cap: dict = {}
    for i in local:
        for j in local:
            if i == j:
                continue
            for key in topo.paths[i][j]:
                lk = topo.links[key]
                if lk.kind == "cpu":
                    res = ("cpu", topo.socket_of[i], topo.socket_of[j])
                elif lk.kind in ("nvlink", "xgmi"):
                    res = ("link", i, j)
                else:
                    res = ("out", i, lk.kind)
                load[res] = load.get(res, 0.0) + share
                cap[res] = lk.bytes_per_s * lk.p2p.efficiency
    return max((load[r] / cap[r] for r in load), default=0.0)


def collective_time(op: str, size_bytes, ranks, topology, profile=None,
                    algorithms=None, engine=None) -> CommCost:
    """Time of one `op` of nccl-tests `size_bytes` over the GPUs `ranks` of `topology`.

    `size_bytes` may be a number or a numpy array (vectorised). `algorithms`: None for every
    algorithm, "nccl" for NCCL's only (no custom all-reduce), or a set of names from
    NCCL_ALGOS | ENGINE_ALGOS. `engine` (a name, EngineRules or None) says which of the engines'
    own kernels exist (engine_kernels); where TensorRT-LLM's MNNVL all-reduce applies it is the
    only candidate up to MNNVL_MAX_BYTES, as TRT-LLM uses it at every size. A measured profile
    fit for (op, ranks, nodes) takes precedence (see profile_fit): algorithm "measured", or
    "measured (extrapolated)" beyond the largest size the profile measured. Quiet: callers say
    when a fit is missing or extrapolated.
    """
    op = check_op(op)
    ranks = tuple(int(r) for r in ranks)
    if len(set(ranks)) != len(ranks):
        raise InputError(f"ranks must be distinct GPUs, got {ranks}")
    bad = [r for r in ranks if r < 0 or r >= topology.n_gpus]
    if bad:
        raise InputError(f"GPU index {bad[0]} is outside the topology (0..{topology.n_gpus - 1})")
    size = np.asarray(size_bytes, dtype=float)
    if np.any(~np.isfinite(size)) or np.any(size < 0):
        raise InputError("message sizes must be finite and non-negative")
    scalar = size.ndim == 0
    sizes = np.atleast_1d(size)
    n = len(ranks)
    if n <= 1:
        zero = np.zeros_like(sizes)
        return _pack(zero, ["none"] * len(sizes), sizes, op, max(n, 1), scalar)
    g = analyse_group(ranks, topology)
    cover = profile_fit(op, ranks, topology, profile)
    kernels = engine_kernels(engine)
    cands = [c for c in _candidates(op, g, topology)
             if _allowed(c[0], algorithms) and (c[0] not in ENGINE_ALGOS or c[0] in kernels)]
    if cover is not None:
        f = busbw_factor(op, n)
        times = np.min([lat + sizes * f / bw for lat, bw in cover.fit.segments], axis=0)
        top = cover.max_bytes if cover.max_bytes is not None else np.inf
        algos = [EXTRAPOLATED if s > top else MEASURED for s in sizes]
        if getattr(cover.fit, "implementation", "nccl") != "custom" and any(
                c[0] in ENGINE_ALGOS for c in cands):
            model = _best(cands, sizes, n)  # the engine's own all-reduce where it would use it
            for i, name in enumerate(model[1]):
                if name in ENGINE_ALGOS:
                    times[i], algos[i] = model[0][i], name
        return _pack(times, algos, sizes, op, n, scalar)
    if not cands:
        raise InputError(f"no allowed algorithm for {op} over {n} GPUs ({algorithms})")
    times, algos = _best(cands, sizes, n)
    return _pack(times, algos, sizes, op, n, scalar)


def _best(cands, sizes, n: int) -> tuple:
    """(times, algorithm names): the cheapest candidate per size; the custom all-reduce only up
    to CUSTOM_MAX_BYTES, as vLLM uses it; MNNVL one-shot while size x n <= MNNVL_ONE_SHOT_BYTES
    and two-shot above it up to MNNVL_MAX_BYTES, as TensorRT-LLM picks them, and where one of
    them applies nothing else runs (TRT-LLM tries MNNVL before any other strategy)."""
    table = np.array([lat + sizes * spb for _, lat, spb in cands])
    mnnvl = np.array([name in MNNVL_ALGOS for name, _, _ in cands])
    for row, (name, _, _) in zip(table, cands):
        if name in CUSTOM_ALGOS:
            row[sizes > CUSTOM_MAX_BYTES] = np.inf
        elif name == "mnnvl_one_shot":
            row[sizes * n > MNNVL_ONE_SHOT_BYTES] = np.inf
        elif name == "mnnvl_two_shot":
            row[(sizes * n <= MNNVL_ONE_SHOT_BYTES) | (sizes > MNNVL_MAX_BYTES)] = np.inf
    if mnnvl.any():
        forced = np.isfinite(table[mnnvl]).any(axis=0)
        table[np.ix_(~mnnvl, forced)] = np.inf
    best = np.argmin(table, axis=0)
    return table[best, np.arange(len(sizes))], [cands[i][0] for i in best]


@dataclass(frozen=True)
class ProfileFit:
    """A profile's measured curve for one (op, group size, nodes spanned), and the largest
    size it measured (None when the profile keeps no raw rows for it: range unknown)."""

    fit: object  # sizer.profile.CollectiveFit
    nodes: int
    max_bytes: float | None


def profile_fit(op: str, ranks, topology, profile) -> ProfileFit | None:
    """The measured fit collective_time would use for `op` over `ranks`, or None (the catalog
    model answers). Cheap: a lookup by (op, len(ranks), nodes the ranks span)."""
    if profile is None:
        return None
    op, n = check_op(op), len(ranks)
    nodes = len({topology.node_of(int(r)) for r in ranks})
    fit = profile.collective(op, n, nodes)
    if fit is None:
        return None
    top = getattr(fit, "max_bytes", None)  # a profile field if the schema gains one
    return ProfileFit(fit, nodes, float(top) if top else _measured_max(profile).get((op, n, nodes)))


_RANGES: dict = {}


def _measured_max(profile) -> dict:
    """{(op, ranks, nodes): largest size_bytes} over the profile's raw nccl-tests rows (the rows
    probes/fit.py fits: positive size and time), computed once per profile."""
    hit = _RANGES.get(id(profile))
    if hit is not None and hit[0] is profile:
        return hit[1]
    out: dict = {}
    rows = (profile.raw or {}).get("collectives") or []
    for r in rows if isinstance(rows, list) else []:
        try:
            key = (check_op(r["op"]), int(r["ranks"]), int(r.get("nodes", 1)))
            size, t = float(r["size_bytes"]), float(r.get("time_us", 0))
        except (KeyError, TypeError, ValueError, InputError):
            continue
        if size > 0 and t > 0:
            out[key] = max(out.get(key, 0.0), size)
    if len(_RANGES) > 64:
        _RANGES.clear()
    _RANGES[id(profile)] = (profile, out)
    return out


def algorithm_label(name: str) -> str:
    """Human name of an algorithm: the engines' custom all-reduce apart from NCCL's."""
    if name in CUSTOM_ALGOS:
        return f"custom {name.replace('_', '-')} (vLLM)"
    if name in MNNVL_ALGOS:
        return f"TensorRT-LLM MNNVL {name[len('mnnvl_'):].replace('_', '-')}"
    if name in (MEASURED, EXTRAPOLATED, "none"):
        return name
    return f"NCCL {name}"


def _allowed(name: str, algorithms) -> bool:
    family = name.split("/")[0]
    if algorithms is None:
        return True
    if algorithms == "nccl":
        return family in NCCL_ALGOS
    return family in set(algorithms)


def _pack(times, algos, sizes, op, n, scalar) -> CommCost:
    with np.errstate(divide="ignore", invalid="ignore"):
        algbw = np.where(times > 0, sizes / np.where(times > 0, times, 1) / 1e9, 0.0)
    busbw = algbw * busbw_factor(op, n)
    if scalar:
        return CommCost(float(times[0]), algos[0], float(algbw[0]), float(busbw[0]))
    return CommCost(times, algos, algbw, busbw)
