"""Link classes: what one hop between two GPUs (or two nodes) costs.

Every class carries a line rate per direction (bytes/s, GB = 1e9), a latency per hop, and the
protocol constants the collective model needs. Line rates come from datasheets and specs (cited
per class). The *efficiencies* and *protocol latencies* are not datasheet numbers: they were fitted
to the public nccl-tests / vidur curves in /work/shared/reference/nccl_collectives.json (Azure
ND A100/H100/H200 v4/v5 nccl-tests all-reduce, vidur's a100_dgx / h100_dgx / *_pairwise_nvlink
profiles) and are marked `fitted` in their docstrings. The calibration issue replaces them with
measured ones (a profile, see sizer/hardware/profile.py).

Protocol model (NVIDIA/nccl src/graph/tuning.cc): NCCL prices each (algorithm, protocol) as
    time = baseLat[proto] + steps * hwLat[link][proto] + bytes / (busBw * protoEfficiency)
with three protocols: LL (8-byte stores with a 4-byte flag: lowest latency, lowest bandwidth),
LL128 (128-byte lines with 8 bytes of flag: 120/128 of the bandwidth) and Simple (plain copies
with fences: full bandwidth, highest latency). We keep that form with per-class constants.
"""

from dataclasses import dataclass, field, replace

from sizer.errors import InputError, closest_names


@dataclass(frozen=True)
class Protocol:
    """One NCCL protocol on one link class: `time = latency_s + steps * hop + bus_bytes / (bw * efficiency)`."""

    latency_s: float
    efficiency: float


@dataclass(frozen=True)
class LinkClass:
    """One kind of hop. `bytes_per_s` is the line rate per direction for one GPU (or one NIC)."""

    name: str
    kind: str  # "nvlink" | "nvswitch" | "pcie" | "cpu" | "host" | "xgmi" | "net"
    bytes_per_s: float
    hop_latency_s: float
    protocols: dict = field(default_factory=dict)  # "ll" | "ll128" | "simple" -> Protocol
    p2p: Protocol = Protocol(5e-6, 0.8)  # send/recv (NCCL p2p, Simple) on this hop
    nvls: Protocol | None = None  # NVLink SHARP all-reduce through the switch (Hopper and later)
    nvls_rank_s: float = 0.0  # NVLS latency added per rank past NVLS_BASE_RANKS (rack fabrics)
    per_node: bool = False  # net only: one NIC per node (TCP front-end) instead of per GPU
    source: str = ""

    def with_bandwidth(self, bytes_per_s: float) -> "LinkClass":
        return replace(self, bytes_per_s=float(bytes_per_s))


NVLS_BASE_RANKS = 8  # the group size LinkClass.nvls.latency_s holds for


def nvls_latency_s(link: LinkClass, ranks: int) -> float:
    """NVLS latency over `ranks` GPUs of one switch fabric: the class's latency, plus
    `nvls_rank_s` per rank beyond NVLS_BASE_RANKS (non-zero on rack fabrics only)."""
    return link.nvls.latency_s + link.nvls_rank_s * max(ranks - NVLS_BASE_RANKS, 0)


def _protos(ll, ll128, simple):
    return {"ll": Protocol(*ll), "ll128": Protocol(*ll128), "simple": Protocol(*simple)}


