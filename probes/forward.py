"""One rank's share of a sharded transformer forward, at TP and EP shard sizes.

A Llama-style layer (RMSNorm, QKV, attention, O, RMSNorm, gate/up, SiLU*mul, down) with its
weights cut as Megatron-LM tensor parallelism cuts them (QKV and gate/up by columns, O and down
by rows: Shoeybi et al. 2019, sec. 3), and a Mixtral-style MoE layer whose experts are split
over EP ranks with a balanced router (tokens * top_k / experts tokens per expert). Only the
local compute is timed -- the collectives between shards are the collective probes' business --
so the measured time is what sizer's compute model must reproduce for one shard.

Every run records the list of kernels it launched (`gemm` M,N,K; `attn_*`; `elem` bytes) so
probes/fit.py can put the fitted constants back through the time model and report its error.
"""

import torch
import torch.nn.functional as F

from .compute import DTYPES, ELEM_BYTES, attention_flops, sdpa
from .harness import Progress, time_adaptive

# Llama-3.1-8B shapes (official config.json: hidden 4096, 32 heads, 8 KV heads, ffn 14336);
# Mixtral-8x7B expert shapes (hidden 4096, ffn 14336, 8 experts, top-2). CPU: scaled down.
GPU_DENSE = {"hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128, "ffn": 14336}
GPU_MOE = {"hidden": 4096, "heads": 32, "kv_heads": 8, "head_dim": 128, "ffn": 14336,
           "experts": 8, "top_k": 2}
CPU_DENSE = {"hidden": 256, "heads": 8, "kv_heads": 4, "head_dim": 32, "ffn": 768}
CPU_MOE = dict(CPU_DENSE, experts=4, top_k=2)


def _rmsnorm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w


class Shard:
    """The local weights of one layer at tensor-parallel degree tp (attention and dense MLP) or
    expert-parallel degree ep (MoE experts; attention then unsharded)."""

    def __init__(self, cfg, tp, ep, dtype, device):
        self.cfg, self.tp, self.ep, self.device = cfg, tp, ep, device
        self.dt, h, d = DTYPES[dtype], cfg["hidden"], cfg["head_dim"]
        self.elem = ELEM_BYTES[dtype]
        self.heads, self.kv = cfg["heads"] // tp, max(1, cfg["kv_heads"] // tp)
        w = lambda *s: torch.randn(*s, device=device, dtype=self.dt) * 0.02  # noqa: E731
        self.norm = torch.ones(h, device=device, dtype=self.dt)
        self.qkv = w(h, (self.heads + 2 * self.kv) * d)
        self.o = w(self.heads * d, h)
        if "experts" in cfg:
            self.local_experts = cfg["experts"] // ep
            self.up = [w(h, 2 * cfg["ffn"]) for _ in range(self.local_experts)]
            self.down = [w(cfg["ffn"], h) for _ in range(self.local_experts)]
        else:
            self.local_experts = 0
            self.up = [w(h, 2 * cfg["ffn"] // tp)]
            self.down = [w(cfg["ffn"] // tp, h)]

    def kernels(self, batch, q_len, kv_len) -> list[tuple]:
        """The kernels one layer forward launches, for the time model: ("gemm", M, N, K),
        ("attn_prefill"|"attn_decode", B, H, H_kv, S, D), ("elem", bytes, kernels) -- eager
        RMSNorm is 6 kernels (pow, mean, add, rsqrt, mul, mul), SiLU*mul 2, a residual add 1,
        the attention output's transpose-copy 1."""
        h, d, t = self.cfg["hidden"], self.cfg["head_dim"], batch * q_len
        act = t * h * self.elem
        norm = ("elem", 6 * 2 * act, 6)
        ks = [norm, ("gemm", t, self.qkv.shape[1], h)]
        if q_len > 1:
            ks.append(("attn_prefill", batch, self.heads, self.kv, q_len, d))
        else:
            ks.append(("attn_decode", batch, self.heads, self.kv, kv_len, d))
        ks += [("elem", 2 * t * self.heads * d * self.elem, 1),
               ("gemm", t, h, self.heads * d), ("elem", 3 * act, 1), norm]
        f = self.down[0].shape[0]
        if self.local_experts:
            per_expert = max(1, t * self.cfg["top_k"] // self.cfg["experts"])
            ks.append(("elem", act, 1))  # zeros_like
            for _ in range(self.local_experts):
                ks += [("gemm", per_expert, 2 * f, h), ("elem", 5 * per_expert * f * self.elem, 2),
                       ("gemm", per_expert, h, f), ("elem", 3 * per_expert * h * self.elem, 1)]
        else:
            ks += [("gemm", t, 2 * f, h), ("elem", 5 * t * f * self.elem, 2), ("gemm", t, h, f)]
        ks.append(("elem", 3 * act, 1))
        return ks

    def forward(self, x, batch, q_len, k_cache, v_cache):
        """One layer on x (batch*q_len, hidden); decode reads k/v_cache (batch, kv, S, d)."""
        d = self.cfg["head_dim"]
        y = _rmsnorm(x, self.norm) @ self.qkv
        q, k, v = y.split([self.heads * d, self.kv * d, self.kv * d], dim=-1)
        q = q.view(batch, q_len, self.heads, d).transpose(1, 2)
        if q_len > 1:
            k = k.view(batch, q_len, self.kv, d).transpose(1, 2)
            v = v.view(batch, q_len, self.kv, d).transpose(1, 2)
            a = sdpa(q, k, v, True)
        else:
            a = sdpa(q, k_cache, v_cache, False)
        x = x + a.transpose(1, 2).reshape(batch * q_len, self.heads * d) @ self.o
        hn = _rmsnorm(x, self.norm)
        if self.local_experts:
            per_expert = max(1, hn.shape[0] * self.cfg["top_k"] // self.cfg["experts"])
            out = torch.zeros_like(x)
            for up, down in zip(self.up, self.down):
                g, u = (hn[:per_expert] @ up).chunk(2, dim=-1)
                out[:per_expert] += (F.silu(g) * u) @ down
        else:
            g, u = (hn @ self.up[0]).chunk(2, dim=-1)
            out = (F.silu(g) * u) @ self.down[0]
        return x + out


def plan(gpu: bool, quick: bool) -> dict:
    """TP degrees, EP degrees, layers, and the prefill / decode shapes of the stack."""
    if gpu:
        return {"dense": GPU_DENSE, "moe": GPU_MOE, "dtype": "bf16", "layers": 2,
                "tp": [1, 2, 4, 8], "ep": [2, 4, 8], "prefill": (1, 1024 if quick else 2048),
                "decode": (64, 2048)}
    return {"dense": CPU_DENSE, "moe": CPU_MOE, "dtype": "fp32", "layers": 2,
            "tp": [1, 2, 4], "ep": [2, 4], "prefill": (1, 64 if quick else 256),
            "decode": (4, 128 if quick else 512)}


def kv_caches(sh: Shard, layers: int, batch: int, seq: int, device) -> list[tuple]:
    """One K and one V cache per layer, each its own tensor (batch, kv heads, seq, head_dim):
    the decode step reads 2 x layers distinct caches, as a serving engine's paged KV does,
    instead of one tensor twice (which halves the bytes that reach HBM)."""
    shape = (batch, sh.kv, seq, sh.cfg["head_dim"])
    return [(torch.randn(*shape, device=device, dtype=sh.dt),
             torch.randn(*shape, device=device, dtype=sh.dt)) for _ in range(layers)]


def kv_cache_bytes(cfg: dict, tp: int, layers: int, batch: int, seq: int, elem: int) -> int:
    """Bytes of kv_caches(...): 2 (K, V) x layers x batch x kv heads per rank x seq x head_dim."""
    return 2 * layers * batch * max(1, cfg["kv_heads"] // tp) * seq * cfg["head_dim"] * elem


def _time_stack(ctx, layers, batch, q_len, s, sh) -> float:
    x = torch.randn(batch * q_len, sh.cfg["hidden"], device=ctx.device, dtype=sh.dt)
    caches = kv_caches(sh, len(layers), batch, s, ctx.device) if q_len == 1 else \
        [(None, None)] * len(layers)

    def stack():
        y = x
        for layer, (kc, vc) in zip(layers, caches):
            y = layer.forward(y, batch, q_len, kc, vc)
        return y

    with torch.no_grad():
        return time_adaptive(ctx, stack, 0.05, 50)


def run_forward(ctx, quick: bool) -> list[dict]:
    """Time one rank's share of a `layers`-deep stack for every TP and EP degree, prefill and
    decode, on every rank at once (on CPU each with its thread share, as probes.compute)."""
    gpu = ctx.device.type == "cuda"
    p = plan(gpu, quick)
    configs = [("dense", tp, 1) for tp in p["tp"]] + [("moe", 1, ep) for ep in p["ep"]]
    prog = Progress("forward", 2 * len(configs), enabled=ctx.rank == 0)
    rows = []
    for kind, tp, ep in configs:
        layers = [Shard(p[kind], tp, ep, p["dtype"], ctx.device) for _ in range(p["layers"])]
        for phase in ("prefill", "decode"):
            prog.step(note=f"{kind} tp={tp} ep={ep} {phase}")
            batch, s = p[phase]
            q_len = s if phase == "prefill" else 1
            t = _time_stack(ctx, layers, batch, q_len, s, layers[0])
            kernels = [k for layer in layers for k in layer.kernels(batch, q_len, s)]
            kv = kv_cache_bytes(p[kind], tp, p["layers"], batch, s, layers[0].elem) \
                if phase == "decode" else 0
            rows.append({"op": "sharded_forward", "model": kind, "tp": tp, "ep": ep,
                         "phase": phase, "layers": p["layers"], "batch": batch,
                         "seq": s, "tokens": batch * q_len, "dtype": p["dtype"],
                         "time_s": t, "kernels": kernels, "rank": ctx.rank,
                         "kv_cache_bytes": kv,
                         "attn_flops": sum(attention_flops(k[1], k[2], k[4], k[4], k[5], True)
                                           for k in kernels if k[0] == "attn_prefill")})
        del layers
    prog.close()
    return rows
