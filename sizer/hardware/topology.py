"""GPU topologies: which link every pair of GPUs talks over, inside a node and between nodes.

A node is described by a matrix of *paths*: for local GPUs i != j, the tuple of link-class keys a
byte crosses (("nvswitch",), ("nvlink",), ("pcie",), ("pcie", "upi") for a hop across the two CPU
sockets, ("host",) for cards without peer-to-peer). Nodes are identical and joined by the
`inter_node` class (one NIC per GPU, or one per node for TCP front-ends). GPU indices are global:
gpu = node * gpus_per_node + local.

Presets follow the machines people rent (issue #3): `nvswitch` (HGX/DGX A100/H100/H200/B200),
`nvlink-pairs` (bridged pairs: A100 PCIe, H100 NVL), `pcie` (all cards under one socket),
`pcie-2socket` (half the cards under each of two sockets joined by UPI/QPI) and `xgmi` (MI300X).
`nvidia-smi topo -m` text is read by sizer/hardware/topo_smi.py into the same structure.

Rack-scale NVLink (issue #18): on GB200/GB300 NVL72 racks the NVLink domain is larger than a
host: 18 compute trays of 4 GPUs share one NVLink switch fabric, so TP/EP groups of up to 72
ranks never touch a NIC. The `nvl72` and `nvl36x2` presets therefore make the NVLink domain
sizer's "node" (as NCCL does: an MNNVL clique counts as one node, NVIDIA/nccl#1604), with
`gpus_per_host` keeping the tray for what is per host (the engines' custom all-reduce).
`--nodes` counts NVLink domains there; `--nvlink-domain N` picks a smaller NVLink partition
(NVL72 racks can be partitioned, e.g. the NVL4/NVL8 partitions of NVIDIA/nccl#1801). `nvl36x2`
is two 36-GPU racks joined by NVLink cables into one 72-GPU domain: a GPU pair in different
racks crosses the switch tier twice (twice the hop latency, same per-GPU bandwidth).
"""

from dataclasses import dataclass, field

from sizer.errors import InputError, closest_names
from .links import (LINKS, LinkClass, get_network_link, inter_node_names, nic_link, nvlink_link,
                    pcie_link)

PRESETS = ("nvswitch", "nvlink-pairs", "pcie", "pcie-2socket", "xgmi", "nvl72", "nvl36x2")
RACK_PRESETS = ("nvl72", "nvl36x2")  # NVLink domain larger than a host (GB200/GB300)
DIRECT_KINDS = ("nvlink", "xgmi")  # point-to-point links: a group can use one per peer at once


@dataclass(frozen=True)
class Topology:
    """Identical nodes of `gpus_per_node` GPUs; see the module docstring for `paths`."""

    name: str
    gpu_id: str
    nodes: int
    gpus_per_node: int
    socket_of: tuple  # local GPU -> socket index
    paths: tuple  # [i][j] -> tuple of keys into `links` (empty on the diagonal)
    links: dict = field(compare=False)  # key -> LinkClass with this machine's bandwidth
    inter_node: LinkClass | None = None
    nics_per_gpu: float = 1.0
    source: str = "preset"
    gpus_per_host: int = 0  # GPUs per host when a node is a rack-scale NVLink domain (0: the node)

    @property
    def n_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def host_gpus(self) -> int:
        """GPUs per host (OS instance): the tray on NVL72 racks, the node everywhere else."""
        return self.gpus_per_host or self.gpus_per_node

    def host_of(self, gpu: int) -> int:
        return gpu // self.host_gpus

    @property
    def sockets(self) -> int:
        return len(set(self.socket_of))

    def node_of(self, gpu: int) -> int:
        return gpu // self.gpus_per_node

    def local(self, gpu: int) -> int:
        return gpu % self.gpus_per_node

    def socket(self, gpu: int) -> tuple:
        """(node, socket) of a global GPU index."""
        return (self.node_of(gpu), self.socket_of[self.local(gpu)])

    def path(self, a: int, b: int) -> tuple:
        """The LinkClasses a byte from GPU a to GPU b crosses (inter-node: the NIC class)."""
        if self.node_of(a) != self.node_of(b):
            return (self.inter_node,)
        return tuple(self.links[k] for k in self.paths[self.local(a)][self.local(b)])

    def is_direct(self, a: int, b: int) -> bool:
        """True when a and b share a point-to-point NVLink/xGMI bond (not a switch)."""
        if a == b or self.node_of(a) != self.node_of(b):
            return False
        keys = self.paths[self.local(a)][self.local(b)]
        return len(keys) == 1 and self.links[keys[0]].kind in DIRECT_KINDS

    def fast_island(self, gpu: int) -> frozenset:
        """Local GPUs reachable from `gpu` over NVLink/NVSwitch/xGMI only (itself included)."""
        i = self.local(gpu)
        out = {i}
        for j in range(self.gpus_per_node):
            keys = self.paths[i][j]
            if j != i and keys and all(self.links[k].kind in ("nvlink", "nvswitch", "xgmi")
                                       for k in keys):
                out.add(j)
        return frozenset(out)

    def describe(self) -> str:
        kinds = sorted({"+".join(p) for row in self.paths for p in row if p})
        if self.host_gpus < self.gpus_per_node:
            text = (f"{self.name}: {self.nodes} NVLink domain(s) x {self.gpus_per_node} GPU(s) "
                    f"(hosts of {self.host_gpus}), links {', '.join(kinds) or 'none'}")
        else:
            # sockets here are the groups of GPUs whose traffic stays off the CPU link: name
            # them only where a path crosses it (an NVSwitch board of two NUMA nodes, as its
            # `nvidia-smi topo -m` shows, has no GPU path over the CPU link; trial 1 item 15)
            crosses = any(self.links[k].kind == "cpu" for row in self.paths for p in row for k in p)
            sockets = (f"{self.sockets} socket(s)/node (GPU paths cross the CPU link)" if crosses
                       else "no GPU path over the CPU link")
            text = (f"{self.name}: {self.nodes} node(s) x {self.gpus_per_node} GPU(s), "
                    f"{sockets}, links {', '.join(kinds) or 'none'}")
        if self.nodes > 1 and self.inter_node is not None:
            per = "node" if self.inter_node.per_node else f"{self.nics_per_gpu:g}/GPU"
            text += f", inter-node {self.inter_node.name} ({per})"
        return text


