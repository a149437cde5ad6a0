"""`sizer simulate`: traffic in, latency percentiles out (the request-level simulator,
sizer/sim/), or with --find-rate the highest request rate that meets the SLOs."""

import argparse
import csv
import math
import time

import numpy as np

from sizer.errors import InfeasibleError, InputError
from sizer.output import emit_json, warn
from sizer.sim import Deployment, Lengths, Traffic, find_rate, parse_lengths, read_trace, simulate
from sizer.sim.arrivals import ARRIVALS
from sizer.sim.loop import ROUTERS
from sizer.units import fmt_seconds, parse_seconds
from .disagg import add_pool_args, run_simulate, wants_disagg
from .common import (add_emit_arg, add_model_args, add_topology_args, bounded_float, deployment_from_args, duration,
                     emit_launch, engine_fraction, non_negative_int, nonempty, positive_int, resolve_emit,
                     show_emit)

METRICS = (("TTFT", "ttft_s"), ("TPOT", "tpot_s"), ("ITL", "itl_s"), ("E2E", "e2e_s"), ("queue", "queue_s"))


def register(sub) -> None:
    p = sub.add_parser("simulate", help="request-level simulation: P50/P99 latencies at a request rate")
    add_model_args(p)
    add_topology_args(p)
    t = p.add_argument_group("traffic")
    t.add_argument("--rate", metavar="R", type=nonempty, help="requests per second, or inf (every request at t=0); "
                   "required unless --trace has arrival times, --find-rate is given, or --concurrency N (then inf: a closed loop)")
    t.add_argument("--requests", type=positive_int, help="requests to simulate (default 1000, or every trace row)")
    t.add_argument("--duration", metavar="S", type=duration, help="simulate the arrivals of this long a window instead of --requests (e.g. 300s)")
    t.add_argument("--isl", type=positive_int, help="prompt tokens per request (default 1024)")
    t.add_argument("--osl", type=positive_int, help="output tokens per request (default 256)")
    t.add_argument("--isl-dist", metavar="D", type=nonempty, help="prompt-length distribution: uniform:LO,HI | normal:MEAN,STD | "
                   "lognormal:MEAN,STD (of the length)")
    t.add_argument("--osl-dist", metavar="D", type=nonempty, help="output-length distribution (as --isl-dist)")
    t.add_argument("--trace", metavar="F", type=nonempty, help="CSV or JSONL trace: prompt and output tokens per request, arrival "
                   "times optional (README: trace format)")
    t.add_argument("--arrival", choices=ARRIVALS, default="poisson", help="arrival process at --rate (default poisson)")
    t.add_argument("--burstiness", type=bounded_float(1e-3, 1e3), default=1.0, help="gamma shape of inter-arrival gaps (vLLM's "
                   "--burstiness; 1 = Poisson, < 1 burstier)")
    t.add_argument("--concurrency", type=positive_int, help="client keeps at most N requests outstanding "
                   "(vLLM --max-concurrency, AIPerf concurrency)")
    t.add_argument("--warmup", type=non_negative_int, default=0, metavar="N", help="leave the first N requests out of the metrics")
    t.add_argument("--seed", type=non_negative_int, default=0, help="random seed of arrivals and lengths (default 0)")
    t.add_argument("--router", choices=ROUTERS, default="round-robin", help="how requests reach DP replicas")
    t.add_argument("--no-enable-prefix-caching", dest="prefix_caching", action="store_false", default=None,
                   help="vLLM without prefix caching: a preempted request recomputes its whole KV on resume")
    t.add_argument("--scheduler-reserve-full-isl", dest="reserve_full_isl", action=argparse.BooleanOptionalAction,
                   default=None, help="vLLM admits a request only when the KV blocks of its whole known sequence "
                   "are free, not only its first chunk's (vLLM's default; --no-scheduler-reserve-full-isl: "
                   "admit on the first chunk, as vLLM before PR #37307)")
    s = p.add_argument_group("service-level objectives")
    s.add_argument("--ttft-slo", metavar="T", type=nonempty, help="TTFT objective with a unit (2s, 500ms)")
    s.add_argument("--tpot-slo", metavar="T", type=nonempty, help="TPOT objective with a unit (50ms)")
    s.add_argument("--percentile", type=bounded_float(0.0, 100.0), default=99.0, help="percentile the SLOs apply to with --find-rate (default 99)")
    s.add_argument("--find-rate", action="store_true", help="search the highest rate whose percentile meets the SLOs")
    add_pool_args(p)
    p.add_argument("--requests-out", metavar="FILE", type=nonempty, help="write one CSV row per request")
    add_emit_arg(p)
    p.set_defaults(func=run)


