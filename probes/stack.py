"""The stack validate runs: a model preset scaled down, and which strategies a world can host.

The preset (sizer.model.catalog) keeps its shape ratios -- GQA grouping, experts and top-k, FFN width
relative to hidden -- at a hidden size small enough for the local devices; the result is an HF
config.json-style dict, so sizer's time model reads exactly the model that runs. `plan` turns
a world size into Layouts, or into a reason per strategy why the world cannot host it.
"""

from sizer.errors import InputError

from .block import Dims, Layout

DEFAULT_MODEL = "mixtral-8x7b"
TORCH_DTYPE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MAX_EXPERTS = 32  # expert ids ride in the dispatched rows: exact below 256 in bf16
# Mixtral-8x7B's shape ratios (official config.json), used when the preset files are absent.
BUILTIN = {"model_type": "mixtral", "hidden_size": 4096, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
           "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000}


def _round_to(x: float, step: int) -> int:
    return max(step, int(round(x / step)) * step)


def load_spec(name: str):
    """The preset's ModelSpec (sizer.model.catalog), or the built-in Mixtral shape when presets are
    missing and the default was asked for."""
    from sizer.model.catalog import get_model, model_from_config

    try:
        return get_model(name)
    except InputError:
        if name != DEFAULT_MODEL:
            raise
        return model_from_config(BUILTIN, name=DEFAULT_MODEL, path="built-in")


def scaled_config(spec, hidden: int, layers: int, dtype: str, seq: int) -> tuple[dict, list]:
    """An HF config.json-style dict of the stack that runs: the preset with hidden scaled to
    `hidden` (heads halved, with KV heads, until head_dim >= 16; FFN widths scaled and rounded to
    64), `layers` layers, every layer MoE when the preset has experts. Returns (config, notes)."""
    if hidden < 16 or hidden % 2:
        raise InputError(f"--hidden must be an even number >= 16, got {hidden}")
    notes = []
    heads, kv = spec.num_heads, spec.num_kv_heads
    while hidden // heads < 16 and heads % 2 == 0 and heads > 1:
        heads //= 2
        kv = kv // 2 if kv % 2 == 0 else kv
    kv = min(kv, heads)
    if hidden % heads:
        raise InputError(f"--hidden {hidden} does not divide into {heads} attention heads")
    head_dim = hidden // heads
    if head_dim % 2:
        raise InputError(f"head_dim {head_dim} (= hidden {hidden} / {heads} heads) must be even for rotary")
    ratio = hidden / spec.hidden_size
    cfg = {"model_type": "mixtral" if spec.is_moe else "llama", "hidden_size": hidden,
           "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
           "head_dim": head_dim, "vocab_size": spec.vocab_size, "torch_dtype": TORCH_DTYPE[dtype],
           "tie_word_embeddings": False, "max_position_embeddings": seq}
    if spec.is_moe:
        experts = min(spec.num_experts, MAX_EXPERTS)
        if experts < spec.num_experts:
            notes.append(f"experts {spec.num_experts} -> {experts}")
        width = _round_to(spec.moe_intermediate_size * ratio, 64)
        cfg.update(num_local_experts=experts, num_experts_per_tok=min(spec.experts_per_token, experts),
                   moe_intermediate_size=width, intermediate_size=width)
        if len(spec.moe_layers) < spec.num_layers:
            notes.append("dense leading/interleaved layers made MoE")
        if spec.num_shared_experts or spec.shared_expert_intermediate_size:
            notes.append("shared experts dropped")
    else:
        cfg["intermediate_size"] = _round_to(spec.intermediate_size * ratio, 64)
    if spec.is_mla:
        notes.append("MLA attention run as GQA")
    if spec.sliding_layers:
        notes.append("sliding-window layers run with full attention")
    if spec.qkv_bias or spec.mlp_bias or spec.qk_norm:
        notes.append("biases / q-k norms dropped")
    notes.insert(0, f"hidden {spec.hidden_size} -> {hidden}, heads {spec.num_heads}/{spec.num_kv_heads}"
                    f" -> {heads}/{kv}, layers {spec.num_layers} -> {layers}")
    return cfg, notes


def dims_of(model) -> Dims:
    return Dims(hidden=model.hidden_size, layers=model.num_layers, heads=model.num_heads,
                kv_heads=model.num_kv_heads, head_dim=model.head_dim,
                inter=model.intermediate_size, experts=model.num_experts,
                top_k=model.experts_per_token, moe_inter=model.moe_intermediate_size,
                moe_layers=tuple(model.moe_layers))


# ----- which strategies the world hosts -----------------------------------------------------

def _micro(batch: int, pp: int) -> int:
    """Micro-batches: the largest divisor of the batch up to 2 x stages."""
    return max(d for d in range(1, min(batch, 2 * pp) + 1) if batch % d == 0)


def _tp_reason(d: Dims, tp: int):
    if d.heads % tp:
        return f"{d.heads} attention heads do not divide by TP={tp}"
    if d.kv_heads % tp and tp % d.kv_heads:
        return f"{d.kv_heads} KV heads and TP={tp}: one must divide the other"
    width = d.moe_inter if d.moe_layers else d.inter
    if width % tp or (d.inter and d.inter % tp):
        return f"FFN width {width} does not divide by TP={tp}"
    return None


def plan(d: Dims, world: int, batch: int, wanted, inject=None) -> tuple[list, list]:
    """(layouts to run, skipped [{strategy, reason}]) for this world size. One rank hosts no
    strategy (each is skipped with the reason) and runs the 'single' layout: the unsharded
    stack, checked against the reference and timed against sizer's prediction."""
    runs, skipped = [], []
    for s in wanted:
        reason, lay = None, None
        if world < 2:
            reason = f"needs at least 2 ranks, the world has {world}"
        elif s == "dp":
            reason = batch % world and f"batch {batch} does not divide over {world} ranks"
            lay = Layout("dp", dp=world, inject=inject)
        elif s == "tp":
            reason = _tp_reason(d, world)
            lay = Layout("tp", tp=world, inject=inject)
        elif s == "pp":
            reason = d.layers % world and f"{d.layers} layers do not divide into {world} stages"
            lay = Layout("pp", pp=world, micro=_micro(batch, world), inject=inject)
        elif s == "ep":
            if not d.experts:
                reason = "the model is dense: EP needs a mixture-of-experts model"
            elif d.experts % world:
                reason = f"{d.experts} experts do not divide over EP={world}"
            elif batch % world:
                reason = f"batch {batch} does not divide over {world} ranks (EP runs attention data-parallel)"
            lay = Layout("ep", dp=world, ep=world, inject=inject)
        elif s == "tp+pp":
            if world < 4 or world % 2:
                reason = f"needs an even world of at least 4 ranks (TP2 x PP2), the world has {world}"
            else:
                pp = world // 2
                reason = _tp_reason(d, 2) or (d.layers % pp and f"{d.layers} layers do not divide into {pp} stages")
                lay = Layout("tp+pp", tp=2, pp=pp, micro=_micro(batch, pp), inject=inject)
        if reason:
            skipped.append({"strategy": s, "world_size": world, "reason": reason})
        else:
            runs.append(lay)
    if world == 1:  # what one device can run: the stack itself, timed against its prediction
        runs.append(Layout("single", inject=inject))
    return runs, skipped