# --- NVLink (bandwidth per direction = links x per-link rate; datasheets state the bidirectional sum)
# Fitted: NVLink3 on the Azure ND A100 v4 and vidur a100_dgx all-reduce curves; NVLink4 on Azure
# ND H100 v5 / ND H200 v5 and vidur h100_dgx (scipy Nelder-Mead on median |log error|, Azure
# weighted 3x). The Simple latency (tens of us) absorbs NCCL's pipeline fill: busbw keeps rising
# up to ~256 MB on these curves. p2p (send_recv) constants: fitted to vidur 1x2 send_recv, where
# a bridged pair (4 us, 95%) is faster than a hop through an NVSwitch (7-13 us, 78-80%).
_NVLINK3 = _protos(ll=(37e-6, 0.0143), ll128=(35e-6, 0.49), simple=(180e-6, 0.776))
_NVLINK4 = _protos(ll=(20e-6, 0.0167), ll128=(30e-6, 0.743), simple=(63e-6, 0.752))
# NVLink5 (Blackwell): fitted to Azure ND GB200 v6 nccl-tests all-reduce on one 4-GPU tray, NCCL
# 2.25.1, NCCL_ALGO=Ring, 1 KiB - 8 GiB (data/nccl_multinode.json M00047-70; scipy Nelder-Mead on
# mean |log error|, efficiencies of LL128/Simple bounded to 0.6-0.8): 15-18 us up to 512 KiB where
# the Hopper constants said 23-26 us. Median |error| 1.0%, worst -36% at 4 MiB (NCCL grows its
# channel count over 2-32 MiB, which one latency + bandwidth line per protocol cannot follow).
# The fitted LL128 latency, 14 us, is NCCL's own ring LL128 baseLat (src/graph/tuning.cc,
# NVIDIA/nccl commit 5067397c). HGX B200 has the same NVLink5 ports and NCCL protocols.
_NVLINK5 = _protos(ll=(13e-6, 0.034), ll128=(14e-6, 0.67), simple=(70e-6, 0.74))
# PCIe x16 of every generation: one set of efficiencies (fitted on PCIe 4 and 5, see below)
_PCIE, _PCIE_P2P = _protos((20e-6, 0.08), (30e-6, 0.6), (40e-6, 0.78)), Protocol(8e-6, 0.8)
# NDR and XDR InfiniBand: one set (fitted on NDR; XDR has no public curve), see "ndr" below
_NDR, _NDR_P2P = _protos((35e-6, 0.05), (40e-6, 0.5), (50e-6, 0.95)), Protocol(14e-6, 0.75)
# HDR and EDR InfiniBand share one fitted curve (per-port rate apart); UPI and QPI one socket-link curve
_IB, _IB_P2P = _protos((35e-6, 0.05), (40e-6, 0.5), (50e-6, 0.85)), Protocol(15e-6, 0.85)
_SOCKET, _SOCKET_P2P = _protos((25e-6, 0.06), (35e-6, 0.6), (45e-6, 0.95)), Protocol(10e-6, 0.9)

