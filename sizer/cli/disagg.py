"""`--disagg` on estimate, simulate and recommend: the flags that describe the two pools, their
checks (every contradiction one line, exit 2), and the reports.

The pools (estimate, simulate): one prefill engine instance is --prefill-tp x --prefill-pp GPUs
(x --prefill-dp attention data-parallel ranks when its experts span them: --prefill-dp N
--prefill-ep N is DeepSeek-style wide EP), and --prefill-replicas such instances make the
prefill pool; the decode pool likewise. The prefill pool takes the first GPUs, the decode pool
the next; --gpus, when given, must equal their sum. recommend --disagg searches the pools
itself and takes no pool flags.
"""

import math
import time

from sizer.cost.disagg import Pools, check_pools, estimate_disagg
from sizer.cost.moe_comm import check_a2a
from sizer.cost.speculative import speculative_config
from sizer.errors import InfeasibleError, InputError
from sizer.hardware.gpus import get_gpu
from sizer.hardware.profile import load_profile
from sizer.model.catalog import get_model
from sizer.model.split import Split
from sizer.output import emit_json, warn
from sizer.plan.disagg import search_disagg, speedup_at
from sizer.plan.recommend import NothingFitsError, TargetsNotMetError, recommend
from sizer.sim import simulate
from sizer.sim.disagg import DisaggDeployment
from sizer.units import fmt_bytes, fmt_seconds
from .common import (check_profile_device, engine_fraction, engine_label, gpu_count, nonempty, topology_from_args,
                     uneven_pp_from_args)

ROLES = ("prefill", "decode")
POOL_FLAGS = ("tp", "pp", "dp", "ep", "replicas")


def add_pool_args(p) -> None:
    """--disagg and the pool flags (estimate, simulate)."""
    g = p.add_argument_group("disaggregated prefill/decode (--disagg)")
    g.add_argument("--disagg", action="store_true",
                   help="serve prompts and decode steps on separate pools, the KV cache moved between them "
                        "(describe the pools with the --prefill-* / --decode-* flags)")
    for role in ROLES:
        for flag, what in (("tp", "tensor-parallel size of one instance"), ("pp", "pipeline-parallel size of one instance"),
                           ("dp", "attention data-parallel ranks of one instance (with EP: wide EP)"),
                           ("ep", "expert-parallel size inside one instance"),
                           ("replicas", "engine instances in the pool")):
            g.add_argument(f"--{role}-{flag}", type=gpu_count, metavar="N", help=f"{role} pool: {what} (default 1)")


def add_recommend_args(p) -> None:
    """--disagg and --pareto-html (recommend)."""
    g = p.add_argument_group("disaggregated prefill/decode (--disagg)")
    g.add_argument("--disagg", action="store_true",
                   help="also search prefill/decode pools (sizes and splits) on the same GPUs and compare them "
                        "with the aggregated winner")
    g.add_argument("--pareto-html", metavar="FILE", type=nonempty,
                   help="with --disagg: write the aggregated and disaggregated Pareto frontiers (plotly) to FILE")


def wants_disagg(args) -> bool:
    """True when the command runs in disaggregated mode; a disaggregated-only flag without
    --disagg is an error (it would be ignored otherwise)."""
    check_flags(args)
    if getattr(args, "pareto_html", None) and not args.disagg:
        raise InputError("--pareto-html draws the aggregated and disaggregated frontiers: it needs --disagg")
    return bool(args.disagg)


def _given(args, role: str) -> list:
    return [f"--{role}-{f}" for f in POOL_FLAGS if getattr(args, f"{role}_{f}", None) is not None]


def check_flags(args) -> None:
    """Pool flags need --disagg; with it the aggregated split flags are refused."""
    given = _given(args, "prefill") + _given(args, "decode")
    if not getattr(args, "disagg", False):
        if given:
            raise InputError(f"{given[0]} describes a disaggregated pool: it needs --disagg")
        return
    for flag in ("tp", "pp", "dp", "ep"):
        if getattr(args, flag, 1) not in (None, 1):
            raise InputError(f"--{flag} describes an aggregated split; with --disagg give --prefill-{flag} "
                             f"and --decode-{flag}")
    for flag, why in (("batch", "a static batch"), ("emit", "launch commands for two pools")):
        if getattr(args, flag, None):
            raise InputError(f"--{flag} ({why}) is not modelled with --disagg")


