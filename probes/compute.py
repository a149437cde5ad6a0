"""Compute probes of one device: GEMM over M, memory bandwidth, kernel launch floor, attention.

Each probe returns raw rows (SI units plus the derived rate, as gpt-fast prints achieved TFLOP/s
and GB/s next to a time); probes/fit.py turns them into the profile's `compute` constants.
The shapes follow what sizer's time model needs (sizer/cost/step.py):

* GEMM: M (tokens) swept from 1 (decode) to prefill sizes at fixed N, K, so that
  t(M) = 2 M N K / F_eff(M) with F_eff(M) = F * M / (M + matmul_half_rows) can be fitted.
* memory bandwidth: device-to-device copy, 2 x size bytes moved (read + write).
* launch: a 1-element in-place add issued back to back, eager and (GPU) inside a CUDA graph.
* attention: causal prefill (FLOPs 4 B H S^2 D / 2, the causal half of FlashAttention's count)
  and single-token decode against a KV cache (bytes 2 B H_kv S D elem, the K and V reads).

On a CPU these are CPU numbers, which is what a gloo profile should say. GPU-only calls (CUDA
graphs, events) go through the rank's device layer (probes/device.py); nothing here needs a GPU.

Caches. H100/H200 hold 50 MB of L2 (read from the device properties, never assumed): a copy or
a weight matrix that fits there is served from L2, not HBM. So the HBM fit uses only copies
whose working set (read + write) is at least L2_MULTIPLE x L2 (smaller copies stay as raw rows,
marked `fit: false`); GEMM weights are 8192 x 8192 (128 MiB in bf16) in every mode, and are
rotated over enough copies that two calls in a row never find theirs in L2.
"""

import math

import torch
import torch.nn.functional as F

from .device import GraphUnsupported
from .harness import Progress, time_adaptive

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ELEM_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
L2_MULTIPLE = 4            # a working set of 4 x L2 is streamed, not cached
UNKNOWN_L2_BYTES = 128 << 20  # stand-in where a GPU does not report its L2 (above any to date)
FP8_USE_FAST_ACCUM = False  # torch._scaled_mm's default, and what vLLM's fp8 linear calls


def plan(gpu: bool, quick: bool) -> dict:
    """The shapes swept; CPU plans are small enough for a 2-core test machine. GPU copies:
    1, 4, 16 MiB (cache-resident rows, kept raw) and 64 MiB .. 1 GiB (512 MiB --quick) by 2x."""
    if gpu:
        return {"dtypes": ["bf16", "fp16", "fp8"], "nk": 8192,
                "m": [2 ** i for i in range(0, 14 if quick else 15)],
                "copy": [1 << 20, 4 << 20, 16 << 20] +
                        [2 ** i for i in range(26, 30 if quick else 31)],
                "attn_heads": 32, "head_dim": 128, "attn_s": [512, 1024, 2048, 4096] +
                ([] if quick else [8192]), "decode_batch": 32, "launch_n": 1000}
    return {"dtypes": ["fp32"], "nk": 256 if quick else 512,
            "m": [2 ** i for i in range(0, 9 if quick else 11)],
            "copy": [2 ** i for i in range(18, 25 if quick else 27, 2)],
            "attn_heads": 4, "head_dim": 64, "attn_s": [64, 128, 256, 512],
            "decode_batch": 4, "launch_n": 300 if quick else 1000}


def cache_bytes(dev) -> int | None:
    """The cache a streaming measurement must exceed: the GPU's L2 (UNKNOWN_L2_BYTES where the
    device does not say); None on CPU ranks (no filter)."""
    if dev.type != "cuda":
        return None
    return dev.l2_bytes() or UNKNOWN_L2_BYTES


def fp8_supported(dev) -> bool:
    """fp8 GEMMs: torch._scaled_mm on sm_89+ (Ada, Hopper, Blackwell); on CPU where this torch
    has it (2.13 does; the CPU kernel is a reference, not a speed)."""
    if not hasattr(torch, "_scaled_mm"):
        return False
    if dev.type == "cuda":
        return dev.capability() >= (8, 9)
    return True


def weight_copies(weight_bytes: int, cache: int | None) -> int:
    """How many copies of a weight to rotate over so the next call's weight is not in cache:
    enough that the copies together are twice the cache."""
    if not cache:
        return 1
    return max(1, math.ceil(2 * cache / max(1, weight_bytes)))


def gemm_bytes(dtype: str, m: int, n: int, k: int) -> int:
    """Bytes one GEMM moves: A (m x k) and B (k x n) in `dtype`, C (m x n) in the output dtype
    -- bf16 for fp8 inputs (out_dtype of the _scaled_mm call), the input dtype otherwise."""
    e = ELEM_BYTES[dtype]
    out = ELEM_BYTES["bf16"] if dtype == "fp8" else e
    return (m * k + k * n) * e + m * n * out