def parse_rate(text) -> float:
    s = str(text).strip().lower()
    if s in ("inf", "infinity", "+inf"):
        return math.inf
    try:
        value = float(s)
    except ValueError:
        raise InputError(f"--rate must be a number of requests per second or inf, got {text!r}") from None
    if math.isnan(value) or value <= 0:
        raise InputError(f"--rate must be positive (or inf), got {text!r}")
    return value


def parse_slo(text, flag: str) -> float:
    s = str(text).strip()
    if s and (s[-1].isdigit() or s[-1] == "."):
        raise InputError(f"{flag} {text!r} needs a unit (e.g. 2s, 500ms, 50ms)")
    value = parse_seconds(s)
    return value


def lengths_from_args(args) -> tuple:
    """(trace or None, input Lengths, output Lengths) of the traffic flags simulate and
    recommend --rate share: a trace gives the lengths, else --isl/--osl or their distributions."""
    trace = read_trace(args.trace) if args.trace else None
    if trace is not None and (args.isl or args.osl or args.isl_dist or args.osl_dist):
        raise InputError("--trace gives the lengths: drop --isl/--osl/--isl-dist/--osl-dist")
    for a, b in (("isl", "isl_dist"), ("osl", "osl_dist")):
        if getattr(args, a) and getattr(args, b):
            raise InputError(f"give --{a} or --{b.replace('_', '-')}, not both")
    isl = parse_lengths(args.isl_dist, "--isl-dist") if args.isl_dist else Lengths("fixed", args.isl or 1024)
    osl = parse_lengths(args.osl_dist, "--osl-dist") if args.osl_dist else Lengths("fixed", args.osl or 256)
    return trace, isl, osl


def search_rate(dep, traffic, ttft_s, tpot_s, percentile: float):
    """--find-rate (simulate, and --disagg's pools): the highest rate whose percentiles meet the
    SLOs; a saturated run's percentiles grow with its length, so it never meets, whatever its P99
    (find_rate stable=True, as recommend --rate judges)."""
    if ttft_s is None and tpot_s is None:
        raise InputError("--find-rate needs --ttft-slo and/or --tpot-slo")
    return find_rate(dep, traffic, ttft_slo_s=ttft_s, tpot_slo_s=tpot_s, percentile=percentile, stable=True)


def no_rate_error(search, percentile: float) -> InfeasibleError:
    """find_rate found no rate meeting the SLOs: what the lowest rate tried measured."""
    low, q = search.curve[0], f"p{percentile:g}"
    return InfeasibleError(f"no rate meets the SLOs: even at {low['rate_rps']:.3g} req/s the {q} TTFT is "
                           f"{fmt_seconds(low[f'ttft_{q}_s'])} and {q} TPOT {fmt_seconds(low[f'tpot_{q}_s'])}")


