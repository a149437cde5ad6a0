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
graphs, fp8 `_scaled_mm`) are thin and guarded; nothing here needs a GPU to run.
"""


import torch
import torch.nn.functional as F

from .harness import Progress, time_adaptive

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ELEM_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}


def plan(gpu: bool, quick: bool) -> dict:
    """The shapes swept; CPU plans are small enough for a 2-core test machine."""
    if gpu:
        return {"dtypes": ["bf16", "fp16", "fp8"], "nk": 4096 if quick else 8192,
                "m": [2 ** i for i in range(0, 14 if quick else 15)],
                "copy": [2 ** i for i in range(20, 29 if quick else 31, 2)],
                "attn_heads": 32, "head_dim": 128, "attn_s": [512, 1024, 2048, 4096] +
                ([] if quick else [8192]), "decode_batch": 32, "launch_n": 1000}
    return {"dtypes": ["fp32"], "nk": 256 if quick else 512,
            "m": [2 ** i for i in range(0, 9 if quick else 11)],
            "copy": [2 ** i for i in range(18, 25 if quick else 27, 2)],
            "attn_heads": 4, "head_dim": 64, "attn_s": [64, 128, 256, 512],
            "decode_batch": 4, "launch_n": 300 if quick else 1000}


def fp8_supported(device) -> bool:
    """fp8 GEMMs need sm_89+ (Ada, Hopper, Blackwell) and torch._scaled_mm."""
    return (device.type == "cuda" and hasattr(torch, "_scaled_mm")
            and torch.cuda.get_device_capability(device) >= (8, 9))


def _gemm_call(dtype: str, m: int, n: int, k: int, device):
    """A closure computing one (m x k) @ (k x n) GEMM in `dtype`, or None if unsupported."""
    if dtype == "fp8":
        if not fp8_supported(device) or m % 16:
            return None
        a = torch.randn(m, k, device=device).to(torch.float8_e4m3fn)
        b = torch.randn(n, k, device=device).to(torch.float8_e4m3fn).t()  # column-major
        one = torch.ones((), device=device)
        return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    t = DTYPES[dtype]
    if device.type == "cpu" and t != torch.float32:
        return None
    a = torch.randn(m, k, device=device, dtype=t)
    b = torch.randn(k, n, device=device, dtype=t)
    out = torch.empty(m, n, device=device, dtype=t)
    return lambda: torch.matmul(a, b, out=out)


def gemm_sweep(ctx, p: dict, prog=None) -> list[dict]:
    """Time M x N x K GEMMs for M in p['m'] at N = K = p['nk'], per dtype."""
    rows, nk = [], p["nk"]
    for dtype in p["dtypes"]:
        for m in p["m"]:
            if prog:
                prog.step(note=f"gemm {dtype} M={m}")
            try:
                call = _gemm_call(dtype, m, nk, nk, ctx.device)
                if call is None:
                    continue
                t = time_adaptive(ctx, call, 0.02 if ctx.device.type == "cpu" else 0.05)
            except (RuntimeError, TypeError) as exc:  # dtype/shape not supported here
                rows.append({"op": "gemm", "dtype": dtype, "M": m, "N": nk, "K": nk,
                             "error": str(exc).splitlines()[0][:200]})
                continue
            flops = 2.0 * m * nk * nk
            bytes_ = (m * nk + nk * nk + m * nk) * ELEM_BYTES[dtype]
            rows.append({"op": "gemm", "dtype": dtype, "M": m, "N": nk, "K": nk, "time_s": t,
                         "flops": flops, "bytes": bytes_, "flops_per_s": flops / t,
                         "rank": ctx.rank})
    return rows


def membw_sweep(ctx, p: dict, prog=None) -> list[dict]:
    """Device copy y.copy_(x) of `size` bytes moves 2*size bytes (read x, write y)."""
    rows = []
    for size in p["copy"]:
        if prog:
            prog.step(note=f"copy {size >> 20} MiB" if size >= 1 << 20 else f"copy {size} B")
        x = torch.empty(size, dtype=torch.uint8, device=ctx.device).fill_(1)
        y = torch.empty_like(x)
        t = time_adaptive(ctx, lambda: y.copy_(x), 0.02)
        rows.append({"op": "copy", "size_bytes": size, "bytes": 2 * size, "time_s": t,
                     "bytes_per_s": 2 * size / t, "rank": ctx.rank})
        del x, y
    return rows


def _graph_launch(ctx, x, n: int) -> float | None:
    """Seconds per tiny kernel replayed from a CUDA graph of n kernels (None off-GPU)."""
    if ctx.device.type != "cuda":
        return None
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            x.add_(1.0)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(n):
            x.add_(1.0)
    return time_adaptive(ctx, graph.replay, 0.02, 50) / n


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
    try:
        g = _graph_launch(ctx, x, n)
    except RuntimeError as exc:  # graphs unsupported on this build/driver
        g = None
        rows.append({"op": "launch", "mode": "graph", "error": str(exc).splitlines()[0][:200]})
    if g is not None:
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
    rows = []
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
