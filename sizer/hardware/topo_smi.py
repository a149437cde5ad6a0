"""Read the matrix that `nvidia-smi topo -m` prints into a Topology.

That matrix is what users have: one row per GPU (and NIC), one column per device, then CPU/NUMA
affinity. The legend nvidia-smi prints with it defines the relations:
    X    = Self
    SYS  = PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
    NODE = PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
    PHB  = PCIe as well as a PCIe Host Bridge (typically the CPU)
    PXB  = multiple PCIe bridges (without traversing the PCIe Host Bridge)
    PIX  = at most a single PCIe bridge
    NV#  = a bonded set of # NVLinks
(older drivers print SOC for SYS). We map SYS/SOC to a PCIe hop plus the socket link, every other
PCIe relation to one PCIe hop, NV# to # NVLinks (25 GB/s per link and direction through NVLink4,
50 GB/s for NVLink5; NVIDIA A100/H100/B200 datasheets). When every pair of GPUs shows the same
bond and that bond carries all of a GPU's NVLink bandwidth, the GPUs sit on an NVSwitch (a GPU
cannot bond all its links to each of several peers otherwise). Sockets are the groups of GPUs
that reach each other without SYS.
"""

import re

from sizer.errors import InputError
from .topology import Topology, local_links

_PCIE = {"PIX", "PXB", "PHB", "NODE"}
_SOCKET = {"SYS", "SOC"}
_SELF = {"X"}
_NV = re.compile(r"NV(\d+)$")
_GPU = re.compile(r"GPU(\d+)$")

# Bounds, so that a pasted or generated file answers at once or is refused at once:
MAX_GPUS = 128  # one node's matrix; the largest NVSwitch boards hold 16 GPUs (DGX-2, HGX-2)
MAX_NVLINKS = 18  # links per GPU: 18 on H100 SXM (NVLink4) and B200 (NVLink5), the most so far
MAX_TEXT_BYTES = 2**20  # a 128-GPU, 128-NIC matrix is ~0.4 MiB


def _per_link_bytes(gpu) -> float:
    return 50e9 if (gpu.nvlink_generation or 0) >= 5 else 25e9


def parse_topo_matrix(text: str, gpu, name: str = "topology-file") -> Topology:
    """One node's Topology from `nvidia-smi topo -m` text; InputError if it is not that text:
    no header, repeated or missing rows, a short row, a relation that is not X on the diagonal
    or not NV1..NV18 / PIX / PXB / PHB / NODE / SYS (SOC) off it, an asymmetric matrix, NVLink
    on a GPU type without it, or more than MAX_GPUS GPUs."""
    lines = str(text).splitlines()
    header_at, devices = None, []
    for k, line in enumerate(lines):
        tokens = line.split()
        if tokens and tokens[0] == "GPU0" and len(tokens) > 1 and not _is_relation(tokens[1]):
            devices = []
            for tok in tokens:
                if tok in ("CPU", "NUMA", "GPU") and devices:
                    break
                devices.append(tok)
            header_at = k
            break
    if header_at is None:
        raise InputError(f"{name}: no `nvidia-smi topo -m` header (a line starting with GPU0 "
                         "GPU1 ... CPU Affinity) found")
    column = {}
    for k, dev in enumerate(devices):
        if dev in column:
            raise InputError(f"{name}: column {dev} appears twice in the header")
        column[dev] = k
    gpus = [d for d in devices if _GPU.match(d)]
    if len(gpus) > MAX_GPUS:
        raise InputError(f"{name}: {len(gpus)} GPUs in one matrix; `nvidia-smi topo -m` shows one "
                         f"node, and sizer reads at most {MAX_GPUS} (use --nodes for more nodes)")
    n_nics = len(devices) - len(gpus)
    rows = {}
    for line in lines[header_at + 1:]:
        tokens = line.split()
        if not tokens or tokens[0] not in column:
            if rows and tokens and tokens[0].startswith("Legend"):
                break
            continue
        if tokens[0] in rows:
            raise InputError(f"{name}: row {tokens[0]} appears twice")
        rel = tokens[1:1 + len(devices)]
        if len(rel) < len(devices):
            raise InputError(f"{name}: row {tokens[0]} has {len(rel)} relations for "
                             f"{len(devices)} columns")
        rows[tokens[0]] = rel
    missing = [g for g in gpus if g not in rows]
    if not gpus or missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise InputError(f"{name}: matrix rows missing for {shown or 'all GPUs'}")
    cols = [column[g] for g in gpus]
    rel = [[rows[g][c].upper() for c in cols] for g in gpus]
    n = len(gpus)
    nvlink = bool(gpu.nvlink_bytes_per_s)
    for i in range(n):
        for j in range(n):
            r = rel[i][j]
            if i == j:
                if r not in _SELF:
                    raise InputError(f"{name}: {gpus[i]} to itself is {r!r}, expected X")
                continue
            if r != rel[j][i]:
                raise InputError(f"{name}: {gpus[i]} to {gpus[j]} is {r} but {gpus[j]} to "
                                 f"{gpus[i]} is {rel[j][i]}; the matrix must be symmetric")
            m = _NV.match(r)
            if m:
                if not 1 <= int(m.group(1)) <= MAX_NVLINKS:
                    raise InputError(f"{name}: {r} between {gpus[i]} and {gpus[j]}: a bond of "
                                     f"{int(m.group(1))} NVLinks (a GPU has 1 to {MAX_NVLINKS})")
                if not nvlink:
                    raise InputError(f"{name}: {r} between {gpus[i]} and {gpus[j]}, but {gpu.id} "
                                     "has no NVLink; give the --gpu this matrix was printed on")
            elif r not in _PCIE and r not in _SOCKET:
                raise InputError(f"{name}: unknown relation {r!r} between {gpus[i]} and "
                                 f"{gpus[j]} (expected NV#, PIX, PXB, PHB, NODE or SYS)")
    return _build(rel, gpu, name, n_nics)


