"""Disaggregated prefill/decode serving in the steady state (issue #18 item 1): a prefill pool of
instances that only run prompts, a decode pool that only runs decode steps, and each request's
KV cache moved between them (sizer/cost/kv_transfer.py).

Placement: the prefill pool takes the first GPUs of the topology, the decode pool the next
ones; each pool fills whole nodes, or both share one node (a server instance never straddles a
node boundary that the other pool's GPUs sit behind); inside a rack-scale NVLink domain
(nvl72) each pool takes whole hosts (the trays of 4 GPUs an engine's workers run on). Each pool is an ordinary Split whose DP is
its instances x the attention-DP ranks of one instance.

The steady state, per pool (the rate matching of TensorRT-LLM's disaggregated study,
docs/source/blogs/tech_blog/blog5_Disaggregated_Serving_in_TensorRT-LLM.md, "Measurement
Methodology": context servers' request rate at their TTFT, generation servers' rate at their
concurrency, the pools matched on requests/s):
- prefill: each DP rank runs forwards of `k` whole prompts (at most max_num_batched_tokens
  per forward, longer prompts chunked), priced as estimate's static prefill
  (sizer/cost/estimate.py serving_curve, mode "static"). A prompt's prefill time is that
  batch's; the pool serves dp x k / (busy time per batch) requests/s, the busy time being the
  prefill time without PP and chunks x the slowest stage's clock with it (successive batches
  fill the pipeline).
- decode: each DP rank holds N sequences that only decode, TPOT the pure decode step at the mean
  KV length isl + (osl - 1) / 2 (static mode's decode, speculative decoding included); the
  first token comes from the prefill (SGLang and TensorRT-LLM return it with the KV; vLLM's
  NixlConnector recomputes the last prompt token on the decode side instead, one more decode
  forward on the TTFT path, not modelled), so each request takes osl - 1 decode steps and the
  pool serves dp x N / (TPOT x (osl - 1)) requests/s.
- transfer: one request's KV at a time per prefill DP rank and per decode DP rank
  (min(P dp, D dp) / transfer time requests/s).
Requests/s = the smallest of the three (limited_by names it); output tokens/s = that x osl over
all GPUs of both pools. TTFT = prefill time + transfer time (no queueing, as in the aggregated
steady state); TPOT = the decode step; e2e = TTFT + (osl - 1) x TPOT.
"""

import math
from dataclasses import dataclass, replace

import numpy as np

from sizer.errors import InputError
from sizer.model.split import Split, check_split
from .engines import get_engine, memory_plan, replica_limits
from .estimate import draft_memory, serving_curve, spread
from .kv_transfer import kv_transfer, transfer_time
from .memory import resolve_precision


