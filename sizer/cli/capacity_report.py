"""The report of `sizer recommend --rate` (sizer/cli/capacity.py computes it): a table per GPU
type with the answer, its cost and precision lines and the why-not lines, the side-by-side table
and verdict for a GPU list, the one JSON document, and the `sizer simulate` line that reruns any
reported seed."""

from sizer.model.catalog import get_model
from sizer.plan.capacity_cost import compare, cost, plan_cost
from sizer.plan.capacity_cost import verdict as cost_verdict
from sizer.plan.capacity_plan import _t

MAX_WHY_NOT = 10


def simulate_command(args, p, r, seed) -> str:
    """The `sizer simulate` line that reruns the seed's simulation of `r` exactly."""
    s, d = r.shape, r.replicas
    timed = p.traffic_timed
    split = s.deployment(d) if timed else s.split
    parts = ["sizer", "simulate", "--model", args.model, "--gpu", p.gpu]
    parts += [f"--{k} {v}" for k, v in (("tp", split.tp), ("pp", split.pp), ("dp", split.dp), ("ep", split.ep))
              if v != 1]
    if split.gpus > p.per_node:
        parts.append(f"--nodes {p.as_given(r)[1] if timed else split.gpus // p.per_node}")
    parts += ["--engine", p.engine]
    for flag, value in (("--weight-dtype", s.weight_dtype), ("--kv-dtype", None if s.kv_dtype == "auto" else s.kv_dtype),
                        ("--max-num-seqs", args.max_num_seqs), ("--max-num-batched-tokens", args.max_num_batched_tokens),
                        ("--topology", args.topology), ("--topology-file", args.topology_file),
                        ("--profile", args.profile), ("--inter-node", args.inter_node if split.gpus > p.per_node else None)):
        if value is not None:
            parts += [flag, str(value)]
    if args.trace:
        parts += ["--trace", args.trace]
    else:
        parts += ["--isl-dist", args.isl_dist] if args.isl_dist else ["--isl", str(args.isl or 1024)]
        parts += ["--osl-dist", args.osl_dist] if args.osl_dist else ["--osl", str(args.osl or 256)]
    rate = r.sustainable_rate_rps if r.status == "rate" else p.rate_rps
    arrival = p.replica_arrival(1 if timed else d)
    parts += ["--rate", repr(rate if timed else rate / d), "--arrival", arrival["process"]]
    if arrival["burstiness"] != 1.0:
        parts += ["--burstiness", repr(float(arrival["burstiness"]))]
    if r.requests:
        parts += ["--requests", str(r.requests)]
    parts += ["--seed", str(seed)]
    for flag, v in (("--ttft-slo", p.slo["ttft_s"]), ("--tpot-slo", p.slo["tpot_s"])):
        if v is not None:
            parts += [flag, f"{v!r}s"]
    return " ".join(parts)


def document(args, out) -> dict:
    """The one JSON document of `recommend --rate --json` (less the emit field); `out`: capacity.Outcome."""
    plans, prices, chosen, elapsed = out.plans, out.prices, out.chosen, out.elapsed_s
    docs = []
    for i, p in enumerate(plans):
        if isinstance(p, tuple):
            docs.append({"gpu": p[0], "error": p[1]})
            continue
        d = p.to_json()
        saved = hint_saving(p, prices[i] if prices else None)
        if saved:
            d["precision_hint"] = {**d["precision_hint"], **saved}
        for c, r in zip(d["candidates"], [r for r in p.results if r.replicas is not None and r.status != "pruned"]):
            if "simulated" in c:
                c["simulated"]["commands"] = [simulate_command(args, p, r, row["seed"]) for row in r.runs]
        if d["winner"] is not None:
            d["winner"] = d["candidates"][0]
        docs.append(d)
    if len(plans) == 1:
        doc = docs[0]
        if not isinstance(plans[0], tuple) and plans[0].winner is not None:  # its cost (trial 2 item 5)
            doc.update(plan_cost(plans[0], prices[0] if prices else None, args.rate))
    else:
        first = next((p for p in plans if not isinstance(p, tuple)), None)
        cmp_doc = compare(plans, prices, args.rate)
        pick = next((d for d in docs if chosen is not None and d.get("gpu") == chosen.gpu), None)
        doc = {"mode": "capacity" if args.gpus is None else "capacity_at_gpus", "model": get_model(args.model).name,
               "gpu": [p[0] if isinstance(p, tuple) else p.gpu for p in plans],
               "engine": first.engine if first else None, "rate": args.rate,
               "percentile": first.percentile if first else None, "slo": first.slo if first else None,
               "traffic": first.traffic if first else None,
               "gpus_needed": pick["gpus_needed"] if pick else None, "winner": pick["winner"] if pick else None,
               **cmp_doc, "plans": docs,
               "simulations": sum(p.simulations for p in plans if not isinstance(p, tuple))}
        for row, d in zip(doc["by_gpu"], docs):
            if d.get("winner") is not None:
                row["winner"] = d["winner"]
    doc["search_time_s"] = elapsed
    return doc


