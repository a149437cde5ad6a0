"""`sizer recommend --disagg`: the best disaggregated deployment (a prefill pool and a decode pool
of their own splits, sizer/cost/disagg.py) on the same GPUs, SLOs and precision as today's
aggregated winner, side by side with it, and both Pareto frontiers.

The search (TensorRT-LLM's rate matching on whole GPUs): every split of the GPUs into a
prefill pool of n and a decode pool of G - n (each on whole nodes, or both in one node); for
each pool every split sizer's aggregated search would try (sizer/plan/search.py
enumerate_splits, the engine's layouts only, TP inside a node), the prefill pool over the
prompts per forward (1 up to the token budget), the decode pool over the sequences per DP rank
(the aggregated batch grid up to what fits); a point is (pool sizes, prefill split and
prompts, decode split and batch), its metrics combine() of sizer/cost/disagg.py. Each
(pool sizes, prefill split, decode split) keeps its best point under the targets, as the
aggregated search keeps each split's best batch; they are ranked by the same objective keys.

The Pareto frontier of each mode is over every point that meets the TTFT target (all points
without one): no other has more tokens/s per GPU at a lower TPOT (interactivity 1 / TPOT, the
axes of TensorRT-LLM's and NVIDIA Dynamo's published comparisons). The aggregated frontier is
recomputed here over the aggregated search's splits and batches (search.evaluate), so the two
frontiers are drawn from the same kind of points.
"""

from dataclasses import dataclass

import numpy as np

from sizer.cost.disagg import (Pools, TransferModel, combine, decode_points, default_prompts, prefill_points,
                               sub_topology)
from sizer.cost.engine_support import check_layout
from sizer.cost.engines import get_engine, scheduler_limits
from sizer.cost.memory import resolve_precision
from sizer.errors import InputError
from sizer.hardware.constants import device_for
from sizer.model.split import Split
from .search import (MemoryCache, Workload, batch_grid, enumerate_splits, evaluate, objective_key,
                     placement_flags)


def pool_sizes(topo, gpus: int) -> list[int]:
    """Prefill pool sizes n (decode G - n) whose pools fill whole nodes or share one node."""
    out = []
    for n in range(1, gpus):
        try:
            sub_topology(topo, 0, n)
            sub_topology(topo, n, gpus - n)
        except InputError:
            continue
        out.append(n)
    return out


def instances(split: Split) -> int:
    """Engine instances of a pool split: every DP rank its own, unless EP ties DP ranks
    together (attention data-parallel: EP / TP ranks per instance)."""
    group = split.ep // split.tp if split.ep > split.tp else 1
    return split.dp // group if split.dp % group == 0 else 1


@dataclass
class DisaggSearch:
    """The ranked disaggregated candidates, both frontiers, what was searched."""

    candidates: list
    pareto: list
    aggregated_pareto: list
    evaluated_points: int
    evaluated_pairs: int
    pool_sizes: list
    notes: list


def _pool_splits(model, n, topo_sub, rules, uneven_pp):
    valid, _ = enumerate_splits(model, n, uneven_pp)
    return [s for s in valid if check_layout(rules, s, model) is None
            and "tp_spans_nodes" not in placement_flags(topo_sub, s)]


