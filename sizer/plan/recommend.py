"""`sizer recommend`: the best split of a model over some GPUs, under memory and latency targets.

Why: teams pick TP=8 because it sounds right and pay in all-reduce time, or pipeline a
latency-sensitive service and pay in bubbles. This module searches every split (sizer/plan/search.py
enumerates and costs them, vectorised over batch sizes with estimate()'s semantics), keeps for
each split and precision its best batch that fits and meets the targets, ranks them by the
objective, and says in one line why each notable loser lost.

Objectives (ties broken by the next key):
- throughput: output tokens/s per GPU, then TPOT, then TTFT;
- latency: TPOT, then TTFT, then tokens/s per GPU;
- cost: $ per million output tokens = price per GPU-hour / 3600 / (tokens/s per GPU) x 1e6 --
  the GPUs a split uses are the ones paid for (idle ones, with allow_idle, are left free).
The Pareto frontier is over every evaluated (split, precision, batch) point that fits: no other
point has both more tokens/s per GPU and a lower TPOT (interactivity = 1 / TPOT).
"""

from dataclasses import dataclass, field

import numpy as np

from sizer.errors import InfeasibleError, InputError
from sizer.hardware.gpus import get_gpu
from sizer.hardware.constants import device_for
from sizer.model.catalog import get_model
from sizer.model.precision import WEIGHT_DTYPES, canonical
from .search import (MemoryCache, Workload, best_index, enumerate_splits, gpu_counts,
                     group_links, objective_key, placement_flags, search_split, split_json,
                     weight_label)
from sizer.cost.engine_support import check_layout, supported_layouts
from sizer.model.split import Split
from .alternatives import combine_hints, describe_alternative, precision_alternatives
from .families import divisibility_lines, engine_lines, memory_lines, placement_lines
from .whynot import divisibility_note, fit_hint, miss_text, why_not_lines, winner_reason
from .whynot import dtypes as dtypes_text

OBJECTIVES = ("throughput", "latency", "cost")


@dataclass(frozen=True)
class Candidate:
    """The best point of one split and precision (SI units; memory is MemoryPlan.to_json())."""

    split: Split
    weight_dtype: str
    kv_dtype: str
    batch: int
    ttft_s: float
    tpot_s: float
    e2e_s: float
    output_tok_s: float
    output_tok_s_per_gpu: float
    comm_share_decode: float  # all communication's share of the decode step
    comm_share_prefill: float
    comm_op: str  # the largest collective of the decode step at this batch
    comm_op_share: float  # its share of the decode step (the table's and the sentences' number)
    comm_links: str
    bubble_decode: float
    headroom_bytes: float
    memory: dict
    meets_targets: bool
    cost_per_mtok: float | None
    max_batch: int = 0  # the largest batch searched
    batch_limit: str = ""  # what set max_batch: "memory" | "max_num_seqs" | "given"
    flags: tuple = ()
    miss: float = 1.0  # max(ttft / target, tpot / target): <= 1 when the targets are met
    cap: str = ""  # what stops a larger batch: batch_limit at max_batch, else the target(s) the
    # next batch misses ("tpot", "ttft", "tpot+ttft"), else "" (the objective peaks here)

    @property
    def gpus_used(self) -> int:
        return self.split.gpus

    @property
    def label(self) -> str:
        return self.split.label()

    def to_json(self) -> dict:
        s = self.split
        return {"tp": s.tp, "pp": s.pp, "ep": s.ep, "dp": s.dp, "gpus": s.gpus, "gpus_used": s.gpus,
                "label": self.label,
                "weight_dtype": self.weight_dtype, "kv_dtype": self.kv_dtype, "batch": self.batch,
                "ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s,
                "output_tok_s": self.output_tok_s, "output_tok_s_per_gpu": self.output_tok_s_per_gpu,
                "comm_share_decode": self.comm_share_decode,
                "comm_share_prefill": self.comm_share_prefill, "comm_op": self.comm_op,
                "comm_op_share": self.comm_op_share,
                "comm_links": self.comm_links, "pipeline_bubble_decode": self.bubble_decode,
                "headroom_bytes": self.headroom_bytes,
                "headroom_fraction": self.headroom_bytes / self.memory["per_gpu"]["capacity_bytes"],
                "cost_per_million_tokens": self.cost_per_mtok, "meets_targets": self.meets_targets,
                "max_batch": self.max_batch, "batch_limit": self.batch_limit, "batch_cap": self.cap,
                "flags": list(self.flags), "memory": self.memory}


