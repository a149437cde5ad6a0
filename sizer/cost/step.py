"""One forward step on the slowest rank of a split: compute ops plus communication.

Prefill: `batch` prompts of `seq_len` tokens. Decode: `batch` sequences, one new token each, at
KV length `context_len`. The slowest rank is the heaviest pipeline stage (the first holds the
embedding, the last the LM head; DeepSeek's leading dense layers make stage 0 lighter).
Communication per layer (Megatron-LM / vLLM conventions): TP pays two all-reduces of the hidden
states (or reduce-scatter + all-gather with sequence parallelism); EP pays an all-to-all
dispatch and combine (sizer/cost/moe_comm.py: NCCL, DeepEP normal or low-latency); PP sends
the activations to the next stage; DP pays nothing. Without overlap, time_s = compute_s + comm_s
exactly.

A decode step may verify `query_tokens` > 1 tokens per sequence (speculative decoding: the k
drafted tokens plus one, sizer/cost/speculative.py): the linear layers and the LM head see
batch x query_tokens rows, attention reads each sequence's KV once for all its queries.
"""

from dataclasses import dataclass

import numpy as np

from . import ops
from sizer.errors import InputError
from sizer.hardware.constants import Device, device_for
from .memory import resolve_precision
from sizer.model.attention import CHUNKED, LINEAR, SLIDING
from .moe_comm import ep_all_to_all, effective_imbalance
from sizer.model.precision import compute_dtype, kv_bytes_per_element, weight_bytes_per_param
from sizer.model.split import Split, check_split, stage_layers


@dataclass(frozen=True)
class StepResult:
    time_s: object
    compute_s: object
    comm_s: object
    ops: tuple  # OpCost rows of the slowest stage
    stage: int
    stage_times_s: tuple
    phase: str
    tokens: object

    def to_json(self) -> dict:
        def scalar(x):
            a = np.asarray(x, dtype=float)
            return float(a) if a.ndim == 0 else a.tolist()

        return {"time_s": scalar(self.time_s), "compute_s": scalar(self.compute_s),
                "comm_s": scalar(self.comm_s), "stage": self.stage, "phase": self.phase,
                "stage_times_s": [scalar(t) for t in self.stage_times_s],
                "ops": [o.to_json() for o in self.ops]}


def device_from_profile(profile, name: str = "profiled-device") -> Device:
    """A Device whose constants all come from a profile (e.g. a CPU calibrated with gloo), with
    the time model's defaults only where the profile is silent."""
    from sizer.hardware.constants import KERNEL_LAUNCH_S, MATMUL_HALF_ROWS

    c = profile.compute
    mm = {k: float(v) for k, v in (c.get("matmul_flops_per_s") or {}).items() if v}
    if not mm or not profile.compute_value("hbm_bytes_per_s"):
        raise InputError(f"{profile.path}: profile has no matmul_flops_per_s / hbm_bytes_per_s to build a device from")
    att = profile.compute_value("attention_flops_per_s", next(iter(c.get("attention_flops_per_s") or {"x": 0})))
    launch = {**KERNEL_LAUNCH_S, **{k: float(v) for k, v in (c.get("kernel_launch_s") or {}).items() if v}}
    if "graph" not in (c.get("kernel_launch_s") or {}):
        launch["graph"] = launch["eager"]  # no CUDA graphs measured (CPU): same floor
    return Device(name=profile.env.get("device", name), hbm_bytes_per_s=profile.compute_value("hbm_bytes_per_s"),
                  matmul_flops_per_s=mm, matmul_half_rows=_or(profile.compute_value("matmul_half_rows"), MATMUL_HALF_ROWS),
                  attention_flops_per_s=att or max(mm.values()) * 0.5, decode_attention_bw_efficiency=1.0,
                  kernel_launch_s=launch, provenance={"all": "measured"})


def _or(value, default):
    return default if value is None else value