def pools_from_args(args, model):
    """The Pools the flags describe (sizer.cost.disagg.Pools), checked."""
    uneven = not getattr(args, "even_pp", False)
    redundant = getattr(args, "redundant_experts", 0) or 0
    splits = {}
    for role in ROLES:
        v = {f: getattr(args, f"{role}_{f}", None) or 1 for f in POOL_FLAGS}
        splits[role] = Split(tp=v["tp"], pp=v["pp"], dp=v["dp"] * v["replicas"], ep=v["ep"], uneven_pp=uneven,
                             redundant_experts=redundant if v["ep"] > 1 else 0)
        splits[role + "_n"] = v["replicas"]
    if redundant and splits["prefill"].ep < 2 and splits["decode"].ep < 2:
        raise InputError(f"--redundant-experts {redundant} needs expert parallelism in a pool (--prefill-ep or --decode-ep > 1)")
    pools = Pools(splits["prefill"], splits["decode"], splits["prefill_n"], splits["decode_n"])
    return check_pools(model, pools, getattr(args, "gpus", None))


def _deployment(args, tokens: int, what: str):
    """(model, gpu, pools, topology, profile) from the flags."""
    check_flags(args)
    model, gpu = get_model(args.model), get_gpu(args.gpu)
    pools = pools_from_args(args, model)
    if tokens and model.max_position_embeddings and tokens > model.max_position_embeddings:
        warn(f"{what} of {tokens} tokens exceeds {model.name}'s maximum context of {model.max_position_embeddings}")
    profile = load_profile(args.profile)
    check_profile_device(profile, gpu)
    return model, gpu, pools, topology_from_args(args, gpu, pools.gpus), profile


def _a2a(args, pools):
    a2a = check_a2a(args.ep_a2a)
    if pools.prefill.ep < 2 and pools.decode.ep < 2 and (a2a != "nccl" or args.moe_imbalance != 1.0):
        raise InputError("--ep-a2a / --moe-imbalance need expert parallelism in a pool (--prefill-ep or --decode-ep > 1)")
    return a2a


# -- estimate ----------------------------------------------------------------------------------

def run_estimate(args) -> int:
    model, gpu, pools, topo, profile = _deployment(args, args.isl + args.osl, "isl + osl")
    a2a = _a2a(args, pools)
    draft = get_model(args.draft_model) if args.draft_model else None
    spec = speculative_config(model, args.speculative, args.num_speculative_tokens, args.acceptance, draft)
    est = estimate_disagg(model, gpu, pools, isl=args.isl, osl=args.osl, concurrency=args.concurrency,
                          weight_dtype=args.weight_dtype, kv_dtype=args.kv_dtype, engine=args.engine,
                          fraction=engine_fraction(args), max_batch=args.max_num_seqs,
                          max_num_tokens=args.max_num_batched_tokens, cuda_graphs=args.cuda_graphs,
                          topology=topo, profile=profile, speculative=spec, ep_a2a=a2a,
                          moe_imbalance=args.moe_imbalance)
    doc = {**est.to_json(), "model": model.name, "gpu": gpu.id, "isl": args.isl, "osl": args.osl,
           "engine": engine_label(args)}
    if doc["decode"].get("fits") is False:
        warn(f"{doc['decode']['batch']} sequences per decode DP rank do not fit its KV cache (room for "
             f"{doc['decode']['memory']['max_sequences']}): the engine would queue the rest")
    if args.json:
        emit_json(finite(doc))
        return 0
    print(render_estimate(doc))
    return 0