def _is_relation(token: str) -> bool:
    return token.upper() in _PCIE | _SOCKET | _SELF or bool(_NV.match(token.upper()))


def _build(rel, gpu, name: str, n_nics: int) -> Topology:
    n = len(rel)
    links = dict(local_links(gpu))
    per_link = _per_link_bytes(gpu)
    gpu_nvlink = (gpu.nvlink_bytes_per_s or 0) / 2
    bonds = {rel[i][j] for i in range(n) for j in range(n) if i != j}
    switched = (n >= 3 and len(bonds) == 1 and _NV.match(next(iter(bonds)))
                and gpu_nvlink > 0 and int(_NV.match(next(iter(bonds))).group(1)) * per_link
                >= 0.9 * gpu_nvlink)
    if switched and "nvswitch" not in links:
        switched = False
    hop = "pcie" if gpu.p2p else "host"
    paths = []
    for i in range(n):
        row = []
        for j in range(n):
            r = rel[i][j]
            m = _NV.match(r)
            if i == j:
                row.append(())
            elif switched:
                row.append(("nvswitch",))
            elif m:
                key = f"nv{int(m.group(1))}"
                if key not in links:
                    base = links.get("nvlink") or _generic_nvlink()
                    bw = int(m.group(1)) * per_link
                    links[key] = base.with_bandwidth(min(bw, gpu_nvlink) if gpu_nvlink else bw)
                row.append((key,))
            elif r in _SOCKET:
                row.append((hop, "upi"))
            else:
                row.append((hop,))
        paths.append(tuple(row))
    socket_of = _sockets(rel)
    nics_per_gpu = min(1.0, n_nics / n) if n_nics else 0.0
    return Topology(f"file:{name}", gpu.id, 1, n, socket_of, tuple(paths), links, None,
                    nics_per_gpu, source=name)


def _generic_nvlink():
    from .links import LINKS

    return LINKS["nvlink3"]


def _sockets(rel) -> tuple:
    """Connected components of 'reachable without SYS', numbered in GPU order."""
    n = len(rel)
    socket = [-1] * n
    count = 0
    for start in range(n):
        if socket[start] >= 0:
            continue
        stack = [start]
        socket[start] = count
        while stack:
            i = stack.pop()
            for j in range(n):
                if socket[j] < 0 and rel[i][j] not in _SOCKET:
                    socket[j] = count
                    stack.append(j)
        count += 1
    return tuple(socket)


def read_topology_file(path: str, gpu) -> Topology:
    """parse_topo_matrix on a file given with --topology-file (at most MAX_TEXT_BYTES read)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_TEXT_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"topology file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read topology file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_TEXT_BYTES:
        raise InputError(f"{path} is larger than {MAX_TEXT_BYTES // 2**20} MiB: not one node's "
                         "`nvidia-smi topo -m` matrix")
    return parse_topo_matrix(data.decode("utf-8", errors="replace"), gpu, name=path)