def _capacity(name: str, gpu) -> int:
    """How many GPUs one node of a preset holds: the catalog's node size for the GPU's own
    preset (the NVLink domain for rack-scale presets), 8 otherwise (PCIe servers: at least 8)."""
    if name in RACK_PRESETS:
        return gpu.domain_gpus
    if name in ("pcie", "pcie-2socket"):
        return max(int(gpu.gpus_per_node or 0), 8)
    if name == gpu.default_topology:
        return max(int(gpu.gpus_per_node or 0), 1)
    return 8


def local_links(gpu) -> dict:
    """This GPU's link classes: NVLink rate from the catalog, PCIe generation, socket link."""
    pcie = pcie_link(gpu.pcie_gen, gpu.pcie_lanes)
    links = {"pcie": pcie, "upi": LINKS["upi"],
             "host": LINKS["host"].with_bandwidth(pcie.bytes_per_s)}
    if gpu.nvlink_bytes_per_s:
        links["nvlink"] = nvlink_link(gpu.nvlink_generation, gpu.nvlink_bytes_per_s, False)
        links["nvswitch"] = nvlink_link(gpu.nvlink_generation, gpu.nvlink_bytes_per_s, True,
                                        rack=gpu.domain_gpus > gpu.gpus_per_node)
    if gpu.vendor.lower() == "amd" or gpu.default_topology == "xgmi":
        per_peer = gpu.nvlink_bytes_per_s / 2 / 7 if gpu.nvlink_bytes_per_s else 64e9
        links["xgmi"] = LINKS["xgmi"].with_bandwidth(per_peer)
    return links