def finite(obj):
    """The document with non-finite numbers (a pool that never limits: osl 1) as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite(v) for v in obj]
    return obj


def _n(k: int, what: str) -> str:
    return f"{k} {what}{'' if k == 1 else 's'}"


def _rate(x) -> str:
    return "unbounded" if x is None or not math.isfinite(x) else f"{x:.3g} req/s"


def render_estimate(doc: dict) -> str:
    pre, dec, x = doc["prefill"], doc["decode"], doc["kv_transfer"]
    return "\n".join([
        f"{doc['model']} on {doc['gpus']}x {doc['gpu']}, disaggregated, engine {doc['engine']}: isl {doc['isl']}, "
        f"osl {doc['osl']} ({doc['topology']})",
        f"  prefill pool: {pre['replicas']}x {pre['split']['label']} ({_n(pre['gpus'], 'GPU')}), "
        f"{_n(pre['prompts_per_forward'], 'prompt')} per forward, prefill {fmt_seconds(pre['prefill_s'])}, "
        f"{_rate(pre['requests_per_s'])}",
        f"  decode pool:  {dec['replicas']}x {dec['split']['label']} ({_n(dec['gpus'], 'GPU')}), "
        f"{_n(dec['batch'], 'sequence')} per DP rank, TPOT {fmt_seconds(dec['tpot_s'])}, {_rate(dec['requests_per_s'])}",
        f"  KV transfer:  {fmt_bytes(x['bytes_per_request'])} per request over {x['links']}, "
        f"{fmt_seconds(x['time_s'])} ({x['rule']}; busiest decode rank receives {fmt_bytes(x['decode_rank_bytes'])})",
        f"  TTFT  {fmt_seconds(doc['ttft_s']):>12}   (prefill {fmt_seconds(pre['prefill_s'])} + KV transfer "
        f"{fmt_seconds(doc['kv_transfer_s'])})",
        f"  TPOT  {fmt_seconds(doc['tpot_s']):>12}",
        f"  e2e   {fmt_seconds(doc['e2e_s']):>12}",
        f"  output {doc['output_tok_s']:,.0f} tok/s total, {doc['output_tok_s_per_gpu']:,.0f} tok/s per GPU, "
        f"{doc['requests_per_s']:.3g} req/s (limited by the {doc['limited_by'].replace('_', ' ')})"])


# -- simulate ----------------------------------------------------------------------------------

def run_simulate(args, traffic, ttft, tpot, longest) -> int:
    from .simulate import _show, _show_search, no_rate_error, search_rate, write_requests  # (cli.simulate imports this module)

    model, gpu, pools, topo, profile = _deployment(args, longest, "the longest request")
    dep = DisaggDeployment(model, gpu, pools, engine=args.engine, weight_dtype=args.weight_dtype,
                           kv_dtype=args.kv_dtype, fraction=engine_fraction(args), max_num_seqs=args.max_num_seqs,
                           max_num_batched_tokens=args.max_num_batched_tokens, cuda_graphs=args.cuda_graphs,
                           topology=topo, profile=profile, context=longest, router=args.router,
                           prefix_caching=getattr(args, "prefix_caching", None),
                           reserve_full_isl=getattr(args, "reserve_full_isl", None))
    head = {"model": model.name, "gpu": gpu.id, "split": {"label": pools.label(), "gpus": pools.gpus},
            "pools": {role: pools.pool_json(role) for role in ROLES}, "engine": dep.engine or "none",
            "seed": args.seed}
    start = time.perf_counter()
    if args.find_rate:
        search = search_rate(dep, traffic, ttft, tpot, args.percentile)
        doc = {**head, **search.to_json(), "traffic": traffic.describe(), "deployment": dep.to_json()}
        if args.json:
            emit_json(doc)
        else:
            _show_search(doc, search, time.perf_counter() - start)
        if search.max_rate_rps <= 0:
            raise no_rate_error(search, args.percentile)
        return 0
    res = simulate(dep, traffic, ttft_slo_s=ttft, tpot_slo_s=tpot)
    wall = time.perf_counter() - start
    if args.requests_out:
        write_requests(args.requests_out, res)
    if res.advice():
        warn(res.advice())
    doc = {**head, **res.to_json()}
    if args.json:
        emit_json(doc)
        return 0
    _show(doc, res, wall, title=f"{model.name} on {pools.gpus}x {gpu.id}, disaggregated: {pools.label()}, engine "
                                f"{dep.engine or 'none'}: {res.requests} requests, {res.traffic}, seed {args.seed}")
    st = res.stages
    print(f"  stages: prefill {fmt_seconds(st['prefill_s']['mean'])} mean, decode admission wait "
          f"{fmt_seconds(st['decode_admission_wait_s']['mean'])} (p99 {fmt_seconds(st['decode_admission_wait_s']['p99'])}), "
          f"KV transfer {fmt_seconds(st['kv_transfer_s']['mean'])} after {fmt_seconds(st['kv_transfer_queue_s']['mean'])} queued")
    return 0


# -- recommend ---------------------------------------------------------------------------------

def run_recommend(args) -> int:
    """Today's aggregated search, then the disaggregated one on the same GPUs, SLOs and
    precision; exit 0 when either meets the targets."""
    for flag, why in (("batch", "a static batch"), ("concurrency", "a fixed concurrency"),
                      ("allow_idle", "idle GPUs"), ("emit", "launch commands for two pools")):
        if getattr(args, flag, None):
            raise InputError(f"--{flag.replace('_', '-')} ({why}) is not searched with --disagg")
    model, gpu = get_model(args.model), get_gpu(args.gpu)
    topo = topology_from_args(args, gpu, args.gpus)
    profile = load_profile(args.profile)
    check_profile_device(profile, gpu)
    kv = [k.strip() for k in args.kv_dtype.split(",") if k.strip()] or ["auto"]
    start = time.perf_counter()
    kw = dict(isl=args.isl, osl=args.osl, engine=args.engine, profile=profile, max_num_tokens=args.max_num_batched_tokens,
              cuda_graphs=None)
    try:
        rec, met = recommend(model, gpu, args.gpus, nodes=args.nodes, topology=topo, ttft_s=args.ttft, tpot_s=args.tpot,
                             objective=args.objective, weight_dtypes=args.weight_dtype,
                             kv_dtype=kv if len(kv) > 1 else kv[0], top=args.top, gpu_hour_price=args.gpu_hour_price,
                             max_batch=args.max_num_seqs, uneven_pp=uneven_pp_from_args(args), **kw), True
    except TargetsNotMetError as exc:
        rec, met = exc.recommendation, False
    except NothingFitsError as exc:  # nothing fits aggregated: no smaller pool fits either
        if args.json:
            emit_json(finite({**exc.recommendation.to_json(), "aggregated": None, "disaggregated": None,
                              "search_time_s": time.perf_counter() - start}))
        raise
    w = rec.winner
    wd = None if w.weight_dtype in ("auto", "checkpoint") or "+" in w.weight_dtype else w.weight_dtype
    if wd is not None and args.weight_dtype is None:
        wd = None  # the checkpoint's own, as the aggregated search read it
    targets = {"ttft_s": args.ttft, "tpot_s": args.tpot}
    found = search_disagg(model, gpu, args.gpus, topo, targets=targets, objective=args.objective, weight_dtype=wd,
                          kv_dtype=w.kv_dtype if w.kv_dtype else "auto", max_batch=args.max_num_seqs,
                          uneven_pp=uneven_pp_from_args(args), gpu_hour_price=args.gpu_hour_price, top=args.top, **kw)
    elapsed = time.perf_counter() - start
    best = found.candidates[0] if found.candidates else None
    agg = w.to_json()
    doc = {**rec.to_json(), "aggregated": agg, "disaggregated": best,
           "disaggregated_candidates": found.candidates,
           "pareto": {"aggregated": found.aggregated_pareto, "disaggregated": found.pareto},
           "comparison": _compare(agg, best, met, found),
           "disagg_search": {"pool_sizes": found.pool_sizes, "evaluated_pairs": found.evaluated_pairs,
                             "evaluated_points": found.evaluated_points, "notes": found.notes},
           "search_time_s": elapsed}
    doc["meets_targets"] = bool(met or (best and best["meets_targets"]))
    if args.pareto_html:
        _write_html(args.pareto_html, doc)
    if args.json:
        emit_json(finite(doc))
    else:
        print(render_recommend(rec, doc, elapsed))
    if not doc["meets_targets"]:
        raise InfeasibleError(f"neither an aggregated nor a disaggregated deployment of {model.name} on {args.gpus}x "
                              f"{gpu.id} meets the targets")
    return 0


def _compare(agg: dict, best: dict | None, agg_met: bool, found) -> dict:
    """Which mode wins under the targets, by how much, and the frontiers' ratio at a few TPOTs."""
    out = {"winner": "aggregated", "speedup_tok_s_per_gpu": None, "at_tpot": []}
    if best is not None:
        out["speedup_tok_s_per_gpu"] = best["output_tok_s_per_gpu"] / agg["output_tok_s_per_gpu"]
        if best["meets_targets"] and (not agg_met or best["output_tok_s_per_gpu"] > agg["output_tok_s_per_gpu"]):
            out["winner"] = "disaggregated"
    for row in found.pareto:
        ratio = speedup_at(found.aggregated_pareto, found.pareto, row["tpot_s"])
        if ratio is not None:
            out["at_tpot"].append({"tpot_s": row["tpot_s"], "speedup_tok_s_per_gpu": ratio})
    return out


