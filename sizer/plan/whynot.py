"""The recommender's explanations: why the winner wins, why each notable loser loses, which splits
the model does not divide into, and what would make an infeasible request fit.

Why a module of its own: the search (sizer/plan/search.py) and the ranking (sizer/plan/recommend.py) deal
in numbers; these sentences compare them. A cause is cited only when it compares like with like
and points the right way; when none does, no cause is given rather than an invented one.
- load: output tok/s per GPU = sequences per GPU / TPOT (sizer/cost/estimate.py, continuous
  batching), so fewer sequences per GPU is a cause, with what capped them (a latency target, the
  KV room of sizer/engines.memory_plan, the engine's max_num_seqs);
- a slower decode step (higher TPOT) is blamed on one dimension of the split (PP, EP, TP, weight
  or KV precision) only when the same split with the winner's value of that dimension is faster
  under the same load (both costed by sizer/estimate.serving_curve), and the line says which
  load: for throughput and cost, the same sequences per GPU (tok/s per GPU = sequences per GPU /
  TPOT, so a 4-GPU replica is compared at twice a 2-GPU replica's batch); for latency, the same
  batch per replica (what one request waits for); on the
  communication share of the decode step (sizer/cost/step.py rows) when it is clearly larger; and, for
  dense TP, on the weight bytes a token's step streams per GPU (decode is bound by weight reads:
  weights per GPU x PP stages in sequence, scaling-book "All About Transformer Inference").
"""

import numpy as np

from .search import (GIB, MemoryCache, divisibility_groups, divisibility_reason, divisors, enumerate_splits,
                     gpu_counts)
from sizer.model.split import Split

_OP_TEXT = {"tp_all_reduce": "all-reduce", "tp_reduce_scatter+all_gather": "reduce-scatter + all-gather",
            "logits_all_gather": "logits all-gather", "ep_all_to_all": "expert all-to-all",
            "pp_send_recv": "pipeline send/recv"}
TIED = 0.01  # a gap in the objective below 1% is a tie: no cause is sought


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _n(x: float) -> str:
    return f"{x:.0f}" if abs(x - round(x)) < 1e-9 else f"{x:.1f}"


def comm_pct(share: float) -> str:
    """The one rendering of a collective's share of the decode step (table and sentences)."""
    return f"{share:.0%}"


def dtypes(c) -> str:
    """'bf16 weights, fp8 KV': every candidate and why-not line names both precisions."""
    return f"{c.weight_dtype} weights, {c.kv_dtype} KV"


def _comm_text(c) -> str:
    links = f" on {c.comm_links}" if c.comm_links else ""
    return f"{_OP_TEXT.get(c.comm_op, c.comm_op)} is {comm_pct(c.comm_op_share)} of the decode step{links}"


def spare_text(c) -> str:
    """The memory a candidate leaves: free GPU memory without an engine; with one, what stays
    outside the engine's budget (vLLM: (1 - gpu_memory_utilization) x capacity), which the KV
    cache cannot use (MemoryPlan.budget, trial 1 item 15)."""
    gib = c.headroom_bytes / GIB
    if (c.memory.get("engine") or "none") == "none":
        return f"{gib:.1f} GiB free per GPU"
    return f"{gib:.1f} GiB per GPU outside the engine's memory budget"


def miss_text(c, targets) -> str:
    parts = []
    if targets["tpot_s"] and c.tpot_s > targets["tpot_s"]:
        parts.append(f"misses the {targets['tpot_s'] * 1e3:g} ms TPOT target by "
                     f"{(c.tpot_s - targets['tpot_s']) * 1e3:.1f} ms")
    if targets["ttft_s"] and c.ttft_s > targets["ttft_s"]:
        parts.append(f"misses the {targets['ttft_s'] * 1e3:g} ms TTFT target by "
                     f"{(c.ttft_s - targets['ttft_s']) * 1e3:.1f} ms")
    return (" and ".join(parts) or "meets the targets") + \
        f" (TTFT {c.ttft_s * 1e3:.1f} ms, TPOT {c.tpot_s * 1e3:.1f} ms at batch {c.batch})"


