"""Numeric formats: bytes per element of weights and KV cache, including quantization overhead.

Group-quantized formats store one scale (and possibly a zero point) per group of weights; that
overhead is counted here so that an int4 model is not reported as exactly a quarter of bf16:
- int4 (GPTQ/AWQ, group size 128, fp16 scale + packed 4-bit zero point): 4 + (16 + 4)/128 bits.
  Source: AutoGPTQ/AWQ checkpoint layout (qweight int32-packed, scales fp16 [K/128, N],
  qzeros int32-packed [K/128, N/8]).
- fp4 = MXFP4 (OCP Microscaling spec v1.0): blocks of 32 fp4 elements share one 8-bit E8M0
  scale: 4 + 8/32 bits. gpt-oss ships its expert weights this way (its config's
  quantization_config).
- nvfp4 (NVIDIA Blackwell NVFP4): blocks of 16 fp4 elements with an FP8 E4M3 scale, plus one
  fp32 scale per tensor: 4 + 8/16 bits.
- fp8 with 128x128 block scales in fp32 (DeepSeek-V3 `weight_block_size`): 8 + 32/16384 bits.
  Per-tensor fp8 (one scale per matrix) is 8 bits for practical purposes.
"""

from sizer.errors import InputError

WEIGHT_DTYPES = ("bf16", "fp16", "fp32", "fp8", "int8", "int4", "fp4", "nvfp4")
KV_DTYPES = ("auto", "bf16", "fp16", "fp32", "fp8", "int8")
# what each weight format is, for --weight-dtype's help and the UI: fp4 and nvfp4 differ
WEIGHT_DTYPE_HELP = ("bf16, fp16, fp8, int8, int4 (GPTQ/AWQ, weight-only), fp4 (MXFP4, weight-only: "
                     "4.25 bits, GEMMs in the activation dtype; gpt-oss's experts), nvfp4 (NVFP4 W4A4: "
                     "4.5 bits, GEMMs on FP4 tensor cores of Blackwell GPUs, the activation dtype elsewhere)")

_ALIASES = {
    "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32", "float": "fp32",
    "fp8_e4m3": "fp8", "float8": "fp8", "e4m3": "fp8", "mxfp4": "fp4",
    "int4_awq": "int4", "awq": "int4", "gptq": "int4", "w4a16": "int4", "w8a8": "int8",
}

_BITS = {
    "fp32": 32.0, "bf16": 16.0, "fp16": 16.0, "fp8": 8.0, "int8": 8.0,
    "int4": 4.0 + (16.0 + 4.0) / 128.0,  # group 128, fp16 scale + 4-bit zero
    "fp4": 4.0 + 8.0 / 32.0,  # MXFP4: E8M0 scale per 32 elements
    "nvfp4": 4.0 + 8.0 / 16.0,  # NVFP4: E4M3 scale per 16 elements (+ one fp32 per tensor)
}
_FP8_BLOCK_BITS = 8.0 + 32.0 / (128 * 128)  # DeepSeek-V3 / Qwen3-FP8 block-wise fp8


def canonical(dtype: str, allowed=WEIGHT_DTYPES) -> str:
    """Normalise a dtype name ('bfloat16' -> 'bf16'); InputError names the allowed ones."""
    key = str(dtype).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in allowed:
        raise InputError(f"unknown dtype {dtype!r}; choose one of {', '.join(allowed)}")
    return key


def weight_bytes_per_param(dtype: str, block_scaled_fp8: bool = False) -> float:
    """Bytes per weight, scale overhead included (see module docstring for each format)."""
    if dtype == "fp8" and block_scaled_fp8:
        return _FP8_BLOCK_BITS / 8.0
    return _BITS[canonical(dtype)] / 8.0


def kv_bytes_per_element(dtype: str) -> float:
    """KV cache element size; fp8/int8 KV caches keep per-tensor scales (negligible)."""
    return {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0}[dtype]


def compute_dtype(weight_dtype: str, model_dtype: str) -> str:
    """The dtype GEMMs run in: fp8/int8 weights use those tensor cores (W8A8, as vLLM's fp8
    path does on Hopper); weight-only int4/fp4 dequantise to the model's activation dtype.
    NVFP4 checkpoints run W4A4 on Blackwell's FP4 tensor cores (TensorRT-LLM / ModelOpt NVFP4
    quantize the activations too): "fp4", which a device without an FP4 rate serves at its
    activation-dtype rate (sizer.hardware.constants.Device.matmul_rate), as vLLM's W4A16 Marlin
    path on Hopper does."""
    if weight_dtype in ("fp8", "int8"):
        return weight_dtype
    if weight_dtype == "nvfp4":
        return "fp4"
    if weight_dtype in ("int4", "fp4"):
        return model_dtype
    return weight_dtype
