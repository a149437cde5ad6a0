"""Rate-driven planning's entry point and answer (issue #13): `plan()` runs the search of
sizer/plan/capacity.py for one GPU type and returns a CapacityPlan (ranked deployments, why-not
lines, the JSON document); `compare()` puts several GPU types side by side with their cost.

Nodes and costs: sizer/plan/capacity_cost.py (whole nodes of per_node GPUs, cost on whole nodes
and per GPU; compare() is re-exported here).
"""

from dataclasses import dataclass, field

from sizer.errors import InfeasibleError, InputError
from sizer.hardware.topology import default_topology
from . import capacity as cap
from . import capacity_fp8 as fp8
from .capacity_cost import compare, node_count  # noqa: F401  (compare: this module's API too)
from .search import divisors
from .shapes import Rejected, bound_shapes, bound_targets, candidate_splits

HEADROOM_CANDIDATES = 1  # confirmed deployments whose sustainable rate is bracketed (the winner)

def _t(s: float, extra: int = 0) -> str:
    """2.00 s, 46.3 ms: `extra` more decimals where two values would otherwise print alike."""
    if s >= 10:
        return f"{s:.{1 + extra}f} s"
    if s >= 1:
        return f"{s:.{2 + extra}f} s"
    return f"{s * 1e3:.{1 + extra}f} ms"


def over(value: float, target: float) -> str:
    """'50.04 ms > 50 ms': the value with as many decimals as it takes to differ from the target."""
    extra = 0
    while extra < 3 and _t(value, extra) == _t(target, extra):
        extra += 1
    return f"{_t(value, extra)} > {_t(target)}"