def traffic_from_args(args) -> Traffic:
    trace, isl, osl = lengths_from_args(args)
    timed = trace is not None and trace.arrival_s is not None
    if args.rate is None and args.concurrency and args.duration and not (timed or args.find_rate):
        raise InputError(f"--concurrency {args.concurrency} without --rate is a closed loop at --rate inf, "
                         "which --duration cannot bound: give --requests N, or --rate R for open-loop arrivals")
    if args.rate is None and args.concurrency and not (timed or args.find_rate):
        # a closed loop: vLLM's `vllm bench serve` sends at --request-rate inf (its default,
        # vllm/benchmarks/serve.py) and --max-concurrency N keeps N outstanding
        warn(f"--concurrency {args.concurrency} without --rate: every request is ready at t=0 (--rate inf, "
             "as vLLM's benchmark with --max-concurrency) and the client keeps "
             f"{args.concurrency} outstanding; give --rate for open-loop arrivals")
        rate = math.inf
    elif args.rate is None:
        if not (timed or args.find_rate):
            raise InputError("--rate is required (a number or inf) unless --trace has arrival times or --find-rate is given"
                             if trace is None or timed else f"{args.trace} has no arrival times: give --rate")
        rate = math.inf if not args.find_rate else 1.0
    else:
        if args.find_rate:
            raise InputError("--find-rate searches the rate: drop --rate")
        rate = parse_rate(args.rate)
    return Traffic(rate_rps=rate, requests=args.requests, duration_s=args.duration, isl=isl, osl=osl,
                   arrival=args.arrival, burstiness=args.burstiness, trace=trace, concurrency=args.concurrency,
                   warmup=args.warmup, seed=args.seed)


def longest_request(traffic: Traffic) -> int:
    """Prompt + output tokens of the longest request the traffic can hold (the engine's
    max_model_len for the memory plan)."""
    if traffic.trace is not None:
        return int(np.max(traffic.trace.isl + traffic.trace.osl))
    if traffic.isl.kind == "fixed" and traffic.osl.kind == "fixed":
        return int(traffic.isl.a + traffic.osl.a)
    from sizer.sim.arrivals import generate

    n = int(min(traffic.expected_requests(), 1e6))
    wl = generate(Traffic(rate_rps=math.inf, requests=max(n, 1), isl=traffic.isl, osl=traffic.osl, seed=traffic.seed))
    return int(np.max(wl.isl + wl.osl))


def run(args) -> int:
    resolve_emit(args)
    if args.engine and str(args.engine).lower() == "none":
        args.engine = None  # generic continuous batching
    traffic = traffic_from_args(args)
    ttft = parse_slo(args.ttft_slo, "--ttft-slo") if args.ttft_slo else None
    tpot = parse_slo(args.tpot_slo, "--tpot-slo") if args.tpot_slo else None
    if args.find_rate and args.requests_out:
        raise InputError("--requests-out writes one simulation's requests: drop --find-rate")
    longest = longest_request(traffic)
    if wants_disagg(args):
        return run_simulate(args, traffic, ttft, tpot, longest)
    model, gpu, split, topo, profile = deployment_from_args(args, longest, "the longest request")
    dep = Deployment(model, gpu, split, engine=args.engine, weight_dtype=args.weight_dtype, kv_dtype=args.kv_dtype,
                     fraction=engine_fraction(args), max_num_seqs=args.max_num_seqs,
                     max_num_batched_tokens=args.max_num_batched_tokens, cuda_graphs=args.cuda_graphs,
                     topology=topo, profile=profile, context=longest, router=args.router,
                     prefix_caching=args.prefix_caching, reserve_full_isl=args.reserve_full_isl)
    head = {"model": model.name, "gpu": gpu.id, "split": split.to_json(), "engine": dep.engine or "none",
            "seed": args.seed}
    launch = emit_launch(args, model, split, batch=dep.max_num_seqs, context=longest, precision=dep.plan.precision,
                         max_num_batched_tokens=dep.max_num_batched_tokens,
                         gpus_per_node=topo.host_gpus if topo is not None else split.gpus,
                         memory_fraction=engine_fraction(args))
    start = time.perf_counter()
    if args.find_rate:
        search = search_rate(dep, traffic, ttft, tpot, args.percentile)
        wall = time.perf_counter() - start
        doc = {**head, **search.to_json(), "traffic": traffic.describe(), "deployment": dep.to_json()}
        if args.json:
            show_emit(launch, doc)
            emit_json(doc)
        else:
            _show_search(doc, search, wall)
            show_emit(launch)
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
        show_emit(launch, doc)
        emit_json(doc)
        return 0
    _show(doc, res, wall)
    show_emit(launch)
    return 0