def _cand_row(p, r, i) -> str:
    q = p.q
    nodes, per = p.nodes_of(r)
    worst = [_t(max(x[f"{k}_{q}_s"] for x in r.runs)) if r.runs else "-" for k in ("ttft", "tpot")]
    sus = f"{r.sustainable_rate_rps:.3g}" if r.sustainable_rate_rps else "-"
    if r.sustainable_rate_rps and r.misses_at_rps:
        sus = f"{r.sustainable_rate_rps:.3g}-{r.misses_at_rps:.3g}"
    mark = "" if r.status in ("meets", "rate") else " x (misses)"
    return (f"{i:>2}  {r.shape.deployment(r.replicas).label():<18}{r.gpus:>6}{f'{nodes}x{per}':>8}{r.replicas:>9}  "
            f"{r.shape.weights_label:<9}{r.shape.kv_label:<6}{worst[0]:>10}{worst[1]:>10}"
            f"{sus:>12}{r.shape.bound_rps:>9.3g}" + mark)


def render_plan(args, p, elapsed=None, price=None) -> list[str]:
    q = p.q.upper()
    slo = ", ".join(f"{q} {k[:-2].upper()} <= {_t(v)}" for k, v in p.slo.items() if v) or \
        "none (stability only)"
    shown = [r for r in p.results if r.replicas is not None and r.status != "pruned"]
    requests = sorted({r.requests or r.runs[0]["requests"] for r in shown if r.requests or r.runs})
    how = ("the whole deployment on the trace's arrivals" if p.traffic_timed else
           "one replica with its round-robin share of the arrivals")
    where = (f"{args.gpus}x {p.gpu}" if p.mode == "gpus" else
             f"{p.gpu}, {'whole nodes of ' + str(p.per_node) if p.whole_nodes else 'any GPU count'}, "
             f"at most {p.max_gpus} GPUs")
    lines = [f"{p.model}: {p.traffic}; on {where}; engine {p.engine}",
             f"SLOs: {slo}; each candidate simulated on seeds {', '.join(map(str, p.seeds))} ({how}, "
             f"{'/'.join(map(str, requests)) or '-'} requests per seed)", ""]
    head = (f"{'#':>2}  {'deployment':<18}{'GPUs':>6}{'nodes':>8}{'replicas':>9}  {'weights':<9}{'KV':<6}"
            f"{q + ' TTFT':>10}{q + ' TPOT':>10}{'sustains':>12}{'bound':>9}")
    if not shown:  # the steady-state bound alone answered (capacity.bound_proves_infeasible)
        lines[1:] = [f"SLOs: {slo}; nothing simulated: every split's steady-state bound needs more GPUs than allowed"]
    top = args.top or 10
    if shown:
        lines += [head, "-" * len(head)] + [_cand_row(p, r, i) for i, r in enumerate(shown[:top], 1)]
        lines.append(f"{q} = the worst seed; nodes = whole nodes x GPUs per node that hold it (the last may have idle GPUs); "
                     "sustains = the highest rate seen to meet - the lowest seen to miss (req/s); bound = steady-state req/s per replica with the SLOs "
                     "as mean targets")
    w = p.winner
    lines += ["", "Answer: " + p.verdict()] if w else ["", "No deployment: " + p.error]
    if w is not None and w.fewer:
        f = w.fewer
        n = f["replicas"]
        lines.append(f"  one step fewer, {n} replica{'s' if n != 1 else ''} ({f['gpus']} GPUs), misses: "
                     f"{p.miss_text(f['row'])}")
    elif w is not None and p.mode == "rate":
        lines.append("  it is the smallest deployment of its shape (one replica" + (", whole nodes" if p.whole_nodes else "")
                     + ")")
    if w is not None and w.runs:
        lines.append(f"  rerun a seed: {simulate_command(args, p, w, w.runs[0]['seed'])}")
    if w is not None and price is not None:  # one priced type (trial 2 item 5)
        lines.append(cost_line(plan_cost(p, price, p.rate_rps), w.gpus))
    if w is not None and p.precision_hint:  # (without a winner, the error carries it)
        saved, more = hint_saving(p, price), ""
        if saved and saved["cost_per_hour_saved"] > 0:
            more = (f"; ${saved['cost_per_hour_saved']:,.2f}/h less on whole nodes "
                    f"(${saved['cost_per_hour_per_gpu_saved']:,.2f}/h billed per GPU)")
        elif saved:
            more = f"; the same whole nodes, ${saved['cost_per_hour_per_gpu_saved']:,.2f}/h less billed per GPU"
        lines.append("Precision: " + p.precision_hint["text"] + more)
    why = p.why_not()
    if why:
        lines += ["", "Why not:"] + [f"  - {x}" for x in why[:MAX_WHY_NOT]]
        if len(why) > MAX_WHY_NOT:
            lines.append(f"  ... {len(why) - MAX_WHY_NOT} more in --json")
    for note in p.notes:
        lines.append(f"note: {note}")
    lines.append(f"{p.simulations} simulations" + (f" in {elapsed:.1f} s" if elapsed is not None else ""))
    return lines


