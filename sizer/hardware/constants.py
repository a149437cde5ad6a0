"""The constants of the time model for one device: achieved (not datasheet) rates.

Defaults are datasheet peak x an efficiency from public micro-benchmarks; a hardware profile
written by `python -m probes.calibrate` replaces each one it measured (`--profile`), and
`Device.provenance` says which is which.

Default efficiencies and their basis. Three of them are fitted, by grid search on the median
|log error|, to 26 published serving measurements (data/published_perf.json: TensorRT-LLM v0.17
max-throughput and v0.14 online-serving rows on H100/H200/A100), and checked on 24 held-out
records (TensorRT-LLM v0.5/v0.6.1, gpt-fast, NVIDIA NIM): held-out median |error| went from 18.6%
(datasheet-style 0.85 / 0.70 / no overhead) to 11.2%, and to 9.9% with the MoE changes below
(benchmarks/time_vs_published.py).
- Weight streaming (HBM): 0.60 of datasheet bandwidth (fitted). What a whole decode step
  achieves, not a copy benchmark: gpt-fast measures 1397 GB/s of the A100's 2039 (0.69) at
  batch 1; copies reach 0.85-0.9 but a step is many short kernels with ramp-up and tails.
- Decode attention: KV reads at 1.3 x the weight-streaming rate = 0.78 of datasheet (fitted):
  paged-attention reads over many sequences are long, well-overlapped streams.
- Engine step overhead: 0.5 ms per forward (fitted): scheduling, sampling, input preparation
  and host synchronisation that CUDA graphs do not remove.
- Grouped expert GEMMs (MoE): 0.55 of the dense GEMM rate (fitted to the three TensorRT-LLM
  v0.17 Mixtral-8x7B/8x22B max-throughput rows, in-sample: their median error goes from 34% to
  10%; there is no MoE holdout yet). Routed tokens reach each expert in ragged groups.
- Large GEMMs: 0.70 of dense peak in bf16/fp16, 0.60 in fp8/int8. cuBLAS reaches ~650-750 of
  989 TFLOP/s on H100 SXM for large square bf16 GEMMs (NVIDIA Hopper tuning guide; public
  microbenchmarks); fp8 kernels reach a smaller fraction of their doubled peak.
- FP4 GEMMs (NVFP4 W4A4, Blackwell): 0.36 of the dense FP4 peak (fitted). Large square GEMMs
  reach more: Azure's cuBLASLt runs on one GB200 give 7.6 of 10 PFLOP/s in FP4 (0.76) and 2.9 of
  5 in FP8 (0.58) at 8192-32768 cubed, but FP4 pays off only on big shapes (2048 cubed: FP4 1.7
  PF/s, slower than FP8's 2.2; github.com/Azure/AI-benchmarking-guide Azure_Results/
  ND_GB200_v6_results.md), and serving GEMMs are skinny. Fitted (median |error|) to the ten
  TensorRT-LLM v1.0 B200 Llama-3.3-70B FP4 throughput rows of data/published_perf.json and
  checked on the GB200 70B and B200 405B FP4 rows (benchmarks/time_vs_published.py). At the
  datasheet-style 0.76 those rows read ~40% high; before fp4 reached the FP4 tensor cores at
  all (NVFP4 ran at the bf16 rate) they read ~40% low. Only GPUs with an FP4 peak in the
  catalog get an fp4 rate; elsewhere fp4 GEMMs run at the activation dtype's rate.
- GEMM rows at half efficiency: 64. Skinny GEMMs (few tokens) leave tensor cores idle; this is
  the M at which the compute roofline is halved. They are memory-bound there anyway.
- Prefill attention: 0.45 of dense bf16 peak (FlashAttention-2 reaches 335-400 TFLOP/s forward
  on H100 per the FlashAttention-3 paper, Fig. 5; FA3 reaches ~600).
- Kernel floor: 2.5 us per kernel under CUDA graphs, 8 us eager. A replayed graph still pays the
  GPU's per-kernel launch latency (~2-3 us); eager PyTorch pays the CPU dispatch path per op
  (~5-10 us), which a small decode shard cannot hide.
"""

from dataclasses import dataclass, field

HBM_EFFICIENCY = 0.60
MATMUL_EFFICIENCY = {"bf16": 0.70, "fp16": 0.70, "fp32": 0.70, "tf32": 0.70, "fp8": 0.60, "int8": 0.60,
                     "fp4": 0.36}
MATMUL_HALF_ROWS = 64.0
ATTENTION_EFFICIENCY = 0.45
DECODE_ATTENTION_BW_EFFICIENCY = 1.30
KERNEL_LAUNCH_S = {"graph": 2.5e-6, "eager": 8.0e-6}
STEP_OVERHEAD_S = 0.5e-3
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
    moe_gemm_efficiency: float = MOE_GEMM_EFFICIENCY  # grouped expert GEMMs vs dense ones
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
    if gpu.peak_flops_per_s.get("fp4"):  # native FP4 tensor cores only (Blackwell, CDNA 4)
        mm["fp4"] = pick("matmul_flops_per_s", gpu.peak_flops_per_s["fp4"] * MATMUL_EFFICIENCY["fp4"], "fp4")
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
        step_overhead_s=pick("step_overhead_s", STEP_OVERHEAD_S) if profile is not None else STEP_OVERHEAD_S,
        moe_gemm_efficiency=MOE_GEMM_EFFICIENCY,
        provenance=prov,
    )