@dataclass(frozen=True)
class Pools:
    """The two pools: `prefill` and `decode` are whole-pool Splits (DP = instances x the
    attention-DP ranks of one instance); `*_replicas` the engine instances in each."""

    prefill: Split
    decode: Split
    prefill_replicas: int = 1
    decode_replicas: int = 1

    @property
    def gpus(self) -> int:
        return self.prefill.gpus + self.decode.gpus

    def instance(self, role: str) -> Split:
        """One engine instance of the pool (its DP is the instance's attention-DP ranks)."""
        s, n = (self.prefill, self.prefill_replicas) if role == "prefill" else (self.decode, self.decode_replicas)
        return replace(s, dp=s.dp // n)

    def label(self) -> str:
        def one(role, n):
            return f"{n}x [{self.instance(role).label()}]"
        return f"prefill {one('prefill', self.prefill_replicas)} + decode {one('decode', self.decode_replicas)}"

    def pool_json(self, role: str) -> dict:
        s = self.prefill if role == "prefill" else self.decode
        n = self.prefill_replicas if role == "prefill" else self.decode_replicas
        return {"split": self.instance(role).to_json(), "gpus": s.gpus, "replicas": n}


def check_pools(model, pools: Pools, gpus: int | None = None) -> Pools:
    """InputError (one line) when a pool does not divide the model, its replicas do not divide
    its DP ranks, an instance's EP is not inside it, or the pools do not add up to `gpus`."""
    for role, s, n in (("prefill", pools.prefill, pools.prefill_replicas),
                       ("decode", pools.decode, pools.decode_replicas)):
        if not isinstance(n, int) or n < 1 or s.dp % n:
            raise InputError(f"--{role}-replicas {n} must divide the {role} pool's {s.dp} DP ranks")
        try:
            check_split(model, s)
        except InputError as exc:
            raise InputError(f"{role} pool: {exc}") from None
        inst = pools.instance(role)
        if s.ep > 1 and (inst.tp * inst.dp) % s.ep:
            raise InputError(f"{role} pool: EP={s.ep} must divide one instance's TP x DP = {inst.tp * inst.dp} "
                             f"(--{role}-dp gives an instance attention-DP ranks for wide EP)")
    if gpus is not None and gpus != pools.gpus:
        raise InputError(f"--gpus {gpus} differs from the prefill pool's {pools.prefill.gpus} + the decode "
                         f"pool's {pools.decode.gpus} = {pools.gpus} GPUs")
    return pools


def sub_topology(topo, start: int, n: int, role: str = "pool"):
    """The GPUs [start, start + n) of `topo` as a Topology of their own (global index of its
    GPU g: `global_gpu`), InputError when they neither fill whole nodes nor sit in one node."""
    per = topo.gpus_per_node
    host = topo.gpus_per_host if topo.gpus_per_host and topo.gpus_per_host < per else 0
    if host and (start % host or n % host):  # rack-scale domain: a pool takes whole trays
        raise InputError(f"the {role} pool's {n} GPUs (from GPU {start}) do not fill whole hosts of {host} "
                         f"in the {topo.name} domain: sizer places each pool on whole hosts")
    if n <= per and start // per == (start + n - 1) // per:
        lo = start % per
        paths = tuple(tuple(row[lo:lo + n]) for row in topo.paths[lo:lo + n])
        host = min(topo.gpus_per_host, n) if topo.gpus_per_host else 0
        return replace(topo, nodes=1, gpus_per_node=n, socket_of=topo.socket_of[lo:lo + n], paths=paths,
                       gpus_per_host=host)
    if start % per == 0 and n % per == 0:
        return replace(topo, nodes=n // per)
    raise InputError(f"the {role} pool's {n} GPUs (from GPU {start}) neither fill whole nodes of {per} nor fit "
                     f"in one: sizer places each pool on whole nodes, or both in one node")


def global_gpu(topo, start: int, sub, g: int) -> int:
    per = topo.gpus_per_node
    if sub.nodes == 1 and sub.gpus_per_node <= per:
        return start + g
    return start + (g // sub.gpus_per_node) * per + g % sub.gpus_per_node


def placements(topo, pools: Pools):
    """(prefill topology, decode topology, prefill GPU map, decode GPU maps): the pools' own
    topologies, and (stage, TP rank) -> global GPU of the first prefill DP rank and of every
    decode DP rank on a distinct set of nodes (the transfer is priced on the slowest)."""
    from sizer.hardware.placement import layout

    if topo.n_gpus < pools.gpus:
        raise InputError(f"topology holds {topo.n_gpus} GPUs, the pools need {pools.gpus}")
    p_topo = sub_topology(topo, 0, pools.prefill.gpus, "prefill")
    d_topo = sub_topology(topo, pools.prefill.gpus, pools.decode.gpus, "decode")

    def ranks(sub, start, split, lay, dp):
        return {(s, t): global_gpu(topo, start, sub, lay.rank_gpu(dp, s, t))
                for s in range(split.pp) for t in range(split.tp)}

    p_lay = layout(p_topo, pools.prefill.tp, pools.prefill.pp, pools.prefill.dp)
    d_lay = layout(d_topo, pools.decode.tp, pools.decode.pp, pools.decode.dp)
    pre = ranks(p_topo, 0, pools.prefill, p_lay, 0)
    decs, seen = [], set()
    for j in range(pools.decode.dp):
        m = ranks(d_topo, pools.prefill.gpus, pools.decode, d_lay, j)
        key = tuple(sorted({topo.node_of(g) for g in m.values()}))
        if key not in seen:
            seen.add(key)
            decs.append(m)
    return p_topo, d_topo, pre, decs


@dataclass(frozen=True)
class Transfer:
    """One request's KV move: bytes (wire, per busiest decode and prefill rank), seconds, the
    links it crosses, the layout rule."""

    bytes_per_request: float
    decode_rank_bytes: float
    prefill_rank_bytes: float
    sources_per_decode_rank: int
    time_s: float
    links: str
    rule: str

    def to_json(self) -> dict:
        return {"bytes_per_request": self.bytes_per_request, "decode_rank_bytes": self.decode_rank_bytes,
                "prefill_rank_bytes": self.prefill_rank_bytes,
                "sources_per_decode_rank": self.sources_per_decode_rank, "time_s": self.time_s,
                "links": self.links, "rule": self.rule}


class TransferModel:
    """The KV transfer of a (prefill, decode) pool pair on a topology, for any prompt length."""

    def __init__(self, model, pools: Pools, topo, kv_dtype: str, profile=None):
        self.kvt = kv_transfer(model, pools.prefill, pools.decode, kv_dtype)
        self.topo, self.profile = topo, profile
        _, _, self.pre, self.decs = placements(topo, pools)

    def time_s(self, tokens) -> np.ndarray:
        t = np.asarray(tokens, dtype=float)
        return np.max([transfer_time(self.kvt, t, self.topo, self.pre, d, self.profile) for d in self.decs], axis=0)

    def describe(self, tokens: int) -> Transfer:
        k = self.kvt
        names = set()
        for r in k.routes:
            for d in self.decs:
                names.add("+".join(lk.name for lk in self.topo.path(self.pre[r.prefill], d[r.decode])))
        return Transfer(float(k.bytes_per_request(tokens)), float(max(k.decode_rank_bytes(tokens).values(), default=0)),
                        float(max(k.prefill_rank_bytes(tokens).values(), default=0)), k.sources_per_decode_rank,
                        float(self.time_s(tokens)), ", ".join(sorted(names)), k.rule())


@dataclass(frozen=True)
class PhasePoints:
    """One pool over a vector of batches: prefill (prompts per forward) or decode (sequences
    per DP rank); `latency_s` is the prefill time (prefill) or TPOT (decode)."""

    split: Split
    batch: np.ndarray
    latency_s: np.ndarray
    requests_per_s: np.ndarray  # the whole pool
    curve: object


def prefill_points(model, device, split: Split, prompts, *, isl: int, max_num_tokens: int, **kw) -> PhasePoints:
    """Prefill time and pool requests/s for `prompts` prompts per forward (module docstring)."""
    k = np.atleast_1d(np.asarray(prompts, dtype=float))
    c = serving_curve(model, device, split, k, isl=isl, osl=1, max_num_tokens=max_num_tokens, mode="static",
                      **kw)
    busy = c.prefill_chunks * c.prefill_clock_s if split.pp > 1 else c.ttft_s
    return PhasePoints(split, k, np.asarray(c.ttft_s, float), split.dp * k / busy, c)


def decode_points(model, device, split: Split, batches, *, isl: int, osl: int, max_num_tokens: int, **kw) -> PhasePoints:
    """TPOT and pool requests/s for `batches` decoding sequences per DP rank."""
    b = np.atleast_1d(np.asarray(batches, dtype=float))
    c = serving_curve(model, device, split, b, isl=isl, osl=osl, max_num_tokens=max_num_tokens, mode="static", **kw)
    tpot = np.asarray(c.tpot_s, float)
    rps = split.dp * b / (tpot * (osl - 1)) if osl > 1 else np.full_like(b, np.inf)
    return PhasePoints(split, b, tpot, rps, c)


LIMITS = ("prefill", "decode", "kv_transfer")


def combine(pre_s: float, pre_rps: float, dec: PhasePoints, transfer_s: float, transfer_rps: float,
            osl: int, gpus: int) -> dict:
    """The deployment's steady state for one prefill point and every decode batch (module
    docstring): arrays over the decode batch."""
    rates = np.stack(np.broadcast_arrays(np.float64(pre_rps), dec.requests_per_s, np.float64(transfer_rps)))
    rps = rates.min(axis=0)
    ttft = np.full_like(dec.latency_s, pre_s + transfer_s)
    return {"ttft_s": ttft, "tpot_s": dec.latency_s, "e2e_s": ttft + (osl - 1) * dec.latency_s,
            "requests_per_s": rps, "output_tok_s": rps * osl, "output_tok_s_per_gpu": rps * osl / gpus,
            "limited_by": np.array(LIMITS, dtype=object)[rates.argmin(axis=0)]}


def default_prompts(isl: int, max_num_tokens: int, room: int, cap: int) -> int:
    """Prompts per prefill forward at saturation: as many whole prompts as the token budget
    holds (at least one), within the pool's KV room and the engine's sequence cap."""
    return max(1, min(max_num_tokens // isl if isl <= max_num_tokens else 1, room, cap))


@dataclass(frozen=True)
class DisaggEstimate:
    doc: dict

    def to_json(self) -> dict:
        return self.doc


def estimate_disagg(model, gpu, pools: Pools, *, isl: int, osl: int, concurrency=None, weight_dtype=None,
                    kv_dtype="auto", engine=None, fraction=None, max_batch=None, max_num_tokens=None,
                    cuda_graphs=None, topology=None, profile=None, speculative=None, ep_a2a="nccl",
                    moe_imbalance=1.0) -> DisaggEstimate:
    """The steady state of `pools` (module docstring), rate-matched: without `concurrency` the
    prefill pool runs full forwards (as many whole prompts as the token budget holds) and the
    decode pool the fewest sequences per DP rank that keep up with it and the transfer (at most
    what fits and max_num_seqs); with `concurrency` (over the decode pool) the prefill pool runs
    the fewest prompts per forward that keep up with the decode pool."""
    from sizer.hardware.constants import device_for
    from sizer.hardware.topology import default_topology

    if isl < 1 or osl < 1:
        raise InputError("--isl and --osl must be positive")
    check_pools(model, pools)
    rules = get_engine(engine)
    caps = {}  # role -> (max_num_seqs, max_num_batched_tokens) of one replica (replica_limits, as estimate)
    for role, split in (("prefill", pools.prefill), ("decode", pools.decode)):
        seqs_cap, tokens_cap = replica_limits(rules, gpu, split)
        caps[role] = (max_batch or seqs_cap, max_num_tokens or tokens_cap)
    topo = topology or default_topology(gpu, pools.gpus)
    p_topo, d_topo, _, _ = placements(topo, pools)

    def mem_kw(role):  # estimate's memory_plan keywords for one pool (the decode pool holds the draft)
        split = pools.prefill if role == "prefill" else pools.decode
        return dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, engine=engine, fraction=fraction,
                    max_num_batched_tokens=caps[role][1], max_num_seqs=caps[role][0] if rules is not None else None,
                    cuda_graphs=True if cuda_graphs is None else cuda_graphs,
                    **(draft_memory(speculative, split, weight_dtype, kv_dtype) if role == "decode" else {}))

    plans = {}
    for role, split, ctx in (("prefill", pools.prefill, isl + 1), ("decode", pools.decode, isl + osl)):
        plan = memory_plan(model, gpu, split, batch=1, context=ctx, **mem_kw(role))
        if plan.weights_bytes + plan.activation_bytes + plan.overhead_bytes > plan.capacity_bytes or plan.max_sequences < 1:
            raise InputError(f"the {role} pool ({pools.instance(role).label()} on {gpu.id}) does not fit: weights, "
                             f"activations and overhead {plan.shortfall(plan.budget_fixed_bytes, 'take')}, "
                             f"room for {plan.max_sequences} sequence(s) of {ctx} tokens")
        plans[role] = plan
    device = device_for(gpu, profile)
    kw = dict(cuda_graphs=cuda_graphs, weight_dtype=weight_dtype, kv_dtype=kv_dtype, profile=profile,
              ep_a2a=ep_a2a, moe_imbalance=moe_imbalance, engine=engine)
    k_max = default_prompts(isl, caps["prefill"][1], plans["prefill"].max_sequences, caps["prefill"][0])
    pre = prefill_points(model, device, pools.prefill, np.arange(1, k_max + 1), isl=isl, max_num_tokens=caps["prefill"][1],
                         topology=p_topo if pools.prefill.gpus > 1 else None, **kw)
    prec = resolve_precision(model, weight_dtype, kv_dtype)
    xfer = TransferModel(model, pools, topo, prec.kv, profile)
    t_x = float(xfer.time_s(isl))
    x_rps = min(pools.prefill.dp, pools.decode.dp) / t_x if t_x > 0 else math.inf
    n_cap = min(caps["decode"][0], plans["decode"].max_sequences)
    d_kw = dict(isl=isl, osl=osl, max_num_tokens=caps["decode"][1],
                topology=d_topo if pools.decode.gpus > 1 else None, speculative=speculative, **kw)
    share = spread(concurrency, pools.decode.dp) if concurrency is not None else None
    grid = (np.array([share["busy_batch"]], dtype=float) if share else np.arange(1, n_cap + 1, dtype=float))
    dec = decode_points(model, device, pools.decode, grid, **d_kw)
    if share:  # the decode ranks a balancer leaves busier set TPOT; the request rate sums every rank's
        rps = dec.requests_per_s * share["busy_replicas"] / pools.decode.dp
        if share["rest_batch"]:
            rest = decode_points(model, device, pools.decode, [share["rest_batch"]], **d_kw)
            rps = rps + rest.requests_per_s * share["rest_replicas"] / pools.decode.dp
        dec = PhasePoints(dec.split, dec.batch, dec.latency_s, rps, dec.curve)
    if concurrency is None:  # saturated prefill; the fewest sequences whose decode rate keeps up
        ki = k_max - 1
        need = min(float(pre.requests_per_s[ki]), x_rps)
        ok = np.flatnonzero(dec.requests_per_s >= need)
        i = int(ok[0]) if ok.size else len(grid) - 1
    else:  # the given decode concurrency; the fewest prompts per forward that keep up with it
        i = 0
        need = min(float(dec.requests_per_s[0]), x_rps)
        ok = np.flatnonzero(pre.requests_per_s >= need)
        ki = int(ok[0]) if ok.size else k_max - 1
    k = int(pre.batch[ki])
    pts = combine(float(pre.latency_s[ki]), float(pre.requests_per_s[ki]), dec, t_x, x_rps, osl, pools.gpus)
    n = int(grid[i])
    dplan = memory_plan(model, gpu, pools.decode, batch=n, context=isl + osl, **mem_kw("decode"))
    pick = {key: (v[i].item() if hasattr(v[i], "item") else v[i]) for key, v in pts.items()}
    doc = {"mode": "disaggregated", **{key: pick[key] for key in ("ttft_s", "tpot_s", "e2e_s", "output_tok_s",
                                                                  "output_tok_s_per_gpu", "requests_per_s")},
           "limited_by": str(pick["limited_by"]), "gpus": pools.gpus, "kv_transfer_s": t_x,
           "prefill": {**pools.pool_json("prefill"), "prompts_per_forward": k,
                       "prefill_s": float(pre.latency_s[ki]), "requests_per_s": float(pre.requests_per_s[ki]),
                       "memory": memory_plan(model, gpu, pools.prefill, batch=k, context=isl + 1,
                                             **mem_kw("prefill")).to_json()},
           "decode": {**pools.pool_json("decode"), "batch": n, "tpot_s": float(dec.latency_s[i]),
                      "requests_per_s": float(dec.requests_per_s[i]), "memory": dplan.to_json()},
           "kv_transfer": {**xfer.describe(isl).to_json(), "requests_per_s": x_rps},
           "topology": topo.describe()}
    if not dplan.fits:
        doc["decode"]["fits"] = False
    return DisaggEstimate(doc)