LINKS = {
    "nvlink2": LinkClass(
        "nvlink2", "nvlink", 150e9, 0.7e-6, _NVLINK3, Protocol(6e-6, 0.8),
        source="NVIDIA V100 datasheet: 6 NVLink2 links x 25 GB/s/direction = 300 GB/s bidirectional"),
    "nvlink3": LinkClass(
        "nvlink3", "nvlink", 300e9, 0.6e-6, _NVLINK3, Protocol(4e-6, 0.95),
        source="NVIDIA A100 datasheet: 12 NVLink3 links, 600 GB/s bidirectional per GPU"),
    "nvlink4": LinkClass(
        "nvlink4", "nvlink", 450e9, 0.5e-6, _NVLINK4, Protocol(4e-6, 0.95),
        source="NVIDIA H100 datasheet: 18 NVLink4 links, 900 GB/s bidirectional per GPU"),
    "nvlink5": LinkClass(
        "nvlink5", "nvlink", 900e9, 0.5e-6, _NVLINK5, Protocol(5e-6, 0.8),
        source="NVIDIA B200 datasheet: 18 NVLink5 links, 1.8 TB/s bidirectional per GPU"),
    # NVSwitch: same per-GPU NVLink rate, every pair one hop through the switch. Third-generation
    # NVSwitch (HGX H100/H200) reduces in the switch (NVLink SHARP, NCCL's NVLS algorithm):
    # NCCL maintainers expect ~480 GB/s all-reduce busbw on 8xH100 vs ~370 GB/s for rings
    # (reference R00018/R00019, nccl-tests#212); NVLS efficiency fitted to Azure ND H100/H200 v5.
    "nvswitch3": LinkClass(
        "nvswitch3", "nvswitch", 300e9, 0.6e-6, _NVLINK3, Protocol(13e-6, 0.8),
        source="NVIDIA DGX A100 user guide: 6 second-gen NVSwitches, 600 GB/s bidirectional per GPU"),
    "nvswitch4": LinkClass(
        "nvswitch4", "nvswitch", 450e9, 0.5e-6, _NVLINK4, Protocol(7e-6, 0.78),
        nvls=Protocol(75e-6, 0.607),
        source="NVIDIA DGX H100 user guide: 4 third-gen NVSwitches (NVLink SHARP), 900 GB/s per GPU"),
    # HGX B200/B300 NVLS: no public 8-GPU Blackwell curve; Hopper's fitted efficiency scaled by
    # NCCL's own Blackwell/Hopper NVLS efficiency ratio (0.74 / 0.85, nvlsEfficiency in
    # NVIDIA/nccl src/graph/tuning.cc, commit 5067397c): 0.607 x 0.87 = 0.528.
    "nvswitch5": LinkClass(
        "nvswitch5", "nvswitch", 900e9, 0.5e-6, _NVLINK5, Protocol(5e-6, 0.8),
        nvls=Protocol(75e-6, 0.528),
        source="NVIDIA DGX B200 datasheet: fifth-gen NVLink/NVSwitch, 1.8 TB/s per GPU"),
    # The NVLink switch fabric of a GB200/GB300 NVL72 rack (multi-node NVLink). Every GPU port,
    # in a tray or across trays, goes to the same 18 switch chips, and NCCL runs the whole
    # domain as one node over its NVLink (P2P) transport (NVIDIA/nccl#1604): a ring over 2 trays
    # costs what a ring in one tray costs per step, so the ring constants are NVLink5's (fitted on
    # one tray, above). NVLS: fitted to CoreWeave's NCCL 2.26.2 all-reduce on one full rack
    # (data/nccl_multinode.json M00001-5, 512 MB - 8 GB): time = 575 us + size / (900 GB/s x
    # 0.484) at 72 ranks. That latency is not one of a small group: sizer prices NVLS over m
    # ranks of the rack at 75 us (HGX B200's 8-GPU value, nvswitch5) + nvls_rank_s per rank past 8,
    # a straight line through the 8- and 72-rank points (no public curve in between).
    "nvswitch5-rack": LinkClass(
        "nvswitch5-rack", "nvswitch", 900e9, 0.5e-6, _NVLINK5, Protocol(5e-6, 0.8),
        nvls=Protocol(75e-6, 0.484), nvls_rank_s=(575e-6 - 75e-6) / (72 - NVLS_BASE_RANKS),
        source="NVIDIA GB200 NVL72: 72 GPUs on 18 NVLink switch chips, 1.8 TB/s per GPU"),
    # --- PCIe x16: per direction, after 128b/130b encoding (gen3+). Efficiency fitted to vidur's
    # 4-GPU pairwise-NVLink boxes, whose rings cross PCIe between the pairs (A100 PCIe: gen4,
    # busbw 23.6 GB/s; H100 NVL: gen5, 48.8 GB/s at 64 MB).
    "pcie3": LinkClass(
        "pcie3", "pcie", 15.75e9, 1.0e-6, _PCIE, _PCIE_P2P,
        source="PCI-SIG PCIe 3.0: 8 GT/s x16, 128b/130b = 15.75 GB/s/direction"),
    "pcie4": LinkClass(
        "pcie4", "pcie", 31.5e9, 1.0e-6, _PCIE, _PCIE_P2P,
        source="PCI-SIG PCIe 4.0: 16 GT/s x16 = 31.5 GB/s/direction"),
    "pcie5": LinkClass(
        "pcie5", "pcie", 63e9, 1.0e-6, _PCIE, _PCIE_P2P,
        source="PCI-SIG PCIe 5.0: 32 GT/s x16 = 63 GB/s/direction"),
    "pcie6": LinkClass(
        "pcie6", "pcie", 121e9, 1.0e-6, _PCIE, _PCIE_P2P,
        source="PCI-SIG PCIe 6.0: 64 GT/s x16 = 128 GB/s/direction raw, "
               "FLIT mode (242 of 256 bytes payload) ~121 GB/s; efficiencies as PCIe 5"),
    # --- CPU socket interconnect crossed by GPU peer traffic ("SYS" in nvidia-smi topo -m).
    # One UPI link at 10.4 GT/s carries 20.8 GB/s per direction; peer writes across it reach about
    # 20 GB/s of all-reduce busbw (reference R00026: A100 3-GPU ring through SYS, nccl-tests#178).
    "upi": LinkClass(
        "upi", "cpu", 20.8e9, 2.0e-6, _SOCKET, _SOCKET_P2P,
        source="Intel Xeon Scalable datasheet: UPI 10.4 GT/s x20 lanes = 20.8 GB/s/direction/link"),
    "qpi": LinkClass(
        "qpi", "cpu", 19.2e9, 2.0e-6, _SOCKET, _SOCKET_P2P,
        source="Intel Xeon E5 v4 datasheet: QPI 9.6 GT/s = 19.2 GB/s/direction/link"),
    # --- No peer-to-peer (GeForce RTX 4090/5090): NCCL's SHM transport copies through pinned host
    # memory, two PCIe crossings per hop (NCCL docs, NCCL_P2P_DISABLE / SHM transport). Bandwidth
    # is the card's PCIe rate (set by the topology); efficiency fitted to RTX 5090 (PCIe 5, no P2P)
    # all-reduce busbw of 35 GB/s on 4 GPUs (reference R00023, nccl#1639).
    "host": LinkClass(
        "host", "host", 31.5e9, 5.0e-6, _protos((30e-6, 0.05), (45e-6, 0.4), (60e-6, 0.56)),
        Protocol(15e-6, 0.56),
        source="NCCL SHM transport through host memory; rate = the card's PCIe x16 per direction"),
    # --- AMD Infinity Fabric (xGMI) on MI300X: 7 links per GPU, one to each peer, 64 GB/s per
    # direction each (896 GB/s aggregate bidirectional). No public curve in the reference set:
    # efficiencies are the PCIe/NVLink-like defaults, not fitted.
    "xgmi": LinkClass(
        "xgmi", "xgmi", 64e9, 1.0e-6, _protos((15e-6, 0.05), (25e-6, 0.6), (40e-6, 0.75)),
        Protocol(8e-6, 0.8),
        source="AMD Instinct MI300X datasheet: 7 Infinity Fabric links x 128 GB/s bidirectional"),
    # --- Between nodes: one NIC per GPU unless per_node. NDR: NCCL maintainers say 46-48 GB/s per
    # 400 Gb/s NIC (reference R00020, nccl-tests#290) and NVL4 partitions of GB200 racks reach
    # ring busbw 196.7 GB/s over 4 NDR NICs (data/nccl_multinode.json M00071, nccl#1801): the
    # collectives' Simple efficiency 0.95. The send_recv (p2p) efficiency 0.75 is fitted to vidur
    # h100_dgx 2-node send_recv (35.9 GB/s at 64 MB), the latencies to NCCL's net hwLat.
    "hdr": LinkClass(
        "hdr", "net", 25e9, 3.0e-6, _IB, _IB_P2P, source="InfiniBand HDR: 200 Gb/s per port (NVIDIA ConnectX-6)"),
    "ndr": LinkClass(
        "ndr", "net", 50e9, 3.0e-6, _NDR, _NDR_P2P,
        source="InfiniBand NDR: 400 Gb/s per port (NVIDIA ConnectX-7)"),
    "xdr": LinkClass(
        "xdr", "net", 100e9, 3.0e-6, _NDR, _NDR_P2P,
        source="InfiniBand XDR: 800 Gb/s per port (NVIDIA ConnectX-8); "
               "no public curve: NDR's efficiencies"),
    "edr": LinkClass(
        "edr", "net", 12.5e9, 3.0e-6, _IB, _IB_P2P, source="InfiniBand EDR: 100 Gb/s per port (ConnectX-5)"),
    "roce-100g": LinkClass(
        "roce-100g", "net", 12.5e9, 4.0e-6, _protos((37e-6, 0.05), (42e-6, 0.5), (52e-6, 0.8)),
        Protocol(16e-6, 0.8), source="IEEE 802.3 100GBASE Ethernet with RDMA (RoCE v2)"),
    "roce-200g": LinkClass(
        "roce-200g", "net", 25e9, 4.0e-6, _protos((37e-6, 0.05), (42e-6, 0.5), (52e-6, 0.8)),
        Protocol(16e-6, 0.8), source="IEEE 802.3 200GBASE Ethernet with RDMA (RoCE v2)"),
    "roce-400g": LinkClass(
        "roce-400g", "net", 50e9, 4.0e-6, _protos((37e-6, 0.05), (42e-6, 0.5), (52e-6, 0.8)),
        Protocol(16e-6, 0.75), source="IEEE 802.3 400GBASE Ethernet with RDMA (RoCE v2)"),
    # Google Cloud A3 Mega: 8x 200 Gb/s NICs per node with GPUDirect-TCPXO (TCP offload, no RDMA).
    # Latencies and efficiency fitted to a 2-node all-reduce (data/nccl_multinode.json M00023-46):
    # ~123 us floor at small sizes, ~0.9 ms effective latency on the bandwidth ramp, busbw 339 GB/s.
    "tcpxo-200g": LinkClass(
        "tcpxo-200g", "net", 25e9, 5.0e-6, _protos((110e-6, 0.05), (120e-6, 0.5), (800e-6, 0.9)),
        Protocol(100e-6, 0.8),
        source="Google Cloud A3 Mega (a3-megagpu-8g): 8x 200 Gb/s NICs per node, GPUDirect-TCPXO"),
    # TCP sockets (no RDMA) through one front-end NIC per node. Efficiency fitted to the 2-node rows
    # of vidur's a100_dgx (send_recv 7.8 GB/s at 64 MB) and pairwise-NVLink VMs (2.5 GB/s).
    "tcp-100g": LinkClass(
        "tcp-100g", "net", 12.5e9, 5e-6, _protos((30e-6, 0.03), (40e-6, 0.3), (50e-6, 0.62)),
        Protocol(18e-6, 0.62), per_node=True,
        source="IEEE 802.3 100 GbE, NCCL socket transport (NCCL_IB_DISABLE=1)"),
    "tcp-25g": LinkClass(
        "tcp-25g", "net", 3.125e9, 5e-6, _protos((30e-6, 0.03), (40e-6, 0.3), (50e-6, 0.8)),
        Protocol(8e-6, 0.8), per_node=True,
        source="IEEE 802.3 25 GbE, NCCL socket transport (NCCL_IB_DISABLE=1)"),
}

