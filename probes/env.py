"""What was measured on: devices, versions, hosts and topology, for the profile's `env`.

Per-rank facts (host, device, memory) are collected on each rank by `rank_info`; the rest
(versions, driver, `nvidia-smi topo -m`) once, by `capture`. The topology matrix is parsed with
sizer/hardware/topo_smi.py where that parser knows the GPU; the raw text is always kept, and the measured
P2P matrix (probes/coll.py) stands in for it where nvidia-smi is absent.
"""

import os
import platform
import shutil
import socket
import subprocess
import sys
from datetime import datetime, timezone

import torch


def rank_info(ctx) -> dict:
    """Facts only this rank can see."""
    info = {"rank": ctx.rank, "local_rank": ctx.local_rank, "hostname": socket.gethostname(),
            "device": "cpu", "memory_bytes": None}
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        info.update(device=props.name, memory_bytes=int(props.total_memory),
                    capability=f"{props.major}.{props.minor}",
                    multiprocessors=props.multi_processor_count)
    else:
        info["device"] = "cpu"
        info["cpu_model"] = _cpu_model()
    return info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _run(cmd: list[str], timeout_s: float = 20.0) -> str | None:
    if not shutil.which(cmd[0]):
        return None
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def gpu_id_for(device_name: str) -> str | None:
    """The sizer catalog id of a CUDA device name ('NVIDIA H100 80GB HBM3' -> 'h100-sxm'): the
    whole name, then without an HBM generation token; None when the catalog has no such name
    (unknown hardware yields no guess: 'A100-PCIE-40GB' must not become the 80 GB part)."""
    try:
        from sizer.errors import InputError
        from sizer.hardware.gpus import get_gpu
    except ImportError:
        return None
    words = device_name.replace("NVIDIA", "").replace("-", " ").split()
    tries = ["-".join(words), "-".join(w for w in words if not w.upper().startswith("HBM"))]
    for name in tries:
        try:
            return get_gpu(name).id
        except (InputError, FileNotFoundError, ModuleNotFoundError):
            continue
    return None


def topology(gpu_id: str | None, text: str | None = None) -> dict:
    """`nvidia-smi topo -m` as raw text (run here unless `text` is given), plus
    sizer.hardware.topo_smi's reading of it when the GPU is in the catalog."""
    text = text if text is not None else _run(["nvidia-smi", "topo", "-m"])
    if text is None:
        return {"source": "none (nvidia-smi not found); see raw.p2p_matrix"}
    out = {"source": "nvidia-smi topo -m", "text": text}
    try:
        from sizer.hardware.gpus import get_gpu
        from sizer.hardware.topo_smi import parse_topo_matrix
    except ImportError:
        return out
    if gpu_id:
        try:
            topo = parse_topo_matrix(text, get_gpu(gpu_id), name="nvidia-smi topo -m")
            out["parsed"] = {"gpus_per_node": topo.gpus_per_node, "sockets": topo.sockets,
                             "socket_of": list(topo.socket_of),
                             "paths": [[list(p) for p in row] for row in topo.paths]}
        except Exception as exc:  # noqa: BLE001 -- keep the raw text whatever the parser says
            out["parse_error"] = str(exc).splitlines()[0][:300]
    return out


def topology_from_p2p(pairs: list[dict], world_size: int) -> dict:
    """The measured stand-in for `nvidia-smi topo -m`: n x n bandwidth (GB/s) and latency (us)
    matrices, and each pair's class relative to the fastest pair ('fast' at >= 50% of it,
    'slow' below: NVLink vs PCIe vs cross-socket separate by far more than 2x)."""
    if not pairs:
        return {}
    bw = [[None] * world_size for _ in range(world_size)]
    lat = [[None] * world_size for _ in range(world_size)]
    top = max(p["bw_GBps"] for p in pairs)
    cls = {}
    for p in pairs:
        i, j = p["src"], p["dst"]
        bw[i][j] = bw[j][i] = p["bw_GBps"]
        lat[i][j] = lat[j][i] = p["latency_us"]
        cls[f"{i}-{j}"] = "fast" if p["bw_GBps"] >= 0.5 * top else "slow"
    return {"source": "measured p2p matrix", "bw_GBps": bw, "latency_us": lat, "pair_class": cls}


def capture(infos: list[dict], backend: str, world_size: int, nodes: int) -> dict:
    """The profile's `env` from every rank's `rank_info` plus this process's view."""
    infos = [i for i in infos if i]
    device = infos[0]["device"] if infos else "cpu"
    nccl = None
    if backend == "nccl":
        try:
            v = torch.cuda.nccl.version()
            nccl = ".".join(map(str, v)) if isinstance(v, tuple) else str(v)
        except Exception:  # noqa: BLE001
            nccl = None
    driver = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
    gpu_id = gpu_id_for(device) if device != "cpu" else None
    env = {
        "backend": backend, "device": device, "gpu_id": gpu_id, "world_size": world_size,
        "nodes": nodes, "hostnames": sorted({i["hostname"] for i in infos}),
        "gpus": [{k: i.get(k) for k in ("rank", "hostname", "device", "memory_bytes",
                                         "capability")} for i in infos],
        "torch": torch.__version__, "cuda": torch.version.cuda, "nccl": nccl,
        "driver": driver.strip().splitlines()[0] if driver else None,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "created_by": "python -m probes.calibrate",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    env["topology"] = topology(gpu_id) if device != "cpu" else {"source": "cpu ranks"}
    return env
