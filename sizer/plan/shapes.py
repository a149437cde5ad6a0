"""Replica shapes for capacity planning and their steady-state bounds.

Why a module of its own: capacity planning (sizer/plan/capacity.py) repeats one replica shape d
times, and needs, before any simulation, which shapes exist and how many requests/s one replica
of each can carry at most. Both come from the recommender's machinery (sizer/plan/search.py), so
the shapes are the splits `sizer recommend` would rank and the bound is estimate()'s model.

A shape is one replica: TP x PP GPUs, or, when the expert-parallel group spans DP ranks
(EP = TP x g), the g replicas that step in lockstep (sizer/sim/run.py, Deployment). Shapes keep
TP inside a node (the recommender's rule) and either divide a node or take whole nodes, so that
replicas pack nodes. The engine must run the layout (sizer/cost/engine_support.py).

The bound: at the largest batch whose steady-state mean TTFT and TPOT meet the SLOs
(search.search_split, continuous batching with chunked prefill), a replica produces
output_tok_s tokens/s, i.e. output_tok_s / (mean output tokens) requests/s. A request-level
simulation cannot sustain more while its P-th percentile (P >= 50) meets the same SLOs, since
the typical request already sits at the targets there -- up to what the steady state misprices:
it puts a prompt chunk in every forward, while Poisson arrivals leave some forwards decode-only
(CUDA-graph replays) and so let a replica carry more. Measured with sizer.sim.find_rate on one
H100 (tests/test_capacity.py): 8B at 1024/256 tokens and a 30 ms P99 TPOT sustains 1.19x its
bound, at 256/64 tokens 1.02x (P99) and 1.11x (P50); 70B TP4 at a 50 ms P99 TPOT 0.91x. The
bound is therefore used times BOUND_SLACK. For P < 50, or without SLOs, the bound is the
max-throughput point.

Deeper pipelines add GPUs and KV room but not speed: once a TP size fits, its bound per GPU
falls with every extra stage (70B on H100 at a 50 ms TPOT, TP8: 1.52, 0.79, 0.50 req/s per GPU
at PP1, 2, 3). So the pipeline depths of one TP (and EP) are costed in order and the deeper ones
are skipped after the bound per GPU has fallen DEEPER_AFTER_DECLINES times in a row.
"""

import math
from dataclasses import dataclass

from sizer.cost.engine_support import check_layout
from sizer.cost.engines import get_engine, scheduler_limits
from sizer.errors import InputError
from sizer.hardware.constants import device_for
from sizer.model.split import Split
from .search import MemoryCache, Workload, best_index, divisors, enumerate_splits, search_split, weight_label

MAX_WHOLE_NODE_MULTIPLE = 8  # shapes of 1..8 whole nodes, then powers of two (16, 32, ... nodes)
BOUND_SLACK = 1.25  # the simulator sustains up to 1.19x the steady-state bound (module docstring)
DEEPER_AFTER_DECLINES = 2  # a TP's deeper pipelines are costed until its bound per GPU falls twice


@dataclass(frozen=True)
class Shape:
    """One replica (or lockstep group) and its steady-state bound; SI units."""

    split: Split  # dp = the lockstep group (1 unless EP spans DP ranks)
    weight_dtype: str | None  # as asked (None: the checkpoint's own)
    weights_label: str  # 'bf16', 'fp8', 'bf16+fp4'
    kv_label: str
    kv_dtype: str  # as asked ('auto' ...)
    bound_rps: float  # requests/s one shape carries at most (module docstring)
    bound_batch: int  # sequences per replica at the bound
    bound_ttft_s: float
    bound_tpot_s: float
    max_batch: int  # sequences per replica memory and max_num_seqs allow
    bound_osl: float = 1.0  # mean output tokens the bound was computed for

    @property
    def gpus(self) -> int:
        return self.split.gpus

    @property
    def group(self) -> int:
        return self.split.dp

    @property
    def e2e_s(self) -> float:
        """Mean end-to-end latency at the bound: TTFT + (output tokens - 1) x TPOT."""
        return self.bound_ttft_s + max(self.bound_osl - 1, 0) * self.bound_tpot_s

    def deployment(self, replicas: int) -> Split:
        """The split of `replicas` shapes (DP = group x replicas)."""
        s = self.split
        return Split(tp=s.tp, pp=s.pp, dp=s.dp * replicas, ep=s.ep, uneven_pp=s.uneven_pp)

    def key(self) -> tuple:
        return (self.split.tp, self.split.pp, self.split.dp, self.split.ep, self.weights_label, self.kv_label)


@dataclass(frozen=True)
class Rejected:
    """A shape that is never simulated: kind 'memory' | 'engine' | 'targets' | 'topology'."""

    split: Split
    weight_dtype: str | None
    kind: str
    reason: str
    ttft_s: float | None = None  # 'targets': the steady state at one sequence
    tpot_s: float | None = None


def shape_sizes(per_node: int, max_gpus: int) -> list[int]:
    """GPUs per shape: every divisor of a node, then 1..8 whole nodes and powers of two of
    nodes beyond, up to max_gpus."""
    sizes = {d for d in divisors(per_node) if d <= max_gpus}
    m = 1
    while per_node * m <= max_gpus:
        sizes.add(per_node * m)
        m = m + 1 if m < MAX_WHOLE_NODE_MULTIPLE else m * 2
    return sorted(sizes)