def preset_paths(name: str, per_node: int, p2p: bool = True) -> tuple:
    """(socket_of, paths) of one node of a preset with `per_node` GPUs."""
    n = per_node
    two_sockets = name == "pcie-2socket" or (name == "nvlink-pairs" and n > 2)
    socket_of = tuple((i * 2) // n if two_sockets and n > 1 else 0 for i in range(n))
    if name == "nvlink-pairs" and n <= 4:
        socket_of = (0,) * n  # 4-card boxes (Azure NC A100 v4, H100 NVL VMs): one host bridge
    rows = []
    for i in range(n):
        row = []
        for j in range(n):
            if i == j:
                row.append(())
            elif name == "nvswitch" or name == "nvl72":
                row.append(("nvswitch",))
            elif name == "nvl36x2":  # a second switch tier between the two 36-GPU racks
                row.append(("nvswitch",) if i // 36 == j // 36 else ("nvswitch", "nvswitch"))
            elif name == "xgmi":
                row.append(("xgmi",))
            elif name == "nvlink-pairs" and i // 2 == j // 2:
                row.append(("nvlink",))
            else:
                hop = "pcie" if p2p else "host"
                row.append((hop,) if socket_of[i] == socket_of[j] else (hop, "upi"))
        rows.append(tuple(row))
    return socket_of, tuple(rows)


def _inter(gpu, inter_node) -> tuple:
    if inter_node is None:
        return nic_link(gpu.nic_bits_per_s), (gpu.nics_per_gpu or 1.0)
    link = inter_node if isinstance(inter_node, LinkClass) else get_network_link(inter_node)
    if link.kind != "net":
        raise InputError(f"--inter-node {link.name!r} is not a network link class "
                         f"(known: {', '.join(inter_node_names())})")
    return link, (gpu.nics_per_gpu or 1.0)


MAX_GPUS = 1_000_000  # the largest deployment sizer prices: ~10x today's biggest clusters, and
# the bound that keeps the largest valid request under 2 s (issue #16)


def split_nodes(n_gpus: int, nodes: int) -> int:
    if not isinstance(n_gpus, int) or n_gpus < 1:
        raise InputError(f"number of GPUs must be a positive integer, got {n_gpus!r}")
    if n_gpus > MAX_GPUS:
        raise InputError(f"{n_gpus} GPUs is more than sizer prices ({MAX_GPUS:,}, about ten times "
                         "the largest clusters built)")
    if not isinstance(nodes, int) or nodes < 1:
        raise InputError(f"--nodes must be a positive integer, got {nodes!r}")
    if n_gpus % nodes:
        raise InputError(f"--nodes {nodes} does not divide --gpus {n_gpus} "
                         "(every node holds the same number of GPUs)")
    return n_gpus // nodes


def get_topology(name, gpu, n_gpus: int, nodes: int = 1, inter_node=None) -> Topology:
    """A preset topology for `n_gpus` GPUs of type `gpu` over `nodes` identical nodes (NVLink
    domains for the rack-scale presets)."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in PRESETS:
        hint = closest_names(key, PRESETS)
        raise InputError(f"unknown topology {name!r}" + (f"; did you mean {hint}?" if hint else "")
                         + f" (known: {', '.join(PRESETS)})")
    per_node = split_nodes(n_gpus, nodes)
    cap = _capacity(key, gpu)
    if key in RACK_PRESETS and cap <= max(int(gpu.gpus_per_node or 1), 8):
        raise InputError(f"topology {key!r} is a rack-scale NVLink domain; {gpu.id} comes in "
                         f"nodes of {gpu.gpus_per_node} (rack-scale GPUs: gb200, gb300)")
    if per_node > cap:
        if key in RACK_PRESETS:
            raise InputError(f"{per_node} GPUs are more than one {key} NVLink domain of {gpu.id} "
                             f"holds ({cap}); give --nodes (NVLink domains) or --nvlink-domain N")
        raise InputError(f"{per_node} GPUs per node is more than a {key} node of {gpu.id} holds "
                         f"({cap}); use --nodes to spread them")
    links = local_links(gpu)
    if key in ("nvswitch", "nvlink-pairs") + RACK_PRESETS and "nvlink" not in links:
        raise InputError(f"{gpu.id} has no NVLink, so topology {key!r} does not apply "
                         "(try pcie or pcie-2socket)")
    if key == "xgmi" and "xgmi" not in links:
        raise InputError(f"{gpu.id} has no xGMI/Infinity Fabric, so topology 'xgmi' does not apply")
    socket_of, paths = preset_paths(key, per_node, p2p=bool(gpu.p2p))
    inter, nics = _inter(gpu, inter_node)
    host = min(int(gpu.gpus_per_node or 1), per_node) if key in RACK_PRESETS else 0
    return Topology(key, gpu.id, nodes, per_node, socket_of, paths, links, inter, float(nics),
                    gpus_per_host=host)


def nodes_for_domain(n_gpus: int, domain: int, nodes: int = 1) -> int:
    """How many NVLink domains of `domain` GPUs `n_gpus` make (`--nvlink-domain`): the domain
    must divide the GPU count, and agree with an explicit --nodes."""
    if not isinstance(domain, int) or domain < 1:
        raise InputError(f"--nvlink-domain must be a positive integer, got {domain!r}")
    if domain > n_gpus or n_gpus % domain:
        raise InputError(f"an NVLink domain of {domain} GPUs does not divide {n_gpus} GPUs "
                         "(every domain holds the same number of GPUs)")
    if nodes not in (1, n_gpus // domain):
        raise InputError(f"--nodes {nodes} and --nvlink-domain {domain} disagree: {n_gpus} GPUs "
                         f"in domains of {domain} are {n_gpus // domain} domains")
    return n_gpus // domain


def default_name(gpu, per_node: int) -> str:
    """The catalog's default node; PCIe cards: two sockets past 4 cards (issue #3)."""
    name = gpu.default_topology
    if name in ("pcie", "pcie-2socket"):
        return "pcie-2socket" if per_node > 4 else "pcie"
    return name


def default_topology(gpu, n_gpus: int, nodes: int = 1, inter_node=None) -> Topology:
    """The topology a user of this GPU most likely has (GPUSpec.default_topology)."""
    per_node = split_nodes(n_gpus, nodes)
    return get_topology(default_name(gpu, per_node), gpu, n_gpus, nodes, inter_node)


def replicate(topo: Topology, gpu, nodes: int, per_node: int, inter_node=None) -> Topology:
    """A single-node topology (e.g. parsed from nvidia-smi) reused for `nodes` nodes of
    `per_node` GPUs: the first `per_node` GPUs of the file, as CUDA_VISIBLE_DEVICES would."""
    if per_node > topo.gpus_per_node:
        raise InputError(f"{per_node} GPUs per node is more than the topology file holds "
                         f"({topo.gpus_per_node})")
    paths = tuple(tuple(row[:per_node]) for row in topo.paths[:per_node])
    inter, nics = _inter(gpu, inter_node)
    if topo.source != "preset" and topo.nics_per_gpu > 0:
        nics = topo.nics_per_gpu  # NIC columns of the nvidia-smi matrix
    return Topology(topo.name, gpu.id, nodes, per_node, topo.socket_of[:per_node], paths,
                    topo.links, inter, float(nics), topo.source)
