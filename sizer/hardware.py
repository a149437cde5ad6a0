"""The constants of the time model for one device: achieved (not datasheet) rates.

Defaults are datasheet peak x an efficiency from public micro-benchmarks; a hardware profile
written by `python -m probes.calibrate` replaces each one it measured (`--profile`), and
`Device.provenance` says which is which.

Default efficiencies and their basis:
- HBM: 0.85 of datasheet bandwidth. Streaming copies/triads on A100/H100 reach 85-92% of the
  datasheet figure (NVIDIA nvbandwidth device-local copy; Chips and Cheese H100 measurements).
- Large GEMMs: 0.70 of dense peak in bf16/fp16, 0.60 in fp8/int8. cuBLAS reaches ~650-750 of
  989 TFLOP/s on H100 SXM for large square bf16 GEMMs (NVIDIA Hopper tuning guide; public
  microbenchmarks); fp8 kernels reach a smaller fraction of their doubled peak.
- GEMM rows at half efficiency: 64. Skinny GEMMs (few tokens) leave tensor cores idle; this is
  the M at which the compute roofline is halved. They are memory-bound there anyway.
- Prefill attention: 0.45 of dense bf16 peak (FlashAttention-2 reaches 335-400 TFLOP/s forward
  on H100 per the FlashAttention-3 paper, Fig. 5; FA3 reaches ~600).
- Decode attention: 0.70 of achieved HBM bandwidth (paged KV gathers; vLLM paged attention
  benchmarks).
- Kernel floor: 2.5 us per kernel under CUDA graphs, 8 us eager. A replayed graph still pays the
  GPU's per-kernel launch latency (~2-3 us); eager PyTorch pays the CPU dispatch path per op
  (~5-10 us), which a small decode shard cannot hide.
"""

from dataclasses import dataclass, field

HBM_EFFICIENCY = 0.85
MATMUL_EFFICIENCY = {"bf16": 0.70, "fp16": 0.70, "fp32": 0.70, "tf32": 0.70, "fp8": 0.60, "int8": 0.60}
MATMUL_HALF_ROWS = 64.0
ATTENTION_EFFICIENCY = 0.45
DECODE_ATTENTION_BW_EFFICIENCY = 0.70
KERNEL_LAUNCH_S = {"graph": 2.5e-6, "eager": 8.0e-6}


@dataclass(frozen=True)
class Device:
    """Achieved rates of one device (SI units)."""

    name: str
    hbm_bytes_per_s: float
    matmul_flops_per_s: dict  # dtype -> FLOP/s on large GEMMs
    matmul_half_rows: float
    attention_flops_per_s: float
    decode_attention_bw_efficiency: float
    kernel_launch_s: dict  # {"graph": s, "eager": s}
    provenance: dict = field(default_factory=dict)

    def matmul_rate(self, dtype: str) -> float:
        for key in (dtype, {"int4": "bf16", "fp4": "bf16"}.get(dtype, "bf16"), "bf16", "fp32"):
            if key in self.matmul_flops_per_s:
                return self.matmul_flops_per_s[key]
        return next(iter(self.matmul_flops_per_s.values()))


def device_for(gpu, profile=None) -> Device:
    """Device constants for a catalog GPU, with any values the profile measured replacing the
    defaults."""
    prov = {}

    def pick(key, default, dtype=None):
        measured = profile.compute_value(key, dtype) if profile is not None else None
        prov[f"{key}:{dtype}" if dtype else key] = "default" if measured is None else "measured"
        return default if measured is None else measured

    mm = {}
    for dtype in ("bf16", "fp16", "fp8", "int8", "fp32"):
        try:
            peak = gpu.peak("tf32" if dtype == "fp32" else dtype)
        except Exception:  # dtype absent on this GPU
            continue
        mm[dtype] = pick("matmul_flops_per_s", peak * MATMUL_EFFICIENCY[dtype], dtype)
    bf16_peak = gpu.peak("bf16")
    launch = dict(KERNEL_LAUNCH_S)
    if profile is not None:
        measured = profile.compute.get("kernel_launch_s") or {}
        for mode in launch:
            if isinstance(measured.get(mode), (int, float)) and measured[mode] > 0:
                launch[mode] = float(measured[mode])
                prov[f"kernel_launch_s:{mode}"] = "measured"
            else:
                prov[f"kernel_launch_s:{mode}"] = "default"
    return Device(
        name=gpu.id,
        hbm_bytes_per_s=pick("hbm_bytes_per_s", gpu.hbm_bytes_per_s * HBM_EFFICIENCY),
        matmul_flops_per_s=mm,
        matmul_half_rows=pick("matmul_half_rows", MATMUL_HALF_ROWS),
        attention_flops_per_s=pick("attention_flops_per_s", bf16_peak * ATTENTION_EFFICIENCY, "bf16"),
        decode_attention_bw_efficiency=DECODE_ATTENTION_BW_EFFICIENCY,
        kernel_launch_s=launch,
        provenance=prov,
    )