#: GPUSpec.nic_bits_per_s -> default inter-node class (RDMA NICs in SXM/OAM nodes)
_NIC_BY_BITS = {100e9: "edr", 200e9: "hdr", 400e9: "ndr", 800e9: "xdr"}


def get_link(name: str) -> LinkClass:
    """A link class by name; InputError naming the known ones otherwise."""
    key = str(name).strip().lower().replace("_", "-")
    if key in LINKS:
        return LINKS[key]
    hint = closest_names(key, LINKS)
    raise InputError(f"unknown link class {name!r}" + (f"; did you mean {hint}?" if hint else "")
                     + f" (known: {', '.join(LINKS)})")


def inter_node_names() -> list[str]:
    return [name for name, link in LINKS.items() if link.kind == "net"]


#: words people type for a network family -> its classes (the catalog names them by speed)
_NET_FAMILIES = (("infiniband", ("edr", "hdr", "ndr", "xdr")), ("ib", ("edr", "hdr", "ndr", "xdr")),
                 ("roce", ("roce-100g", "roce-200g", "roce-400g")),
                 ("ethernet", ("tcp-25g", "tcp-100g")), ("eth", ("tcp-25g", "tcp-100g")),
                 ("gpudirect", ("tcpxo-200g",)), ("a3", ("tcpxo-200g",)),
                 ("tcp", ("tcp-25g", "tcp-100g")))