def per_gpu_load(c) -> float:
    """Sequences in flight per GPU the split uses."""
    return c.batch * c.split.dp / c.split.gpus


def _load_text(c, w, targets) -> str:
    n_c, n_w = _n(per_gpu_load(c)), _n(per_gpu_load(w))
    if c.cap in ("tpot", "ttft", "tpot+ttft"):
        met = " and ".join(f"{_ms(targets[k + '_s'])} {k.upper()}" for k in c.cap.split("+"))
        return f"the {met} target caps it at batch {c.batch} per replica ({n_c} sequences per GPU vs {n_w})"
    if c.cap == "memory":
        return (f"memory leaves KV room for only {c.batch} sequences per replica ({n_c} per GPU vs "
                f"{n_w}; weights {c.memory['per_gpu']['weights_bytes'] / GIB:.1f} GiB per GPU)")
    if c.cap == "max_num_seqs":
        return f"{n_c} sequences per GPU vs {n_w} (batch {c.batch} per replica, the max_num_seqs cap)"
    if c.cap == "given":
        return f"{n_c} sequences per GPU vs {n_w} at the given batch"
    return f"{n_c} sequences per GPU vs {n_w} (its best batch, {c.batch} per replica)"


def _tpot_at(points, batch: float):
    """TPOT of a costed split at `batch` per replica: exact on its grid, log-linear between grid
    points, None beyond its largest batch (it does not hold that many)."""
    if points is None or batch > points.batch[-1] * (1 + 1e-9) or batch < points.batch[0] * (1 - 1e-9):
        return None
    return float(np.interp(np.log(batch), np.log(points.batch), points.tpot_s))


def _same_load(c, split, objective) -> tuple[float, str]:
    """The batch per replica at which `split` carries c's load, and the words for that load:
    the same sequences per GPU (throughput, cost) or the same batch per replica (latency)."""
    if objective == "latency":
        return float(c.batch), f"at batch {c.batch} per replica"
    batch = c.batch * (split.tp * split.pp) / (c.split.tp * c.split.pp)
    return batch, f"both at {_n(per_gpu_load(c))} sequences per GPU"


def _sibling(c, w, dim):
    """c's split and precision with `dim` set to the winner's (same GPU count), or None."""
    s, ws = c.split, w.split
    tp, pp, ep = (ws.tp if dim == "tp" else s.tp), (ws.pp if dim == "pp" else s.pp), (ws.ep if dim == "ep" else s.ep)
    if s.gpus % (tp * pp):
        return None
    dp = s.gpus // (tp * pp)
    if (tp * dp) % ep:
        return None
    wd = w.weight_dtype if dim == "weights" else c.weight_dtype
    kd = w.kv_dtype if dim == "kv" else c.kv_dtype
    return Split(tp=tp, pp=pp, dp=dp, ep=ep), wd, kd


def _tp_text(tp: int, w_tp: int) -> str:
    return f"layers split {tp} ways, not {w_tp}" if tp > 1 else f"layers not split (TP1, not TP{w_tp})"


def _dim_text(c, w, dim) -> str:
    s, ws = c.split, w.split
    if dim == "pp":
        return f"a token crosses {s.pp} pipeline stages per step" if s.pp > 1 else "no pipeline stages"
    if dim == "ep":
        return (f"experts spread over {s.ep} GPUs, not {ws.ep}" if s.ep > 1
                else f"experts not spread (EP1; the winner spreads them over {ws.ep} GPUs)")
    if dim == "tp":
        return _tp_text(s.tp, ws.tp)
    if dim == "weights":
        return f"{c.weight_dtype} weights, not {w.weight_dtype}"
    return f"{c.kv_dtype} KV cache, not {w.kv_dtype}"


