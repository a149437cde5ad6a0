"""`sizer estimate`: TTFT, TPOT, throughput and memory of a deployment."""

from sizer.output import emit_json, warn
from .common import (add_emit_arg, add_model_args, bounded_float, deployment_from_args,
                     emit_launch, engine_fraction, engine_label, positive_int, resolve_emit, show_emit)
from sizer.cost.engines import get_engine, scheduler_limits
from sizer.cost.estimate import estimate
from .common import add_topology_args
from .disagg import add_pool_args, run_estimate, wants_disagg
from sizer.units import fmt_seconds


def register(sub) -> None:
    p = sub.add_parser("estimate", help="TTFT, TPOT and throughput of a deployment")
    add_model_args(p)
    add_topology_args(p)
    p.add_argument("--isl", type=positive_int, default=1024, help="input tokens per request (default 1024)")
    p.add_argument("--osl", type=positive_int, default=256, help="output tokens per request (default 256)")
    p.add_argument("--batch", type=positive_int, help="sequences per replica (static batch)")
    p.add_argument("--concurrency", type=positive_int, help="concurrent requests over the deployment")
    add_emit_arg(p)
    g = p.add_argument_group("wide expert parallelism (MoE)")
    g.add_argument("--ep-a2a", default="nccl", metavar="A",
                   help="MoE dispatch/combine: nccl (all-to-all), deepep (normal kernels), deepep-ll "
                        "(low-latency), auto (ll for decode, normal for prefill; default nccl)")
    g.add_argument("--moe-imbalance", type=bounded_float(1.0, 64.0), default=1.0, metavar="X",
                   help="busiest expert rank's load over the mean (default 1: uniform routing)")
    add_pool_args(p)
    g = p.add_argument_group("speculative decoding")
    g.add_argument("--speculative", metavar="M", help="mtp, eagle or draft (default: none)")
    g.add_argument("--num-speculative-tokens", type=positive_int, metavar="K",
                   help="drafted tokens per step (default: mtp 1, eagle 3, draft 4)")
    g.add_argument("--acceptance", type=bounded_float(0.0, 1.0), metavar="A",
                   help="acceptance rate per drafted token (default: mtp 0.85, eagle 0.75, draft 0.6)")
    g.add_argument("--draft-model", metavar="M", help="the draft model of --speculative draft")
    p.set_defaults(func=run)