@dataclass(frozen=True)
class Recommendation:
    model: str
    gpu: str
    gpus: int
    nodes: int
    topology: str
    objective: str
    targets: dict
    workload: dict
    candidates: tuple  # ranked, best first (at most `top`)
    rejected: tuple  # dicts: split, weight_dtype, kind, reason
    pareto: tuple  # dicts, by TPOT ascending
    why_not: tuple  # one line per notable loser
    winner_reason: str
    evaluated_points: int
    evaluated_splits: int
    meets_targets: bool
    notes: tuple = field(default=())
    error: str = ""  # set when nothing fits (NothingFitsError)
    suggestion: dict | None = None  # what would fit: weight_dtype, gpus, allow_idle_gpus (+ splits)
    precision_hint: dict | None = None  # what fp8 / nvfp4 weights, fp8 KV would give (alternatives.py)

    @property
    def winner(self) -> Candidate | None:
        return self.candidates[0] if self.candidates else None

    def to_json(self) -> dict:
        return {"model": self.model, "gpu": self.gpu, "gpus": self.gpus, "nodes": self.nodes,
                "topology": self.topology, "objective": self.objective, "targets": self.targets,
                "engine": self.workload.get("engine") or "none",
                "workload": self.workload, "meets_targets": self.meets_targets,
                "winner_reason": self.winner_reason,
                "candidates": [c.to_json() for c in self.candidates],
                "rejected": list(self.rejected), "why_not": list(self.why_not),
                "pareto": list(self.pareto), "evaluated_points": self.evaluated_points,
                "evaluated_splits": self.evaluated_splits, "notes": list(self.notes),
                "precision_hint": self.precision_hint,
                **({"error": self.error, "suggestion": self.suggestion or {}} if self.error else {})}


class TargetsNotMetError(InfeasibleError):
    """No split meets the latency targets; `recommendation` holds the closest candidates."""

    def __init__(self, message: str, recommendation: Recommendation):
        super().__init__(message)
        self.recommendation = recommendation


class NothingFitsError(InfeasibleError):
    """No split fits in memory; `recommendation` holds no candidates, the rejected splits, the
    error and a suggestion (what --json prints)."""

    def __init__(self, message: str, recommendation: Recommendation):
        super().__init__(message)
        self.recommendation = recommendation


def _resolve_topology(topology, gpu, gpus, nodes, inter_node):
    from sizer.hardware.topology import Topology, default_topology, get_topology

    if isinstance(topology, Topology):
        if topology.n_gpus < gpus:
            raise InputError(f"topology holds {topology.n_gpus} GPUs, --gpus is {gpus}")
        return topology
    if topology:
        return get_topology(topology, gpu, gpus, nodes, inter_node)
    return default_topology(gpu, gpus, nodes, inter_node)