def write_requests(path: str, res) -> None:
    t = res.table
    try:
        with open(path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["id", "arrival_s", "first_token_s", "finish_s", "input_tokens", "output_tokens",
                        "ttft_s", "e2e_s", "preemptions", "replica"])
            for i in range(len(t["arrival_s"])):
                a, ft, fin = t["arrival_s"][i], t["first_token_s"][i], t["finish_s"][i]
                w.writerow([i, f"{a:.6f}", f"{ft:.6f}", f"{fin:.6f}", int(t["input_tokens"][i]),
                            int(t["output_tokens"][i]), f"{ft - a:.6f}", f"{fin - a:.6f}",
                            int(t["preemptions"][i]), int(t["replica"][i])])
    except OSError as exc:
        raise InputError(f"--requests-out {path}: {exc.strerror}") from None


def _show(doc: dict, res, wall: float, title: str | None = None) -> None:
    d = res.deployment
    print(title or f"{doc['model']} on {doc['split']['tp'] * doc['split']['pp'] * doc['split']['dp']}x {doc['gpu']}, "
          f"{doc['split']['label']}, engine {d['engine'] if d['engine'] != 'none' else 'none (generic continuous batching)'}: "
          f"{res.requests} requests, {res.traffic}, seed {doc['seed']}")
    print(f"  {'':6} {'mean':>11} {'p50':>11} {'p90':>11} {'p99':>11} {'max':>11}")
    for label, key in METRICS:
        b = res.latency[key]
        print(f"  {label:6} " + " ".join(f"{fmt_seconds(b[k]):>11}" for k in ("mean", "p50", "p90", "p99", "max")))
    tp = res.throughput
    print(f"  throughput {tp['requests_per_s']:.3g} req/s, {tp['output_tok_s']:,.0f} output tok/s, "
          f"{tp['total_tok_s']:,.0f} total tok/s over {res.duration_s:.1f} s simulated")
    print(f"  batch mean {res.batch['mean']:.1f} (max {res.batch['max']:.0f}) per replica forward; KV use mean "
          f"{res.kv_utilization['mean']:.0%} (max {res.kv_utilization['max']:.0%}); preemptions {res.preemptions} "
          f"({res.preempted_requests} requests)")
    if res.goodput is not None:
        print(f"  goodput {res.goodput['requests_per_s']:.3g} req/s ({res.goodput['fraction']:.1%} of requests meet the SLOs)")
    verdict = {"stable": "stable: the engine keeps up with the arrivals",
               "saturated": "saturated: requests in the system grow through the run (arrivals outpace the engine)",
               "too short": "too short to tell: the run ends before the engine reaches a steady state",
               "closed loop": "closed loop: the client concurrency sets the load"}[res.verdict]
    if (res.stability or {}).get("reason") == "all at once":
        verdict = "saturated: every request arrives at t=0 (the queue only drains)"
    ratio = res.duration_s / wall if wall > 0 else float("inf")
    print(f"  verdict: {verdict}")
    print(f"  simulated {res.duration_s:.1f} s in {wall:.2f} s wall ({ratio:,.0f}x), {res.forwards:,} forwards")


def _show_search(doc: dict, search, wall: float) -> None:
    q = f"p{search.percentile:g}"
    slo = " and ".join(f"{q} {k.split('_')[0].upper()} <= {fmt_seconds(v)}" for k, v in search.slo.items() if v)
    print(f"{doc['model']} on {doc['gpu']}, {doc['split']['label']}: highest rate with {slo}")
    print(f"  {'rate':>10} {q + ' TTFT':>12} {q + ' TPOT':>12} {'served':>10}  verdict")
    for row in search.curve:
        mark = "meets" if row["meets"] else "misses"
        print(f"  {row['rate_rps']:>10.3g} {fmt_seconds(row[f'ttft_{q}_s']):>12} {fmt_seconds(row[f'tpot_{q}_s']):>12} "
              f"{row['throughput_rps']:>10.3g}  {row['verdict']}, {mark}")
    if search.max_rate_rps > 0:
        print(f"  max rate {search.max_rate_rps:.3g} req/s (estimate's saturated throughput, no SLO: "
              f"{search.steady_state_rps:.3g} req/s; limited by {search.limited_by}); {len(search.curve)} simulations in {wall:.1f} s")
