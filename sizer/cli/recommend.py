"""`sizer recommend`: the best split of a model over some GPUs, ranked, with the losers explained."""

import time

from sizer.errors import InputError
from sizer.output import emit_json, warn
from . import capacity
from .common import (add_emit_arg, add_pp_partition_args, check_profile_device, emit_launch,
                     gpu_count, nonempty, positive_int, price_list, resolve_emit, show_emit, tpot_target,
                     ttft_target, uneven_pp_from_args)
from sizer.model.precision import WEIGHT_DTYPE_HELP
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.hardware.profile import load_profile
from sizer.plan.recommend import OBJECTIVES, NothingFitsError, TargetsNotMetError, recommend
from sizer.plan.search import GIB
from sizer.plan.whynot import comm_pct, spare_text
from .common import add_scheduler_args, add_topology_args, topology_from_args
from .disagg import add_recommend_args, run_recommend, wants_disagg

MAX_WHY_NOT = 10  # every family of rejected splits comes first (sizer/plan/whynot.py)
MAX_PARETO = 16  # Pareto rows in the text report (--json has them all)


def _thin(rows: list, k: int) -> list:
    """At most k rows, evenly spread over the list, first and last included."""
    if len(rows) <= k:
        return list(rows)
    picks = sorted({round(i * (len(rows) - 1) / (k - 1)) for i in range(k)})
    return [rows[i] for i in picks]


def register(sub) -> None:
    p = sub.add_parser("recommend", help="the best TP/PP/EP/DP split under memory and latency targets")
    p.add_argument("--model", required=True, type=nonempty, help="preset id/alias (see `sizer models`) or a config.json path")
    p.add_argument("--gpus", type=gpu_count, help="GPUs to use (all of them unless --allow-idle); required "
                   "unless --rate asks for the fewest")
    p.add_argument("--gpu", default="h100-sxm", type=nonempty, help="GPU id (see `sizer gpus`; default h100-sxm); "
                   "with --rate a comma list compares types")
    add_topology_args(p)
    add_pp_partition_args(p)
    w = p.add_argument_group("workload and targets")
    w.add_argument("--isl", type=positive_int, help="input tokens per request (default 1024)")
    w.add_argument("--osl", type=positive_int, help="output tokens per request (default 256)")
    w.add_argument("--ttft", metavar="T", type=ttft_target,
                   help="time-to-first-token target with a unit (2s, 500ms); a bare number is seconds "
                        "(warned about from 10)")
    w.add_argument("--tpot", metavar="T", type=tpot_target,
                   help="time-per-output-token target with a unit (50ms); a bare number is seconds "
                        "(warned about from 1)")
    w.add_argument("--batch", type=positive_int, help="sequences per replica (default: search up to the memory limit)")
    w.add_argument("--concurrency", type=positive_int, help="concurrent requests over the deployment")
    add_scheduler_args(w)
    s = p.add_argument_group("search")
    s.add_argument("--objective", choices=OBJECTIVES,
                   help="throughput: tokens/s per GPU (default); latency: lowest TPOT then TTFT; "
                        "cost: $ per million output tokens (needs --gpu-hour-price)")
    s.add_argument("--gpu-hour-price", type=price_list, metavar="USD", help="price of one GPU-hour, for cost per "
                   "token (with a --gpu list and --rate, one price per type: p1,p2,...)")
    s.add_argument("--weight-dtype", type=nonempty, help=f"one or a comma list of {WEIGHT_DTYPE_HELP} "
                   "(default: the checkpoint's own)")
    s.add_argument("--kv-dtype", default="auto", type=nonempty, help="one or a comma list of auto (model dtype), bf16, fp16, fp8, int8")
    s.add_argument("--engine", default="vllm", type=nonempty,
                   help="engine memory rules: vllm, sglang, trtllm, or none for raw capacity (default vllm)")
    s.add_argument("--top", type=positive_int, default=10, help="candidates to list (default 10)")
    s.add_argument("--allow-idle", action="store_true", help="also consider splits that leave some GPUs idle")
    add_emit_arg(s)
    add_recommend_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")
    capacity.add_args(p)
    p.set_defaults(func=run, nodes=None)  # --nodes: with --rate and no --gpus, the most nodes to use