def recommend(model, gpu, gpus: int, *, nodes: int = 1, topology=None, inter_node=None,
              isl: int = 1024, osl: int = 256, ttft_s=None, tpot_s=None,
              objective: str = "throughput", weight_dtypes=None, kv_dtype="auto", engine=None,
              top: int = 10, allow_idle: bool = False, gpu_hour_price=None, batch=None,
              concurrency=None, profile=None, max_batch=None, max_num_tokens=None,
              cuda_graphs=None, uneven_pp: bool = True) -> Recommendation:
    """Search, rank and explain (module docstring). Raises InputError on bad input,
    InfeasibleError when nothing fits (naming a GPU count or precision that would), and
    TargetsNotMetError (an InfeasibleError carrying the closest candidates) when nothing meets
    the targets."""
    from sizer.cost.engines import get_engine, scheduler_limits
    from sizer.hardware.profile import load_profile

    model = get_model(model) if isinstance(model, str) else model
    gpu = get_gpu(gpu) if isinstance(gpu, str) else gpu
    if not isinstance(gpus, int) or isinstance(gpus, bool) or gpus < 1:
        raise InputError(f"--gpus must be a positive integer, got {gpus!r}")
    if objective not in OBJECTIVES:
        raise InputError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if objective == "cost" and not gpu_hour_price:
        raise InputError("--objective cost needs --gpu-hour-price (dollars per GPU-hour)")
    if gpu_hour_price is not None and not gpu_hour_price > 0:
        raise InputError(f"--gpu-hour-price must be positive, got {gpu_hour_price}")
    if isl < 1 or osl < 1:
        raise InputError("--isl and --osl must be positive")
    for name, value in (("--ttft", ttft_s), ("--tpot", tpot_s)):
        if value is not None and not value > 0:
            raise InputError(f"{name} must be positive, got {value}")
    if batch is not None and concurrency is not None:
        raise InputError("give --batch or --concurrency, not both")
    if not isinstance(top, int) or top < 1:
        raise InputError(f"--top must be a positive integer, got {top!r}")
    rules = get_engine(engine)
    seqs_cap, tokens_cap = scheduler_limits(rules, gpu)
    wl = Workload(isl, osl, max_batch or seqs_cap, max_num_tokens or tokens_cap,
                  engine, cuda_graphs, "static" if batch is not None else "continuous",
                  (max_batch, max_num_tokens))
    dtypes = _weight_dtypes(weight_dtypes)
    kv_dtypes = [kv_dtype] if isinstance(kv_dtype, str) or kv_dtype is None else list(kv_dtype)
    kv_dtypes = [canonical(k or "auto", ("auto", "bf16", "fp16", "fp32", "fp8", "int8")) for k in kv_dtypes]
    profile = load_profile(profile) if isinstance(profile, str) else profile
    topo = _resolve_topology(topology, gpu, gpus, nodes, inter_node)
    device = device_for(gpu, profile)
    mem = MemoryCache(model, gpu, wl)
    targets = {"ttft_s": ttft_s, "tpot_s": tpot_s}

    splits, rejected, dropped, unsupported = [], [], [], []
    for n in gpu_counts(gpus, allow_idle):
        valid, invalid = enumerate_splits(model, n, uneven_pp)
        for s in valid:
            why = check_layout(rules, s, model)
            (unsupported.append((s, why)) if why else splits.append(s))
        dropped += invalid
    rejected += [{**split_json(s), "weight_dtype": None, "kv_dtype": None, "kind": "divisibility",
                  "reason": r} for s, r in dropped]
    rejected += [{**split_json(s), "weight_dtype": None, "kv_dtype": None, "kind": "engine",
                  "reason": r} for s, r in unsupported]
    inside = [s for s in splits if "tp_spans_nodes" not in placement_flags(topo, s)]
    across = [s for s in splits if s not in inside]

    def search(group, wds=dtypes, kds=kv_dtypes):
        found = []
        for split in group:
            flags = placement_flags(topo, split)
            for wd in wds:
                for kd in kds:
                    found.append(search_split(model, device, split, wd, kd, wl, topo, profile,
                                               mem, batch, concurrency, targets, flags, objective))
        return found

    results, placed = search(inside), search(across)  # TP across nodes: costed, ranked only if
    notes = [divisibility_note(model, dropped)] if dropped else []  # nothing inside a node fits
    if unsupported:
        notes.append(f"{len(unsupported)} split{'s' if len(unsupported) != 1 else ''} not offered: "
                     f"{supported_layouts(rules)}")
    if allow_idle and gpus > 1:
        notes.append(f"--allow-idle: splits use different numbers of the {gpus} GPUs (column GPUs); "
                     "tok/s per GPU counts only the GPUs a split uses, so per-GPU numbers compare "
                     "splits of different sizes")
    if not any(r["points"] is not None for r in results) and across:
        results, placed = results + placed, []
        notes.append(f"no split with TP inside a node of {topo.gpus_per_node} fits; "
                     "TP groups spanning nodes were searched too")
    for r in results + placed:
        if r["rejected"] is not None:
            rejected.append(r["rejected"])
    fitted = [r for r in results if r["points"] is not None]
    workload = {"isl": isl, "osl": osl, "engine": rules.name if rules else None,
                "max_batch": wl.max_batch, "max_num_tokens": wl.max_num_tokens, "batch": batch,
                "concurrency": concurrency, "mode": wl.mode, "allow_idle": allow_idle,
                "gpu_hour_price": gpu_hour_price, "uneven_pp": uneven_pp}
    common = dict(model=model.name, gpu=gpu.id, gpus=gpus, nodes=topo.nodes, topology=topo.describe(),
                  objective=objective, targets=targets, workload=workload, evaluated_splits=len(results),
                  notes=tuple(notes))
    families = [memory_lines(results + placed), [], engine_lines(unsupported, rules.name) if rules else [],
                divisibility_lines(model, dropped)]
    if not fitted:
        msg, suggestion = fit_hint(model, gpu, gpus, topo, dtypes, kv_dtypes, wl, results, dropped,
                                   allow_idle, uneven_pp)
        raise NothingFitsError(msg, Recommendation(
            **common, candidates=(), rejected=tuple(rejected), pareto=(),
            why_not=tuple(why_not_lines([], targets, objective, families=families)), winner_reason="",
            evaluated_points=0, meets_targets=False, error=msg, suggestion=suggestion))

    cands = [_candidate(r, objective, targets, gpu_hour_price, mem, topo) for r in fitted]
    ranked = _rank(cands, objective)
    meeting = [c for c in ranked if c.meets_targets]
    for c in cands:
        if not c.meets_targets:
            rejected.append({**split_json(c.split), "weight_dtype": c.weight_dtype, "kv_dtype": c.kv_dtype,
                             "kind": "targets", "reason": miss_text(c, targets)})
    pareto = _pareto(fitted, targets)
    index = {(c.split, c.weight_dtype, c.kv_dtype): r["points"] for c, r in zip(cands, fitted)}
    across_cands = [_candidate(r, objective, targets, gpu_hour_price, mem, topo)
                    for r in placed if r["points"] is not None]
    families[1] = placement_lines(across_cands, ranked[0], objective, targets, index, topo.gpus_per_node)
    costed = {c.split: c for c in across_cands}
    for s in (across if placed else ()):
        row = {**split_json(s), "weight_dtype": None, "kv_dtype": None, "kind": "placement",
               "reason": f"TP={s.tp} would span nodes of {topo.gpus_per_node} GPUs; splits with TP "
                         "inside a node fit"}
        if s in costed:  # what it would give, for the why-not line's numbers
            c = costed[s]
            row.update(weight_dtype=c.weight_dtype, kv_dtype=c.kv_dtype, batch=c.batch, tpot_s=c.tpot_s,
                       output_tok_s_per_gpu=c.output_tok_s_per_gpu)
        rejected.append(row)
    hints = []
    if dtypes == [None] and kv_dtypes == ["auto"]:
        for alt in precision_alternatives(gpu, fitted[0]["plan1"].precision):
            found = [r for r in search(inside or splits, [alt[0]], [alt[1]]) if r["points"] is not None]
            alts = _rank([_candidate(r, objective, targets, gpu_hour_price, mem, topo) for r in found], objective)
            hints.append(describe_alternative(alts[0] if alts else None, ranked[0], alt, objective))
    hint = combine_hints(hints)
    rec = Recommendation(
        **common, candidates=tuple(ranked[:top]), rejected=tuple(rejected), pareto=tuple(pareto),
        why_not=tuple(why_not_lines(ranked, targets, objective, index, families,
                                    missed=[c for c in cands if meeting and not c.meets_targets])),
        winner_reason=winner_reason(ranked, objective, targets, topo, index, gpus) if meeting else "",
        evaluated_points=sum(len(r["points"].batch) for r in fitted), meets_targets=bool(meeting),
        precision_hint=hint)
    if not meeting:
        best = ranked[0]
        raise TargetsNotMetError(
            f"no split of {model.name} on {gpus}x {gpu.id} meets the targets; closest: "
            f"{best.label} ({dtypes_text(best)}) at batch {best.batch} ({miss_text(best, targets)})", rec)
    return rec


