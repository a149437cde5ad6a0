"""The GPU catalog: datasheet numbers with a cited source for each.

Presets live in `data/gpus.json` (one object per GPU, units in the field names). Unknown GPUs are
an input error with the closest names suggested, never a guess.
"""

from dataclasses import dataclass, field
from functools import lru_cache

from sizer.errors import InputError, closest_names
from sizer.model.resources import read_json


@dataclass(frozen=True)
class GPUSpec:
    """One accelerator model.

    memory_bytes is the marketing capacity (80 GB, 141 GB ...); capacity_bytes is what the device
    reports to CUDA (torch.cuda.mem_get_info total), which is what engines budget against.
    peak_flops_per_s holds *dense* (no sparsity) peaks keyed by dtype: fp32, tf32, bf16, fp16,
    fp8, int8, fp4 (only those the part has). nvlink_bytes_per_s is the total bidirectional
    NVLink/xGMI bandwidth per GPU as datasheets state it (0 when the part has none).
    kernel_fit names the measured part (vidur SKU: h100, a100, a40) whose kernel-level time
    constants this GPU uses: its own, or the nearest measured architecture's, scaled by this
    GPU's datasheet (sizer/hardware/kernels.py); sources["kernel_fit"] says which.
    nvlink_domain_gpus is how many GPUs one NVLink domain joins when it is larger than a node
    (72 for GB200/GB300 NVL72 racks of 4-GPU trays); 0 means the domain is the node.
    """

    id: str
    name: str
    vendor: str
    form_factor: str  # "SXM" | "PCIe" | "OAM"
    memory_bytes: int
    capacity_bytes: int
    hbm_bytes_per_s: float
    peak_flops_per_s: dict
    nvlink_bytes_per_s: float
    nvlink_generation: int | None
    pcie_gen: int
    pcie_lanes: int
    p2p: bool  # peer-to-peer over PCIe/NVLink supported (False: RTX 4090 goes through host)
    gpus_per_node: int
    nics_per_gpu: float
    nic_bits_per_s: float
    default_topology: str  # "nvswitch" | "nvlink-pairs" | "pcie" | "xgmi"
    tdp_watts: float
    kernel_fit: str = ""  # measured part whose kernel fit applies (data/kernel_fit.json)
    nvlink_domain_gpus: int = 0
    aliases: tuple = ()
    sources: dict = field(default_factory=dict)

    @property
    def domain_gpus(self) -> int:
        """GPUs in one NVLink domain: the rack for NVL72 parts, the node otherwise."""
        return max(int(self.nvlink_domain_gpus or 0), int(self.gpus_per_node or 1))

    def peak(self, dtype: str) -> float:
        """Dense peak FLOP/s for a dtype; int4/fp4 fall back to the int8/fp8 tensor-core rate
        (weight-only quantized GEMMs run at the activation dtype), fp16 and bf16 are equal."""
        p = self.peak_flops_per_s
        for key in {"fp16": ("fp16", "bf16"), "bf16": ("bf16", "fp16"),
                    "int4": ("int4", "int8", "bf16"), "fp4": ("fp4", "fp8", "bf16"),
                    "fp8": ("fp8", "bf16"), "int8": ("int8", "bf16")}.get(dtype, (dtype,)):
            if p.get(key):
                return float(p[key])
        raise InputError(f"{self.id} has no {dtype} peak in the catalog")


@lru_cache(maxsize=None)
def all_gpus() -> dict:
    """id -> GPUSpec for every preset."""
    out = {}
    for rec in read_json("gpus.json"):
        rec = dict(rec)
        rec["aliases"] = tuple(rec.get("aliases", ()))
        out[rec["id"]] = GPUSpec(**rec)
    return out


def get_gpu(name: str) -> GPUSpec:
    """Look a GPU up by id or alias, case-insensitively (`H100`, `h100-sxm5-80gb`, ...)."""
    key = str(name).strip().lower().replace("_", "-").replace(" ", "-")
    gpus = all_gpus()
    for gpu in gpus.values():
        if key == gpu.id or key in (a.lower() for a in gpu.aliases):
            return gpu
    names = list(gpus) + [a for g in gpus.values() for a in g.aliases]
    hint = closest_names(key, names)
    raise InputError(f"unknown GPU {name!r}" + (f"; did you mean {hint}?" if hint else "")
                     + f" (known: {', '.join(gpus)})")
