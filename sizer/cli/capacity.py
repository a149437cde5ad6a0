"""`sizer recommend --rate R`: rate-driven capacity planning (issue #13), the recommend command's
second face. Its flags (traffic and percentile SLOs, as `sizer simulate` names them), the path
from flags to sizer/plan/capacity_plan.py, and the report: a table per GPU type and one verdict
sentence, or one JSON document."""

import copy
import sys
import time
from dataclasses import dataclass

from sizer.errors import InfeasibleError, InputError
from sizer.hardware.gpus import get_gpu
from sizer.hardware.profile import load_profile
from sizer.model.catalog import get_model
from sizer.output import emit_json
from sizer.plan.capacity import DEFAULT_MAX_GPUS, CapacityNotMetError
from sizer.plan.capacity_cost import compare, cost, plan_cost
from sizer.plan.capacity_cost import verdict as cost_verdict
from sizer.plan.capacity_plan import _t, plan
from sizer.plan.recommend import _weight_dtypes
from sizer.sim import Lengths, Traffic, parse_lengths, read_trace
from sizer.sim.arrivals import ARRIVALS
from .common import (bounded_float, check_profile_device, emit_launch, engine_fraction, gpu_count, non_negative_int,
                     nonempty, positive_int, request_rate, show_emit, topology_from_args, uneven_pp_from_args)

MAX_WHY_NOT = 10
# flags that only mean something with --rate, and their defaults (None: not given)
RATE_ONLY = ("ttft_slo", "tpot_slo", "percentile", "per_node", "isl_dist", "osl_dist", "trace", "arrival",
             "burstiness", "requests", "seed")


def add_args(p) -> None:
    """The capacity flags on `sizer recommend` (defaults None, so that a flag given without --rate
    is refused rather than ignored)."""
    c = p.add_argument_group("capacity (with --rate): how many GPUs serve a request rate within percentile SLOs")
    c.add_argument("--rate", metavar="R", type=request_rate, help="requests per second to serve: with --rate, recommend "
                   "finds the fewest GPUs (or, with --gpus, each split's sustainable rate) by simulation")
    c.add_argument("--ttft-slo", metavar="T", type=nonempty, help="TTFT objective at --percentile, with a unit (2s)")
    c.add_argument("--tpot-slo", metavar="T", type=nonempty, help="TPOT objective at --percentile, with a unit (50ms)")
    c.add_argument("--percentile", type=bounded_float(0.0, 100.0), help="percentile the SLOs apply to (default 99)")
    c.add_argument("--per-node", metavar="K", type=gpu_count, help="count whole nodes of K GPUs (default: any "
                   "GPU count, on the GPU's usual node); --nodes N bounds the search to N nodes")
    c.add_argument("--isl-dist", metavar="D", type=nonempty, help="prompt-length distribution, as `sizer simulate`")
    c.add_argument("--osl-dist", metavar="D", type=nonempty, help="output-length distribution, as `sizer simulate`")
    c.add_argument("--trace", metavar="F", type=nonempty, help="CSV or JSONL request trace, as `sizer simulate`")
    c.add_argument("--arrival", choices=ARRIVALS, help="arrival process at --rate (default poisson)")
    c.add_argument("--burstiness", type=bounded_float(1e-3, 1e3), help="gamma shape of the gaps (default 1)")
    c.add_argument("--requests", type=positive_int, help="requests per simulation (default: 600, or six request "
                   "lifetimes of one replica at its steady-state bound)")
    c.add_argument("--seed", type=non_negative_int, help="first of the 3 seeds every candidate must pass (default 0)")


def refuse_without_rate(args) -> None:
    """Capacity flags without --rate are bad input (one line)."""
    for name in RATE_ONLY:
        if getattr(args, name, None) is not None:
            raise InputError(f"--{name.replace('_', '-')} belongs to rate-driven planning: give --rate R "
                             "(steady-state targets without a rate are --ttft/--tpot)")
    if "," in str(args.gpu):
        raise InputError(f"--gpu {args.gpu}: a list of GPU types compares capacity for a traffic: give --rate R")


def _prices(args, n: int):
    if args.gpu_hour_price is None:
        return None
    if len(args.gpu_hour_price) != n:
        raise InputError(f"--gpu-hour-price has {len(args.gpu_hour_price)} price"
                         f"{'s' if len(args.gpu_hour_price) != 1 else ''} for {n} GPU type{'s' if n != 1 else ''}: "
                         "give one per --gpu entry, in the same order")
    return list(args.gpu_hour_price)


