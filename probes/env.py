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
    """Facts only this rank can see (through its device layer, probes/device.py)."""
    info = {"rank": ctx.rank, "local_rank": ctx.local_rank, "hostname": socket.gethostname(),
            "device": "cpu", "memory_bytes": None}
    if ctx.device.type == "cuda":
        props = ctx.dev.properties()
        info.update(device=props["name"], memory_bytes=props["memory_bytes"],
                    capability=props["capability"], multiprocessors=props["multiprocessors"],
                    l2_bytes=props.get("l2_bytes"), uuid=props.get("uuid"),
                    cuda_index=ctx.dev.index, nccl=ctx.dev.nccl_version())
    else:
        info["cpu_model"] = _cpu_model()
    return info


# Environment variables that change what NCCL and torch.distributed do (algorithms, protocols,
# transports, timeouts, error handling): the profile keeps them so a measurement can be redone.
ENV_PREFIXES = ("NCCL_", "TORCH_NCCL_", "TORCH_DISTRIBUTED_", "CUDA_VISIBLE_DEVICES",
                "CUDA_DEVICE_MAX_CONNECTIONS", "OMP_NUM_THREADS")


def comm_environment(environ=None) -> dict:
    """The NCCL_* / TORCH_NCCL_* (and CUDA visibility) variables set for this run."""
    environ = os.environ if environ is None else environ
    return {k: environ[k] for k in sorted(environ) if k.startswith(ENV_PREFIXES)}


GPU_QUERY = ("index,uuid,driver_version,clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,"
             "power.limit,persistence_mode")


def gpu_clocks(text: str | None = None) -> list[dict]:
    """Per-GPU driver, current and maximum SM / memory clocks (MHz) and power limit from
    `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` (run here unless `text` is
    given): throttled clocks explain a slow profile."""
    if text is None:
        text = _run(["nvidia-smi", f"--query-gpu={GPU_QUERY}", "--format=csv,noheader,nounits"])
    if not text:
        return []
    keys = GPU_QUERY.split(",")
    out = []
    for line in text.strip().splitlines():
        vals = [v.strip() for v in line.split(",")]
        if len(vals) != len(keys):
            continue
        row = {}
        for k, v in zip(keys, vals):
            try:
                row[k] = float(v) if k not in ("uuid", "driver_version", "persistence_mode") else v
            except ValueError:
                row[k] = v  # "[N/A]" and the like stay text
        out.append(row)
    return out


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


def capture(infos: list[dict], backend: str, world_size: int, nodes: int,
            launcher: str = "spawn") -> dict:
    """The profile's `env` from every rank's `rank_info` plus this process's view."""
    infos = [i for i in infos if i]
    device = infos[0]["device"] if infos else "cpu"
    nccl = next((i.get("nccl") for i in infos if i.get("nccl")), None)
    clocks = gpu_clocks() if device != "cpu" else []
    driver = clocks[0]["driver_version"] if clocks else None
    if driver is None and device != "cpu":
        text = _run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"])
        driver = text.strip().splitlines()[0] if text else None
    gpu_id = gpu_id_for(device) if device != "cpu" else None
    env = {
        "backend": backend, "device": device, "gpu_id": gpu_id, "world_size": world_size,
        "nodes": nodes, "launcher": launcher, "hostnames": sorted({i["hostname"] for i in infos}),
        "gpus": [{k: i.get(k) for k in ("rank", "hostname", "device", "memory_bytes",
                                         "capability", "l2_bytes", "uuid", "cuda_index")}
                 for i in infos],
        "torch": torch.__version__, "cuda": torch.version.cuda, "nccl": nccl,
        "driver": driver, "gpu_clocks": clocks, "comm_env": comm_environment(),
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        "created_by": "python -m probes.calibrate",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    env["topology"] = topology(gpu_id) if device != "cpu" else {"source": "cpu ranks"}
    return env