def search_disagg(model, gpu, gpus: int, topo, *, isl: int, osl: int, targets: dict, objective: str,
                  weight_dtype, kv_dtype, engine, profile=None, max_batch=None, max_num_tokens=None,
                  cuda_graphs=None, uneven_pp=True, gpu_hour_price=None, top: int = 10) -> DisaggSearch:
    """Search every pool split of `gpus` (module docstring). `weight_dtype`/`kv_dtype`: one
    precision (the aggregated winner's, for a like-for-like comparison)."""
    rules = get_engine(engine)
    seqs_cap, tokens_cap = scheduler_limits(rules, gpu)
    device = device_for(gpu, profile)
    given = (max_batch, max_num_tokens)
    max_batch, max_num_tokens = max_batch or seqs_cap, max_num_tokens or tokens_cap
    dec_wl = Workload(isl, osl, max_batch, max_num_tokens, engine, cuda_graphs, "continuous", given)
    pre_wl = Workload(isl, 1, max_batch, max_num_tokens, engine, cuda_graphs, "continuous", given)
    dec_mem, pre_mem = MemoryCache(model, gpu, dec_wl), MemoryCache(model, gpu, pre_wl)
    kv = resolve_precision(model, weight_dtype, kv_dtype).kv
    kw = dict(cuda_graphs=cuda_graphs, weight_dtype=weight_dtype, kv_dtype=kv_dtype, profile=profile)
    sizes = pool_sizes(topo, gpus)
    notes = []
    if gpus < 2:
        notes.append("disaggregation needs two GPUs at least: one for each pool")
    elif not sizes:
        notes.append(f"no prefill/decode split of {gpus} GPUs puts each pool on whole nodes of {topo.gpus_per_node}"
                     + (f" (hosts of {topo.gpus_per_host})" if topo.gpus_per_host else ""))
    pre_cache, dec_cache, xfer_cache = {}, {}, {}

    def prefill(split, sub):
        key = (split, sub.nodes, sub.gpus_per_node)
        if key not in pre_cache:
            room = pre_mem.max_batch(split, weight_dtype, kv_dtype)
            wl = pre_wl.for_split(split)  # one replica's share of the engine's caps
            k_max = default_prompts(isl, wl.max_num_tokens, room, wl.max_batch)
            pre_cache[key] = None if room < 1 else prefill_points(
                model, device, split, batch_grid(k_max), isl=isl, max_num_tokens=wl.max_num_tokens,
                topology=sub if split.gpus > 1 else None, **kw)
        return pre_cache[key]

    def decode(split, sub):
        key = (split, sub.nodes, sub.gpus_per_node)
        if key not in dec_cache:
            n_max = dec_mem.max_batch(split, weight_dtype, kv_dtype)
            dec_cache[key] = None if n_max < 1 else decode_points(
                model, device, split, batch_grid(n_max), isl=isl, osl=osl,
                max_num_tokens=dec_wl.for_split(split).max_num_tokens,
                topology=sub if split.gpus > 1 else None, **kw)
        return dec_cache[key]

    cands, frontier_rows, points, pairs = [], [], 0, 0
    ttft_t, tpot_t = targets.get("ttft_s"), targets.get("tpot_s")
    for n in sizes:
        p_sub, d_sub = sub_topology(topo, 0, n), sub_topology(topo, n, gpus - n)
        p_splits = [(s, prefill(s, p_sub)) for s in _pool_splits(model, n, p_sub, rules, uneven_pp)]
        d_splits = [(s, decode(s, d_sub)) for s in _pool_splits(model, gpus - n, d_sub, rules, uneven_pp)]
        for ps, pre in p_splits:
            if pre is None:
                continue
            for ds, dec in d_splits:
                if dec is None:
                    continue
                pools = Pools(ps, ds, instances(ps), instances(ds))
                xkey = (n, ps.tp, ps.pp, ps.dp, ds.tp, ds.pp, ds.dp)
                if xkey not in xfer_cache:
                    xm = TransferModel(model, pools, topo, kv, profile)
                    xfer_cache[xkey] = (xm, float(xm.time_s(isl)))
                xm, t_x = xfer_cache[xkey]
                x_rps = min(ps.dp, ds.dp) / t_x if t_x > 0 else np.inf
                pairs += 1
                best = None
                for i in range(len(pre.batch)):
                    pts = combine(float(pre.latency_s[i]), float(pre.requests_per_s[i]), dec, t_x, x_rps, osl, gpus)
                    points += len(dec.batch)
                    miss = np.zeros_like(pts["tpot_s"])
                    if ttft_t:
                        miss = np.maximum(miss, pts["ttft_s"] / ttft_t)
                    if tpot_t:
                        miss = np.maximum(miss, pts["tpot_s"] / tpot_t)
                    ok = miss <= 1.0
                    frontier_rows.append((pts, pools, i, pre, dec, xm, t_x, ok))
                    key, j = _best(pts, ok, miss, objective)
                    if best is None or key < best[0]:
                        best = (key, i, j, pts, bool(ok[j]), float(miss[j]))
                if best is not None:
                    _, i, j, pts, ok_j, miss_j = best
                    cands.append(_candidate(pools, pre, i, dec, j, pts, xm, t_x, isl, ok_j, miss_j, weight_dtype,
                                            kv, gpu_hour_price, best[0]))
    cands.sort(key=lambda c: c["_key"])
    cands = cands[:top]
    for c in cands:  # the transfer's description only for the candidates shown
        c.pop("_key")
        c["kv_transfer"] = c.pop("_xm").describe(isl).to_json()
    pareto = _frontier(frontier_rows, ttft_t, isl)
    agg = aggregated_frontier(model, device, gpu, gpus, topo, rules, dec_wl, weight_dtype, kv_dtype, profile,
                              ttft_t, uneven_pp)
    return DisaggSearch(cands, pareto, agg, points, pairs, sizes, notes)