class _Comm:
    """Collective costs on the split's placement (sizer.hardware.placement, sizer.cost.collectives): the TP
    group, EP group and outgoing pipeline link of each stage of the first replica."""

    def __init__(self, split: Split, topology, profile, gpu, algorithms=None, engine=None):
        self.split, self.topology, self.profile = split, topology, profile
        self.algorithms = algorithms  # collective_time's: None every algorithm, "nccl" NCCL's only
        self.engine = engine  # whose own all-reduce kernels exist (collectives.engine_kernels)
        self.layout, self._ep = None, {}
        if split.gpus == 1:
            return
        from sizer.hardware.placement import layout
        from sizer.hardware.topology import default_topology

        if self.topology is None:
            if gpu is None:
                raise InputError("communication needs a topology or a catalog GPU")
            self.topology = default_topology(gpu, split.gpus)
        if self.topology.n_gpus < split.gpus:
            raise InputError(f"topology holds {self.topology.n_gpus} GPUs, split needs {split.gpus}")
        self.layout = layout(self.topology, split.tp, split.pp, split.dp)

    def tp_group(self, stage: int) -> tuple:
        return tuple(self.layout.stage_groups[stage]) if self.layout and self.split.tp > 1 else ()

    def ep_group(self, stage: int) -> tuple:
        if not (self.layout and self.split.ep > 1):
            return ()
        if stage not in self._ep:
            self._ep[stage] = tuple(self.layout.ep_group(self.split.ep, stage))
        return self._ep[stage]

    def pp_pair(self, stage: int) -> tuple:
        if self.layout and stage < self.split.pp - 1:
            return tuple(self.layout.pp_links[stage])
        return ()

    def signature(self, stage: int) -> tuple:
        """Where stage `stage`'s TP group, EP group and outgoing pipeline link sit, up to a
        shift by whole nodes (nodes are identical, so such groups cost the same)."""
        if self.layout is None:
            return ()
        per = self.topology.gpus_per_node

        def shifted(ranks):
            base = (min(ranks) // per) * per if ranks else 0
            return tuple(r - base for r in ranks)

        return shifted(self.tp_group(stage)), shifted(self.ep_group(stage)), shifted(self.pp_pair(stage))

    def time(self, op, size_bytes, ranks):
        if len(ranks) < 2:
            return np.zeros_like(np.asarray(size_bytes, dtype=float))
        from .collectives import collective_time

        return np.asarray(collective_time(op, np.asarray(size_bytes, dtype=float), tuple(ranks),
                                          self.topology, self.profile, self.algorithms,
                                          engine=self.engine).time_s, dtype=float)


def step_time(model, gpu, split: Split | None = None, *, tp=1, pp=1, ep=1, dp=1, phase="decode",
              batch=1, seq_len=None, context_len=None, weight_dtype=None, kv_dtype="auto",
              cuda_graphs=None, topology=None, profile=None, sequence_parallel=False,
              overlap=False, moe_imbalance=1.0, prefill_tokens=0, ep_a2a="nccl",
              query_tokens=1, comm_algorithms=None, engine=None) -> StepResult:
    """Cost one step (see module docstring). `gpu` is a catalog GPUSpec (defaults + profile) or
    a ready Device (e.g. device_from_profile). `batch` may be a numpy array.

    A decode step may also carry `prefill_tokens` tokens of prompts of `seq_len` tokens, as
    chunked prefill mixes them into the running batch (vLLM/SGLang continuous batching): the
    linear layers then see batch + prefill_tokens rows, attention adds the chunk's causal
    prefill, and the LM head one row per completed prompt. `ep_a2a` names the MoE dispatch /
    combine algorithm and `moe_imbalance` the busiest expert rank's load over the mean
    (sizer/cost/moe_comm.py); `query_tokens` is per-sequence tokens of a decode (verify) step.
    `comm_algorithms` is collective_time's `algorithms`: "nccl" prices plain torch.distributed
    collectives (probes.validate's stack), not the engines' custom all-reduce; `engine` names
    whose all-reduce kernels the collectives may use (collectives.engine_kernels)."""
    split = split or Split(tp=tp, pp=pp, dp=dp, ep=ep)
    check_split(model, split)
    if phase not in ("prefill", "decode"):
        raise InputError(f"--phase must be prefill or decode, got {phase!r}")
    b = np.asarray(batch, dtype=float)
    if np.any(b <= 0):
        raise InputError("--batch must be positive")
    if phase == "prefill":
        s = int(seq_len or 0)
        if s <= 0:
            raise InputError("prefill needs --seq > 0")
        tokens, ctx = b * s, 0
    else:
        ctx = int(context_len if context_len is not None else (seq_len or 0))
        if ctx <= 0:
            raise InputError("decode needs --context > 0")
        pre = np.asarray(prefill_tokens, dtype=float)
        if np.any(pre > 0) and not seq_len:
            raise InputError("prefill tokens in a decode step need the prompt length (seq_len)")
        if not isinstance(query_tokens, int) or query_tokens < 1:
            raise InputError(f"query tokens per sequence must be a positive integer, got {query_tokens!r}")
        tokens = b * query_tokens + pre
    dev = gpu if isinstance(gpu, Device) else device_for(gpu, profile)
    graphs = (phase == "decode") if cuda_graphs is None else bool(cuda_graphs)
    floor = dev.kernel_launch_s["graph" if graphs else "eager"]
    prec = resolve_precision(model, weight_dtype, kv_dtype)
    comm = _Comm(split, topology, profile, None if isinstance(gpu, Device) else gpu, comm_algorithms,
                 engine)
    # stages alike in layers, position and where their groups sit cost the same: each is
    # costed once (a PP32 split of 61 layers has four kinds of stage, not 32)
    memo, stage_ops = {}, []
    for s, layers in enumerate(stage_layers(model, split.pp)):
        key = (len(layers), model.moe_count(layers), tuple(model.attention_groups(layers)),
               s == 0, s == split.pp - 1, comm.signature(s))
        if key not in memo:
            memo[key] = _stage_ops(model, split, prec, dev, comm, s, layers, phase, b, tokens, ctx,
                                   seq_len, floor, sequence_parallel, moe_imbalance, ep_a2a,
                                   query_tokens if phase == "decode" else 1)
        stage_ops.append(memo[key])
    totals = [sum(o.time_s for o in rows) for rows in stage_ops]
    worst = int(np.argmax([float(np.max(t)) for t in totals]))
    rows = stage_ops[worst]
    compute = sum(o.time_s for o in rows if o.bound != "comm")
    comm_s = sum((o.time_s for o in rows if o.bound == "comm"), np.zeros_like(b))
    total = np.maximum(compute, comm_s) if overlap else compute + comm_s
    return StepResult(total, compute, comm_s, tuple(rows), worst, tuple(totals), phase, tokens)


def _stage_ops(model, split, prec, dev, comm, stage, layers, phase, b, tokens, ctx, seq_len,
               floor, sequence_parallel, imbalance, ep_a2a="nccl", q=1):
    tp, h = split.tp, model.hidden_size
    a = weight_bytes_per_param(prec.base)  # activations travel in the model dtype
    wl, we = prec.bytes("linear"), prec.bytes("experts")
    cd_lin = compute_dtype(prec.linear, prec.base)
    cd_exp = compute_dtype(prec.experts, prec.base)
    heads = model.num_heads // tp
    kv_rank = max(model.num_kv_heads / tp, 1)
    hd, vd = model.head_dim, model.v_head_dim
    kv_el = kv_bytes_per_element(prec.kv)
    n_moe = model.moe_count(layers)
    dense_layers = len(layers) - n_moe
    # one attention op per kind of layer (sizer/model/attention.py); linear-attention layers
    # read no per-token KV and are not costed as attention
    kinds = [(a, c) for a, c in model.attention_groups(layers) if a.kind != LINEAR]
    n = len(layers)
    rows = []
    per_seq = getattr(dev, "step_overhead_per_seq_s", 0.0)
    if dev.step_overhead_s or per_seq:
        host = dev.step_overhead_s + per_seq * np.asarray(b, dtype=float)
        rows.append(ops.OpCost("engine_step_overhead", host, 0.0, 0.0, "latency"))
    if stage == 0:
        rows.append(ops.elementwise("embedding", dev, "embedding", tokens, 2 * h * a, floor))
    # two RMSNorms and two residual adds a layer (vLLM fuses each pair into fused_add_rms_norm,
    # csrc/layernorm_kernels.cu), priced as the kernels the fit measured them as: vidur times
    # an RMSNorm of 2 x hidden bytes per token and a residual add of 3 x hidden bytes
    # (benchmarks/kernel_fit.py). A norm kernel's row walk is latency-bound (one thread block
    # per token), so pricing the fused kernel as one norm of 4 x hidden bytes doubled its
    # measured time at small batches (11.4 vs 6.2 us at hidden 8192 and one token).
    rows.append(ops.elementwise("norms", dev, "norm", tokens, 2 * h * a, floor, count=2 * n))
    rows.append(ops.elementwise("residual_adds", dev, "add", tokens, 3 * h * a, floor, count=2 * n))
    if model.is_mla:
        r_q, r_kv, rope = model.q_lora_rank, model.kv_lora_rank, model.qk_rope_head_dim
        parts = [ops.gemm("q_a", dev, tokens, r_q, h, wl, a, cd_lin, floor, n) if r_q else None,
                 ops.gemm("q_b", dev, tokens, heads * hd, r_q or h, wl, a, cd_lin, floor, n),
                 ops.gemm("kv_a", dev, tokens, r_kv + rope, h, wl, a, cd_lin, floor, n),
                 ops.gemm("kv_b", dev, tokens, heads * (hd - rope + vd), r_kv, wl, a, cd_lin, floor, n)]
        rows.append(_merge("qkv_proj", [p for p in parts if p is not None]))
        kv_tok_layer = (r_kv + rope) * kv_el
        dec_hd, dec_vd = r_kv + rope, r_kv  # absorbed MLA decode works in the latent space
    else:
        rows.append(ops.gemm("qkv_proj", dev, tokens, (heads + 2 * kv_rank) * hd, h, wl, a, cd_lin, floor, n))
        kv_tok_layer = kv_rank * (hd + vd) * kv_el
        dec_hd, dec_vd = hd, vd
    rows.append(ops.elementwise("rotary", dev, "rotary", tokens, (heads + kv_rank) * hd * a * 2, floor, n))
    # every token's K/V is written to the cache (vLLM reshape_and_cache: one thread block per
    # token, as the rotary kernel runs), decode tokens included
    rows.append(ops.elementwise("kv_cache_write", dev, "rotary", tokens, 2 * kv_tok_layer, floor, n))
    def prefill_att(prompts):
        return [ops.prefill_attention("attention", dev, prompts, seq_len, heads, hd, vd, kv_rank, a, floor, c,
                                      window=k.window if k.kind == SLIDING else 0,
                                      chunk=k.window if k.kind == CHUNKED else 0) for k, c in kinds]

    if phase == "prefill":
        rows.append(_merge("attention", prefill_att(b)))
    else:
        # a decode token reads LayerAttention.decode_keys(ctx) keys: all, the window, its chunk;
        # q queries per sequence (speculative verify) read its KV once: FLOPs scale with heads x q
        att = [ops.decode_attention("attention", dev, b, k.decode_keys(ctx), kv_tok_layer, heads * q, dec_hd,
                                    dec_vd, floor, c) for k, c in kinds]
        rows.append(_merge("attention", att))
        chunk = tokens - b * q  # chunked-prefill tokens riding in this step
        if np.any(chunk > 0):
            rows.append(_only_where(_merge("prefill_chunk_attention", prefill_att(chunk / seq_len)), chunk > 0))
    rows.append(ops.gemm("o_proj", dev, tokens, h, heads * vd, wl, a, cd_lin, floor, n))
    hidden_bytes = tokens * h * a
    # one all-reduce after attention and one after each MLP/MoE block; with EP the combined
    # expert output (and TP-sharded shared experts) is still reduced over TP (vLLM FusedMoE)
    tp_reduces = n + dense_layers + n_moe
    if dense_layers:
        inter = model.intermediate_size // tp
        mats = 2 if model.gated_mlp else 1
        rows.append(ops.gemm("mlp_up", dev, tokens, mats * inter, h, wl, a, cd_lin, floor, dense_layers))
        rows.append(ops.elementwise("activation", dev, "activation", tokens, inter * a * (mats + 1), floor,
                                    dense_layers))
        rows.append(ops.gemm("mlp_down", dev, tokens, h, inter, wl, a, cd_lin, floor, dense_layers))
    if n_moe:
        m = n_moe
        # router GEMM + top-k/softmax; fused MoE (vLLM fused_moe): align/permute, gate_up, act,
        # down, weighted combine = 5 kernels; a shared expert is gate_up, act, down = 3
        rows.append(ops.gemm("router", dev, tokens, model.num_experts, h, prec.bytes("base"), a, prec.base,
                             2 * floor, m))
        # Who computes what (sizer/model/split.py): without EP every rank holds a 1/TP shard of every
        # expert and sees all T x k routed rows. With EP <= TP the EP group sits inside one TP
        # group: a rank owns E/EP experts, each split TP/EP ways, and gets T x k / EP rows. With
        # EP > TP the group spans EP/TP replicas: whole experts, (EP/TP) x T tokens in the group,
        # T x k / TP rows per rank. Either way a rank does 1/TP of its replica's expert FLOPs.
        ep = split.ep
        etp = split.expert_tp if ep > 1 else tp
        group_tokens = tokens * max(ep / tp, 1.0) if ep > 1 else tokens
        routed_rows = tokens * model.experts_per_token / (min(ep, tp) if ep > 1 else 1)
        slots = model.num_experts + split.redundant_experts  # EPLB replicas add expert slots
        imb = effective_imbalance(imbalance, ep, split.redundant_experts) if ep > 1 else imbalance
        rows.append(ops.moe_experts("experts", dev, group_tokens, routed_rows, slots / ep,
                                    model.experts_per_token, model.num_experts, h,
                                    model.moe_intermediate_size / etp, we, a, cd_exp, 5 * floor,
                                    mats=3 if model.gated_mlp else 2, count=m, imbalance=imb))
        sh = model.shared_expert_params()
        if sh:
            rows.append(ops.gemm("shared_experts", dev, tokens, sh / h / tp, h, wl, a, cd_lin, 3 * floor, m))
        if split.ep > 1:
            local = tokens / tp if tp > 1 else tokens  # tokens leave split over the TP ranks
            group = comm.ep_group(stage)
            x = ep_all_to_all(ep_a2a, phase, local, model.experts_per_token, h, a, group,
                              comm.topology, imb, comm.profile)
            # one row for dispatch + combine (count 2 per MoE layer): their mean time and bytes
            rows.append(ops.comm("ep_all_to_all", (x.dispatch_s + x.combine_s) / 2,
                                 (x.dispatch_bytes + x.combine_bytes) / 2, count=2 * m))
    if tp > 1:
        if sequence_parallel:
            t = comm.time("reduce_scatter", hidden_bytes, comm.tp_group(stage)) + comm.time("all_gather", hidden_bytes, comm.tp_group(stage))
            rows.append(ops.comm("tp_reduce_scatter+all_gather", t, hidden_bytes * 2, count=tp_reduces))
        else:
            t = comm.time("all_reduce", hidden_bytes, comm.tp_group(stage))
            rows.append(ops.comm("tp_all_reduce", t, hidden_bytes, count=tp_reduces))
    if stage == split.pp - 1:
        rows_out = b if phase == "prefill" else b * q + (tokens - b * q) / (seq_len or 1)  # last tokens
        rows.append(ops.elementwise("final_norm", dev, "norm", rows_out, 2 * h * a, floor))
        rows.append(ops.gemm("lm_head", dev, rows_out, model.vocab_size / tp, h, prec.bytes("base"), a, prec.base, floor))
        if tp > 1:
            logits = rows_out * model.vocab_size * a  # gathered output, nccl-tests all_gather size
            rows.append(ops.comm("logits_all_gather", comm.time("all_gather", logits, comm.tp_group(stage)), logits))
        # the sampler over the full vocabulary on the last stage (vLLM v1/sample/sampler.py:
        # logits to fp32, temperature, softmax, sample): about four fp32 passes per row
        rows.append(ops.elementwise("sampler", dev, "add", rows_out, 4 * 4 * model.vocab_size, floor))
    else:
        # vLLM's IntermediateTensors carry the hidden states and the residual: two tensors
        rows.append(ops.comm("pp_send_recv", comm.time("send_recv", 2 * hidden_bytes, comm.pp_pair(stage)),
                             2 * hidden_bytes))
    return rows


def _only_where(op: ops.OpCost, mask) -> ops.OpCost:
    """The op where `mask` holds, nothing elsewhere (no kernel floor for absent work)."""
    m = np.asarray(mask, dtype=float)
    return ops.OpCost(op.name, op.time_s * m, op.flops * m, op.bytes * m, op.bound, op.count)


def _merge(name, parts) -> ops.OpCost:
    """One row for several kernels of one logical op (MLA's four projections, full + sliding
    attention layers)."""
    if not parts:  # no layer of this kind (e.g. every layer linear attention)
        return ops.OpCost(name, 0.0, 0.0, 0.0, "latency", 0)
    t = sum(p.time_s for p in parts)
    bound = max(parts, key=lambda p: float(np.max(p.time_s))).bound
    return ops.OpCost(name, t, sum(p.flops for p in parts), sum(p.bytes for p in parts), bound,
                      sum(p.count for p in parts))
