"""What a capacity plan costs, and GPU types side by side (issue #13; trial 2 items 4, 5, 9).

Why a module of its own: the cost of an answer is a second question beside "how many GPUs", with
its own rules, and both `recommend --rate` with one GPU type and with a list of them state it.

Nodes: a plan's GPUs sit on whole nodes of `per_node` GPUs. Every shape divides a node or takes
whole nodes (sizer/plan/shapes.py), so its replicas pack nodes and the deployment occupies
ceil(GPUs / per_node) nodes, the last one possibly with idle GPUs; this one count is what the
answer, the table, the JSON and the emitted launch commands use.

Cost per hour, two ways, both stated:
- on whole nodes (the default, what a buyer or a node-granular cloud pays): nodes x per_node x
  price per GPU-hour, idle GPUs included;
- per GPU (a cloud that bills single GPUs): GPUs x price.
Cost per million output tokens = cost per hour / (R x mean output tokens x 3600 s) x 1e6, the
tokens the planned traffic produces (the same for every type, so the cheapest per hour is the
cheapest per token).

The pick among types: the lowest whole-node cost per hour when priced, else the fewest GPUs (with
--gpus N, where every type has the N GPUs given, the highest sustainable rate); a tie is said to
be one and broken on something stated: the higher sustainable rate (the winner's headroom over R,
bracketed by the search, said to be a near-even call when the two are closer than the bracket's
HEADROOM_TOL), then the order of --gpu.
"""

import math

from .capacity import HEADROOM_TOL


def node_count(gpus: int, per_node: int) -> tuple[int, int]:
    """(whole nodes, idle GPUs on them) that hold `gpus` GPUs (module docstring)."""
    nodes = max(1, math.ceil(gpus / per_node))
    return nodes, nodes * per_node - gpus


def cost(gpus: int, per_node: int, price: float | None, rate_rps: float, mean_osl: float) -> dict:
    """The cost figures of `gpus` GPUs at `price` per GPU-hour (module docstring); None figures
    without a price."""
    nodes, idle = node_count(gpus, per_node)
    doc = {"nodes": nodes, "per_node": per_node, "idle_gpus": idle, "gpu_hour_price": price,
           "cost_per_hour": None, "cost_per_hour_per_gpu": None, "cost_per_million_output_tokens": None,
           "cost_per_million_output_tokens_per_gpu": None}
    if price is None:
        return doc
    tokens_per_hour = rate_rps * mean_osl * 3600.0
    whole, single = nodes * per_node * price, gpus * price
    doc.update(cost_per_hour=whole, cost_per_hour_per_gpu=single,
               cost_per_million_output_tokens=whole / tokens_per_hour * 1e6,
               cost_per_million_output_tokens_per_gpu=single / tokens_per_hour * 1e6)
    return doc


def plan_cost(p, price: float | None, rate_rps: float) -> dict:
    """cost() of plan `p`'s winner (a CapacityPlan with one)."""
    return cost(p.winner.gpus, p.per_node, price, rate_rps, p.mean_osl)


def _served(p) -> bool:
    return not isinstance(p, tuple) and p.winner is not None


def compare(plans: list, prices, rate_rps: float) -> dict:
    """GPU types side by side: {by_gpu: [...], cheapest, fewest_gpus, pick, tie} (module
    docstring); a plan may be a (gpu, error) pair for a type that cannot serve the traffic."""
    rows = []
    for i, p in enumerate(plans):
        price = prices[i] if prices else None
        if _served(p):
            w = p.winner
            rows.append({"gpu": p.gpu, "gpus_needed": w.gpus, **plan_cost(p, price, rate_rps),
                         "winner": p.candidate(w), "sustainable_rate_rps": w.sustainable_rate_rps,
                         "headroom": (w.sustainable_rate_rps / rate_rps - 1) if w.sustainable_rate_rps else None,
                         "simulations": p.simulations})
        else:
            rows.append({"gpu": p[0] if isinstance(p, tuple) else p.gpu, "gpus_needed": None, "winner": None,
                         "gpu_hour_price": price, "cost_per_hour": None, "cost_per_hour_per_gpu": None,
                         "cost_per_million_output_tokens": None,
                         "error": p[1] if isinstance(p, tuple) else p.error})
    served = [(i, r) for i, r in enumerate(rows) if r["gpus_needed"] is not None]
    priced = [(i, r) for i, r in served if r["cost_per_hour"] is not None]
    given = any(not isinstance(p, tuple) and p.mode == "gpus" for p in plans)  # --gpus N: the same GPUs
    by = "cost_per_hour" if priced else ("sustainable_rate_rps" if given else "gpus_needed")
    if by == "sustainable_rate_rps":
        top = max(served, key=lambda ir: (ir[1]["sustainable_rate_rps"] or 0, -ir[0]))[1]["gpu"] if served else None
        pick, tie, broken_by = top, [], None
    else:
        pick, tie, broken_by = _pick(priced if by == "cost_per_hour" else served, by)
    per_gpu = min(priced, key=lambda ir: (ir[1]["cost_per_hour_per_gpu"], ir[0]))[1]["gpu"] if priced else None
    return {"by_gpu": rows, "cheapest": pick if by == "cost_per_hour" else None,
            "cheapest_per_gpu": per_gpu,
            "fewest_gpus": _pick(served, "gpus_needed")[0] if served else None,
            "pick": pick, "ranked_by": by, "tie": tie, "tie_broken_by": broken_by}