def _best(pts, ok, miss, objective) -> tuple:
    """(sort key, index) of the decode batch the objective prefers among those meeting the
    targets, else the closest miss (search.best_index's rule, vectorised)."""
    tok, tpot, ttft = pts["output_tok_s_per_gpu"], pts["tpot_s"], pts["ttft_s"]
    idx = np.flatnonzero(ok)
    if idx.size:
        cols = (ttft[idx], tpot[idx], -tok[idx]) if objective != "latency" else (-tok[idx], ttft[idx], tpot[idx])
        j = int(idx[np.lexsort(cols)[0]])
        return (0,) + objective_key(objective, tok[j], tpot[j], ttft[j]), j
    j = int(np.lexsort((-tok, miss))[0])
    return (1, miss[j], -tok[j]), j


def _candidate(pools, pre, i, dec, j, pts, xm, t_x, isl, ok, miss, wd, kv, price, key) -> dict:
    tok_gpu = float(pts["output_tok_s_per_gpu"][j])
    return {"label": pools.label(), "gpus": pools.gpus, "weight_dtype": wd or "checkpoint", "kv_dtype": kv,
            "prefill": {**pools.pool_json("prefill"), "prompts_per_forward": int(pre.batch[i]),
                        "prefill_s": float(pre.latency_s[i]), "requests_per_s": float(pre.requests_per_s[i])},
            "decode": {**pools.pool_json("decode"), "batch": int(dec.batch[j]), "tpot_s": float(dec.latency_s[j]),
                       "requests_per_s": float(dec.requests_per_s[j])},
            "kv_transfer_s": t_x, "_xm": xm,
            "ttft_s": float(pts["ttft_s"][j]), "tpot_s": float(pts["tpot_s"][j]), "e2e_s": float(pts["e2e_s"][j]),
            "output_tok_s": float(pts["output_tok_s"][j]), "output_tok_s_per_gpu": tok_gpu,
            "requests_per_s": float(pts["requests_per_s"][j]), "limited_by": str(pts["limited_by"][j]),
            "meets_targets": ok, "miss": miss,
            "cost_per_million_tokens": (price / 3600.0 / tok_gpu * 1e6) if price else None, "_key": key}


def _pareto_rows(tpot, tok, keep) -> np.ndarray:
    """Indices of the points not dominated in (tokens/s per GPU up, TPOT down), TPOT ascending."""
    idx = np.flatnonzero(keep)
    if not idx.size:
        return idx
    order = idx[np.lexsort((-tok[idx], tpot[idx]))]
    best = np.maximum.accumulate(tok[order])
    first = np.concatenate([[True], best[1:] > best[:-1]])
    return order[first]