def cost_line(c: dict, gpus: int) -> str:
    """'Cost: $212.24/h on 7 whole nodes of 8 (6 GPUs idle), $2.303 per million output tokens;
    billed per GPU (50 GPUs) $189.50/h, $2.056 per million' (sizer/plan/capacity_cost.py)."""
    nodes = f"{c['nodes']} whole node{'s' if c['nodes'] != 1 else ''} of {c['per_node']}"
    idle = f" ({c['idle_gpus']} GPUs idle)" if c["idle_gpus"] else ""
    return (f"Cost at ${c['gpu_hour_price']:g}/GPU-hour: ${c['cost_per_hour']:,.2f}/h on {nodes}{idle}, "
            f"${c['cost_per_million_output_tokens']:.3f} per million output tokens; billed per GPU ({gpus} GPUs) "
            f"${c['cost_per_hour_per_gpu']:,.2f}/h, ${c['cost_per_million_output_tokens_per_gpu']:.3f} per million")


def hint_saving(p, price) -> dict | None:
    """What the precision hint's GPU count saves per hour at `price` (None without a price or a
    count): whole nodes and per GPU (sizer/plan/capacity_cost.py)."""
    h, w = p.precision_hint, p.winner
    if price is None or w is None or not h or not h.get("gpus") or p.mode != "rate":
        return None
    now, fp8 = (cost(g, p.per_node, price, p.rate_rps, p.mean_osl) for g in (w.gpus, h["gpus"]))
    return {"cost_per_hour_saved": now["cost_per_hour"] - fp8["cost_per_hour"],
            "cost_per_hour_per_gpu_saved": now["cost_per_hour_per_gpu"] - fp8["cost_per_hour_per_gpu"]}


def render(args, plans, prices, chosen, elapsed) -> str:
    lines = []
    for p in plans:
        if isinstance(p, tuple):
            lines += [f"{p[0]}: {p[1]}", ""]
            continue
        one = len(plans) == 1
        lines += render_plan(args, p, elapsed if one else None, prices[0] if one and prices else None) + [""]
    if len(plans) > 1:
        cmp_doc = compare(plans, prices, args.rate)
        head = (f"{'GPU':<12}{'GPUs':>6}{'nodes':>7}{'idle':>6}  {'deployment':<18}{'$/hour':>11}{'$/M out tok':>13}"
                f"{'per GPU $/h':>13}")
        lines += ["Side by side:", head, "-" * len(head)]
        for row in cmp_doc["by_gpu"]:
            if row["gpus_needed"] is None:
                lines.append(f"{row['gpu']:<12}{'-':>6}{'-':>7}{'-':>6}  {'cannot serve it':<18}")
                continue
            money = [f"{row[k]:,.2f}" if row[k] is not None else "-" for k in ("cost_per_hour", "cost_per_hour_per_gpu")]
            pm = f"{row['cost_per_million_output_tokens']:.3f}" if row["cost_per_million_output_tokens"] else "-"
            nodes = f"{row['nodes']}x{row['per_node']}"
            lines.append(f"{row['gpu']:<12}{row['gpus_needed']:>6}{nodes:>7}{row['idle_gpus']:>6}  "
                         f"{row['winner']['label']:<18}{money[0]:>11}{pm:>13}{money[1]:>13}")
        lines += ["nodes = whole nodes of each type's size that hold the GPUs; $/hour and $/M out tok on those whole "
                  "nodes (idle GPUs paid for); per GPU $/h = the GPUs alone, as a cloud that bills single GPUs",
                  "", "Verdict: " + cost_verdict(cmp_doc, args.rate)]
        lines.append(f"{sum(p.simulations for p in plans if not isinstance(p, tuple))} simulations in {elapsed:.1f} s")
    return "\n".join(lines).rstrip()