@dataclass
class CapacityPlan:
    model: str
    gpu: str
    engine: str
    mode: str  # "rate": fewest GPUs for R; "gpus": the sustainable rate of each split of --gpus
    rate_rps: float
    percentile: float
    slo: dict
    traffic: str
    per_node: int
    whole_nodes: bool
    max_gpus: int
    results: list  # capacity.Sized, ranked
    rejected: list  # shapes.Rejected
    simulations: int
    seeds: tuple
    mean_osl: float
    notes: list = field(default_factory=list)
    error: str = ""
    highest: dict | None = None  # when nothing serves R: the highest rate reached, and by what
    traffic_timed: bool = False  # a trace with arrival times: whole deployments were simulated
    arrival: str = "poisson"  # the traffic's arrival process and gamma shape
    burstiness: float = 1.0
    planner: object = field(default=None, repr=False, compare=False)  # the simulations' Deployments
    precision_hint: dict | None = None  # what fp8 would need (sizer/plan/capacity_fp8.py)

    @property
    def q(self) -> str:
        return f"p{self.percentile:g}"

    @property
    def winner(self):
        if self.error:
            return None
        return next((r for r in self.results if r.status in ("meets", "rate")), None)

    @property
    def gpus_needed(self) -> int | None:
        w = self.winner
        return w.gpus if w is not None else None

    def nodes_of(self, r) -> tuple[int, int]:
        """(whole nodes, GPUs per node) that hold `r`: its replicas packed on nodes of per_node
        GPUs, the last one possibly part idle (capacity_cost.node_count); with --gpus G --nodes
        N, the N nodes given."""
        if self.mode == "gpus":
            return max(1, r.gpus // self.per_node), min(self.per_node, r.gpus)
        return node_count(r.gpus, self.per_node)[0], self.per_node

    def as_given(self, r) -> tuple[int, int]:
        """(GPUs, nodes) of `--gpus G --nodes N` that run `r` again as given: every node the
        same, the most GPUs per node that hold whole replicas or a whole share of one
        (capacity.node_layout); the simulated topology of a timed trace's whole deployment."""
        if self.mode == "gpus" or self.whole_nodes:
            return r.gpus, self.nodes_of(r)[0]
        return r.gpus, cap.node_layout(r.gpus, r.shape.gpus, self.per_node)[0]

    # -- JSON -------------------------------------------------------------------------------
    def candidate(self, r) -> dict:
        s = r.shape
        split = s.deployment(r.replicas)
        nodes, per = self.nodes_of(r)
        g, n = self.as_given(r)
        doc = {**split.to_json(), "gpus": r.gpus, "nodes": nodes, "gpus_per_node": per,
               "idle_gpus": nodes * per - r.gpus, "as_given": {"gpus": g, "nodes": n},
               "replicas": r.replicas, "replica_gpus": s.gpus, "weight_dtype": s.weights_label,
               "kv_dtype": s.kv_label, "status": r.status,
               "sustainable_rate_rps": r.sustainable_rate_rps, "misses_at_rps": r.misses_at_rps,
               "headroom": (r.sustainable_rate_rps / self.rate_rps - 1) if r.sustainable_rate_rps else None,
               "limited_by": r.limited_by or None,
               "steady_state": {"bound_rps_per_replica": s.bound_rps, "batch": s.bound_batch,
                                "ttft_s": s.bound_ttft_s, "tpot_s": s.bound_tpot_s,
                                "lower_bound_gpus": r.lower_gpus}}
        if r.runs:
            doc["simulated"] = self.simulated(r)
        if r.fewer:
            doc["fewer"] = {"replicas": r.fewer["replicas"], "gpus": r.fewer["gpus"], "run": r.fewer["row"]}
        if r.rate_curve:
            doc["rate_curve"] = r.rate_curve
        return doc

    def simulated(self, r) -> dict:
        """What was simulated for `r` and what each seed measured (sizer simulate's blocks)."""
        rate = r.sustainable_rate_rps if r.status == "rate" else self.rate_rps
        d = r.replicas
        whole = self.traffic_timed
        q = self.q
        worst = {f"ttft_{q}_s": max(x[f"ttft_{q}_s"] for x in r.runs),
                 f"tpot_{q}_s": max(x[f"tpot_{q}_s"] for x in r.runs)}
        return {"rate_rps": rate, "replicas": d, "replica_rate_rps": rate if whole else rate / d,
                "simulated": "the whole deployment" if whole else "one replica of the deployment, with its "
                "round-robin share of the arrivals",
                "arrival": self.replica_arrival(d), "requests": r.requests, "seeds": [x["seed"] for x in r.runs],
                "meets": not r.runs[-1]["misses"], "worst": worst, "runs": r.runs}

    def replica_arrival(self, d: int) -> dict:
        if self.traffic_timed or d == 1 or self.arrival == "constant":
            return {"process": self.arrival, "burstiness": self.burstiness}
        return {"process": "gamma", "burstiness": self.burstiness * d}

    def to_json(self) -> dict:
        w = self.winner
        shown = [r for r in self.results if r.replicas is not None and r.status != "pruned"]  # simulated
        doc = {"mode": "capacity" if self.mode == "rate" else "capacity_at_gpus", "model": self.model,
               "gpu": self.gpu, "engine": self.engine, "rate": self.rate_rps, "percentile": self.percentile,
               "slo": self.slo, "traffic": self.traffic, "gpus_needed": self.gpus_needed,
               "nodes": self.nodes_of(w)[0] if w else None, "per_node": self.per_node,
               "whole_nodes": self.whole_nodes, "max_gpus": self.max_gpus,
               "winner": self.candidate(w) if w else None,
               "candidates": [self.candidate(r) for r in shown],
               "why_not": self.why_not(), "rejected": [self.rejected_json(r) for r in self.results
                                                        if r.status == "pruned"]
               + [{**x.split.to_json(), "weight_dtype": x.weight_dtype, "kind": x.kind, "reason": x.reason}
                  for x in self.rejected],
               "simulations": self.simulations, "seeds": list(self.seeds), "notes": list(self.notes),
               "precision_hint": self.precision_hint}
        if self.error:
            doc["error"] = self.error
            doc["highest"] = self.highest
        return doc

    def rejected_json(self, r) -> dict:
        return {**r.shape.split.to_json(), "weight_dtype": r.shape.weights_label, "kind": "bound",
                "reason": self.pruned_text(r)}

    # -- sentences --------------------------------------------------------------------------
    def label(self, r) -> str:
        return f"{r.shape.deployment(r.replicas or 1).label()} ({r.shape.weights_label} weights, {r.shape.kv_label} KV)"

    def miss_text(self, row: dict) -> str:
        """'P99 TPOT 53.1 ms > 50 ms (seed 1)', from a run that missed."""
        q = self.q.upper()
        parts = [f"{q} {k.upper()} {over(row[f'{k}_{self.q}_s'], self.slo[f'{k}_s'])}"
                 for k in ("ttft", "tpot") if k in row["misses"]]
        if "saturated" in row["misses"]:
            parts.append("saturated (requests pile up)")
        return ", ".join(parts) + f" (seed {row['seed']})"

    def pruned_text(self, r) -> str:
        s, w = r.shape, self.winner
        bound = (f"{s.bound_rps:.3g} req/s per replica at most in the steady state (batch {s.bound_batch}, "
                 f"mean TPOT {_t(s.bound_tpot_s)})")
        if self.mode == "gpus":
            rated = [x for x in self.results if x.status == "rate" and x.sustainable_rate_rps]
            top = max(rated, key=lambda x: x.sustainable_rate_rps, default=None)
            why = (f"not above {self.label(top)}'s simulated {top.sustainable_rate_rps:.3g}" if top
                   and top.sustainable_rate_rps >= s.bound_rps * r.replicas else
                   f"not simulated: {cap.MAX_FINALISTS} splits with higher bounds were")
            return f"at most {s.bound_rps * r.replicas:.3g} req/s: {bound}; {why}"
        if w is not None and r.lower_gpus > w.gpus:
            why = f"more than the winner's {w.gpus}"
        elif r.lower_gpus > self.max_gpus:
            why = f"more than the {self.max_gpus} allowed"
        else:
            why = f"not simulated: {cap.MAX_FINALISTS} shapes with smaller bounds were"
        return f"needs at least {r.lower_gpus} GPUs: {bound}; {why}"

    def why_not(self) -> list[str]:
        w, lines = self.winner, []
        for r in self.results:
            if r is w:
                continue
            name = self.label(r)
            if r.status == "meets":
                less = ""
                if r.fewer:
                    less = f"; {r.fewer['gpus']} GPUs miss: {self.miss_text(r.fewer['row'])} at {self.rate_rps:g} req/s"
                tie = " (as many as the winner, with less room under the SLOs)" if w and r.gpus == w.gpus else ""
                lines.append(f"{name}: needs {r.gpus} GPUs{tie}{less}")
            elif r.status == "misses":
                why = self.miss_text(r.runs[-1]) if r.runs else "no replica count fits the limit"
                lines.append(f"{name}: even {r.gpus} GPUs (the most allowed) miss: {why} at {self.rate_rps:g} req/s")
            elif r.status == "beaten":
                why = self.miss_text(r.runs[-1]) if r.runs else "no replica count fits"
                lines.append(f"{name}: needs more than the winner's {w.gpus if w else r.gpus} GPUs; {r.gpus} GPUs "
                             f"({r.replicas} replicas) miss: {why} at {self.rate_rps:g} req/s")
            elif r.status == "rate":
                above = [p for p in r.rate_curve or [] if p["rate_rps"] > (r.sustainable_rate_rps or 0) and not p["meets"]]
                at = ""
                if above:
                    p = above[0]
                    at = ": " + ", ".join(f"{self.q.upper()} {k.upper()} {_t(p[f'{k}_{self.q}_s'])}" for k in ("ttft", "tpot")
                                          if self.slo[f"{k}_s"] is not None) + f" at {p['rate_rps']:.3g} req/s"
                    if p.get("verdict") == "saturated" and not any(self.slo.values()):
                        at = f": saturated at {p['rate_rps']:.3g} req/s"
                lines.append(f"{name} saturates at {r.sustainable_rate_rps:.3g} req/s{at}")
        for r in self.results:
            if r.status == "pruned":
                lines.append(f"{self.label(r)}: {self.pruned_text(r)}")
        for x in self.rejected:
            lines.append(f"{x.split.label()}{' (' + x.weight_dtype + ' weights)' if x.weight_dtype else ''}: {x.reason}")
        return lines

    def verdict(self) -> str:
        """One sentence: the winner, or what is missing."""
        w = self.winner
        if w is None:
            return self.error
        q = self.q.upper()
        slo = " and ".join(f"{q} {k[:-2].upper()} <= {_t(v)}" for k, v in self.slo.items() if v) or "stability"
        if self.mode == "gpus":
            return (f"{self.label(w)} sustains {w.sustainable_rate_rps:.3g} req/s on {w.gpus}x {self.gpu} within "
                    f"{slo} ({w.sustainable_rate_rps / self.rate_rps - 1:+.0%} headroom over {self.rate_rps:g} req/s)")
        buy, idle = node_count(w.gpus, self.per_node)
        where = f"{buy} node{'s' if buy != 1 else ''} of {self.per_node}" + (f", {idle} GPUs idle" if idle else "")
        if w.gpus < self.per_node:
            where = f"part of one node of {self.per_node}"
        serves = (f"serves {self.rate_rps:g} req/s within {slo}" if any(self.slo.values()) else
                  f"keeps up with {self.rate_rps:g} req/s (no SLOs: the requests in the system do not grow)")
        seeds = f"on all {len(w.runs)} seeds" if len(w.runs) > 1 else "on the trace's arrivals"
        return f"{w.gpus}x {self.gpu} ({where}): {self.label(w)} {serves} {seeds}"


def _mean_lengths(traffic):
    if traffic.trace is not None:
        return float(traffic.trace.isl.mean()), float(traffic.trace.osl.mean())
    return traffic.isl.mean, traffic.osl.mean


def plan(model, gpu, traffic, *, rate_rps: float, ttft_slo_s=None, tpot_slo_s=None, percentile: float = 99.0,
         gpus=None, nodes: int = 1, per_node=None, whole_nodes: bool = False, max_gpus=None, engine=None,
         weight_dtypes=(None,), kv_dtypes=("auto",), topology_for=None, profile=None, fraction=None,
         max_num_seqs=None, max_num_batched_tokens=None, cuda_graphs=None, requests=None, uneven_pp: bool = True,
         context=None, headroom: int = HEADROOM_CANDIDATES, progress=None, fp8_hint: bool = True) -> CapacityPlan:
    """Capacity planning for one GPU type (module docstring of sizer/plan/capacity.py). Without
    `gpus`: the fewest GPUs (a multiple of `per_node` with whole_nodes), at most `max_gpus`;
    with `gpus`: the sustainable rate of each split of them (over `nodes` nodes). Raises
    InputError on bad input, InfeasibleError when nothing fits, CapacityNotMetError (carrying the
    plan) when nothing serves the rate. `progress(simulations, what)`, when given, is called after
    every simulation (the CLI's progress line). fp8_hint: add the precision line when planning in
    the checkpoint's own precision (sizer/plan/capacity_fp8.py)."""
    from sizer.cost.engines import get_engine

    cap.check_inputs(rate_rps, ttft_slo_s, tpot_slo_s, percentile)
    rules = get_engine(engine)
    if gpus is not None:
        if gpus % nodes:
            raise InputError(f"--nodes {nodes} does not divide --gpus {gpus} (every node holds the same number of GPUs)")
        per_node = gpus // nodes
        max_gpus = gpus
    per_node = int(per_node or gpu.domain_gpus)
    max_gpus = int(max_gpus or cap.DEFAULT_MAX_GPUS)
    if whole_nodes and max_gpus < per_node:
        raise InputError(f"--nodes allows {max_gpus} GPUs, less than one node of {per_node}")
    if topology_for is None:
        def topology_for(n, k):
            return default_topology(gpu, n, k)
    isl, osl = _mean_lengths(traffic)
    if gpus is not None:
        sizes = [u for u in divisors(gpus) if (u <= per_node and per_node % u == 0) or u % per_node == 0]
        splits, unsupported = candidate_splits(model, rules, per_node, gpus, uneven_pp, sizes=sizes)
    else:
        splits, unsupported = candidate_splits(model, rules, per_node, max_gpus, uneven_pp)
    targets = bound_targets(ttft_slo_s, tpot_slo_s, percentile)
    planner = cap.Planner(model, gpu, traffic, ttft_slo_s=ttft_slo_s, tpot_slo_s=tpot_slo_s, percentile=percentile,
                          engine=engine, topology_for=topology_for, per_node=per_node, profile=profile,
                          fraction=fraction, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                          cuda_graphs=cuda_graphs, requests=requests, context=context)
    planner.progress = progress

    def shapes_in(wds, kvs):
        found, rej = bound_shapes(model, gpu, splits, isl=isl, osl=osl, engine=engine, weight_dtypes=wds,
                                  kv_dtypes=kvs, targets=targets, topology_for=planner.topology, profile=profile,
                                  max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                                  cuda_graphs=cuda_graphs)
        found, kv_rej = _runnable(planner, found)
        return found, rej + kv_rej

    def step_of(shape):
        return per_node // shape.gpus if whole_nodes and shape.gpus <= per_node else 1

    alts = fp8.to_try(model, gpu, weight_dtypes, kv_dtypes) if fp8_hint else []

    def hint(winner, own):  # the precision line (sizer/plan/capacity_fp8.py)
        hints = []
        for alt in alts:
            found = shapes_in([alt[0]], [alt[1]])[0]
            hints.append(fp8.gpus_hint(found, own, alt, gpus) if gpus is not None else
                         fp8.rate_hint(planner, found, alt, rate_rps, step_of=step_of, max_gpus=max_gpus,
                                       winner=winner))
        return fp8.combine(hints, fp8.most_first if gpus is not None else fp8.fewest_first)

    shapes, rejected = shapes_in(weight_dtypes, kv_dtypes)
    rejected = rejected + list(unsupported)
    where = f"{gpus}x {gpu.id}" if gpus is not None else f"up to {max_gpus}x {gpu.id}"
    if not shapes:
        reasons = _why_none(rejected, targets)
        h = hint(None, [])
        raise InfeasibleError(f"no split of {model.name} on {where} can serve it: {reasons}"
                              + (f"; {h['text']}" if h else ""))
    common = dict(model=model.name, gpu=gpu.id, engine=rules.name if rules else "none",
                  mode="gpus" if gpus is not None else "rate", rate_rps=float(rate_rps), percentile=float(percentile),
                  slo={"ttft_s": ttft_slo_s, "tpot_s": tpot_slo_s}, traffic=traffic.at_rate(rate_rps).describe(),
                  per_node=per_node, whole_nodes=bool(whole_nodes), max_gpus=max_gpus, rejected=rejected,
                  seeds=planner.seeds, mean_osl=osl, traffic_timed=planner.timed, arrival=traffic.arrival,
                  burstiness=traffic.burstiness)
    if gpus is not None:
        results = cap.rate_at_gpus(planner, shapes, gpus, rate_rps)
    else:
        results = cap.plan_capacity(planner, shapes, rate_rps, step_of=step_of, max_gpus=max_gpus)
        cap.add_headroom(planner, results, rate_rps, headroom)
    notes = []
    if unsupported:
        notes.append(f"{len(unsupported)} split{'s' if len(unsupported) != 1 else ''} not offered by {rules.name}")
    result = CapacityPlan(**common, results=results, simulations=planner.simulations, notes=notes, planner=planner)
    best = result.winner
    met = best is not None and (gpus is None or (best.sustainable_rate_rps or 0) >= rate_rps)
    result.precision_hint = hint(best if met else None, shapes)
    result.simulations = planner.simulations
    if not met:
        if gpus is None and cap.bound_proves_infeasible(results, max_gpus):
            result.highest = _bound_highest(result, rate_rps, step_of)
            h = result.highest
            result.error = (f"no deployment of {where} serves {rate_rps:g} req/s within the SLOs: at most "
                            f"{h['rate_rps']:.3g} req/s, by {h['label']} on {h['gpus']} GPUs, limited by "
                            f"{h['limited_by']}; {rate_rps:g} req/s needs at least {h['needs_gpus']} GPUs, so "
                            "nothing was simulated")
        else:
            result.highest = _highest(planner, result, gpus)
            h = result.highest
            result.error = (f"no deployment of {where} serves {rate_rps:g} req/s within the SLOs: the most, "
                            f"{h['rate_rps']:.3g} req/s, by {h['label']} ({h['gpus']} GPUs; limited by "
                            f"{h['limited_by']})")
        if result.precision_hint:
            result.error += f"; {result.precision_hint['text']}"
        result.simulations = planner.simulations
        raise cap.CapacityNotMetError(result.error, result)
    return result


def _why_none(rejected: list, targets: dict) -> str:
    """Why no shape is left (trial 2 item 8): when some fit but miss the targets even at one
    sequence, the closest on each target (the lowest batch-1 TTFT, the lowest batch-1 TPOT, as
    `recommend --gpus N` names its closest) and how many of each kind there are; else the first
    reasons."""
    slow = [x for x in rejected if x.kind == "targets"]
    if not slow:
        return "; ".join(f"{x.split.label()}: {x.reason}" for x in rejected[:3])

    def name(x):
        return x.split.label() + (f" ({x.weight_dtype} weights)" if x.weight_dtype else "")

    def at_one(x):
        return ", ".join(f"{k[:-2].upper()} " + (over(getattr(x, k), targets[k]) if getattr(x, k) > targets[k]
                                                 else _t(getattr(x, k))) for k in ("ttft_s", "tpot_s") if targets[k])
    closest = {}
    for k in ("ttft_s", "tpot_s"):
        if targets[k]:
            x = min(slow, key=lambda r: getattr(r, k) / targets[k])
            closest.setdefault(id(x), (x, []))[1].append(k[:-2].upper())
    parts = [f"closest on {' and '.join(ks)}: {name(x)} at one sequence, {at_one(x)}" for x, ks in closest.values()]
    others = len(rejected) - len(slow)
    count = f"{len(slow)} split{'s' if len(slow) != 1 else ''} miss the targets even one sequence at a time in the " \
            f"steady state" + (f", {others} more do not fit or do not run" if others else "")
    return f"{count}; " + "; ".join(parts)


def _runnable(planner, shapes):
    """Shapes whose deployment builds and holds the longest request (sizer.sim.Deployment.check)."""
    from sizer.sim import generate
    from dataclasses import replace

    keep, rejected = [], []
    sample = generate(replace(planner.traffic, rate_rps=1.0, requests=min(planner.traffic.requests or 1000, 1000),
                              duration_s=None, warmup=0)) if not planner.timed else generate(planner.traffic)
    for s in shapes:
        try:
            planner.deployment(s).check(sample)
        except InfeasibleError as exc:
            rejected.append(Rejected(s.split, s.weight_dtype, "kv", str(exc)))
            continue
        keep.append(s)
    return keep, rejected


def _highest(planner, result, gpus) -> dict:
    """The highest rate reached when nothing serves R: the simulated shape first in bound order,
    at the most replicas allowed (its find_rate over the seeds)."""
    done = [r for r in result.results if r.status == "rate"]
    if done:
        r = max(done, key=lambda x: x.sustainable_rate_rps or 0)
        rate, limited = r.sustainable_rate_rps or 0.0, r.limited_by
    else:
        r = next(x for x in result.results if x.status in ("misses", "pruned"))
        if r.replicas is None:
            r.replicas = max(1, result.max_gpus // r.shape.gpus)
        rate, _, _, limited = planner.highest_rate(r.shape, r.replicas)
    return {"rate_rps": rate, "label": result.label(r), "gpus": r.gpus, "replicas": r.replicas,
            "limited_by": limited or "the search range", "simulated": True}


def _bound_highest(result, rate_rps: float, step_of) -> dict:
    """The answer when the steady-state bound alone proves that nothing allowed serves R
    (capacity.bound_proves_infeasible): the most any shape's bound allows on the GPUs allowed, an
    upper bound, and the fewest GPUs any bound needs for R; no simulation."""
    r, rate = cap.bound_highest(result.results, rate_rps, result.max_gpus, step_of)
    return {"rate_rps": rate, "label": result.label(r), "gpus": r.gpus, "replicas": r.replicas,
            "limited_by": f"the steady-state bound ({r.shape.bound_rps:.3g} req/s per replica x "
                          f"{cap.BOUND_SLACK:g} slack)",
            "needs_gpus": min(x.lower_gpus for x in result.results), "simulated": False}
