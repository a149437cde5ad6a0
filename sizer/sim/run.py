"""The simulator's API: a `Deployment` (built once: memory plan, scheduler caps, step-cost
tables), `simulate(deployment, traffic)` -> SimResult, and `find_rate(...)`, the highest rate
whose chosen percentile meets the SLOs, with the curve it walked.

A Deployment is independent of the traffic and keeps its step-cost tables between runs, so a
capacity search (sizer plan, issue #13) pays for the step model once per split and then
milliseconds to seconds per simulated point. `SimResult.to_json()` is `sizer simulate --json`.

    dep = Deployment(model, gpu, Split(tp=4, dp=2), engine="vllm")
    res = simulate(dep, Traffic(rate_rps=20, requests=1000, seed=s), ttft_slo_s=2, tpot_slo_s=0.05)
    res.percentile("ttft", 99), res.latency["tpot_s"]["p99"], res.verdict
    search = find_rate(dep, Traffic(requests=1000), ttft_slo_s=2, tpot_slo_s=0.05, percentile=99)

Not modelled (yet): prefix caching shared between requests (vLLM's cache is modelled only for
a preempted request's own blocks, which it resumes from while they survive), speculative decoding and the MoE dispatch kernels and
imbalance that `sizer estimate` prices (the simulator's forwards use step_time's defaults),
and client-side overheads (HTTP, tokenisation) that benchmark clients include in TTFT.
Disaggregated prefill/decode pools are sizer/sim/disagg.py's DisaggDeployment, which
`simulate` and `find_rate` take as they take a Deployment (its `loop`).
"""

import math
from dataclasses import dataclass, field, replace

import numpy as np

from sizer.cost.engines import get_engine, memory_plan, replica_limits
from sizer.cost.kv_cache import vllm_kv_groups
from sizer.errors import InfeasibleError, InputError
from sizer.hardware.constants import device_for
from sizer.model.attention import FULL_LAYER
from . import metrics
from .arrivals import Traffic, generate
from .costs import StepCosts
from .kv import KVLayout
from .loop import ROUTERS, Loop
from .replica import Replica, State
from .scheduler import POLICIES


