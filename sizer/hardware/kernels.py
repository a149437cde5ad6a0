"""Kernel-level time constants of each GPU, fitted to measured kernels (data/kernel_fit.json).

benchmarks/kernel_fit.py fits the GEMM and elementwise forms of sizer/cost/ops.py to vidur's
per-kernel profiles of real H100 SXM, A100 80GB and A40 GPUs (github:microsoft/vidur
data/profiling/compute, commit 7d47513; one TP shard of one layer, 1-4096 tokens, TP 1-8), on
some models, holding others out, and writes the constants with their held-out errors.

Rates are stored as fractions of the measured part's datasheet, so a GPU without kernel data
takes the fit of the part its catalog entry names (`kernel_fit` in data/gpus.json, the nearest
measured architecture) scaled by its own datasheet: HBM and FLOP rates scale, the fixed floors,
per-row latency rates and rows per wave are copied. `KernelFit.scaled` says which is which.
"""

from dataclasses import dataclass, field
from functools import lru_cache

from sizer.errors import InputError
from sizer.model.resources import read_json

DEFAULT_SKU = "h100"  # a catalog GPU that names no measured part (e.g. a test's ad-hoc GPU)


@dataclass(frozen=True)
class RowKernel:
    """One elementwise kernel kind (sizer.cost.ops.elementwise_time): a fixed floor, a thread
    block's latency-bound rate through its row, the rows resident per wave, and the HBM rate the
    whole kernel reaches when it is bandwidth-bound."""

    floor_s: float
    row_bytes_per_s: float
    rows_per_wave: float
    bytes_per_s: float


@dataclass(frozen=True)
class KernelFit:
    """The fitted kernel constants for one catalog GPU."""

    gpu: str
    sku: str  # the measured part whose fit this is (vidur SKU: h100, a100, a40)
    scaled: bool  # True: another part's fit scaled by this GPU's datasheet
    hbm_bytes_per_s: float  # GEMM weight streaming asymptote
    gemm_floor_s: float
    gemm_floor_s_per_k: float
    matmul_efficiency: float  # bf16/fp16 large-GEMM rate / datasheet dense peak
    matmul_half_rows: float
    gemm_overlap: float  # p of the p-norm of memory and compute time
    elementwise: dict = field(default_factory=dict)  # kind -> RowKernel
    source: str = ""

    def note(self) -> str:
        if not self.scaled:
            return f"fitted to vidur's {self.sku.upper()} kernel profiles (data/kernel_fit.json)"
        return (f"no kernel measurements for {self.gpu}: vidur's {self.sku.upper()} fit, rates scaled by "
                f"the datasheet (data/kernel_fit.json)")


@lru_cache(maxsize=None)
def _fits() -> dict:
    return read_json("kernel_fit.json")


def measured_skus() -> tuple:
    return tuple(_fits()["gpus"])


def kernel_fit_for(gpu) -> KernelFit:
    """The kernel constants for a catalog GPUSpec: its own measured fit, or the named measured
    part's fit scaled by this GPU's datasheet bandwidth and bf16 peak."""
    doc = _fits()["gpus"]
    sku = getattr(gpu, "kernel_fit", "") or DEFAULT_SKU
    if sku not in doc:
        raise InputError(f"{gpu.id}: kernel_fit {sku!r} is not a measured part ({', '.join(doc)})")
    rec = doc[sku]
    sheet = rec["datasheet"]
    bw_scale = gpu.hbm_bytes_per_s / sheet["hbm_bytes_per_s"]
    g = rec["gemm"]
    elem = {kind: RowKernel(e["floor_s"], e["row_bytes_per_s"], e["rows_per_wave"],
                            e["hbm_efficiency"] * gpu.hbm_bytes_per_s)
            for kind, e in rec["elementwise"].items()}
    return KernelFit(gpu=gpu.id, sku=sku, scaled=rec.get("catalog_gpu") != gpu.id,
                     hbm_bytes_per_s=g["hbm_efficiency"] * sheet["hbm_bytes_per_s"] * bw_scale,
                     gemm_floor_s=g["floor_s"], gemm_floor_s_per_k=g["floor_s_per_k"], matmul_efficiency=g["matmul_efficiency"],
                     matmul_half_rows=g["matmul_half_rows"], gemm_overlap=g["overlap"],
                     elementwise=elem, source=_fits()["source"])