def _pp_text(c, index) -> str:
    """The pipeline's own costs at c's batch (sizer/cost/estimate.py pp_costs), largest first."""
    pts = index.get((c.split, c.weight_dtype, c.kv_dtype))
    base = f"a token crosses {c.split.pp} pipeline stages per step"
    costs = getattr(pts, "pp_costs", None) if pts is not None else None
    if not costs:
        return base
    i = int(np.argmin(np.abs(pts.batch - c.batch)))
    names = {"chunk_stall": "the micro-batch carrying a prompt chunk sets every stage's clock",
             "per_forward_overhead": f"each of {c.split.pp} micro-batches pays its own forward overhead",
             "stage_imbalance": "the last stage carries the LM head"}
    parts = sorted(((float(v[i]), k) for k, v in costs.items() if float(v[i]) >= 0.03), reverse=True)
    return base + "".join(f"; {names[k]} ({share:.0%} of TPOT)" for share, k in parts[:2])


def _step_causes(c, w, index, objective="throughput") -> list[str]:
    """Why c's decode step is slower than the winner's, each checked like with like (same
    sequences per GPU, or for latency the same batch per replica: _same_load)."""
    out = []
    keys = {"pp": c.split.pp != w.split.pp, "ep": c.split.ep != w.split.ep, "tp": c.split.tp != w.split.tp,
            "weights": c.weight_dtype != w.weight_dtype, "kv": c.kv_dtype != w.kv_dtype}
    for dim in (d for d, differs in keys.items() if differs):
        sib = _sibling(c, w, dim)
        at_batch, at = _same_load(c, sib[0], objective) if sib else (0.0, "")
        t_sib = _tpot_at(index.get(sib), at_batch) if sib else None
        t_c = _tpot_at(index.get((c.split, c.weight_dtype, c.kv_dtype)), c.batch) or c.tpot_s
        if t_sib is not None and t_c > 1.05 * t_sib:
            as_ = f"in {sib[1]}" if dim == "weights" else (f"with {sib[2]} KV" if dim == "kv" else f"as {sib[0].label()}")
            text = _pp_text(c, index) if dim == "pp" and c.split.pp > 1 else _dim_text(c, w, dim)
            out.append(f"{text}: TPOT {_ms(t_c)} vs {_ms(t_sib)} {as_} {at}")
    if c.split.pp > w.split.pp and not any("pipeline stages" in t for t in out):
        text = _pp_text(c, index)
        if ";" in text:  # name the pipeline's costs when one is large enough to cite
            out.append(text)
    if c.comm_op and c.comm_op_share >= 0.15 and c.comm_op_share > w.comm_op_share + 0.05:
        out.append(_comm_text(c))
    if not any(t.startswith("layers") for t in out) and c.split.tp < w.split.tp \
            and c.split.ep == 1 and w.split.ep == 1:
        path_c = c.memory["per_gpu"]["weights_bytes"] * c.split.pp
        path_w = w.memory["per_gpu"]["weights_bytes"] * w.split.pp
        if path_c > 1.2 * path_w:
            out.append(f"{_tp_text(c.split.tp, w.split.tp)}: weights a decode step reads: "
                       f"{_path_text(c)} vs {_path_text(w)}")
    return out


def _path_text(c) -> str:
    """The weight bytes a token's decode step reads one GPU after another: '16.4 GiB per GPU',
    or under PP '8 stages x 17.9 GiB per GPU in sequence (143.2 GiB)' (each stage's GPU reads its
    own weights, the stages run one after another: the per-GPU figure is the stage's)."""
    per = c.memory["per_gpu"]["weights_bytes"] / GIB
    if c.split.pp == 1:
        return f"{per:.1f} GiB per GPU"
    return f"{c.split.pp} stages x {per:.1f} GiB per GPU in sequence ({per * c.split.pp:.1f} GiB)"