def get_network_link(name: str) -> LinkClass:
    """A link class between nodes (kind "net") by name. Suggestions list network classes only:
    a family word ("ib", "roce", "tcp") names its classes, anything else the closest names."""
    key = str(name).strip().lower().replace("_", "-")
    nets = inter_node_names()
    if key in nets:
        return LINKS[key]
    known = f"(network classes: {', '.join(nets)})"
    if key in LINKS:
        raise InputError(f"--inter-node {name!r} is a link inside a node, not between nodes "
                         + known)
    hint = next((", ".join(c) for word, c in _NET_FAMILIES if key.startswith(word)), "")
    hint = hint or closest_names(key, nets)
    raise InputError(f"unknown network link class {name!r}"
                     + (f"; did you mean {hint}?" if hint else "") + f" {known}")


def nic_link(nic_bits_per_s: float) -> LinkClass:
    """The RDMA class of a NIC speed from the GPU catalog (nearest standard speed; none -> TCP)."""
    if not nic_bits_per_s or nic_bits_per_s <= 0:
        return LINKS["tcp-100g"]
    bits = min(_NIC_BY_BITS, key=lambda b: abs(b - nic_bits_per_s))
    link = LINKS[_NIC_BY_BITS[bits]]
    return link.with_bandwidth(nic_bits_per_s / 8)


def nvlink_link(generation: int | None, bytes_per_s_bidirectional: float, switched: bool,
                rack: bool = False) -> LinkClass:
    """The NVLink class of a GPU: generation picks the constants, the catalog's bidirectional
    per-GPU NVLink bandwidth (datasheet) sets the per-direction rate (half of it). `rack`: the
    switch fabric of a rack-scale NVLink domain (GB200/GB300 NVL72)."""
    gen = generation or 4
    gen = min(max(gen, 2), 5)
    if switched and rack:
        name = "nvswitch5-rack"
    elif switched:
        name = {2: "nvswitch3", 3: "nvswitch3", 4: "nvswitch4", 5: "nvswitch5"}[gen]
    else:
        name = f"nvlink{gen}"
    link = LINKS[name]
    if bytes_per_s_bidirectional and bytes_per_s_bidirectional > 0:
        link = link.with_bandwidth(bytes_per_s_bidirectional / 2)
    return link


def pcie_link(gen: int | None, lanes: int | None = 16) -> LinkClass:
    """PCIe class for a generation (3-6, clamped) scaled to the lane count."""
    g = min(max(int(gen or 4), 3), 6)
    link = LINKS[f"pcie{g}"]
    if lanes and lanes != 16:
        link = link.with_bandwidth(link.bytes_per_s * lanes / 16)
    return link
