"""The constants of the time model for one device: achieved (not datasheet) rates.

Kernel constants come from measured kernels, per GPU (sizer/hardware/kernels.py,
data/kernel_fit.json): GEMM weight-streaming bandwidth, large-GEMM compute efficiency, the
per-GEMM floor and its growth with K, the memory/compute overlap, and each elementwise kernel
kind's floor, row rate, waves and bandwidth, fitted by benchmarks/kernel_fit.py to vidur's
per-kernel H100/A100/A40 profiles and checked on held-out models (H100: GEMMs median 4.2% /
p90 17% held out; whole-layer signed bias TP1 -1.8%, TP8 +1.4%, was +15% / -2% with the
previous end-to-end fit). GPUs without kernel data take the nearest measured part's fit scaled
by their datasheet, as their catalog entry says (`kernel_fit`). A hardware profile written by
`python -m probes.calibrate` replaces each constant it measured (`--profile`), and
`Device.provenance` says which is which.

Constants that are not kernel-level, and their basis:
- Decode attention: KV reads at KV_READ_EFFICIENCY of datasheet bandwidth (an engine-level
  constant refitted on the published serving rows after the kernel fit,
  benchmarks/time_vs_published.py --fit, searched up to 0.95; vidur's attention profiles are
  not in its public snapshot). Device.decode_attention_bw_efficiency holds it relative to the
  GEMM streaming rate, so a profile's measured HBM rate scales it too.
- Engine step overhead: STEP_OVERHEAD_S per forward plus STEP_OVERHEAD_PER_SEQ_S per sequence
  in it (refitted the same way): scheduling, input preparation, output processing and host
  synchronisation that CUDA graphs do not remove, a fixed part and a per-request part.
- Grouped expert GEMMs (MoE): MOE_GEMM_EFFICIENCY x the dense GEMM compute rate; routed tokens
  reach each expert in ragged groups (see sizer/cost/ops.py moe_experts).
- fp8/int8 GEMMs: MATMUL_DTYPE_FACTOR x the fitted bf16 efficiency of their (doubled) peak.
  No per-kernel fp8 profile is in the reference data; fp8 kernels reach a smaller fraction of
  their peak, and the factor keeps the previous defaults' ratio (0.60 vs 0.70) until measured.
- FP4 GEMMs (NVFP4 W4A4, Blackwell): 0.45 of the dense FP4 peak (FP4_MATMUL_EFFICIENCY; 0.36
  when first fitted on the end-to-end constants, refitted the same way on the kernel fit's). Large square GEMMs reach more: Azure's cuBLASLt runs on one GB200 give
  7.6 of 10 PFLOP/s in FP4 (0.76) and 2.9 of 5 in FP8 (0.58) at 8192-32768 cubed, but FP4 pays
  off only on big shapes (2048 cubed: FP4 1.7 PF/s, slower than FP8's 2.2; github.com/Azure/
  AI-benchmarking-guide Azure_Results/ND_GB200_v6_results.md), and serving GEMMs are skinny.
  Fitted (median |error|) to the ten TensorRT-LLM v1.0 B200 Llama-3.3-70B FP4 throughput rows of
  data/published_perf.json and checked on the GB200 70B and B200 405B FP4 rows
  (benchmarks/time_vs_published.py). Only GPUs with an FP4 peak in the catalog get an fp4 rate;
  elsewhere fp4 GEMMs run at the activation dtype's rate.
- Prefill attention: 0.45 of dense bf16 peak (FlashAttention-2 reaches 335-400 TFLOP/s forward
  on H100 per the FlashAttention-3 paper, Fig. 5; FA3 reaches ~600).
- Launch floor: every kernel occupies at least 1 us of the GPU timeline under CUDA graphs (the
  shortest kernels vidur times on H100 take 1.0 us; graph replay adds no host work per kernel)
  and 8 us eager (PyTorch's CPU dispatch path per op, ~5-10 us, which a small decode shard
  cannot hide).
"""

from dataclasses import dataclass, field, replace

from .kernels import kernel_fit_for