def run(args) -> int:
    resolve_emit(args)
    if args.rate is not None:
        if wants_disagg(args):
            raise InputError("--disagg with --rate: capacity planning of prefill/decode pools is not modelled; "
                             "drop one (--disagg compares pools on --gpus N)")
        return capacity.run(args)  # rate-driven capacity planning (sizer/cli/capacity.py)
    capacity.refuse_without_rate(args)
    if args.gpus is None:
        raise InputError("--gpus is required (the GPUs to split), unless --rate R asks for the fewest GPUs")
    if len(args.gpu_hour_price or ()) > 1:
        raise InputError("--gpu-hour-price takes one price without --rate (a list prices a --gpu list)")
    args.gpu_hour_price = args.gpu_hour_price[0] if args.gpu_hour_price else None
    args.isl, args.osl = args.isl or 1024, args.osl or 256
    args.objective, args.nodes = args.objective or "throughput", args.nodes or 1
    if wants_disagg(args):
        return run_recommend(args)
    model, gpu = get_model(args.model), get_gpu(args.gpu)
    ttft, tpot = args.ttft, args.tpot  # seconds (sizer.units.parse_seconds)
    if model.max_position_embeddings and args.isl + args.osl > model.max_position_embeddings:
        warn(f"isl + osl = {args.isl + args.osl} exceeds {model.name}'s maximum context of "
             f"{model.max_position_embeddings}")
    topo = topology_from_args(args, gpu, args.gpus)
    profile = load_profile(args.profile)
    check_profile_device(profile, gpu)
    kv = [k.strip() for k in args.kv_dtype.split(",") if k.strip()] or ["auto"]
    start = time.perf_counter()
    try:
        rec = recommend(model, gpu, args.gpus, nodes=args.nodes, topology=topo, isl=args.isl,
                        osl=args.osl, ttft_s=ttft, tpot_s=tpot, objective=args.objective,
                        weight_dtypes=args.weight_dtype, kv_dtype=kv if len(kv) > 1 else kv[0],
                        engine=args.engine, top=args.top, allow_idle=args.allow_idle,
                        gpu_hour_price=args.gpu_hour_price, batch=args.batch,
                        concurrency=args.concurrency, profile=profile,
                        max_batch=args.max_num_seqs, max_num_tokens=args.max_num_batched_tokens,
                        uneven_pp=uneven_pp_from_args(args))
    except TargetsNotMetError as exc:
        _show(exc.recommendation, args, time.perf_counter() - start)
        raise
    except NothingFitsError as exc:  # --json: still one document (no candidates, the error,
        if args.json:  # what would fit); the message goes to stderr and the exit code is 1
            _show(exc.recommendation, args, time.perf_counter() - start)
        raise
    elapsed = time.perf_counter() - start
    w = rec.winner
    launch = emit_launch(args, model, w.split, batch=w.batch, context=w.memory["context"],
                         precision=w.memory["precision"],
                         max_num_batched_tokens=rec.workload["max_num_tokens"],
                         gpus_per_node=args.gpus // args.nodes)
    _show(rec, args, elapsed, launch)
    return 0


def _show(rec, args, elapsed_s: float, launch=None) -> None:
    """The report; --emit's command for the winner after it (in --json: its `emit` field)."""
    if args.json:
        doc = rec.to_json()
        doc["search_time_s"] = elapsed_s
        show_emit(launch, doc)
        emit_json(doc)
    else:
        print(render(rec, elapsed_s))
        show_emit(launch)


def _t(s: float) -> str:
    if s >= 10:
        return f"{s:.1f} s"
    if s >= 1:
        return f"{s:.2f} s"
    return f"{s * 1e3:.1f} ms"


_OP_SHORT = {"tp_all_reduce": "all-reduce", "tp_reduce_scatter+all_gather": "RS+AG",
             "logits_all_gather": "logits AG", "ep_all_to_all": "all-to-all", "pp_send_recv": "PP send"}


def _no_target_note(w, objective: str) -> str:
    """What the winner's batch is, said only as far as it is true: 'fills memory' only when the
    batch is the memory limit."""
    at = f"batch {w.batch} per replica"
    if w.batch == w.max_batch and w.batch_limit == "memory":
        what = f"the winner fills memory ({at}), TTFT {_t(w.ttft_s)}"
    elif w.batch == w.max_batch and w.batch_limit == "max_num_seqs":
        what = f"the winner runs at the max_num_seqs cap ({at}), TTFT {_t(w.ttft_s)}"
    else:
        what = f"the winner runs {at} with {spare_text(w)}, TTFT {_t(w.ttft_s)}"
    trade = ("Give --ttft / --tpot to trade throughput for latency; the Pareto points below show "
             "the trade." if objective != "latency" else "The Pareto points below show what "
             "larger batches give in throughput.")
    return f"(No latency targets: {what}. {trade})"


def render(rec, elapsed_s: float = 0.0) -> str:
    """The human report: context, ranked table, winner, why-not lines, Pareto points."""
    wl, tg = rec.workload, rec.targets
    targets = ", ".join(f"{k[:-2].upper()} <= {_t(v)}" for k, v in tg.items() if v) or "none"
    lines = [f"{rec.model} on {rec.gpus}x {rec.gpu} ({rec.topology})",
             f"workload: isl {wl['isl']}, osl {wl['osl']}"
             + (f", engine {wl['engine']}" if wl["engine"] else "")
             + (f", batch {wl['batch']}" if wl["batch"] else "")
             + (f", concurrency {wl['concurrency']}" if wl["concurrency"] else "")
             + f"; targets: {targets}; objective: {rec.objective}",
             f"searched {rec.evaluated_splits} split x precision combinations, {rec.evaluated_points} "
             f"(split, batch) points in {elapsed_s:.2f} s", ""]
    for note in rec.notes:
        lines.append(f"note: {note}")
    if not rec.meets_targets:
        lines.append("NO split meets the targets; the closest candidates:")
    show_cost = any(c.cost_per_mtok is not None for c in rec.candidates)
    show_gpus = bool(wl.get("allow_idle"))
    spare = "free/GPU" if not wl["engine"] else "spare/GPU"  # spare: outside the engine's budget
    head = (f"{'#':>2}  {'split':<18}" + (f"{'GPUs':>5}  " if show_gpus else "")
            + f"{'weights':<10}{'KV':<6}{'batch':>6}{spare:>11}{'TTFT':>10}"
            f"{'TPOT':>10}{'tok/s/GPU':>11}{'comm':>17}" + (f"{'$/Mtok':>9}" if show_cost else ""))
    lines += [head, "-" * len(head)]
    for i, c in enumerate(rec.candidates, 1):
        comm = f"{comm_pct(c.comm_op_share)} {_OP_SHORT.get(c.comm_op, c.comm_op)}" if c.comm_op else "-"
        mark = "" if c.meets_targets else " x"
        row = (f"{i:>2}  {c.label:<18}" + (f"{c.gpus_used:>5}  " if show_gpus else "")
               + f"{c.weight_dtype:<10}{c.kv_dtype:<6}{c.batch:>6}"
               f"{c.headroom_bytes / GIB:>7.1f} GiB{_t(c.ttft_s):>10}{_t(c.tpot_s):>10}"
               f"{c.output_tok_s_per_gpu:>11,.0f}{comm:>17}")
        if show_cost:
            row += f"{c.cost_per_mtok:>9.3f}"
        flags = {"tp_spans_sockets": " (TP spans sockets)", "tp_spans_nodes": " (TP spans nodes)"}
        lines.append(row + mark + "".join(flags.get(f, "") for f in c.flags))
    if rec.workload.get("mode") == "static":
        lines.append("batch = sequences per replica, a static batch of isl+osl each; comm = largest "
                     "collective's share of a decode step")
    else:
        lines.append("batch = concurrent sequences per replica in continuous batching (steady state, "
                     "chunked prefill); comm = largest collective's share of a decode step")
    if wl["engine"]:
        rest = {"vllm": "(1 - --gpu-memory-utilization) x capacity",
                "sglang": "(1 - --mem-fraction-static) x capacity, less activations and CUDA graphs",
                "trtllm": "the KV fraction's remainder of what weights and activations leave"}
        lines.append(f"spare = memory outside the engine's budget ({rest.get(wl['engine'], 'its reserve')}); "
                     "the KV cache already takes the budget, so it is not room for more sequences")
    if rec.winner_reason:
        lines += ["", "Winner: " + rec.winner_reason]
    if rec.precision_hint:
        lines.append("Precision: " + rec.precision_hint["text"])
    if not any(tg.values()) and rec.candidates:
        lines.append(_no_target_note(rec.candidates[0], rec.objective))
    if rec.why_not:
        lines += ["", "Why not:"]
        lines += [f"  - {line}" for line in rec.why_not[:MAX_WHY_NOT]]
        if len(rec.why_not) > MAX_WHY_NOT:
            lines.append(f"  ... {len(rec.why_not) - MAX_WHY_NOT} more in --json")
    if rec.pareto:
        shown = _thin(rec.pareto, MAX_PARETO)
        lines += ["", "Pareto frontier (tok/s per GPU vs interactivity = 1/TPOT)"
                  + (f", {len(shown)} of its {len(rec.pareto)} points (all in --json):"
                     if len(shown) < len(rec.pareto) else ":"),
                  f"  {'TPOT':>9}{'tok/s/user':>12}{'tok/s/GPU':>11}  {'split':<18}{'weights':<10}{'KV':<6}{'batch':>6}"]
        for p in shown:
            lines.append(f"  {_t(p['tpot_s']):>9}{p['interactivity_tok_s']:>12.1f}"
                         f"{p['output_tok_s_per_gpu']:>11,.0f}  {p['label']:<18}{p['weight_dtype']:<10}"
                         f"{p['kv_dtype']:<6}{p['batch']:>6}"
                         + ("" if p["meets_targets"] else "  (misses targets)"))
    return "\n".join(lines)
