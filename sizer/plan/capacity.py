"""Capacity planning (issue #13): how many GPUs of a type, split how, serve R requests/s with
the P-th percentile of TTFT and TPOT within their SLOs; and, for a given GPU count, the highest
rate each split sustains under them.

Why: the buyer's question comes before `sizer recommend --gpus 8`, and it is about tails, which
only the request-level simulator (sizer/sim) answers; it is too slow to run over every split and
replica count, so the search is a branch and bound with the steady-state model first, and every
simulation it runs is counted:

1. Shapes (sizer/plan/shapes.py): one replica, repeated d times behind a round-robin router;
   each has a steady-state bound, the most requests/s one replica carries within the SLOs (times
   a measured slack), so a shape needs at least ceil(R / (slack x bound)) replicas; the search
   starts at ceil(R / bound), where the answer usually is.
2. One replica stands for all d. A round-robin router gives each replica every d-th arrival: for
   Poisson arrivals at R, gaps that are sums of d exponential gaps, a gamma (Erlang) process of
   shape d at R / d (shape d x b for a gamma process of shape b; constant spacing stays
   constant). Replicas share nothing, so one replica simulated with that arrival process has the
   distribution of every replica of the deployment, at 1 / d of the cost of simulating all of
   them (tests/test_capacity.py checks the two agree). A trace with arrival times has no such
   shortcut: its deployments are simulated whole, on the one workload it is.
3. Confirmation: d replicas meet when each of 3 seeds (the traffic's seed and the next two)
   meets every SLO at the percentile and is not saturated (Planner.saturated); the first seed
   that misses ends the check. The fewest replicas are found by galloping from the bound and
   bisecting, and the count one step below is always simulated too: the answer carries the run
   that shows one replica (or node) fewer misses, unless it is the shape's smallest deployment.
4. Branch and bound: shapes go in order of the GPUs their bound needs; one whose bound needs
   more GPUs than the best confirmed deployment is not simulated (its why-not line says so), a
   later shape is searched only up to the best's GPU count (to tie or beat it, or to show it
   misses there), and at most MAX_FINALISTS shapes are simulated. The winner's sustainable rate
   is then bracketed, from R up to the rate at which its replicas carry what one fewer carried.
Each seed simulates REQUESTS_MIN requests, or LIFETIMES x the requests one replica holds at its
bound (Little's law: bound rate x E2E) when that is more (capped at REQUESTS_MAX): a P99 of a
shorter window underestimates the tail, because the batch never reaches its steady size.
With --gpus N the replica count is fixed (N / shape GPUs), and each finalist's highest rate is
sizer.sim.find_rate over the same seeds; the winner has the most headroom.
"""

import math
from dataclasses import dataclass, replace


from sizer.errors import InfeasibleError, InputError
from sizer.sim import Deployment, Traffic, find_rate, simulate
from .shapes import BOUND_SLACK, Shape, replicas_at_least
from .search import divisors

SEEDS = 3
MAX_FINALISTS = 3
REQUESTS_MIN = 600
REQUESTS_MAX = 5000
LIFETIMES = 6
RATE_TOL = 0.03  # find_rate's bracket (--gpus) of the sustainable rate
HEADROOM_TOL = 0.05  # the winner's sustainable rate above R, bracketed to 5%
DEFAULT_MAX_GPUS = 1024
METRICS = ("ttft_s", "tpot_s", "itl_s", "e2e_s", "queue_s")


def replica_traffic(traffic: Traffic, replicas: int, rate_rps: float, seed: int, requests) -> Traffic:
    """What one of `replicas` round-robin replicas receives when the deployment is offered
    `rate_rps` (module docstring, 2); one replica gets the traffic itself."""
    kw = dict(rate_rps=rate_rps / replicas, seed=seed, requests=requests, duration_s=None, warmup=0)
    if replicas > 1 and traffic.arrival != "constant":
        kw.update(arrival="gamma", burstiness=traffic.burstiness * replicas)
    return replace(traffic, **kw)