def _gemm_call(dtype: str, m: int, n: int, k: int, dev, cache=None):
    """A closure computing one (m x k) @ (k x n) GEMM in `dtype`, or None if unsupported here.
    The weight rotates over weight_copies(...) buffers. fp8: torch._scaled_mm needs K and N
    divisible by 16 on CUDA, not M (aten/src/ATen/native/cuda/Blas.cpp, _scaled_mm_out_cuda:
    "Expected trailing dimension of mat1 to be divisible by 16", mat2 both dims), so decode M=1
    is measured; B is column-major as cuBLASLt requires."""
    device = dev.torch_device
    if dtype == "fp8":
        if not fp8_supported(dev) or k % 16 or n % 16:
            return None
        a = torch.randn(m, k, device=device).to(torch.float8_e4m3fn)
        ws = [torch.randn(n, k, device=device).to(torch.float8_e4m3fn).t()
              for _ in range(weight_copies(n * k, cache))]
        one = torch.ones((), device=device, dtype=torch.float32)

        def call(i=[0]):  # noqa: B006 -- the rotation counter
            i[0] = (i[0] + 1) % len(ws)
            return torch._scaled_mm(a, ws[i[0]], scale_a=one, scale_b=one,
                                    out_dtype=torch.bfloat16, use_fast_accum=FP8_USE_FAST_ACCUM)
        call.copies = len(ws)
        return call
    t = DTYPES[dtype]
    if device.type == "cpu" and t != torch.float32:
        return None
    a = torch.randn(m, k, device=device, dtype=t)
    ws = [torch.randn(k, n, device=device, dtype=t)
          for _ in range(weight_copies(k * n * ELEM_BYTES[dtype], cache))]
    out = torch.empty(m, n, device=device, dtype=t)

    def call(i=[0]):  # noqa: B006 -- the rotation counter
        i[0] = (i[0] + 1) % len(ws)
        return torch.matmul(a, ws[i[0]], out=out)
    call.copies = len(ws)
    return call


def gemm_sweep(ctx, p: dict, prog=None) -> list[dict]:
    """Time M x N x K GEMMs for M in p['m'] at N = K = p['nk'], per dtype."""
    rows, nk, cache = [], p["nk"], cache_bytes(ctx.dev)
    for dtype in p["dtypes"]:
        for m in p["m"]:
            if prog:
                prog.step(note=f"gemm {dtype} M={m}")
            try:
                call = _gemm_call(dtype, m, nk, nk, ctx.dev, cache)
                if call is None:
                    continue
                t = time_adaptive(ctx, call, 0.02 if ctx.device.type == "cpu" else 0.05)
            except (RuntimeError, TypeError) as exc:  # dtype/shape not supported here
                rows.append({"op": "gemm", "dtype": dtype, "M": m, "N": nk, "K": nk,
                             "error": str(exc).splitlines()[0][:200]})
                continue
            flops = 2.0 * m * nk * nk
            extra = {"use_fast_accum": FP8_USE_FAST_ACCUM, "out_dtype": "bf16"} \
                if dtype == "fp8" else {}
            rows.append({"op": "gemm", "dtype": dtype, "M": m, "N": nk, "K": nk, "time_s": t,
                         "flops": flops, "bytes": gemm_bytes(dtype, m, nk, nk),
                         "flops_per_s": flops / t, "weight_copies": call.copies,
                         "rank": ctx.rank, **extra})
    return rows


def copy_fits_hbm(size: int, cache: int | None) -> bool:
    """A copy of `size` bytes (working set 2 x size: read x, write y) streams from HBM when the
    working set is at least L2_MULTIPLE x the cache; always on CPU ranks (cache None)."""
    return cache is None or 2 * size >= L2_MULTIPLE * cache


def _copy_time(ctx, size: int) -> float:
    x = torch.empty(size, dtype=torch.uint8, device=ctx.device).fill_(1)
    y = torch.empty_like(x)
    return time_adaptive(ctx, lambda: y.copy_(x), 0.02)


def membw_sweep(ctx, p: dict, prog=None) -> list[dict]:
    """Device copy y.copy_(x) of `size` bytes moves 2*size bytes (read x, write y). Rows whose
    working set fits in cache carry fit=False: probes/fit.py leaves them out of the HBM fit."""
    rows, cache = [], cache_bytes(ctx.dev)
    for size in p["copy"]:
        if prog:
            prog.step(note=f"copy {size >> 20} MiB" if size >= 1 << 20 else f"copy {size} B")
        t = _copy_time(ctx, size)
        rows.append({"op": "copy", "size_bytes": size, "bytes": 2 * size, "time_s": t,
                     "bytes_per_s": 2 * size / t, "working_set_bytes": 2 * size,
                     "cache_bytes": cache, "fit": copy_fits_hbm(size, cache), "rank": ctx.rank})
    return rows