class Deployment:
    """One split of one model on one GPU type under one engine, ready to simulate.

    Scheduler caps come from `replica_limits(engine, gpu, split)` (one replica's share of the
    engine's caps, as estimate) unless given; the KV pool of each
    replica is `memory_plan(...).max_kv_tokens` with the same flags `sizer estimate` uses (the
    max_num_batched_tokens forward sizes the activation reserve); blocks are the engine's
    (vLLM 16, SGLang 1, TensorRT-LLM 32 tokens; token granularity without an engine). Under vLLM
    a model with sliding-window or chunked layers has several KV groups sharing one pool of
    `kv_blocks` blocks (its printed `kv_tokens` is kv_blocks // groups x 16), each request
    allocating per group (sizer/sim/kv.py). When EP
    spans DP replicas (EP > TP), those replicas step in lockstep (vLLM DP attention with an EP
    MoE) and are simulated as one with their summed caps.
    """

    def __init__(self, model, gpu, split, *, engine=None, weight_dtype=None, kv_dtype="auto",
                 fraction=None, max_num_seqs=None, max_num_batched_tokens=None, cuda_graphs=None,
                 topology=None, profile=None, context=None, router="round-robin", prefix_caching=None,
                 reserve_full_isl=None):
        if router not in ROUTERS:
            raise InputError(f"--router must be one of {', '.join(ROUTERS)}, got {router!r}")
        self.model, self.gpu, self.split = model, gpu, split
        self.rules = get_engine(engine)
        self.engine = self.rules.name if self.rules else None
        # vLLM V1 caches prefixes by default (vllm/config/cache.py at commit c1d86421174a,
        # enable_prefix_caching: "Enabled by default for V1"); only a preempted request's own
        # blocks are modelled (sizer/sim/replica.py cache_hit), no sharing between requests
        self.prefix_caching = self.engine == "vllm" if prefix_caching is None else bool(prefix_caching)
        # vLLM's full-sequence admission gate, scheduler_reserve_full_isl: bool = True
        # (vllm/config/scheduler.py since PR #37307; sizer/sim/kv.py)
        self.reserve_full_isl = self.engine == "vllm" if reserve_full_isl is None else bool(reserve_full_isl)
        given = [name for name, v in (("--no-enable-prefix-caching", prefix_caching is False),
                                      ("--[no-]scheduler-reserve-full-isl", reserve_full_isl is not None)) if v]
        if given and self.engine != "vllm":
            what = "a vLLM flag" if len(given) == 1 else "vLLM flags"
            raise InputError(f"{' and '.join(given)}: {what}, modelled only under --engine vllm (got --engine "
                             f"{self.engine or 'none'}, whose scheduler has no such switch)")
        seqs_cap, tokens_cap = replica_limits(self.rules, gpu, split)
        self.max_num_seqs = int(max_num_seqs or seqs_cap)
        self.max_num_batched_tokens = int(max_num_batched_tokens or tokens_cap)
        self.router = router
        self.context = int(context or model.max_position_embeddings or 4096)
        # without an engine the activation reserve grows with the sequences sampled per forward:
        # size it at the cap, as estimate's max-throughput probe does
        self.plan = memory_plan(model, gpu, split, weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                                batch=self.max_num_seqs if self.rules is None else 1,
                                context=self.context, engine=engine, fraction=fraction,
                                max_num_batched_tokens=self.max_num_batched_tokens,
                                max_num_seqs=self.max_num_seqs if self.rules is not None else None,
                                cuda_graphs=True if cuda_graphs is None else cuda_graphs)
        fixed = self.plan.weights_bytes + self.plan.activation_bytes + self.plan.overhead_bytes
        if fixed > self.plan.capacity_bytes or self.plan.max_kv_tokens < 1:
            raise InfeasibleError(f"{model.name} does not fit {split.label()} on {gpu.id}: weights, activations "
                                  f"and overhead {self.plan.shortfall(self.plan.budget_fixed_bytes, 'take')}, "
                                  "no room for KV cache")
        self.kv_tokens = int(self.plan.max_kv_tokens)
        self.block_tokens = self.rules.block_tokens if self.rules else 1
        # vLLM's hybrid KV groups (sliding-window / chunked layers beside full ones) share one
        # pool of num_blocks; kv_tokens is what vLLM prints, num_blocks // groups x block
        self.kv_groups = (FULL_LAYER,)
        self._spare_blocks = 0
        if self.engine == "vllm":
            kinds, _ = vllm_kv_groups(model, split.pp)
            if len(kinds) > 1 and self.plan.kv_groups:
                self.kv_groups = kinds
                blocks = int(self.plan.kv_groups[0]["engine_pool_tokens"]) // self.block_tokens
                self._spare_blocks = blocks - self.kv_tokens // self.block_tokens * len(kinds)
        g = split.ep // split.tp if split.ep > split.tp else 1
        self.group = g if split.dp % g == 0 else 1
        self.replicas = split.dp // self.group
        if split.gpus > 1 and topology is None:
            from sizer.hardware.topology import default_topology

            topology = default_topology(gpu, split.gpus)
        self._cost_kw = dict(max_num_seqs=self.max_num_seqs, max_num_batched_tokens=self.max_num_batched_tokens,
                             weight_dtype=weight_dtype, kv_dtype=kv_dtype, topology=topology, profile=profile,
                             cuda_graphs=cuda_graphs, group=self.group, engine=engine)
        self._device = device_for(gpu, profile)
        self._costs = {}  # anchors -> StepCosts, kept between simulations
        self.step_costs = None  # set to replace the step model (e.g. a fixed-cost stub)
        self.estimate_kw = dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, engine=engine, fraction=fraction,
                                max_batch=self.max_num_seqs, max_num_tokens=self.max_num_batched_tokens,
                                cuda_graphs=cuda_graphs, topology=topology, profile=profile)

    def costs(self, wl):
        """Step costs for a workload: tables shared by every workload with the same anchors
        (a fixed prompt length, else none)."""
        if self.step_costs is not None:
            return self.step_costs
        lengths = np.unique(wl.isl)
        anchors = tuple(int(x) for x in lengths) if len(lengths) == 1 else ()
        if anchors not in self._costs:
            self._costs[anchors] = StepCosts(self.model, self._device, self.split, anchors=anchors, **self._cost_kw)
        return self._costs[anchors]

    @property
    def kv_blocks(self) -> int:
        """Blocks of one engine replica's KV pool (all its KV groups draw from it)."""
        return self.kv_tokens // self.block_tokens * len(self.kv_groups) + self._spare_blocks

    def kv_layout(self) -> KVLayout:
        """Per-request block accounting of one replica (a lockstep group: its pools summed)."""
        return KVLayout.of_groups(self.block_tokens, self.kv_blocks * self.group, self.kv_groups,
                                  self.max_num_batched_tokens, self.context)

    def service_time(self, wl) -> float:
        """Seconds a lone request of the workload's mean lengths spends in one replica: its
        prompt in max_num_batched_tokens chunks, then its decode steps, each through every
        pipeline stage (the time scale of metrics.stability's "too short")."""
        costs = self.costs(wl)
        isl, osl = float(np.mean(wl.isl)), float(np.mean(wl.osl))
        chunk = min(isl, float(self.max_num_batched_tokens))
        prefill = math.ceil(isl / chunk) * costs.time(0, 0.0, chunk, isl)
        decode = max(osl - 1, 0.0) * costs.time(1, isl + osl / 2)
        return (prefill + decode) * self.split.pp

    def replica(self, idx: int, costs, cls=Replica) -> Replica:
        """One engine replica of this deployment (a lockstep group counts as one, its caps summed)."""
        return cls(idx, max_num_seqs=self.max_num_seqs * self.group,
                   max_num_batched_tokens=self.max_num_batched_tokens * self.group,
                   block_tokens=self.block_tokens, kv_tokens=self.kv_tokens * self.group, pp=self.split.pp,
                   costs=costs, policy_cls=POLICIES[self.engine], layout=self.kv_layout(),
                   prefix_caching=self.prefix_caching and self.engine == "vllm",
                   reserve_full_isl=self.reserve_full_isl and self.engine == "vllm")

    def loop(self, st: State, wl, traffic: Traffic) -> Loop:
        """The event loop of one simulation: this deployment's replicas behind its router."""
        costs = self.costs(wl)
        return Loop(st, [self.replica(i, costs) for i in range(self.replicas)], self.router, traffic.concurrency)

    def to_json(self) -> dict:
        return {"engine": self.engine or "none", "replicas": self.replicas, "lockstep_group": self.group,
                "max_num_seqs": self.max_num_seqs, "max_num_batched_tokens": self.max_num_batched_tokens,
                "kv_tokens_per_replica": self.kv_tokens, "kv_blocks_per_replica": self.kv_blocks,
                "kv_groups": len(self.kv_groups), "block_tokens": self.block_tokens,
                "prefix_caching": self.prefix_caching and self.engine == "vllm",
                "reserve_full_isl": self.reserve_full_isl and self.engine == "vllm",
                "router": self.router, "max_model_len": self.context}

    def check(self, wl) -> None:
        """A workload the deployment can never serve is an answer (exit 1), not a hang."""
        longest = int(np.max(wl.isl + wl.osl))
        if len(self.kv_groups) > 1:
            worst = self.kv_layout().worst(wl.isl, wl.osl, self.max_num_batched_tokens)
            i = int(np.argmax(worst))
            if int(worst[i]) > self.kv_blocks:
                raise InfeasibleError(
                    f"a request of {int(wl.isl[i])} + {int(wl.osl[i])} tokens needs {int(worst[i]):,} KV blocks at "
                    f"its peak in vLLM's {len(self.kv_groups)} KV groups, more than the {self.kv_blocks:,} of one "
                    f"replica on {self.split.label()}")
            gate = int(self.kv_layout().admission(0, longest - 1)) if self.reserve_full_isl else 0
            if gate > self.kv_blocks:
                # a preempted request could never pass the full-sequence gate again; vLLM refuses to
                # start instead (its max_model_len check sizes a sequence with the same per-group caps)
                raise InfeasibleError(
                    f"a request of {longest} tokens needs {gate:,} free KV blocks to be re-admitted through vLLM's "
                    f"full-sequence gate (windows capped at their chunk), more than the {self.kv_blocks:,} of one "
                    f"replica on {self.split.label()}: vLLM would not start with this max_model_len")
        elif longest > self.kv_tokens:
            raise InfeasibleError(f"a request of {longest} tokens does not fit the KV cache of one replica "
                                  f"({self.kv_tokens} tokens on {self.split.label()} with "
                                  f"{self.engine or 'no engine'})")
        if self.engine == "trtllm" and int(np.max(wl.isl)) > self.max_num_batched_tokens:
            raise InfeasibleError(f"a prompt of {int(np.max(wl.isl))} tokens exceeds TensorRT-LLM's "
                                  f"max_num_tokens {self.max_num_batched_tokens} (context chunking is off by default)")

    def steady_state_rps(self, traffic: Traffic) -> float:
        """Requests/s at sizer estimate's max-throughput point for the traffic's mean lengths."""
        from sizer.cost.estimate import estimate

        isl, osl = _mean_lengths(traffic)
        est = estimate(self.model, self.gpu, self.split, isl=max(1, round(isl)), osl=max(1, round(osl)),
                       **self.estimate_kw)
        return est.output_tok_s / max(osl, 1.0)