def traffic_from_args(args) -> Traffic:
    """The traffic of `sizer simulate`'s flags at --rate (lengths, trace, arrivals, seed)."""
    trace = read_trace(args.trace) if args.trace else None
    if trace is not None and (args.isl or args.osl or args.isl_dist or args.osl_dist):
        raise InputError("--trace gives the lengths: drop --isl/--osl/--isl-dist/--osl-dist")
    for a, b in (("isl", "isl_dist"), ("osl", "osl_dist")):
        if getattr(args, a) and getattr(args, b):
            raise InputError(f"give --{a} or --{b.replace('_', '-')}, not both")
    isl = parse_lengths(args.isl_dist, "--isl-dist") if args.isl_dist else Lengths("fixed", args.isl or 1024)
    osl = parse_lengths(args.osl_dist, "--osl-dist") if args.osl_dist else Lengths("fixed", args.osl or 256)
    return Traffic(rate_rps=args.rate, requests=args.requests, isl=isl, osl=osl, arrival=args.arrival or "poisson",
                   burstiness=args.burstiness if args.burstiness is not None else 1.0, trace=trace,
                   seed=args.seed or 0)


def _refuse_steady_flags(args) -> None:
    for flag, value in (("--ttft", args.ttft), ("--tpot", args.tpot)):
        if value is not None:
            raise InputError(f"{flag} is a steady-state mean target; with --rate give --{flag[2:]}-slo "
                             "(a percentile objective, --percentile P)")
    for flag, value in (("--batch", args.batch), ("--concurrency", args.concurrency)):
        if value is not None:
            raise InputError(f"{flag} fixes the load; with --rate the rate sets it: drop {flag}")
    if args.objective not in (None, "throughput"):
        raise InputError("--objective ranks splits of a fixed GPU count; with --rate the answer is the fewest GPUs "
                         "(or, with --gpus, the most headroom): drop --objective")
    if args.allow_idle:
        raise InputError("--allow-idle: with --rate, drop --gpus to let the plan choose the GPU count")


def _topology_for(args, gpu):
    """topology_from_args for one replica or deployment of n GPUs over `nodes` nodes."""
    def build(n: int, nodes: int):
        ns = copy.copy(args)
        ns.nodes = nodes
        domain = getattr(args, "nvlink_domain", None)
        ns.nvlink_domain = None if domain is None or n <= domain else domain
        if nodes == 1:
            ns.inter_node = None  # replicas on one node each never cross the network
        return topology_from_args(ns, gpu, n)
    return build


class Progress:
    """The progress line of a long search, on stderr (stdout keeps the one answer or JSON
    document): the simulations so far and what is being simulated, first after AFTER_S seconds,
    then at most every EVERY_S seconds, so a search that answers quickly prints nothing."""

    AFTER_S = 10.0
    EVERY_S = 10.0

    def __init__(self, gpu: str, stream=None, clock=time.monotonic):
        self.gpu, self.stream, self.clock = gpu, stream, clock
        self.start = clock()
        self.last = self.start - self.EVERY_S + self.AFTER_S  # the first line comes AFTER_S in

    def __call__(self, simulations: int, what: str) -> None:
        now = self.clock()
        if now - self.last < self.EVERY_S:
            return
        self.last = now
        print(f"sizer recommend --rate: {self.gpu}: {simulations} simulations in {now - self.start:.0f} s; "
              f"now {what}", file=self.stream or sys.stderr, flush=True)


@dataclass
class Outcome:
    """What one `recommend --rate` computed: a plan (or (gpu, error) pair) per GPU type, the
    prices, the plan whose winner is the answer, the winner's launch, and the exit-1 error."""

    plans: list
    prices: list | None
    chosen: object
    elapsed_s: float
    launch: object
    error: Exception | None