def cause(c, w, objective="throughput", targets=None, index=None) -> str:
    """The main reasons (at most two) candidate c trails the winner w; '' when none is clear."""
    targets, index = targets or {}, index or {}
    causes = []
    if objective == "latency":
        gap = c.tpot_s / w.tpot_s - 1
    else:
        gap = 1 - c.output_tok_s_per_gpu / w.output_tok_s_per_gpu
        if per_gpu_load(c) < 0.95 * per_gpu_load(w):
            causes.append(_load_text(c, w, targets))
    if gap >= TIED and (c.tpot_s > 1.03 * w.tpot_s or "tpot" in c.cap):
        # a slower step, or one that reaches the TPOT target at a smaller batch
        step = _step_causes(c, w, index, objective)
        load = per_gpu_load(c)
        if not step and objective != "latency" and abs(load / per_gpu_load(w) - 1) < 0.05 \
                and c.tpot_s > 1.03 * w.tpot_s:  # the same load: the steps compare directly
            comm = f" ({_comm_text(c)})" if c.comm_op and c.comm_op_share > w.comm_op_share + 0.05 else ""
            step = [f"at the same {_n(load)} sequences per GPU its decode step is slower: TPOT "
                    f"{_ms(c.tpot_s)} vs {_ms(w.tpot_s)}{comm}"]
        causes += step
    if gap < TIED:
        causes = []
    extra = [t for f, t in (("tp_spans_sockets", "its TP group spans both CPU sockets"),
                            ("tp_spans_nodes", "its TP group spans nodes")) if f in c.flags]
    return "; ".join(causes[:2] + extra)


def _versus(c, w, objective) -> str:
    if objective == "latency":
        gap = c.tpot_s / w.tpot_s - 1
        return (f"TPOT {_ms(c.tpot_s)}, {gap:.{0 if gap >= 0.095 else 1}%} above the winner's" if gap > 0
                else f"same TPOT, TTFT {_ms(c.ttft_s)} vs {_ms(w.ttft_s)}")
    if objective == "cost" and c.cost_per_mtok is not None:
        return f"${c.cost_per_mtok:.3f} per million tokens vs ${w.cost_per_mtok:.3f}"
    gap = 1 - c.output_tok_s_per_gpu / w.output_tok_s_per_gpu
    return f"{gap:.{0 if gap >= 0.095 else 1}%} fewer tok/s per GPU"


def winner_reason(ranked, objective, targets, topo, index=None, gpus=None) -> str:
    """One or two sentences: what the winner achieves and why it beats the runner-up."""
    w = ranked[0]
    idle = f" on {w.split.gpus} of the {gpus} GPUs" if gpus and w.split.gpus != gpus else ""
    what = {"throughput": "the most output tokens per GPU", "latency": "the lowest TPOT",
            "cost": "the lowest cost per token"}[objective]
    met = [f"{k[:-2].upper()} <= {_ms(v)}" for k, v in targets.items() if v]
    text = (f"{w.label}{idle} with {w.weight_dtype} weights and {w.kv_dtype} KV gives {what}"
            + (f" that meets {' and '.join(met)}" if met else "")
            + f": {w.output_tok_s_per_gpu:,.0f} tok/s per GPU at batch {w.batch} per replica, "
            f"TPOT {_ms(w.tpot_s)}, TTFT {_ms(w.ttft_s)}, {spare_text(w)}")
    if w.cost_per_mtok is not None:
        text += f", ${w.cost_per_mtok:.3f} per million output tokens"
    if w.comm_op:
        text += f"; {_comm_text(w)}"
    text += "."
    if len(ranked) > 1 and ranked[1].meets_targets:
        r = ranked[1]
        close = objective != "latency" and r.output_tok_s_per_gpu >= 0.98 * w.output_tok_s_per_gpu
        if close and r.tpot_s < w.tpot_s:
            text += (f" Runner-up {r.label} ({dtypes(r)}) is practically tied ({_versus(r, w, objective)})"
                     f" with a lower TPOT, {_ms(r.tpot_s)}: prefer it if latency matters.")
        else:
            why = cause(r, w, objective, targets, index)
            text += f" Runner-up {r.label} ({dtypes(r)}): {_versus(r, w, objective)}" + \
                (f", because {why}." if why else ".")
    return text