def _mean_lengths(traffic: Traffic):
    if traffic.trace is not None:
        return float(np.mean(traffic.trace.isl)), float(np.mean(traffic.trace.osl))
    return traffic.isl.mean, traffic.osl.mean


@dataclass
class SimResult:
    """Everything one simulation measured (module metrics for the definitions)."""

    deployment: dict
    traffic: str
    requests: int
    measured: int
    completed: int
    duration_s: float
    throughput: dict
    latency: dict  # ttft_s, tpot_s, itl_s, e2e_s, queue_s -> {mean, p50, p90, p99, max}
    preemptions: int
    preempted_requests: int
    batch: dict
    kv_utilization: dict
    littles_law: dict
    verdict: str
    forwards: int
    goodput: dict | None = None
    slo: dict | None = None
    stages: dict | None = None  # disaggregated serving: the prefill pool, transfer and decode admission
    stability: dict | None = None  # the growth test behind `verdict` (metrics.stability)
    per_request: dict = field(default_factory=dict, repr=False)
    table: dict = field(default_factory=dict, repr=False)
    timeline: dict = field(default_factory=dict, repr=False)

    def percentile(self, metric: str, q: float) -> float:
        """The q-th percentile of ttft/tpot/e2e/queue over measured requests (numpy's default)."""
        v = self.per_request[metric]
        v = v[~np.isnan(v)]
        return float(np.percentile(v, q)) if len(v) else 0.0

    def to_json(self) -> dict:
        doc = {"requests": self.requests, "measured": self.measured, "completed": self.completed,
               "duration_s": self.duration_s, "throughput": self.throughput, **self.latency,
               "preemptions": self.preemptions, "preempted_requests": self.preempted_requests,
               "kv_utilization": self.kv_utilization, "batch": self.batch, "forwards": self.forwards,
               "littles_law": self.littles_law, "verdict": self.verdict, "traffic": self.traffic,
               "deployment": self.deployment}
        if self.goodput is not None:
            doc["goodput"] = self.goodput
            doc["slo"] = self.slo
        if self.stages is not None:
            doc["stages"] = self.stages
        if self.stability is not None:
            doc["stability"] = self.stability
        return doc

    def advice(self) -> str | None:
        """The warning the verdict deserves (metrics.advice), or None."""
        return metrics.advice(self.verdict, self.stability or {})


