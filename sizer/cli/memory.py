"""`sizer memory`: per-GPU memory of a split, the KV bytes per token of each attention-layer
group, and the KV capacity the engine allocates and the number it prints at start-up."""

from sizer.output import emit_json, warn
from .common import add_model_args, engine_label, plan_from_args, positive_int, split_from_args
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.units import fmt_bytes


def register(sub) -> None:
    p = sub.add_parser("memory", help="per-GPU memory of a TP/PP/EP/DP split")
    add_model_args(p)
    p.add_argument("--batch", type=positive_int, default=1, help="concurrent sequences (default 1)")
    p.add_argument("--context", type=positive_int,
                   help="tokens per sequence (default: the model's maximum, capped at 131,072); "
                        "with an engine, its max model length")
    p.set_defaults(func=run)


def run(args) -> int:
    model, gpu = get_model(args.model), get_gpu(args.gpu)
    if args.context and model.max_position_embeddings and args.context > model.max_position_embeddings:
        warn(f"--context {args.context} exceeds {model.name}'s maximum of {model.max_position_embeddings}")
    plan = plan_from_args(args, model=model, gpu=gpu)
    doc = plan.to_json()
    doc.update(model=model.name, gpu=gpu.id, split=split_from_args(args).to_json(), engine=engine_label(args))
    if args.json:
        emit_json(doc)
        return 0
    print(render(plan, model.name, gpu, args))
    return 0


def _stages(plan, args) -> list[str]:
    """A line naming the layers per stage when PP leaves them unequal (the default partition)."""
    from sizer.model.catalog import get_model
    from sizer.model.split import stage_layers

    model = get_model(args.model)
    if args.pp < 2 or model.num_layers % args.pp == 0:
        return []
    counts = "/".join(str(len(r)) for r in stage_layers(model, args.pp))
    return [f"pipeline stages: {counts} layers (vLLM's partition; --even-pp asks for equal stages)"]


def render(plan, model_name, gpu, args) -> str:
    pg = plan.to_json()["per_gpu"]
    n = args.tp * args.pp * args.dp
    split = f"TP={args.tp} PP={args.pp} DP={args.dp} EP={args.ep} ({n} GPU{'s' if n > 1 else ''})"
    lines = [f"{model_name} on {gpu.id} - {split} - engine {plan.engine or 'none'}",
             f"params: {plan.params_total / 1e9:.2f}B total, {plan.params_active / 1e9:.2f}B active; "
             f"precision: weights {plan.precision['weights']}, experts {plan.precision['experts']}, "
             f"KV {plan.precision['kv_cache']}"] + _stages(plan, args) + ["",
             f"{'per GPU (most loaded)':<26}{'bytes':>16}{'':>4}{'share':>8}"]
    cap = pg["capacity_bytes"]
    for key, label in (("weights_bytes", "weights"), ("kv_cache_bytes", "KV cache"),
                       ("activation_bytes", "activations (peak)"), ("overhead_bytes", "runtime overhead"),
                       ("total_bytes", "total"), ("capacity_bytes", "GPU capacity")):
        lines.append(f"{label:<26}{fmt_bytes(pg[key]):>16}{'':>4}{pg[key] / cap:>8.1%}")
    lines += ["", f"{'KV per GPU, by attention kind':<34}{'layers':>7}{'bytes/token':>13}"
                  f"{'kept/sequence':>15}{'pool tokens':>14}"]
    for g in plan.kv_groups:
        lines.append(f"{g['label']:<34}{g['layers']:>7}{g['kv_bytes_per_token']:>13,.0f}"
                     f"{g['kv_tokens_per_sequence']:>15,}{g['engine_pool_tokens']:>14,}")
    lines.append(f"{'all layers':<34}{sum(g['layers'] for g in plan.kv_groups):>7}"
                 f"{plan.kv_bytes_per_token:>13,.0f}")
    lines += ["", f"KV rule: {plan.kv_rule}"]
    if plan.engine:
        lines.append(f"engine reports: {plan.kv_reported_as} = {plan.max_kv_tokens:,}")
    lines.append(f"holds: {plan.max_sequences:,} sequences of {plan.context:,} tokens at once")
    lines.append(verdict_line(plan))
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines)


def verdict_line(plan) -> str:
    """The verdict against the binding limit (the engine's budget, MemoryPlan.budget), not the
    raw capacity: a vLLM plan at 0.9 that misses by 3 GiB has 8 GiB of the GPU outside it."""
    asked = f"batch {plan.batch} x {plan.context:,} tokens" if not plan.engine else \
        f"batch {plan.batch}, max model length {plan.context:,}"
    if not plan.fits:
        # as the engine holds them (vLLM: the one in prefill keeps its whole chunk)
        need = (plan.budget_fixed_bytes + plan.kv_bytes_first_sequence
                + plan.kv_bytes_per_sequence * (max(plan.batch, 1) - 1))
        fixed = "" if plan.budget_fixed_bytes <= plan.budget_bytes else \
            f"; weights, activations and overhead alone take {fmt_bytes(plan.budget_fixed_bytes)}"
        return f"verdict: DOES NOT FIT ({asked}): {plan.shortfall(need)}{fixed}"
    outside = plan.capacity_bytes - plan.total_bytes
    if plan.engine:  # what the engine keeps out of its budget (SGLang: activations, CUDA graphs)
        return (f"verdict: fits ({asked}); the KV cache takes what the {plan.budget} leaves; "
                f"{fmt_bytes(max(plan.capacity_bytes - plan.budget_bytes, 0.0))} of the GPU is outside "
                "the budget (not free for more KV)")
    return f"verdict: fits ({asked}); headroom {fmt_bytes(outside)} of the {plan.budget}"
