"""`sizer step`: one forward step on the slowest rank, op by op."""

from sizer.output import emit_json
from .common import add_model_args, deployment_from_args, engine_label, positive_int
from sizer.errors import InputError
from sizer.cost.step import step_time
from .common import add_topology_args
from sizer.units import fmt_seconds


def register(sub) -> None:
    p = sub.add_parser("step", help="time of one prefill or decode step on the slowest rank")
    add_model_args(p, engine_memory=False)  # --engine is named; KV sizing flags cannot change a step
    add_topology_args(p)
    p.add_argument("--phase", choices=("prefill", "decode"), default="decode",
                   help="prefill (B prompts of --seq tokens) or decode (B sequences, one new token "
                        "each, at --context tokens of KV); default decode")
    p.add_argument("--batch", type=positive_int, default=1, help="sequences in the step (default 1)")
    p.add_argument("--seq", type=positive_int, help="prompt tokens per sequence (prefill)")
    p.add_argument("--context", type=positive_int, help="KV length per sequence (decode)")
    p.add_argument("--sequence-parallel", action="store_true", help="TP with reduce-scatter + all-gather")
    p.add_argument("--overlap", action="store_true", help="overlap communication with compute")
    p.set_defaults(func=run)


def run(args) -> int:
    length = args.seq if args.phase == "prefill" else args.context
    if length is None:
        raise InputError("--phase prefill needs --seq" if args.phase == "prefill" else
                         "--phase decode (the default) needs --context (or use --phase prefill --seq N)")
    engine = engine_label(args)  # an unknown engine is an error here too
    model, gpu, split, topo, profile = deployment_from_args(args, length, "a sequence")
    res = step_time(model, gpu, split, phase=args.phase, batch=args.batch, seq_len=args.seq,
                    context_len=args.context, weight_dtype=args.weight_dtype, kv_dtype=args.kv_dtype,
                    cuda_graphs=args.cuda_graphs, topology=topo, profile=profile,
                    sequence_parallel=args.sequence_parallel, overlap=args.overlap,
                    engine=None if engine == "none" else engine)
    doc = res.to_json()
    doc.update(model=model.name, gpu=gpu.id, split=split.to_json(),
               batch=args.batch, profile=args.profile, engine=engine)
    if args.json:
        emit_json(doc)
        return 0
    seqs = f"{args.batch} sequence{'s' if args.batch > 1 else ''}"
    what = f"prefill {args.batch} x {args.seq} tokens" if args.phase == "prefill" else \
        f"decode {seqs} at {args.context} tokens of context"
    print(f"{model.name} on {gpu.id}, {split.label()}, engine {engine}: {what} (stage {res.stage} of {split.pp})")
    print(f"{'op':<30}{'kernels':>8}{'time':>14}{'share':>8}{'GFLOP':>14}{'MB':>14}  bound")
    total = float(res.time_s)
    ops_sum = sum(float(o.time_s) for o in res.ops)  # shares of the op times (= total unless overlapped)
    for o in sorted(res.ops, key=lambda o: -float(o.time_s)):
        print(f"{o.name:<30}{o.count:>8}{fmt_seconds(float(o.time_s)):>14}{float(o.time_s) / ops_sum:>8.1%}"
              f" {float(o.flops) / 1e9:>13,.1f} {float(o.bytes) / 1e6:>13,.1f}  {o.bound}")
    print(f"step {fmt_seconds(total)} = compute {fmt_seconds(float(res.compute_s))} + "
          f"communication {fmt_seconds(float(res.comm_s))}" + (" (overlapped)" if args.overlap else ""))
    return 0
