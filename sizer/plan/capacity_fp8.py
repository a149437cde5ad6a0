"""The precision line of `sizer recommend --rate` (trial 2 item 3): what FP8 weights and KV (and,
on NVIDIA FP4 tensor cores, NVFP4 weights with an FP8 KV cache) would need for the same traffic,
beside an answer planned in the checkpoint's own precision.

Why: FP8 is often the largest lever on a GPU count (70B at 100 req/s, P99 TTFT 2 s / TPOT 50 ms:
56 H100s in bf16, 32 in fp8 in the trial), and a purchase planned without it is misleading;
`recommend --gpus N` already says so (sizer/plan/alternatives.py words that line). The answer
stays in the checkpoint's precision (a quantization is the user's decision, not a sizing one),
so FP8 is a hint, costed cheaply:
1. which to try: alternatives.precision_alternatives (fp8 weights where the checkpoint is 16-bit,
   fp8 KV where its cache is; nvfp4 weights on NVIDIA FP4 tensor cores), from the checkpoint's
   own formats (cost/memory.resolve_precision); each is costed as below, and the line names the
   one that needs the fewest GPUs first ("Also ..." the other, as `recommend --gpus N` does);
2. the steady-state bound of every FP8 shape (sizer/plan/shapes.py) gives the fewest GPUs FP8
   could need (with BOUND_SLACK, a lower bound); when that is not below the answer's GPUs (or,
   with no answer, is above the GPUs allowed) the line says so and nothing is simulated;
3. otherwise the capacity search (sizer/plan/capacity.py) runs on the FP8 shapes, up to one GPU
   fewer than the answer, with FP8_FINALISTS shapes at most and no headroom bracket, so the
   line's count is confirmed on the same seeds as the answer.
With --gpus N only the bound is compared (the most requests/s any FP8 split of the N GPUs
could carry), not simulated.
"""

from sizer.cost.memory import resolve_precision

from . import capacity as cap
from .alternatives import alternative_words, precision_alternatives
from .shapes import replicas_at_least

FP8_FINALISTS = 2  # FP8 shapes simulated at most (the bound's best is usually the answer)


def checkpoint_precision(model) -> dict:
    """The checkpoint's own formats, as MemoryPlan.precision names them."""
    p = resolve_precision(model)
    return {"weights": p.linear, "experts": p.experts, "kv_cache": p.kv}


def to_try(model, gpu, weight_dtypes, kv_dtypes) -> list:
    """The (weight_dtype, kv_dtype) pairs of the hint, [] when the user chose a precision, the GPU
    has no FP8 (or FP4) tensor cores, or they would change nothing."""
    if list(weight_dtypes) != [None] or list(kv_dtypes) != ["auto"]:
        return []
    return precision_alternatives(gpu, checkpoint_precision(model))


def combine(hints: list, key) -> dict | None:
    """One line from the alternatives' hints, the best by `key` first ("Also ..." the others);
    `alternatives` keeps every hint (best first)."""
    if not hints:
        return None
    ranked = sorted(hints, key=key)
    best = dict(ranked[0])
    if len(ranked) > 1:
        best["text"] = ". Also ".join(h["text"] for h in ranked)
        best["alternatives"] = ranked
    return best


def fewest_first(h: dict) -> tuple:
    """Rate mode: a confirmed count first, fewest GPUs; unconfirmed ones by the lowest bound. A
    tie keeps the order tried (fp8 before nvfp4: the smaller quantization step)."""
    if h["gpus"] is not None:
        return (0, h["gpus"])
    return (1, h["lower_bound_gpus"] or float("inf"))


def most_first(h: dict) -> tuple:
    """--gpus N: the highest bound rate first."""
    return (-(h["bound_rps"] or 0.0),)


def rate_hint(planner, shapes: list, alt: tuple, rate_rps: float, *, step_of, max_gpus: int, winner) -> dict:
    """The hint of `recommend --rate` without --gpus (module docstring, 2-3): `shapes` are the FP8
    shapes that fit, `winner` the answer's capacity.Sized (None when nothing serves R)."""
    what, flags = alternative_words(alt)
    doc = {"weight_dtype": alt[0], "kv_dtype": alt[1], "flags": flags, "gpus": None, "label": None,
           "replicas": None, "lower_bound_gpus": None, "simulated": False, "simulations": 0, "fewer_gpus": None}
    if not shapes:
        return {**doc, "text": f"{what}: no split fits and meets the targets either ({flags})"}
    lower = min(replicas_at_least(s, rate_rps, step_of(s)) * s.gpus for s in shapes)
    doc["lower_bound_gpus"] = lower
    limit = max_gpus if winner is None else min(max_gpus, winner.gpus - 1)
    if lower > limit:
        if winner is not None and lower >= winner.gpus:
            text = (f"{what}: no fewer GPUs: its steady-state bound needs at least {lower} (vs {winner.gpus} here); "
                    "not simulated")
        else:
            text = (f"{what}: not enough either: its steady-state bound needs at least {lower} GPUs, more than the "
                    f"{max_gpus} allowed; not simulated")
        return {**doc, "text": text}
    before = planner.simulations
    results = cap.plan_capacity(planner, shapes, rate_rps, step_of=step_of, max_gpus=limit, finalists=FP8_FINALISTS)
    doc.update(simulated=True, simulations=planner.simulations - before)
    best = next((r for r in results if r.status == "meets"), None)
    if best is None:
        tail = (f"no deployment of up to {limit} GPUs (fewer than the {winner.gpus} here) meets in simulation"
                if winner is not None else f"it does not serve {rate_rps:g} req/s on up to {max_gpus} GPUs either")
        return {**doc, "text": f"{what}: {tail} (its bound: at least {lower})"}
    label = best.shape.deployment(best.replicas).label()
    doc.update(gpus=best.gpus, label=label, replicas=best.replicas)
    seeds = f"on all {len(best.runs)} seeds" if len(best.runs) > 1 else "on the trace's arrivals"
    if winner is None:
        return {**doc, "text": f"{what}: {best.gpus} GPUs ({label}) serve {rate_rps:g} req/s {seeds}; pass {flags}"}
    saved = winner.gpus - best.gpus
    doc["fewer_gpus"] = saved
    return {**doc, "text": f"{what}: {best.gpus} GPUs ({label}) serve it {seeds}, {saved} fewer "
                           f"({saved / winner.gpus:.0%}); pass {flags}"}


def gpus_hint(shapes: list, bf16_shapes: list, alt: tuple, gpus: int) -> dict:
    """The hint of `recommend --rate --gpus N`: the most requests/s any FP8 split of the N GPUs
    carries by the steady-state bound, beside the same for the checkpoint's precision; not
    simulated (module docstring)."""
    what, flags = alternative_words(alt)
    doc = {"weight_dtype": alt[0], "kv_dtype": alt[1], "flags": flags, "simulated": False}
    if not shapes:
        return {**doc, "bound_rps": None, "text": f"{what}: no split of {gpus} GPUs fits and meets the targets either"}

    def top(ss):
        return max(((s.bound_rps * (gpus // s.gpus), s) for s in ss), key=lambda x: x[0], default=(0.0, None))
    rate, s = top(shapes)
    now, _ = top(bf16_shapes)
    vs = f" vs {now:.3g} in the checkpoint's precision ({rate / now - 1:+.0%})" if now else ""
    label = s.deployment(gpus // s.gpus).label()
    return {**doc, "bound_rps": rate, "label": label,
            "text": f"{what}: up to {rate:.3g} req/s by the steady-state bound ({label}){vs}; not simulated; pass {flags}"}