def simulate(dep: Deployment, traffic: Traffic, *, ttft_slo_s=None, tpot_slo_s=None) -> SimResult:
    """Run `traffic` through `dep` (sizer/sim/loop.py) and measure it (sizer/sim/metrics.py)."""
    for name, v in (("--ttft-slo", ttft_slo_s), ("--tpot-slo", tpot_slo_s)):
        if v is not None and not v > 0:
            raise InputError(f"{name} must be positive, got {v}")
    wl = generate(traffic)
    if not len(wl):
        raise InputError("the traffic has no requests (a --duration shorter than the first arrival?)")
    dep.check(wl)
    first = min(traffic.warmup, len(wl) - 1)
    st = State(wl, first)
    loop = dep.loop(st, wl, traffic)
    loop.run()
    service = dep.service_time(wl) if hasattr(dep, "service_time") else None
    res = measure(dep.to_json(), traffic, st, loop.measured_replicas, first, ttft_slo_s, tpot_slo_s, service)
    res.stages = loop.stages(first)
    return res


def measure(deployment: dict, traffic: Traffic, st: State, reps, first: int, ttft_slo_s=None,
            tpot_slo_s=None, service_s=None) -> SimResult:
    """The SimResult of a finished simulation: latency blocks over the measured requests,
    throughput over the benchmark duration, the replicas' batch and KV statistics."""
    pr = metrics.per_request(st, first)
    t0 = float(np.min(st.release_t[first:]))
    duration = float(np.max(st.finish_t)) - t0
    n_meas = st.n - first
    out_tok = float(st.osl[first:].sum())
    in_tok = float(st.isl[first:].sum())
    d = max(duration, 1e-300)
    itl_v, itl_c = metrics.itl_samples(st)
    tpot = pr["tpot"][~np.isnan(pr["tpot"])]
    latency = {"ttft_s": metrics.block(pr["ttft"]), "tpot_s": metrics.block(tpot),
               "itl_s": metrics.block(itl_v, itl_c), "e2e_s": metrics.block(pr["e2e"]),
               "queue_s": metrics.block(pr["queue"])}
    stats = metrics.replica_stats(reps)
    stab = metrics.stability(st, service_s)
    res = SimResult(
        deployment=deployment, traffic=traffic.describe(), requests=st.n, measured=n_meas,
        completed=int(np.sum(~np.isnan(st.finish_t))), duration_s=duration,
        throughput={"requests_per_s": n_meas / d, "output_tok_s": out_tok / d, "total_tok_s": (in_tok + out_tok) / d},
        latency=latency, preemptions=int(st.preemptions.sum()), preempted_requests=int(np.sum(st.preemptions > 0)),
        batch=stats["batch"], kv_utilization=stats["kv_utilization"], littles_law=metrics.littles_law(st),
        verdict=metrics.verdict(st, traffic.rate_rps, traffic.concurrency, stab), forwards=stats["forwards"],
        stability=None if traffic.concurrency else stab,
        per_request=pr, timeline=metrics.timeline(reps, float(np.max(st.finish_t))),
        table={"arrival_s": st.release_t, "first_token_s": st.first_t, "finish_s": st.finish_t,
               "input_tokens": st.isl, "output_tokens": st.osl, "generated_tokens": st.out,
               "completions": st.completions, "preemptions": st.preemptions, "replica": st.replica})
    if ttft_slo_s is not None or tpot_slo_s is not None:
        good = np.ones(n_meas, dtype=bool)
        if ttft_slo_s is not None:
            good &= pr["ttft"] <= ttft_slo_s
        if tpot_slo_s is not None:
            good &= np.nan_to_num(pr["tpot"], nan=0.0) <= tpot_slo_s
        res.goodput = {"requests_per_s": float(good.sum()) / d, "fraction": float(good.mean())}
        res.slo = {"ttft_s": ttft_slo_s, "tpot_s": tpot_slo_s}
    return res