def _frontier(rows, ttft_t, isl) -> list[dict]:
    if not rows:
        return []
    tpot = np.concatenate([r[0]["tpot_s"] for r in rows])
    tok = np.concatenate([r[0]["output_tok_s_per_gpu"] for r in rows])
    ttft = np.concatenate([r[0]["ttft_s"] for r in rows])
    owner = np.concatenate([np.full(len(r[0]["tpot_s"]), k) for k, r in enumerate(rows)])
    col = np.concatenate([np.arange(len(r[0]["tpot_s"])) for r in rows])
    keep = ttft <= ttft_t if ttft_t else np.ones_like(tpot, dtype=bool)
    out = []
    for p in _pareto_rows(tpot, tok, keep):
        pts, pools, i, pre, dec, xm, t_x, ok = rows[owner[p]]
        j = col[p]
        out.append({"label": pools.label(), "prefill": pools.pool_json("prefill"), "decode": pools.pool_json("decode"),
                    "prompts_per_forward": int(pre.batch[i]), "batch": int(dec.batch[j]), "tpot_s": float(tpot[p]),
                    "ttft_s": float(ttft[p]), "interactivity_tok_s": 1.0 / float(tpot[p]),
                    "output_tok_s_per_gpu": float(tok[p]), "kv_transfer_s": t_x, "meets_targets": bool(ok[j])})
    return out


def aggregated_frontier(model, device, gpu, gpus, topo, rules, wl, weight_dtype, kv_dtype, profile, ttft_t,
                        uneven_pp) -> list[dict]:
    """The aggregated search's points (every split with TP inside a node, its batch grid up to
    what fits; search.evaluate), reduced to their frontier under the TTFT target."""
    mem = MemoryCache(model, gpu, wl)
    rows = []
    valid, _ = enumerate_splits(model, gpus, uneven_pp)
    for s in valid:
        if check_layout(rules, s, model) is not None or "tp_spans_nodes" in placement_flags(topo, s):
            continue
        b_max = mem.max_batch(s, weight_dtype, kv_dtype)
        if b_max < 1:
            continue
        pts = evaluate(model, device, s, batch_grid(b_max), wl.for_split(s), weight_dtype=weight_dtype, kv_dtype=kv_dtype,
                       topology=topo, profile=profile)
        rows.append((s, pts))
    if not rows:
        return []
    tpot = np.concatenate([np.asarray(p.tpot_s, float) for _, p in rows])
    tok = np.concatenate([np.asarray(p.output_tok_s_per_gpu, float) for _, p in rows])
    ttft = np.concatenate([np.asarray(p.ttft_s, float) for _, p in rows])
    owner = np.concatenate([np.full(len(p.batch), k) for k, (_, p) in enumerate(rows)])
    col = np.concatenate([np.arange(len(p.batch)) for _, p in rows])
    keep = ttft <= ttft_t if ttft_t else np.ones_like(tpot, dtype=bool)
    out = []
    for p in _pareto_rows(tpot, tok, keep):
        s, pts = rows[owner[p]]
        out.append({**s.to_json(), "batch": int(pts.batch[col[p]]), "tpot_s": float(tpot[p]), "ttft_s": float(ttft[p]),
                    "interactivity_tok_s": 1.0 / float(tpot[p]), "output_tok_s_per_gpu": float(tok[p])})
    return out


def speedup_at(agg: list, dis: list, tpot_s: float) -> float | None:
    """Disaggregated over aggregated tokens/s per GPU at a TPOT: each frontier's best point
    with TPOT at most `tpot_s` (None where either has none)."""
    a = [r["output_tok_s_per_gpu"] for r in agg if r["tpot_s"] <= tpot_s]
    d = [r["output_tok_s_per_gpu"] for r in dis if r["tpot_s"] <= tpot_s]
    if not a or not d:
        return None
    return max(d) / max(a)