def run(args) -> int:
    resolve_emit(args)
    if wants_disagg(args):
        return run_estimate(args)
    from sizer.cost.moe_comm import check_a2a
    from sizer.cost.speculative import speculative_config
    from sizer.errors import InputError
    from sizer.model.catalog import get_model

    model, gpu, split, topo, profile = deployment_from_args(args, args.isl + args.osl, "isl + osl")
    a2a = check_a2a(args.ep_a2a)
    if split.ep < 2 and (a2a != "nccl" or args.moe_imbalance != 1.0):
        raise InputError("--ep-a2a / --moe-imbalance need expert parallelism (--ep > 1)")
    draft = get_model(args.draft_model) if args.draft_model else None
    spec = speculative_config(model, args.speculative, args.num_speculative_tokens,
                              args.acceptance, draft)
    est = estimate(model, gpu, split, isl=args.isl, osl=args.osl, batch=args.batch,
                   concurrency=args.concurrency, weight_dtype=args.weight_dtype, kv_dtype=args.kv_dtype,
                   engine=args.engine, fraction=engine_fraction(args), max_batch=args.max_num_seqs,
                   max_num_tokens=args.max_num_batched_tokens,
                   cuda_graphs=args.cuda_graphs, topology=topo, profile=profile,
                   speculative=spec, ep_a2a=a2a, moe_imbalance=args.moe_imbalance)
    engine = engine_label(args)
    if not est.memory["per_gpu"]["fits"] and not (est.spread and est.spread.get("running_batch")):
        warn(f"{est.batch} sequences of {args.isl + args.osl} tokens per replica do not fit: room for "
             f"{est.memory['max_sequences']} ({'the engine would queue the rest' if engine != 'none' else 'see memory'}); "
             "the timing below is for the batch as given")
    tokens = args.max_num_batched_tokens or \
        scheduler_limits(get_engine(args.engine), gpu)[1]
    launch = emit_launch(args, model, split, batch=est.batch, context=est.memory["context"],
                         precision=est.memory["precision"], max_num_batched_tokens=tokens,
                         gpus_per_node=topo.host_gpus if topo is not None else split.gpus,
                         memory_fraction=engine_fraction(args), speculative=spec)
    doc = est.to_json()
    doc.update(model=model.name, gpu=gpu.id, split=split.to_json(),
               isl=args.isl, osl=args.osl, engine=engine)
    if args.json:
        show_emit(launch, doc)
        emit_json(doc)
        return 0
    b = est.breakdown
    print(f"{model.name} on {split.gpus}x {gpu.id}, {split.label()}, engine {engine}: isl {args.isl}, osl {args.osl}, "
          f"{'static batch' if est.mode == 'static' else 'continuous batching, concurrency'} "
          f"{est.batch} per replica" + (" running" if est.spread and est.spread.get("running_batch") else ""))
    if est.spread and est.spread.get("running_batch"):
        sp = est.spread
        print(f"  {sp['running_batch'] + sp['waiting_batch']:,} requests per replica, the engine holds "
              f"{sp['running_batch']:,} at once (its KV room and --max-num-seqs): each request waits "
              f"{fmt_seconds(sp['queue_s'])} for a slot (a closed loop; TTFT includes it; `sizer simulate` "
              "shows the transient)")
    if est.spread and est.spread["rest_replicas"]:
        sp = est.spread
        print(f"  {sp['concurrency']} request{'s' if sp['concurrency'] != 1 else ''} over {split.dp} replicas: {sp['busy_replicas']} hold "
              f"{sp['busy_batch']}, {sp['rest_replicas']} hold {sp['rest_batch']}"
              f"{' (idle)' if sp['rest_batch'] == 0 else ''}; throughput sums the replicas, "
              "latency is the busier ones'")
    print(f"  TTFT  {fmt_seconds(est.ttft_s):>12}   (compute {fmt_seconds(b['prefill']['compute_s'])}, "
          f"comm {fmt_seconds(b['prefill']['comm_s'])}, bubble {fmt_seconds(b['prefill']['bubble_s'])}"
          + (f", waiting to start {fmt_seconds(b['prefill']['wait_s'])}" if b['prefill'].get('wait_s') else "")
          + (f", queued for a slot {fmt_seconds(b['prefill']['queue_s'])}" if b['prefill'].get('queue_s') else "")
          + ")")
    # compute + comm add up to TPOT over the stages; the bubble is each GPU's idle share of it
    idle = (f"; each GPU idle {fmt_seconds(b['decode']['bubble_s'])} of it (pipeline bubble)"
            if split.pp > 1 else f", bubble {fmt_seconds(b['decode']['bubble_s'])}")
    print(f"  TPOT  {fmt_seconds(est.tpot_s):>12}   (compute {fmt_seconds(b['decode']['compute_s'])}, "
          f"comm {fmt_seconds(b['decode']['comm_s'])}{idle})")
    print(f"  e2e   {fmt_seconds(est.e2e_s):>12}")
    print(f"  output {est.output_tok_s:,.0f} tok/s total, {est.output_tok_s_per_gpu:,.0f} tok/s per GPU")
    if est.pipeline:
        print(f"  pipeline bubble: prefill {est.pipeline['bubble_fraction_prefill']:.1%}, "
              f"decode {est.pipeline['bubble_fraction_decode']:.1%}")
    if est.speculative:
        sp = est.speculative
        print(f"  speculative {sp['method']}: k={sp['num_speculative_tokens']}, acceptance "
              f"{sp['acceptance']:.2f} -> {sp['tokens_per_step']:.2f} tokens/step; verify "
              f"{fmt_seconds(sp['verify_step_s'])} + draft {fmt_seconds(sp['draft_s'])} per step; "
              f"TPOT {sp['speedup_tpot']:.2f}x vs {fmt_seconds(sp['tpot_without_s'])} without")
        if sp["method"] == "eagle":
            _eagle_line(args.model)
    print(_render_mem(est.memory, model.name, gpu, split))
    show_emit(launch)
    return 0


def _eagle_line(model_arg) -> None:
    """Which EAGLE-3 head the estimate assumes: the target's published one, or none known."""
    from sizer.cost.speculative import EAGLE3_WHERE, eagle_head
    from sizer.plan.emit import model_argument

    repo = model_argument(model_arg)[0]
    head = eagle_head(repo)
    print(f"  EAGLE-3 head: {head} (published for {repo})" if head else
          f"  EAGLE-3 head: needs one trained for {repo}; sizer knows none ({EAGLE3_WHERE})")


def _render_mem(mem: dict, name, gpu, split) -> str:
    from sizer.units import fmt_bytes

    pg = mem["per_gpu"]
    verdict = "fits" if pg["fits"] else "DOES NOT FIT"
    return (f"  memory per GPU: weights {fmt_bytes(pg['weights_bytes'])}, KV {fmt_bytes(pg['kv_cache_bytes'])}, "
            f"activations {fmt_bytes(pg['activation_bytes'])}, overhead {fmt_bytes(pg['overhead_bytes'])}; "
            f"total {fmt_bytes(pg['total_bytes'])} of the {fmt_bytes(pg['capacity_bytes'])} GPU; "
            f"{mem['budget']} ({verdict})")