def _rank(cands, objective) -> list:
    """Those meeting the targets by the objective, else all by how far they miss."""
    meeting = [c for c in cands if c.meets_targets]
    if meeting:
        return sorted(meeting, key=lambda c: objective_key(objective, c.output_tok_s_per_gpu,
                                                            c.tpot_s, c.ttft_s, c.split.gpus))
    return sorted(cands, key=lambda c: (c.miss, -c.output_tok_s_per_gpu))


def _weight_dtypes(weight_dtypes) -> list:
    if weight_dtypes is None or weight_dtypes == [] or weight_dtypes == "":
        return [None]  # the checkpoint's own (resolve_precision)
    items = [weight_dtypes] if isinstance(weight_dtypes, str) else list(weight_dtypes)
    out = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if part:
                d = None if part.lower() in ("auto", "checkpoint") else canonical(part, WEIGHT_DTYPES)
                if d not in out:
                    out.append(d)
    return out or [None]


def _candidate(r, objective, targets, price, mem, topo) -> Candidate:
    pts = r["points"]
    i, miss = best_index(pts, objective, targets)
    ok = miss <= 1.0
    b = int(pts.batch[i])
    if b == int(pts.batch[-1]):
        cap = r["batch_limit"]
    elif miss[i + 1] > 1.0:  # the next batch misses a target
        cap = "+".join(k[:-2] for k in ("tpot_s", "ttft_s") if targets[k]
                       and getattr(pts, k)[i + 1] > targets[k]) or ""
    else:
        cap = ""
    plan = mem.plan(pts.split, pts.weight_dtype, pts.kv_dtype, b)
    doc = plan.to_json()
    tok_gpu = float(pts.output_tok_s_per_gpu[i])
    comm_op = str(pts.comm_op[i])
    op_group = {"tp_all_reduce": "tp", "tp_reduce_scatter+all_gather": "tp", "logits_all_gather": "tp",
                "ep_all_to_all": "ep", "pp_send_recv": "pp"}.get(comm_op)
    return Candidate(
        split=pts.split, weight_dtype=weight_label(pts.weight_dtype, plan.precision),
        kv_dtype=plan.precision["kv_cache"], batch=b, ttft_s=float(pts.ttft_s[i]),
        tpot_s=float(pts.tpot_s[i]), e2e_s=float(pts.e2e_s[i]), output_tok_s=float(pts.output_tok_s[i]),
        output_tok_s_per_gpu=tok_gpu, comm_share_decode=float(pts.comm_share_decode[i]),
        comm_share_prefill=float(pts.comm_share_prefill[i]), comm_op=comm_op,
        comm_op_share=float(pts.comm_op_share[i]),
        comm_links=group_links(topo, pts.split, op_group) if op_group else "",
        bubble_decode=float(pts.bubble_decode[i]),
        headroom_bytes=doc["per_gpu"]["capacity_bytes"] - doc["per_gpu"]["total_bytes"], memory=doc,
        meets_targets=bool(ok[i]), cost_per_mtok=(price / 3600.0 / tok_gpu * 1e6) if price else None,
        max_batch=int(pts.batch[-1]), batch_limit=r["batch_limit"], flags=r["flags"], miss=float(miss[i]),
        cap=cap)


def _pareto(fitted, targets) -> list[dict]:
    """Points not dominated in (tokens/s per GPU up, TPOT down), by TPOT ascending."""
    rows = []
    for r in fitted:
        pts, wd = r["points"], weight_label(r["weight_dtype"], r["plan1"].precision)
        for i in range(len(pts.batch)):
            rows.append((float(pts.tpot_s[i]), -float(pts.output_tok_s_per_gpu[i]), pts, i, wd))
    rows.sort(key=lambda r: (r[0], r[1]))
    out, best = [], -np.inf
    for tpot, neg_tok, pts, i, wd in rows:
        if -neg_tok > best:
            best = -neg_tok
            meets = ((not targets["tpot_s"] or tpot <= targets["tpot_s"])
                     and (not targets["ttft_s"] or pts.ttft_s[i] <= targets["ttft_s"]))
            out.append({**split_json(pts.split), "weight_dtype": wd, "kv_dtype": r["plan1"].precision["kv_cache"],
                        "batch": int(pts.batch[i]),
                        "tpot_s": tpot, "ttft_s": float(pts.ttft_s[i]), "interactivity_tok_s": 1.0 / tpot,
                        "output_tok_s_per_gpu": -neg_tok, "meets_targets": bool(meets)})
    return out
