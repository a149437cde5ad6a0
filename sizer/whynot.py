"""The recommender's explanations: why the winner wins, why each notable loser loses, and what
would make an infeasible request fit.

Why a module of its own: the search (sizer/search.py) and the ranking (sizer/recommend.py) deal
in numbers; these sentences compare them. Each cause is read off the candidates' own costs:
- communication: the largest collective's share of the decode step and the links it crosses
  (sizer/step.py rows, sizer/search.group_links);
- memory: the batch the KV cache leaves room for (sizer/engines.memory_plan);
- pipeline: a token crosses every stage once per decode step, TPOT = p x stage time
  (sizer/pipeline.py).
"""

from .search import GIB, MemoryCache, divisors, enumerate_splits

_OP_TEXT = {"tp_all_reduce": "all-reduce", "tp_reduce_scatter+all_gather": "reduce-scatter + all-gather",
            "logits_all_gather": "logits all-gather", "ep_all_to_all": "expert all-to-all",
            "pp_send_recv": "pipeline send/recv"}


def _ms(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def _comm_text(c) -> str:
    links = f" on {c.comm_links}" if c.comm_links else ""
    return f"{_OP_TEXT.get(c.comm_op, c.comm_op)} is {c.comm_op_share:.0%} of the decode step{links}"


def _cause(c, w, objective="throughput", targets=None) -> str:
    """The main reasons (at most two) candidate c trails the winner w."""
    causes, targets = [], targets or {}
    if c.comm_op and c.comm_op_share >= 0.15 and c.comm_op_share > w.comm_op_share + 0.05:
        causes.append(_comm_text(c))
    per_gpu, w_per_gpu = c.batch * c.split.dp / c.split.gpus, w.batch * w.split.dp / w.split.gpus
    if objective != "latency" and per_gpu < 0.9 * w_per_gpu:
        if c.batch < c.max_batch:
            met = " and ".join(f"{_ms(v)} {k[:-2].upper()}" for k, v in targets.items() if v)
            causes.append(f"the {met} target caps it at batch {c.batch} per replica "
                          f"({per_gpu:g} sequences per GPU vs {w_per_gpu:g})")
        elif c.batch_limit == "memory":
            causes.append(f"memory leaves KV room for only {c.batch} sequences per replica "
                          f"(weights {c.memory['per_gpu']['weights_bytes'] / GIB:.1f} GiB per GPU)")
        elif c.batch_limit == "max_num_seqs":
            causes.append(f"{per_gpu:g} sequences per GPU vs {w_per_gpu:g} (batch {c.batch} per "
                          f"replica, the max_num_seqs cap)")
    if c.split.pp > w.split.pp and c.tpot_s > w.tpot_s:
        causes.append(f"a token crosses {c.split.pp} pipeline stages per decode step "
                      f"(TPOT {_ms(c.tpot_s)} vs {_ms(w.tpot_s)})")
    if c.split.ep < w.split.ep and c.tpot_s > w.tpot_s:
        causes.append(f"each GPU holds 1/{c.split.ep} of the experts instead of 1/{w.split.ep}, "
                      f"so a decode step reads more expert weights (TPOT {_ms(c.tpot_s)} vs {_ms(w.tpot_s)})")
    if not causes and c.comm_op and c.comm_op_share > w.comm_op_share + 0.02:
        causes.append(_comm_text(c))
    if not causes:
        same = "the same batch" if c.batch == w.batch else f"batch {c.batch} vs {w.batch}"
        causes.append(f"TPOT {_ms(c.tpot_s)} vs {_ms(w.tpot_s)} at {same}")
    if "tp_spans_sockets" in c.flags:
        causes.append("its TP group spans both CPU sockets")
    if "tp_spans_nodes" in c.flags:
        causes.append("its TP group spans nodes")
    return "; ".join(causes[:2] + [x for x in causes[2:] if x.startswith("its TP")])


def _versus(c, w, objective) -> str:
    if objective == "latency":
        return f"TPOT {_ms(c.tpot_s)}, {c.tpot_s / w.tpot_s - 1:.0%} above the winner's"
    if objective == "cost" and c.cost_per_mtok is not None:
        return f"${c.cost_per_mtok:.3f} per million tokens vs ${w.cost_per_mtok:.3f}"
    gap = 1 - c.output_tok_s_per_gpu / w.output_tok_s_per_gpu
    return f"{gap:.{0 if gap >= 0.095 else 1}%} fewer tok/s per GPU"


def winner_reason(ranked, objective, targets, topo) -> str:
    """One or two sentences: what the winner achieves and why it beats the runner-up."""
    w = ranked[0]
    what = {"throughput": "the most output tokens per GPU", "latency": "the lowest TPOT",
            "cost": "the lowest cost per token"}[objective]
    met = [f"{k[:-2].upper()} <= {_ms(v)}" for k, v in targets.items() if v]
    text = (f"{w.label} in {w.weight_dtype} gives {what}"
            + (f" that meets {' and '.join(met)}" if met else "")
            + f": {w.output_tok_s_per_gpu:,.0f} tok/s per GPU at batch {w.batch} per replica, "
            f"TPOT {_ms(w.tpot_s)}, TTFT {_ms(w.ttft_s)}, {w.headroom_bytes / GIB:.1f} GiB free per GPU")
    if w.cost_per_mtok is not None:
        text += f", ${w.cost_per_mtok:.3f} per million output tokens"
    if w.comm_op:
        text += f"; {_comm_text(w)}"
    text += "."
    if len(ranked) > 1 and ranked[1].meets_targets:
        r = ranked[1]
        close = objective != "latency" and r.output_tok_s_per_gpu >= 0.98 * w.output_tok_s_per_gpu
        if close and r.tpot_s < w.tpot_s:
            text += (f" Runner-up {r.label} ({r.weight_dtype}) is practically tied ({_versus(r, w, objective)})"
                     f" with a lower TPOT, {_ms(r.tpot_s)}: prefer it if latency matters.")
        else:
            text += f" Runner-up {r.label} ({r.weight_dtype}): {_versus(r, w, objective)}, because {_cause(r, w, objective, targets)}."
    return text


def why_not_lines(ranked, results, targets, objective) -> list[str]:
    """One line per notable loser: ranked losers against the winner, target misses, and splits
    that do not fit (one line per TP x PP x EP and precision: DP does not change memory)."""
    losers, misses, memory = [], [], []
    meeting = [c for c in ranked if c.meets_targets]
    if meeting:
        w = meeting[0]
        for c in meeting[1:]:
            losers.append(f"{c.label} ({c.weight_dtype}): {_versus(c, w, objective)}; {_cause(c, w, objective, targets)}")
    from .recommend import _miss_text

    for c in ranked:
        if not c.meets_targets:
            misses.append(f"{c.label} ({c.weight_dtype}): {_miss_text(c, targets)}")
    seen = set()
    for r in results:
        rej = r["rejected"]
        if rej is None or rej["kind"] != "memory":
            continue
        s = r["split"]
        key = (s.tp, s.pp, s.ep, rej["weight_dtype"])
        if key in seen:
            continue
        seen.add(key)
        label = f"TP{s.tp} PP{s.pp}" + (f" EP{s.ep}" if s.ep > 1 else "") + " (any DP)"
        memory.append(f"{label} ({rej['weight_dtype']}): {rej['reason']}")
    # priority order, so that a short display shows every kind: the closest losers, then what
    # does not fit, then target misses, then the remaining losers
    return losers[:4] + memory[:3] + misses[:3] + losers[4:] + memory[3:] + misses[3:]


def fit_hint(model, gpu, gpus, topo, dtypes, kv_dtypes, wl, results) -> str:
    """The message of an infeasible request: the leanest split's need, and the smallest GPU
    count or the precision that would fit."""
    rej = [r["rejected"] for r in results if r["rejected"] is not None and r["rejected"]["kind"] == "memory"]
    lean = min(rej, key=lambda d: d["needs_bytes"])
    what = lean["weight_dtype"]
    msg = (f"{model.name} does not fit on {gpus}x {gpu.id} in {what} with {wl.context} tokens of "
           f"context (isl + osl): the leanest split, {lean['label']}, needs "
           f"{lean['needs_bytes'] / GIB:.1f} GiB per GPU of {lean['capacity_bytes'] / GIB:.1f} GiB")
    hints = []
    mem = MemoryCache(model, gpu, wl)
    kd = kv_dtypes[0]
    for d in ("fp8", "int4"):
        if d in dtypes:
            continue
        fits = [r["split"] for r in results if r["rejected"] is not None
                and mem.max_batch(r["split"], d, kd) >= 1]
        if fits:
            hints.append(f"it fits in {d} (--weight-dtype {d}, e.g. {fits[0].label()})")
            break
    per_node = max(topo.gpus_per_node, int(gpu.gpus_per_node or 1))  # a bigger request fills whole nodes
    counts = sorted({1 << k for k in range(1, 13)} | {per_node * k for k in range(1, 65)})
    for n in (c for c in counts if gpus < c <= 4096):
        valid, _ = enumerate_splits(model, n)
        # the leanest splits: no DP for dense models; MoE experts spread over all TP x DP ranks
        lean_splits = sorted((s for s in valid if s.tp <= per_node and s.ep == _max_ep(model, s.tp * s.dp)
                              and (model.is_moe or s.dp == 1)), key=lambda s: (-s.tp, s.pp))
        ok = next((s for s in lean_splits if mem.max_batch(s, dtypes[0], kd) >= 1), None)
        if ok is not None:
            nodes = -(-n // per_node)
            hints.append(f"it would fit on {n} GPUs ({ok.label()}"
                         + (f", {nodes} nodes of {per_node}" if nodes > 1 else "") + ")")
            break
    else:
        hints.append("no split of up to 4096 GPUs holds it")
    return msg + "; " + " or ".join(hints) + "."



def _max_ep(model, ranks: int) -> int:
    """The widest EP a stage of `ranks` TP x DP ranks can form (1 for dense models)."""
    if not model.is_moe:
        return 1
    return max(e for e in divisors(ranks) if model.num_experts % e == 0)