def why_not_lines(ranked, targets, objective, index=None, families=(), missed=()) -> list[str]:
    """One line per notable loser: ranked losers against the winner, target misses, and the
    families of splits that never made the ranking (`families`: lists of lines from
    sizer/plan/families.py: memory, TP across nodes, engine layouts, divisibility). `missed`:
    the splits that fit but miss the targets while others meet them (not in `ranked`); they are
    summarised (miss_lines) so that a short display still shows every one of them."""
    losers, misses = [], []
    meeting = [c for c in ranked if c.meets_targets]
    if meeting:
        w = meeting[0]
        for c in meeting[1:]:
            why = cause(c, w, objective, targets, index)
            losers.append(f"{c.label} ({dtypes(c)}): {_versus(c, w, objective)}" + (f"; {why}" if why else ""))
    for c in ranked:
        if not c.meets_targets:
            misses.append(f"{c.label} ({dtypes(c)}): {miss_text(c, targets)}")
    summary = miss_lines(missed, targets)
    families = [f for f in families if f]
    # priority order, so that a short display shows every kind: the closest losers, the first
    # line of every family, the target misses, then the rest
    return (losers[:3] + [f[0] for f in families] + summary + misses[:2] + losers[3:]
            + [line for f in families for line in f[1:]] + misses[2:])


def miss_lines(missed, targets) -> list[str]:
    """The closest split that misses the targets in full, then one line per precision for the
    rest: '4 more (bf16 weights, bf16 KV) miss the 30 ms TPOT target by 2.2-43.8 ms: TP2 PP2
    DP2, ...' (every split named; --json `rejected` has each one's numbers)."""
    missed = sorted(missed, key=lambda c: c.miss)
    lines = [f"{c.label} ({dtypes(c)}): {miss_text(c, targets)}" for c in missed[:1]]
    groups = {}
    for c in missed[1:]:
        groups.setdefault(dtypes(c), []).append(c)
    for precision, cs in groups.items():
        by = []
        for key, name in (("tpot_s", "TPOT"), ("ttft_s", "TTFT")):
            over = [(getattr(c, key) - targets[key]) * 1e3 for c in cs
                    if targets[key] and getattr(c, key) > targets[key]]
            if over:
                spread = f"{min(over):.1f}-{max(over):.1f}" if len(over) > 1 else f"{over[0]:.1f}"
                by.append(f"the {targets[key] * 1e3:g} ms {name} target by {spread} ms")
        lines.append(f"{len(cs)} more ({precision}) miss {' or '.join(by)}: "
                     f"{', '.join(c.label for c in cs)}")
    return lines


def divisibility_summary(model, dropped) -> str:
    """'PP3: 80 layers do not divide; TP3, TP6: 64 attention heads do not divide' for the
    splits enumerate_splits dropped (check_split's rules)."""
    groups = divisibility_groups(model, dropped)
    order = lambda t: (t[:2] != "TP", int(t[2:]))  # noqa: E731  (TP before PP, then by size)
    rows = sorted((sorted(tags, key=order), what) for what, tags in groups.items())
    return "; ".join(f"{', '.join(tags)}: {divisibility_reason(what)}" for tags, what in
                     sorted(rows, key=lambda r: order(r[0][0])))


def divisibility_note(model, dropped) -> str:
    n = len({(s.tp, s.pp, s.dp) for s, _ in dropped})
    return (f"{n} split{'s' if n != 1 else ''} dropped because {model.name} does not divide into "
            f"{'them' if n != 1 else 'it'} ({divisibility_summary(model, dropped)})")