@dataclass
class RateSearch:
    """find_rate's answer: the highest rate that met the SLOs (0 when none did) and every
    point it simulated, by rate."""

    max_rate_rps: float
    percentile: float
    slo: dict
    curve: list
    steady_state_rps: float
    limited_by: str
    simulations: int = 0  # simulate() calls (points x seeds run)

    def to_json(self) -> dict:
        return {"max_rate_rps": self.max_rate_rps, "percentile": self.percentile, "slo": self.slo,
                "steady_state_rps": self.steady_state_rps, "limited_by": self.limited_by, "curve": self.curve}


def _point(dep, traffic, rate, ttft_slo_s, tpot_slo_s, q, stable=False):
    res = simulate(dep, traffic.at_rate(rate), ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s)
    ttft, tpot = res.percentile("ttft", q), res.percentile("tpot", q)
    misses = [name for name, v, s in (("ttft", ttft, ttft_slo_s), ("tpot", tpot, tpot_slo_s))
              if s is not None and v > s]
    if stable and (stable(res) if callable(stable) else res.verdict == "saturated"):
        misses.append("saturated")
    row = {"rate_rps": rate, "ttft_s": res.latency["ttft_s"], "tpot_s": res.latency["tpot_s"],
           f"ttft_p{q:g}_s": ttft, f"tpot_p{q:g}_s": tpot, "throughput_rps": res.throughput["requests_per_s"],
           "verdict": res.verdict, "meets": not misses}
    return row, misses