def compute(args) -> Outcome:
    """The --rate path of `sizer recommend` up to its report (also what the UI runs)."""
    from .simulate import longest_request, parse_slo

    _refuse_steady_flags(args)
    names = [g.strip() for g in str(args.gpu).split(",")]
    if any(not g for g in names):
        raise InputError(f"--gpu {args.gpu!r}: an empty name in the list")
    gpus = [get_gpu(g) for g in names]
    if len({g.id for g in gpus}) != len(gpus):
        raise InputError(f"--gpu {args.gpu}: a GPU type is listed twice")
    prices = _prices(args, len(gpus))
    model = get_model(args.model)
    traffic = traffic_from_args(args)
    ttft = parse_slo(args.ttft_slo, "--ttft-slo") if args.ttft_slo else None
    tpot = parse_slo(args.tpot_slo, "--tpot-slo") if args.tpot_slo else None
    percentile = 99.0 if args.percentile is None else args.percentile
    if not percentile > 0:
        raise InputError(f"--percentile must be in (0, 100], got {percentile:g}")
    if args.per_node is not None and args.gpus is not None:
        raise InputError("--per-node counts whole nodes of a GPU count the plan chooses: with --gpus, give --nodes")
    longest = longest_request(traffic)
    profile = load_profile(args.profile)
    kv = [k.strip() for k in args.kv_dtype.split(",") if k.strip()] or ["auto"]
    wds = _weight_dtypes(args.weight_dtype)
    fraction = engine_fraction(args) if hasattr(args, "gpu_memory_utilization") else None
    start = time.perf_counter()
    plans, first_error = [], None
    for gpu in gpus:
        check_profile_device(profile, gpu)
        per_node = args.per_node or getattr(args, "nvlink_domain", None) or gpu.domain_gpus
        if args.gpus is not None:
            topology_from_args(args, gpu, args.gpus)  # the given GPUs and nodes must make a topology
            max_gpus = args.gpus
        else:
            max_gpus = (args.nodes * per_node) if args.nodes else DEFAULT_MAX_GPUS
        try:
            p = plan(model, gpu, traffic, rate_rps=args.rate, ttft_slo_s=ttft, tpot_slo_s=tpot,
                     percentile=percentile, gpus=args.gpus, nodes=args.nodes or 1, per_node=per_node,
                     whole_nodes=args.per_node is not None, max_gpus=max_gpus, engine=args.engine,
                     weight_dtypes=wds, kv_dtypes=kv, topology_for=_topology_for(args, gpu), profile=profile,
                     fraction=fraction, max_num_seqs=args.max_num_seqs,
                     max_num_batched_tokens=args.max_num_batched_tokens, cuda_graphs=None,
                     requests=args.requests, uneven_pp=uneven_pp_from_args(args), context=longest,
                     progress=Progress(gpu.id))
        except CapacityNotMetError as exc:
            p, first_error = exc.plan, first_error or exc
        except InfeasibleError as exc:
            if len(gpus) == 1:
                raise
            p, first_error = (gpu.id, str(exc)), first_error or exc
        plans.append(p)
    elapsed = time.perf_counter() - start
    chosen = _chosen(plans, prices, args.rate)
    launch = _launch(args, model, chosen, longest, fraction) if chosen is not None else None
    return Outcome(plans, prices, chosen, elapsed, launch, None if chosen is not None else first_error)


def run(args) -> int:
    """Report what compute() found; exit 1 (InfeasibleError) when no type serves the rate."""
    out = compute(args)
    if args.json:
        doc = document(args, out)
        show_emit(out.launch, doc)
        emit_json(doc)
    else:
        print(render(args, out.plans, out.prices, out.chosen, out.elapsed_s))
        show_emit(out.launch)
    if out.error is not None:
        raise out.error
    return 0


def _chosen(plans, prices, rate_rps):
    """The plan whose winner the answer is: compare()'s pick (the cheapest type on whole nodes
    with prices, else the fewest GPUs; a tie broken on the sustainable rate)."""
    pick = compare(plans, prices, rate_rps)["pick"]
    return next((p for p in plans if not isinstance(p, tuple) and p.winner is not None and p.gpu == pick), None)


def _launch(args, model, p, longest, fraction):
    w = p.winner
    dep = p_deployment(p, w)
    _, per = p.nodes_of(w)
    return emit_launch(args, model, w.shape.deployment(w.replicas), batch=dep.max_num_seqs, context=longest,
                       precision=dep.plan.precision, max_num_batched_tokens=dep.max_num_batched_tokens,
                       gpus_per_node=per, memory_fraction=fraction, gpu=p.gpu)


def p_deployment(p, r):
    """The sizer.sim.Deployment that was simulated for result `r` of plan `p` (its memory plan
    and scheduler caps are the launch command's)."""
    return p.planner.deployment(r.shape, r.replicas)


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


def document(args, out: Outcome) -> dict:
    """The one JSON document of `recommend --rate --json` (less the emit field)."""
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