def smallest_meeting(check, start: int, step: int, most: int):
    """The smallest d, a multiple of `step` in [step, most], with check(d) true, assuming more
    replicas never hurt: from `start`, galloping down while it meets or up while it misses, then
    bisecting. None when `most` misses. check(d - step) has run (and missed) for the d returned
    unless d == step."""
    most = step * (most // step)
    if most < step:
        return None
    d = min(max(step, step * math.ceil(start / step)), most)
    if check(d):
        hi, width = d, step
        lo = hi - width
        while lo >= step and check(lo):
            hi, width = lo, width * 2
            lo = max(hi - width, 0)
        lo = max(lo, 0)  # 0: nothing below step, a virtual miss
    else:
        lo, width = d, step
        while True:
            if lo >= most:
                return None
            hi = min(lo + width, most)
            if check(hi):
                break
            lo, width = hi, width * 2
    while hi - lo > step:
        mid = lo + step * ((hi - lo) // step // 2)
        if check(mid):
            hi = mid
        else:
            lo = mid
    return hi


def node_layout(gpus: int, shape_gpus: int, per_node: int) -> tuple[int, int]:
    """(nodes, GPUs per node) that run `gpus` GPUs of shapes of `shape_gpus` as given
    (`--gpus G --nodes N`): the most GPUs per node (at most per_node, dividing G) that hold
    whole shapes or a whole share of one."""
    best = 1
    for p in divisors(gpus):
        if p <= per_node and (p % shape_gpus == 0 or shape_gpus % p == 0):
            best = max(best, p)
    return gpus // best, best


@dataclass
class Sized:
    """One shape's answer: the fewest replicas that meet (or the replica count given) and what
    the simulations showed."""

    shape: Shape
    replicas: int | None
    status: str  # meets | misses (even the most replicas allowed) | beaten (misses with the best's GPUs)
    # | pruned (its bound needs more GPUs than the best) | rate (--gpus: a sustainable rate)
    runs: list  # the seeds' rows at `replicas` (or, on a miss, up to the seed that missed)
    fewer: dict | None = None  # {replicas, gpus, row}: the missing run one step below
    requests: int = 0
    sustainable_rate_rps: float | None = None  # the highest rate seen to meet
    misses_at_rps: float | None = None  # the lowest rate above it seen to miss
    rate_curve: list | None = None  # --gpus: find_rate's points (deployment rates)
    limited_by: str = ""
    lower_gpus: int = 0  # the bound's GPUs

    @property
    def gpus(self) -> int | None:
        return None if self.replicas is None else self.replicas * self.shape.gpus

    def margin(self, q: float, slo: dict) -> float:
        """max over seeds and SLOs of percentile / target (< 1: met with room; 0 without SLOs)."""
        vals = [row[f"{k}_p{q:g}_s"] / slo[f"{k}_s"] for row in self.runs for k in ("ttft", "tpot") if slo[f"{k}_s"]]
        return max(vals, default=0.0)


class CapacityNotMetError(InfeasibleError):
    """No deployment of the allowed sizes serves the rate; `plan` holds what was found."""

    def __init__(self, message: str, plan):
        super().__init__(message)
        self.plan = plan


class Planner:
    """The simulations of one model on one GPU type (module docstring): deployments built once
    per shape, every run counted."""

    def __init__(self, model, gpu, traffic: Traffic, *, ttft_slo_s, tpot_slo_s, percentile, engine,
                 topology_for, per_node, profile=None, fraction=None, max_num_seqs=None,
                 max_num_batched_tokens=None, cuda_graphs=None, requests=None, context=None):
        self.model, self.gpu, self.traffic = model, gpu, traffic
        self.slo = {"ttft_s": ttft_slo_s, "tpot_s": tpot_slo_s}
        self.q = float(percentile)
        self.engine, self.topology_for, self.per_node, self.profile = engine, topology_for, per_node, profile
        self.kw = dict(fraction=fraction, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                       cuda_graphs=cuda_graphs)
        self.timed = traffic.trace is not None and traffic.trace.arrival_s is not None
        self.seeds = tuple(traffic.seed + i for i in range(1 if self.timed else SEEDS))
        self.requests, self.context = requests, context
        self.simulations = 0
        self.progress = None  # called with a description after every simulation (the CLI's stderr line)
        self._deps, self._checks = {}, {}

    def _tick(self, what: str) -> None:
        if self.progress is not None:
            self.progress(self.simulations, what)

    def topology(self, gpus: int):
        nodes, _ = node_layout(gpus, gpus, self.per_node) if gpus > self.per_node else (1, gpus)
        return self.topology_for(gpus, nodes) if gpus > 1 else None

    def deployment(self, shape: Shape, replicas: int = 1) -> Deployment:
        """The simulated deployment: one shape, or in timed-trace mode all `replicas`."""
        n = replicas if self.timed else 1
        key = (shape.key(), n)
        if key not in self._deps:
            split = shape.deployment(n)
            if self.timed:
                nodes, _ = node_layout(split.gpus, shape.gpus, self.per_node)
                topo = self.topology_for(split.gpus, nodes) if split.gpus > 1 else None
            else:
                topo = self.topology(split.gpus)
            self._deps[key] = Deployment(self.model, self.gpu, split, engine=self.engine,
                                         weight_dtype=shape.weight_dtype, kv_dtype=shape.kv_dtype, topology=topo,
                                         profile=self.profile, context=self.context, **self.kw)
        return self._deps[key]

    def requests_for(self, shape: Shape) -> int | None:
        """Requests per seed (module docstring); a timed trace: as given (every row)."""
        if self.timed:
            return self.traffic.requests
        if self.requests:
            return int(self.requests)
        n = LIFETIMES * shape.bound_rps * shape.e2e_s
        return int(min(REQUESTS_MAX, max(REQUESTS_MIN, 100 * math.ceil(n / 100))))

    def traffic_for(self, shape: Shape, replicas: int, rate_rps: float, seed: int) -> Traffic:
        if self.timed:
            return replace(self.traffic, rate_rps=rate_rps, seed=seed)
        return replica_traffic(self.traffic, replicas, rate_rps, seed, self.requests_for(shape))

    def row(self, res, seed: int, shape: Shape) -> dict:
        q = self.q
        row = {"seed": seed, "verdict": res.verdict, "requests": res.requests,
               f"ttft_p{q:g}_s": res.percentile("ttft", q), f"tpot_p{q:g}_s": res.percentile("tpot", q),
               "throughput_rps": res.throughput["requests_per_s"],
               **{k: res.latency[k] for k in METRICS}}
        misses = [k for k in ("ttft", "tpot") if self.slo[f"{k}_s"] is not None
                  and row[f"{k}_p{q:g}_s"] > self.slo[f"{k}_s"]]
        if self.saturated(res, shape):
            misses.append("saturated")
        row["misses"] = misses
        return row

    def saturated(self, res, shape: Shape) -> bool:
        """Whether the requests in the system grow through the run: the simulator's own verdict
        (sizer.sim.metrics.stability, a Mann-Kendall trend test on batch means of the number in
        system plus a Theil-Sen pile-up), so a plan never keeps a deployment whose every run
        reads "saturated" (8B at 60 req/s on 2 H100s did, under an older, weaker test here).
        "too short" is not saturated: the SLO metrics judge such a run. Milder overload shows
        in the SLO metrics too: TPOT as the batch grows, TTFT as the queue does."""
        return res.verdict == "saturated"

    def check(self, shape: Shape, replicas: int, rate_rps: float) -> tuple[bool, list]:
        """Whether `replicas` shapes meet at `rate_rps` on every seed (module docstring, 3)."""
        key = (shape.key(), replicas, rate_rps)
        if key not in self._checks:
            dep, rows = self.deployment(shape, replicas), []
            for seed in self.seeds:
                self.simulations += 1
                res = simulate(dep, self.traffic_for(shape, replicas, rate_rps, seed),
                               ttft_slo_s=self.slo["ttft_s"], tpot_slo_s=self.slo["tpot_s"])
                rows.append(self.row(res, seed, shape))
                self._tick(f"{shape.deployment(replicas).label()} at {rate_rps:.3g} req/s, seed {seed}")
                if rows[-1]["misses"]:
                    break
            self._checks[key] = (not rows[-1]["misses"], rows)
        return self._checks[key]

    def highest_rate(self, shape: Shape, replicas: int, lo: float | None = None, hi: float | None = None):
        """The highest deployment rate `replicas` shapes sustain: a geometric bisection to
        HEADROOM_TOL from a rate known to meet (`lo`) and one expected to miss (`hi`), or
        sizer.sim.find_rate over the seeds (to RATE_TOL) when none is known. Returns (rate, the
        lowest rate seen to miss or None, find_rate's curve, limited_by)."""
        if lo is None:
            dep = self.deployment(shape, replicas)
            d = 1 if self.timed else replicas
            base = self.traffic_for(shape, replicas, 1.0, self.seeds[0])
            seen = [0]

            def stable(sim):  # find_rate calls it once per simulation
                seen[0] += 1
                if self.progress is not None:
                    self.progress(self.simulations + seen[0], f"{shape.deployment(replicas).label()}: its highest rate")
                return self.saturated(sim, shape)
            res = find_rate(dep, base, ttft_slo_s=self.slo["ttft_s"], tpot_slo_s=self.slo["tpot_s"],
                            percentile=self.q, rel_tol=RATE_TOL, seeds=self.seeds, stable=stable)
            self.simulations += res.simulations
            curve = [{**row, "rate_rps": row["rate_rps"] * d} for row in res.curve]
            above = min((r["rate_rps"] for r in curve if not r["meets"] and r["rate_rps"] > res.max_rate_rps * d),
                        default=None)
            return res.max_rate_rps * d, above, curve, res.limited_by
        grow = hi / lo
        for _ in range(6):  # widen while the guess still meets
            if not self.check(shape, replicas, hi)[0]:
                break
            lo, hi = hi, hi * grow
        else:
            return lo, None, [], "search range"
        while hi / lo > 1 + HEADROOM_TOL:
            mid = math.sqrt(lo * hi)
            if self.check(shape, replicas, mid)[0]:
                lo = mid
            else:
                hi = mid
        return lo, hi, [], "+".join(self.check(shape, replicas, hi)[1][-1]["misses"])


def plan_capacity(planner: Planner, shapes: list[Shape], rate_rps: float, *, step_of, max_gpus: int,
                  finalists: int = MAX_FINALISTS) -> list[Sized]:
    """Branch and bound over shapes (module docstring, 4): every shape's answer, confirmed ones
    first, best first. `step_of(shape)` is the replica granularity (whole nodes); at most
    `finalists` shapes are simulated."""
    order = sorted(shapes, key=lambda s: (replicas_at_least(s, rate_rps, step_of(s)) * s.gpus,
                                          -s.bound_rps / s.gpus))
    out, best, searched = [], None, 0
    for shape in order:
        step = step_of(shape)
        lower = replicas_at_least(shape, rate_rps, step) * shape.gpus  # with the slack: for pruning
        d_lo = replicas_at_least(shape, rate_rps, step, slack=1.0)  # without: where the search starts
        most = max_gpus // shape.gpus
        if (best is not None and lower > best.gpus) or searched >= finalists or lower > max_gpus:
            out.append(Sized(shape, None, "pruned", [], lower_gpus=lower))
            continue
        searched += 1
        capped = best is not None and best.gpus // shape.gpus < most
        if capped:
            most = best.gpus // shape.gpus  # a runner-up is searched only as far as it ties the best
        d = smallest_meeting(lambda n: planner.check(shape, n, rate_rps)[0], d_lo, step, most)
        if d is None:
            top = step * (most // step)
            runs = planner.check(shape, top, rate_rps)[1] if top >= step else []
            out.append(Sized(shape, top if top >= step else None, "beaten" if capped else "misses", runs,
                             lower_gpus=lower, requests=planner.requests_for(shape)))
            continue
        fewer = None
        if d > step:
            rows = planner.check(shape, d - step, rate_rps)[1]
            fewer = {"replicas": d - step, "gpus": (d - step) * shape.gpus, "row": rows[-1]}
        sized = Sized(shape, d, "meets", planner.check(shape, d, rate_rps)[1], fewer=fewer,
                      requests=planner.requests_for(shape), lower_gpus=lower)
        out.append(sized)
        if best is None or _better(sized, best, planner):
            best = sized
    return rank(out, planner)


def _better(a: Sized, b: Sized, planner) -> bool:
    """Fewer GPUs, then more room under the SLOs (a lower worst percentile / target)."""
    return (a.gpus, a.margin(planner.q, planner.slo)) < (b.gpus, b.margin(planner.q, planner.slo))


def rank(results: list[Sized], planner) -> list[Sized]:
    met = sorted((r for r in results if r.status == "meets"),
                 key=lambda r: (r.gpus, r.margin(planner.q, planner.slo)))
    rated = sorted((r for r in results if r.status == "rate"), key=lambda r: -(r.sustainable_rate_rps or 0))
    rest = [r for r in results if r.status not in ("meets", "rate")]
    order = {"beaten": 0, "misses": 1, "pruned": 2}
    return met + rated + sorted(rest, key=lambda r: (order[r.status], r.lower_gpus))


def bound_proves_infeasible(results: list[Sized], max_gpus: int) -> bool:
    """Whether the steady-state bound alone shows that no shape serves the rate on max_gpus:
    every shape was left unsimulated because its bound (times BOUND_SLACK, an upper bound on
    what the simulator sustains: sizer/plan/shapes.py) needs more GPUs than allowed. Then no
    simulation can change the answer, and none is run (the trial's 405B at 100 req/s on two
    nodes simulated 25 times for 3 min 50 s to reach it)."""
    return bool(results) and all(r.status == "pruned" and r.lower_gpus > max_gpus for r in results)


def bound_highest(results: list[Sized], rate_rps: float, max_gpus: int, step_of) -> tuple[Sized, float]:
    """The shape whose bound allows the most requests/s on the GPUs allowed, and that rate
    (BOUND_SLACK x bound per replica x the most whole steps of replicas that fit): an upper bound
    on the rate any of them sustains, for the answer when bound_proves_infeasible."""
    def most(r):
        step = step_of(r.shape)
        d = step * (max_gpus // r.shape.gpus // step)
        return d, BOUND_SLACK * r.shape.bound_rps * d
    r = max(results, key=lambda x: (most(x)[1], -x.shape.gpus))
    d, rate = most(r)  # d >= step: a whole node holds one step of any shape (plan() checks)
    r.replicas = d
    return r, rate


def add_headroom(planner: Planner, results: list[Sized], rate_rps: float, limit: int) -> None:
    """The sustainable rate of the first `limit` confirmed deployments: between R (met) and the
    rate at which d replicas carry what d - step carried at R (expected to miss; 2R when d is
    the smallest count), widened by that ratio while it still meets."""
    for r in [r for r in results if r.status == "meets"][:limit]:
        fewer = r.fewer["replicas"] if r.fewer else None
        hi = rate_rps * r.replicas / fewer if fewer else rate_rps * 2
        r.sustainable_rate_rps, r.misses_at_rps, _, r.limited_by = planner.highest_rate(r.shape, r.replicas,
                                                                                       rate_rps, hi)


def rate_at_gpus(planner: Planner, shapes: list[Shape], gpus: int, rate_rps: float) -> list[Sized]:
    """--gpus N: each shape's sustainable rate at N / shape replicas, finalists in order of their
    bound, pruned once a simulated rate beats a bound (module docstring)."""
    order = sorted(shapes, key=lambda s: -s.bound_rps * (gpus // s.gpus))
    out, best, searched = [], 0.0, 0
    for shape in order:
        d = gpus // shape.gpus
        if (best and best >= shape.bound_rps * d) or searched >= MAX_FINALISTS:
            out.append(Sized(shape, d, "pruned", [], lower_gpus=gpus))
            continue
        searched += 1
        rate, above, curve, limited = planner.highest_rate(shape, d)
        runs = planner.check(shape, d, rate)[1] if rate > 0 else []
        out.append(Sized(shape, d, "rate", runs, requests=planner.requests_for(shape), sustainable_rate_rps=rate,
                         misses_at_rps=above, rate_curve=curve, limited_by=limited, lower_gpus=gpus))
        best = max(best, rate)
    return rank(out, planner)


def check_inputs(rate_rps, ttft_slo_s, tpot_slo_s, percentile) -> None:
    if not isinstance(rate_rps, (int, float)) or not math.isfinite(rate_rps) or rate_rps <= 0:
        raise InputError(f"--rate must be a positive, finite number of requests per second, got {rate_rps!r}")
    for flag, v in (("--ttft-slo", ttft_slo_s), ("--tpot-slo", tpot_slo_s)):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise InputError(f"{flag} must be a positive duration, got {v!r}")
    if not 0 < percentile <= 100:
        raise InputError(f"--percentile must be in (0, 100], got {percentile}")