def _pick(indexed: list, by: str) -> tuple:
    """(the type picked, the types tied with it on `by` or [], what broke the tie or None)."""
    if not indexed:
        return None, [], None
    best = min(r[by] for _, r in indexed)
    tied = [(i, r) for i, r in indexed if math.isclose(r[by], best, rel_tol=1e-9)]
    if len(tied) == 1:
        return tied[0][1]["gpu"], [], None
    rooms = [r["sustainable_rate_rps"] for _, r in tied]
    if all(x is not None for x in rooms) and len(set(rooms)) == len(rooms):
        _, r = max(tied, key=lambda ir: ir[1]["sustainable_rate_rps"])
        return r["gpu"], [r["gpu"] for _, r in tied], "sustainable_rate_rps"
    return tied[0][1]["gpu"], [r["gpu"] for _, r in tied], "order"


def verdict(cmp_doc: dict, rate_rps: float) -> str:
    """The one sentence under the side-by-side table."""
    rows = {r["gpu"]: r for r in cmp_doc["by_gpu"]}
    served = [r for r in cmp_doc["by_gpu"] if r["gpus_needed"] is not None]
    if not served:
        return "no GPU type of the list serves the traffic within the SLOs"
    p = rows[cmp_doc["pick"]]
    priced = cmp_doc["ranked_by"] == "cost_per_hour"

    def what(r):
        nodes = f"{r['nodes']} node{'s' if r['nodes'] != 1 else ''} of {r['per_node']}"
        if priced:
            return (f"{r['gpus_needed']} GPUs ({nodes}) at ${r['cost_per_hour']:,.2f}/h on whole nodes, "
                    f"${r['cost_per_hour_per_gpu']:,.2f}/h billed per GPU")
        return f"{r['gpus_needed']} GPUs ({nodes})"
    tie = cmp_doc["tie"]
    if tie:
        quantity = f"${p['cost_per_hour']:,.2f}/h on whole nodes" if priced else f"{p['gpus_needed']} GPUs"
        if cmp_doc["tie_broken_by"] == "sustainable_rate_rps":
            rest = ", ".join(f"{rows[g]['sustainable_rate_rps']:.3g} req/s ({rows[g]['headroom']:+.0%}) for {g}"
                             for g in tie if g != p["gpu"])
            why = (f"{p['gpu']} wins on headroom: it sustains {p['sustainable_rate_rps']:.3g} req/s "
                   f"({p['headroom']:+.0%} over {rate_rps:g}) vs {rest}")
            runner = max(rows[g]["sustainable_rate_rps"] for g in tie if g != p["gpu"])
            if p["sustainable_rate_rps"] / runner - 1 < HEADROOM_TOL:
                why += f" (closer than the {HEADROOM_TOL:.0%} the rates are bracketed to: a near-even call)"
        else:
            why = f"{p['gpu']} is first in --gpu (no simulated rate tells them apart)"
        names = ", ".join(tie[:-1]) + " and " + tie[-1]
        head = f"a tie: {names} {'both' if len(tie) == 2 else 'all'} need {quantity}; {why}"
    elif priced:
        head = f"{p['gpu']} is cheapest: {what(p)}, ${p['cost_per_million_output_tokens']:.3f} per million output tokens"
    elif cmp_doc["ranked_by"] == "sustainable_rate_rps":
        head = (f"{p['gpu']} sustains the most on {p['gpus_needed']} GPUs: {p['sustainable_rate_rps']:.3g} req/s "
                f"({p['headroom']:+.0%} over {rate_rps:g})")
    else:
        head = f"{p['gpu']} needs the fewest GPUs: {what(p)}"
    others = [r for r in served if r is not p and r["gpu"] not in tie]
    if cmp_doc["ranked_by"] == "sustainable_rate_rps":
        out = head + (f" (vs {'; '.join(r['gpu'] + ' ' + format(r['sustainable_rate_rps'], '.3g') + ' req/s' for r in others)})"
                      if others else "")
    else:
        out = head + (f" (vs {'; '.join(r['gpu'] + ' ' + what(r) for r in others)})" if others else "")
    if priced and cmp_doc["cheapest_per_gpu"] not in (None, p["gpu"]):
        c = rows[cmp_doc["cheapest_per_gpu"]]
        out += (f"; billed per GPU, {c['gpu']} is cheaper (${c['cost_per_hour_per_gpu']:,.2f}/h vs "
                f"${p['cost_per_hour_per_gpu']:,.2f}/h)")
    if not priced:
        out += "; give --gpu-hour-price p1,p2,... for the cost per hour and per million output tokens"
    return out