def lockstep_group(split: Split) -> int:
    """DP ranks that step together: EP / TP when the expert group spans replicas, else 1."""
    return split.ep // split.tp if split.ep > split.tp and split.ep % split.tp == 0 else 1


def candidate_splits(model, engine, per_node: int, max_gpus: int, uneven_pp: bool = True,
                     sizes=None) -> tuple[list[Split], list[Rejected]]:
    """Every shape (module docstring) of up to max_gpus GPUs, and those the engine cannot run."""
    shapes, unsupported = [], []
    for u in (sizes if sizes is not None else shape_sizes(per_node, max_gpus)):
        valid, _ = enumerate_splits(model, u, uneven_pp)
        for s in valid:
            if s.tp > per_node or s.dp != lockstep_group(s) or (s.ep > s.tp and s.ep % s.tp):
                continue
            why = check_layout(engine, s, model)
            if why:
                unsupported.append(Rejected(s, None, "engine", why))
            else:
                shapes.append(s)
    return shapes, unsupported


def bound_targets(ttft_slo_s, tpot_slo_s, percentile: float) -> dict:
    """The mean targets of the bound: the SLOs for P >= 50, none below (module docstring)."""
    if percentile < 50:
        return {"ttft_s": None, "tpot_s": None}
    return {"ttft_s": ttft_slo_s, "tpot_s": tpot_slo_s}


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def bound_shapes(model, gpu, splits, *, isl: float, osl: float, engine, weight_dtypes, kv_dtypes,
                 targets: dict, topology_for, profile=None, max_num_seqs=None, max_num_batched_tokens=None,
                 cuda_graphs=None) -> tuple[list[Shape], list[Rejected]]:
    """The steady-state bound of every split and precision (module docstring); `topology_for(n)`
    gives the topology one replica of n GPUs runs on. Splits that do not fit, or whose best point
    misses the mean targets even at one sequence, come back as Rejected."""
    rules = get_engine(engine)
    seqs_cap, tokens_cap = scheduler_limits(rules, gpu)
    wl = Workload(max(1, round(isl)), max(1, round(osl)), max_num_seqs or seqs_cap,
                  max_num_batched_tokens or tokens_cap, rules.name if rules else None, cuda_graphs, "continuous")
    mem = MemoryCache(model, gpu, wl)
    device = device_for(gpu, profile)
    out, rejected, trend = [], [], {}
    for split in sorted(splits, key=lambda s: (s.tp, s.dp, s.ep, s.pp)):
        family = (split.tp, split.dp, split.ep)
        if trend.get(family, (0, 0))[1] >= DEEPER_AFTER_DECLINES:
            continue  # deeper pipelines of this TP only fell per GPU (module docstring)
        try:
            topo = topology_for(split.gpus) if split.gpus > 1 else None
        except InputError as exc:
            rejected.append(Rejected(split, None, "topology", str(exc)))
            continue
        best = 0.0
        for wd in weight_dtypes:
            for kd in kv_dtypes:
                r = search_split(model, device, split, wd, kd, wl, topo, profile, mem, None, None, targets, (),
                                 "throughput")
                if r["points"] is None:
                    rejected.append(Rejected(split, wd, "memory", r["rejected"]["reason"]))
                    continue
                pts = r["points"]
                i, miss = best_index(pts, "throughput", targets)
                if miss[i] > 1.0:
                    parts = [f"{k[:-2].upper()} {_ms(float(getattr(pts, k)[0]))} > {_ms(targets[k])}"
                             for k in ("ttft_s", "tpot_s") if targets[k] and getattr(pts, k)[0] > targets[k]]
                    rejected.append(Rejected(split, wd, "targets", "even one sequence at a time misses the "
                                             "targets in the steady state: " + ", ".join(parts),
                                             ttft_s=float(pts.ttft_s[0]), tpot_s=float(pts.tpot_s[0])))
                    continue
                precision = r["plan1"].precision
                out.append(Shape(split=split, weight_dtype=wd, weights_label=weight_label(wd, precision),
                                 kv_label=precision["kv_cache"], kv_dtype=kd,
                                 bound_rps=float(pts.output_tok_s[i]) / max(osl, 1.0),
                                 bound_batch=int(pts.batch[i]), bound_ttft_s=float(pts.ttft_s[i]),
                                 bound_tpot_s=float(pts.tpot_s[i]), max_batch=int(pts.batch[-1]),
                                 bound_osl=float(osl)))
                best = max(best, out[-1].bound_rps / split.gpus)
        last, declines = trend.get(family, (0.0, 0))
        if best > 0:
            trend[family] = (best, declines + 1 if best < last else 0)
    return out, rejected


def replicas_at_least(shape: Shape, rate_rps: float, step: int = 1, slack: float = BOUND_SLACK) -> int:
    """The fewest replicas (a multiple of `step`) the bound, times `slack`, allows at `rate_rps`."""
    d = max(1, math.ceil(rate_rps / (slack * shape.bound_rps) - 1e-9))
    return step * math.ceil(d / step)