def launch_probe(ctx, p: dict, prog=None) -> list[dict]:
    """Per-kernel floor: n back-to-back 1-element adds, eager and inside a CUDA graph."""
    n = p["launch_n"]
    x = torch.zeros(1, device=ctx.device)

    def burst():
        for _ in range(n):
            x.add_(1.0)

    if prog:
        prog.step(note="launch eager")
    rows = [{"op": "launch", "mode": "eager", "kernels": n,
             "time_s": time_adaptive(ctx, burst, 0.02, 20) / n, "rank": ctx.rank}]
    if prog:
        prog.step(note="launch graph")
    if not ctx.dev.supports_graphs:
        return rows
    try:
        replay = ctx.dev.capture(lambda: x.add_(1.0), n)
        g = time_adaptive(ctx, replay, 0.02, 50) / n
    except (RuntimeError, GraphUnsupported) as exc:  # graphs unsupported on this build/driver
        rows.append({"op": "launch", "mode": "graph", "error": str(exc).splitlines()[0][:200]})
    else:
        rows.append({"op": "launch", "mode": "graph", "kernels": n, "time_s": g, "rank": ctx.rank})
    return rows


def sdpa(q, k, v, causal: bool):
    """scaled_dot_product_attention with grouped KV heads (enable_gqa on torch >= 2.5)."""
    if k.shape[1] != q.shape[1]:
        try:
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True)
        except TypeError:
            rep = q.shape[1] // k.shape[1]
            k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    return F.scaled_dot_product_attention(q, k, v, is_causal=causal)


def attention_flops(b, h, s_q, s_kv, d, causal) -> float:
    """4 b h s_q s_kv d (QK^T and PV), halved for causal prefill (FlashAttention-2 paper, sec. 4)."""
    return 4.0 * b * h * s_q * s_kv * d / (2.0 if causal else 1.0)


def attention_probe(ctx, p: dict, prog=None) -> list[dict]:
    """Causal prefill over sequence lengths and one-token decode against a KV cache."""
    gpu = ctx.device.type == "cuda"
    dtype = "bf16" if gpu else "fp32"
    t_dtype, h, d = DTYPES[dtype], p["attn_heads"], p["head_dim"]
    rows, cache = [], cache_bytes(ctx.dev)
    for s in p["attn_s"]:
        if prog:
            prog.step(note=f"attn S={s}")
        q, k, v = (torch.randn(1, h, s, d, device=ctx.device, dtype=t_dtype) for _ in range(3))
        t = time_adaptive(ctx, lambda: sdpa(q, k, v, True), 0.02)
        fl = attention_flops(1, h, s, s, d, True)
        rows.append({"op": "attn_prefill", "dtype": dtype, "B": 1, "H": h, "H_kv": h, "S": s,
                     "D": d, "time_s": t, "flops": fl, "flops_per_s": fl / t, "rank": ctx.rank})
        b, hkv = p["decode_batch"], max(1, h // 4)
        q = torch.randn(b, h, 1, d, device=ctx.device, dtype=t_dtype)
        k, v = (torch.randn(b, hkv, s, d, device=ctx.device, dtype=t_dtype) for _ in range(2))
        t = time_adaptive(ctx, lambda: sdpa(q, k, v, False), 0.02)
        kv_bytes = 2.0 * b * hkv * s * d * ELEM_BYTES[dtype]
        rows.append({"op": "attn_decode", "dtype": dtype, "B": b, "H": h, "H_kv": hkv, "S": s,
                     "D": d, "time_s": t, "bytes": kv_bytes, "bytes_per_s": kv_bytes / t,
                     "in_cache": cache is not None and kv_bytes < L2_MULTIPLE * cache,
                     "rank": ctx.rank})
    return rows


def run_compute(ctx, quick: bool) -> dict:
    """All compute probes on this rank's device; every rank measures its own device at once.
    On CPU the ranks share the cores: each keeps its thread share (cpu_count / world, set by
    probes.launch) and measures while the others do, so the profile describes one rank's
    share of the machine under contention, which is what a sharded forward on CPU ranks gets."""
    gpu = ctx.device.type == "cuda"
    p = plan(gpu, quick)
    total = len(p["dtypes"]) * len(p["m"]) + len(p["copy"]) + 2 + len(p["attn_s"])
    prog = Progress("compute", total, enabled=ctx.rank == 0)
    out = {"gemm": gemm_sweep(ctx, p, prog), "membw": membw_sweep(ctx, p, prog),
           "launch": launch_probe(ctx, p, prog), "attention": attention_probe(ctx, p, prog)}
    prog.close()
    return out