def fit_hint(model, gpu, gpus, topo, dtypes, kv_dtypes, wl, results, dropped=(), allow_idle=False,
             uneven_pp=True):
    """(message, suggestion) of an infeasible request: the leanest split's need, and the
    precision, the uneven pipeline stages (under --even-pp), the GPU count or the idle-GPU split
    that would fit."""
    rej = [r["rejected"] for r in results if r["rejected"] is not None and r["rejected"]["kind"] == "memory"]
    lean = min(rej, key=lambda d: d["needs_bytes"])
    what = f"{lean['weight_dtype']} weights, {lean['kv_dtype']} KV"
    searched = {(r["split"].tp, r["split"].pp, r["split"].dp) for r in results}
    if len(searched) == 1 and dropped:
        which = (f"with {gpus} GPUs the only split {model.name} divides into, {lean['label']} "
                 f"({divisibility_summary(model, dropped)}),")
    else:
        which = f"the leanest split, {lean['label']},"
    msg = (f"{model.name} does not fit on {gpus}x {gpu.id} ({what}, {wl.context} tokens of "
           f"context: isl + osl): {which} needs "
           f"{lean['needs_bytes'] / GIB:.1f} GiB per GPU of the {lean['budget']}")
    hints, suggestion = [], {}
    mem = MemoryCache(model, gpu, wl)
    kd = kv_dtypes[0]
    if not uneven_pp:  # --even-pp: would the engines' uneven stages hold it?
        fits = [s for s in sorted(enumerate_splits(model, gpus, True)[0], key=lambda s: (-s.tp, s.pp, -s.ep))
                if model.num_layers % s.pp and _runs(wl.engine, s, model) and mem.max_batch(s, dtypes[0], kd) >= 1]
        if fits:
            hints.append(f"it fits with uneven pipeline stages (drop --even-pp, e.g. {fits[0].label()})")
            suggestion.update(uneven_pp=True, uneven_pp_split=fits[0].label())
    for d in ("fp8", "int4"):
        if d in dtypes:
            continue
        fits = [r["split"] for r in results if r["rejected"] is not None
                and mem.max_batch(r["split"], d, kd) >= 1]
        if fits:
            hints.append(f"it fits in {d} (--weight-dtype {d}, e.g. {fits[0].label()})")
            suggestion.update(weight_dtype=d, weight_dtype_split=fits[0].label())
            break
    per_node = max(topo.gpus_per_node, int(gpu.gpus_per_node or 1))  # a bigger request fills whole nodes
    counts = sorted({1 << k for k in range(1, 13)} | {per_node * k for k in range(1, 65)})
    for n in (c for c in counts if gpus < c <= 4096):
        ok = _lean_fit(model, mem, n, per_node, dtypes[0], kd, uneven_pp, wl.engine)
        if ok is not None:
            nodes = -(-n // per_node)
            hints.append(f"it would fit on {n} GPUs ({ok.label()}"
                         + (f", {nodes} nodes of {per_node}" if nodes > 1 else "") + ")")
            suggestion.update(gpus=n, gpus_split=ok.label(), nodes=nodes)
            break
    else:
        hints.append("no split of up to 4096 GPUs holds it")
    if not allow_idle:
        for n in gpu_counts(gpus, True)[1:]:
            ok = _lean_fit(model, mem, n, per_node, dtypes[0], kd, uneven_pp, wl.engine)
            if ok is not None:
                hints.append(f"on {n} of the {gpus} GPUs with --allow-idle ({ok.label()})")
                suggestion.update(allow_idle_gpus=n, allow_idle_split=ok.label())
                break
    dropped_note = "" if "only split" in which or not dropped else f" Also: {divisibility_note(model, dropped)}."
    return msg + "; " + " or ".join(hints) + "." + dropped_note, suggestion


def _runs(engine, split, model) -> bool:
    from sizer.cost.engine_support import check_layout

    return check_layout(engine, split, model) is None


def _lean_fit(model, mem, n, per_node, dtype, kd, uneven_pp=True, engine=None):
    """A split of n GPUs that holds at least one sequence, leanest first (widest TP inside a
    node, no DP for dense models, MoE experts spread over all TP x DP ranks), that the engine
    runs, or None."""
    valid, _ = enumerate_splits(model, n, uneven_pp)
    valid = [s for s in valid if _runs(engine, s, model)]
    lean = sorted((s for s in valid if s.tp <= per_node and s.ep == _max_ep(model, s.tp * s.dp)
                   and (model.is_moe or s.dp == 1)), key=lambda s: (-s.tp, s.pp))
    if not model.is_moe and not lean:  # n prime to the heads and layers: DP replicas of fewer
        lean = sorted((s for s in valid if s.tp <= per_node), key=lambda s: (-s.tp, s.pp, -s.dp))
    return next((s for s in lean if mem.max_batch(s, dtype, kd) >= 1), None)


def _max_ep(model, ranks: int) -> int:
    """The widest EP a stage of `ranks` TP x DP ranks can form (1 for dense models)."""
    if not model.is_moe:
        return 1
    return max(e for e in divisors(ranks) if model.num_experts % e == 0)