def _write_html(path: str, doc: dict) -> None:
    from sizer import charts

    try:
        with open(path, "w", encoding="utf-8") as f:
            f.write(charts.to_html(charts.disagg_pareto(finite(doc))))
    except OSError as exc:
        raise InputError(f"--pareto-html {path}: {exc.strerror}") from None


def render_recommend(rec, doc: dict, elapsed: float) -> str:
    """The aggregated report as `sizer recommend` prints it, then the disaggregated search."""
    from .recommend import render

    agg, best, cmp = doc["aggregated"], doc["disaggregated"], doc["comparison"]
    lines = ["Aggregated:", render(rec, elapsed), "", "Disaggregated (prefill pool + decode pool, same GPUs, "
             f"targets and precision; {doc['disagg_search']['evaluated_pairs']} pool pairs, "
             f"{doc['disagg_search']['evaluated_points']} points):"]
    for note in doc["disagg_search"]["notes"]:
        lines.append(f"note: {note}")
    if best is None:
        lines.append("No disaggregated deployment fits these GPUs.")
        return "\n".join(lines)
    head = (f"{'#':>2}  {'pools':<54}{'P':>4}{'D':>6}{'TTFT':>12}{'KV xfer':>12}{'TPOT':>12}{'tok/s/GPU':>11}"
            "  limited by")
    lines += [head, "-" * len(head)]
    for i, c in enumerate(doc["disaggregated_candidates"], 1):
        lines.append(f"{i:>2}  {c['label']:<54}{c['prefill']['prompts_per_forward']:>4}{c['decode']['batch']:>6}"
                     f"{fmt_seconds(c['ttft_s']):>12}{fmt_seconds(c['kv_transfer_s']):>12}{fmt_seconds(c['tpot_s']):>12}"
                     f"{c['output_tok_s_per_gpu']:>11,.0f}  {c['limited_by'].replace('_', ' ')}"
                     + ("" if c["meets_targets"] else " (misses targets)"))
    lines.append("P = prompts per prefill forward, D = sequences per decode DP rank (steady state, rate-matched pools)")
    sp = cmp["speedup_tok_s_per_gpu"]
    verdict = (f"disaggregated wins: {best['output_tok_s_per_gpu']:,.0f} vs {agg['output_tok_s_per_gpu']:,.0f} tok/s per GPU "
               f"({sp:.2f}x)" if cmp["winner"] == "disaggregated" else
               f"aggregated wins: {agg['output_tok_s_per_gpu']:,.0f} vs {best['output_tok_s_per_gpu']:,.0f} tok/s per GPU "
               f"for the best disaggregated ({sp:.2f}x)")
    lines += ["", f"Aggregated vs disaggregated: {verdict}."]
    rows = cmp["at_tpot"]
    if rows:
        picks = sorted({round(i * (len(rows) - 1) / 4) for i in range(5)}) if len(rows) > 5 else range(len(rows))
        lines.append("Frontiers at equal TPOT (disaggregated / aggregated tok/s per GPU): "
                     + ", ".join(f"{fmt_seconds(rows[i]['tpot_s'])} {rows[i]['speedup_tok_s_per_gpu']:.2f}x" for i in picks))
    return "\n".join(lines)
