"""`sizer recommend --rate R`: rate-driven capacity planning (issue #13), the recommend command's
second face. Its flags (traffic and percentile SLOs, as `sizer simulate` names them), the path
from flags to sizer/plan/capacity_plan.py, and the progress line; the report (a table per GPU
type and one verdict sentence, or one JSON document) is sizer/cli/capacity_report.py."""

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
from sizer.plan.capacity_cost import compare
from sizer.plan.capacity_plan import plan
from sizer.plan.recommend import _weight_dtypes
from sizer.sim import Traffic
from sizer.sim.arrivals import ARRIVALS
from .capacity_report import document, render
from .simulate import lengths_from_args
from .common import (bounded_float, check_profile_device, emit_launch, engine_fraction, gpu_count, non_negative_int,
                     nonempty, positive_int, request_rate, show_emit, topology_from_args, uneven_pp_from_args)

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
    trace, isl, osl = lengths_from_args(args)
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