MATMUL_DTYPE_FACTOR = {"bf16": 1.0, "fp16": 1.0, "fp32": 1.0, "fp8": 0.60 / 0.70, "int8": 0.60 / 0.70}
MATMUL_HALF_ROWS = 64.0  # a profile-built device's default (probes fit it; the kernel fit does too)
FP4_MATMUL_EFFICIENCY = 0.45  # of the dense FP4 peak (docstring)
ATTENTION_EFFICIENCY = 0.45
KV_READ_EFFICIENCY = 0.95  # decode attention's KV reads, fraction of datasheet HBM bandwidth
KERNEL_LAUNCH_S = {"graph": 1.0e-6, "eager": 8.0e-6}
STEP_OVERHEAD_S = 1.8e-3
STEP_OVERHEAD_PER_SEQ_S = 0.0  # and per sequence in the forward (per-request host work)
MOE_GEMM_EFFICIENCY = 0.55


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
    step_overhead_s: float = STEP_OVERHEAD_S  # per forward: scheduling, sampling, host sync
    step_overhead_per_seq_s: float = 0.0  # per sequence in the forward: per-request host work
    moe_gemm_efficiency: float = MOE_GEMM_EFFICIENCY  # grouped expert GEMMs vs dense ones
    provenance: dict = field(default_factory=dict)
    gemm_floor_s: float = 0.0  # fixed GPU time of every GEMM kernel (kernel fit)
    gemm_floor_s_per_k: float = 0.0  # and its growth with the reduction length K
    gemm_overlap: float = 0.0  # p-norm of memory and compute time; 0: a hard roofline max
    elementwise: dict = field(default_factory=dict)  # kind -> sizer.hardware.kernels.RowKernel

    def matmul_rate(self, dtype: str) -> float:
        for key in (dtype, {"int4": "bf16", "fp4": "bf16"}.get(dtype, "bf16"), "bf16", "fp32"):
            if key in self.matmul_flops_per_s:
                return self.matmul_flops_per_s[key]
        return next(iter(self.matmul_flops_per_s.values()))


def device_for(gpu, profile=None) -> Device:
    """Device constants for a catalog GPU: its kernel fit (sizer.hardware.kernels), with any
    values the profile measured replacing them. A measured HBM rate rescales the elementwise
    kernels' bandwidths by the same ratio."""
    kf = kernel_fit_for(gpu)
    prov = {"kernel_fit": kf.note()}

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
        mm[dtype] = pick("matmul_flops_per_s", peak * kf.matmul_efficiency * MATMUL_DTYPE_FACTOR[dtype], dtype)
    if gpu.peak_flops_per_s.get("fp4"):  # native FP4 tensor cores only (Blackwell, CDNA 4)
        mm["fp4"] = pick("matmul_flops_per_s", gpu.peak_flops_per_s["fp4"] * FP4_MATMUL_EFFICIENCY, "fp4")
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
    hbm = pick("hbm_bytes_per_s", kf.hbm_bytes_per_s)
    scale = hbm / kf.hbm_bytes_per_s
    elementwise = {k: replace(e, bytes_per_s=e.bytes_per_s * scale) for k, e in kf.elementwise.items()}
    return Device(
        name=gpu.id,
        hbm_bytes_per_s=hbm,
        matmul_flops_per_s=mm,
        matmul_half_rows=pick("matmul_half_rows", kf.matmul_half_rows),
        attention_flops_per_s=pick("attention_flops_per_s", bf16_peak * ATTENTION_EFFICIENCY, "bf16"),
        decode_attention_bw_efficiency=KV_READ_EFFICIENCY * gpu.hbm_bytes_per_s / kf.hbm_bytes_per_s,
        kernel_launch_s=launch,
        step_overhead_s=pick("step_overhead_s", STEP_OVERHEAD_S) if profile is not None else STEP_OVERHEAD_S,
        step_overhead_per_seq_s=STEP_OVERHEAD_PER_SEQ_S,
        moe_gemm_efficiency=MOE_GEMM_EFFICIENCY,
        provenance=prov,
        gemm_floor_s=kf.gemm_floor_s,
        gemm_floor_s_per_k=kf.gemm_floor_s_per_k,
        gemm_overlap=kf.gemm_overlap,
        elementwise=elementwise,
    )