def _points(dep, traffic, rate, ttft_slo_s, tpot_slo_s, q, seeds, stable):
    """One rate over several seeds: the first seed that misses decides (its row, with `seed`);
    when all meet, the row of the seed closest to missing. Returns (row, misses, runs)."""
    if seeds is None:
        row, misses = _point(dep, traffic, rate, ttft_slo_s, tpot_slo_s, q, stable)
        return row, misses, 1
    worst, worst_margin = None, -math.inf
    for i, seed in enumerate(seeds):
        row, misses = _point(dep, replace(traffic, seed=seed), rate, ttft_slo_s, tpot_slo_s, q, stable)
        row["seed"] = seed
        if misses:
            return row, misses, i + 1
        margin = max([row[f"{k}_p{q:g}_s"] / s for k, s in (("ttft", ttft_slo_s), ("tpot", tpot_slo_s)) if s]
                     or [0.0])
        if margin > worst_margin:
            worst, worst_margin = row, margin
    return worst, [], len(seeds)


def find_rate(dep: Deployment, traffic: Traffic, *, ttft_slo_s=None, tpot_slo_s=None, percentile: float = 99.0,
              rel_tol: float = 0.02, max_points: int = 16, seeds=None, stable=False) -> RateSearch:
    """Bisection over the rate (issue #12 item 3): bracketed from the steady-state maximum
    (sizer estimate's max-throughput requests/s), each point a simulation with the traffic's
    seed; stops when the bracket is within `rel_tol`. With `seeds`, a rate meets only when it
    meets on every seed (capacity planning, issue #13); with `stable`, a saturated run misses
    too (limited_by "saturated"), and the SLOs may be omitted: the highest stable rate. `stable`
    may be a function of the SimResult that says whether it counts as saturated (default: its
    verdict)."""
    if ttft_slo_s is None and tpot_slo_s is None and not stable:
        raise InputError("--find-rate needs --ttft-slo and/or --tpot-slo")
    if not 0 < percentile <= 100:
        raise InputError(f"--percentile must be in (0, 100], got {percentile}")
    if traffic.concurrency:
        raise InputError("--find-rate searches the request rate; drop --concurrency")
    steady = dep.steady_state_rps(traffic)
    slo = {"ttft_s": ttft_slo_s, "tpot_s": tpot_slo_s}
    curve, cache, runs = [], {}, [0]

    def meets(rate) -> bool:
        if rate not in cache:
            row, misses, n = _points(dep, traffic, rate, ttft_slo_s, tpot_slo_s, percentile, seeds, stable)
            cache[rate] = misses
            curve.append(row)
            runs[0] += n
        return not cache[rate]

    def answer(rate, limited_by):
        curve.sort(key=lambda r: r["rate_rps"])
        return RateSearch(rate, percentile, slo, curve, steady, limited_by, runs[0])

    hi = 1.5 * steady
    while meets(hi):  # the SLOs hold past the steady-state maximum: widen
        if len(curve) >= max_points // 2:
            return answer(hi, "search range")
        hi *= 2
    lo = hi / 2
    while not meets(lo):
        if len(curve) >= max_points:
            return answer(0.0, ",".join(cache[lo]))
        hi, lo = lo, lo / 4
    while hi - lo > rel_tol * hi and len(curve) < max_points:
        mid = math.sqrt(lo * hi)
        if meets(mid):
            lo = mid
        else:
            hi = mid
    return answer(lo, ",".join(cache[hi]))
