"""What FP8 would give: the one line `sizer recommend` adds when it searched the checkpoint's own
precision ("fp8 weights+KV: TP1 PP2 DP4, +87% tok/s per GPU; pass --weight-dtype fp8 --kv-dtype
fp8").

Why: the answer stays in the checkpoint's precision unless the user asks for another (serving a
bf16 checkpoint in fp8 is a quantization decision, not a sizing one), but on a GPU with FP8
tensor cores (an `fp8` peak in data/gpus.json: Hopper, Ada, Blackwell, MI300X) FP8 weights halve
the bytes a decode step streams and an FP8 KV cache doubles the sequences that fit, so it is
often the largest lever there is. The recommender searches the same splits once more in FP8
(sizer/plan/recommend.py) and this module words the comparison, by the same objective.

On an NVIDIA GPU with FP4 tensor cores (an `fp4` peak: Blackwell B200/B300/GB200/GB300, RTX PRO
6000) NVFP4 weights (W4A4, sizer/model/precision.py) quarter a 16-bit checkpoint's weight bytes
and run the GEMMs at the FP4 rate, so the search runs once more in nvfp4 weights with an fp8 KV
cache (TensorRT-LLM's and vLLM's NVFP4 checkpoints pair them; nvidia/DeepSeek-R1-FP4 does), and
the line names the better of the two first. NVFP4 is NVIDIA's format: AMD's FP4 peak (MI355X)
serves MXFP4, which sizer's `fp4` prices weight-only, so no nvfp4 line there.
"""

SIXTEEN_BIT = ("bf16", "fp16", "fp32")


def fp8_alternative(gpu, precision: dict) -> tuple | None:
    """(weight_dtype, kv_dtype) to search: fp8 weights when the checkpoint's weights and experts
    are 16-bit (None: keep the checkpoint's, e.g. DeepSeek-V3's own fp8 or gpt-oss's MXFP4
    experts), fp8 KV when its KV cache is 16-bit. None when the GPU has no FP8 tensor cores or
    neither would change (precision: MemoryPlan.precision)."""
    if not gpu.peak_flops_per_s.get("fp8"):
        return None
    wd = "fp8" if precision["weights"] in SIXTEEN_BIT and precision["experts"] in SIXTEEN_BIT else None
    kd = "fp8" if precision["kv_cache"] in SIXTEEN_BIT else precision["kv_cache"]
    if wd is None and kd == precision["kv_cache"]:
        return None
    return wd, kd


def nvfp4_alternative(gpu, precision: dict) -> tuple | None:
    """(nvfp4, kv_dtype) on an NVIDIA GPU with FP4 tensor cores when the checkpoint's weights and
    experts are wider than 4 bits (16-bit or fp8 / int8); the KV cache as fp8_alternative."""
    if gpu.vendor != "NVIDIA" or not gpu.peak_flops_per_s.get("fp4"):
        return None
    if not all(precision[k] in SIXTEEN_BIT + ("fp8", "int8") for k in ("weights", "experts")):
        return None
    return "nvfp4", "fp8" if precision["kv_cache"] in SIXTEEN_BIT else precision["kv_cache"]


def precision_alternatives(gpu, precision: dict) -> list:
    """Every (weight_dtype, kv_dtype) the precision line weighs on this GPU (fp8, then nvfp4)."""
    return [a for a in (fp8_alternative(gpu, precision), nvfp4_alternative(gpu, precision)) if a]


def combine_hints(hints: list) -> dict | None:
    """One precision line from the alternatives' hints: the largest gain first, the others after
    it ("Also ..."); `alternatives` keeps every hint's numbers (best first)."""
    # an alternative that changes nothing by the objective (under half a percent) is no advice
    hints = [h for h in hints if h.get("gain") is None or abs(h["gain"]) >= 0.005]
    if not hints:
        return None
    ranked = sorted(hints, key=lambda h: -(h.get("gain") if h.get("gain") is not None else -1e9))
    best = dict(ranked[0])
    best["text"] = ". Also ".join(h["text"] for h in ranked)
    best["alternatives"] = ranked
    return best


def alternative_words(alt: tuple) -> tuple[str, str]:
    """('fp8 weights+KV', '--weight-dtype fp8 --kv-dtype fp8') for a (weight_dtype, kv_dtype)."""
    wd, kd = alt
    if wd and kd == "fp8":
        what = f"{wd} weights+KV" if wd == "fp8" else f"{wd} weights + fp8 KV"
    else:
        what = f"{wd} weights" if wd else "fp8 KV"
    flags = " ".join(f for f, on in ((f"--weight-dtype {wd}", wd), ("--kv-dtype fp8", kd == "fp8")) if on)
    return what, flags


def describe_alternative(best, winner, alt: tuple, objective: str) -> dict:
    """The hint: {"weight_dtype", "kv_dtype", "flags", "text", and the best fp8 candidate's numbers
    (None when nothing fits or meets the targets in fp8)}, compared with the winner by the
    objective."""
    wd, kd = alt
    what, flags = alternative_words(alt)
    doc = {"weight_dtype": wd or winner.weight_dtype, "kv_dtype": kd, "flags": flags}
    if best is None or (winner.meets_targets and not best.meets_targets):
        return {**doc, "label": None, "text": f"{what}: no split fits and meets the targets either ({flags})"}
    # gain: how much better by the objective; the text gives the quantity's own signed change
    if objective == "latency":
        gain = winner.tpot_s / best.tpot_s - 1
        number = (f"TPOT {best.tpot_s * 1e3:.1f} ms vs {winner.tpot_s * 1e3:.1f} ms "
                  f"({best.tpot_s / winner.tpot_s - 1:+.0%})")
    elif objective == "cost" and best.cost_per_mtok is not None:
        gain = winner.cost_per_mtok / best.cost_per_mtok - 1
        number = (f"${best.cost_per_mtok:.3f} vs ${winner.cost_per_mtok:.3f} per million tokens "
                  f"({best.cost_per_mtok / winner.cost_per_mtok - 1:+.0%})")
    else:
        gain = best.output_tok_s_per_gpu / winner.output_tok_s_per_gpu - 1
        number = (f"{gain:+.0%} tok/s per GPU ({best.output_tok_s_per_gpu:,.0f} vs "
                  f"{winner.output_tok_s_per_gpu:,.0f})")
    meets = " and meets the targets" if best.meets_targets and not winner.meets_targets else ""
    text = f"{what}: {best.label} at batch {best.batch} per replica, {number}{meets}; pass {flags}"
    return {**doc, "label": best.label, "batch": best.batch, "tpot_s": best.tpot_s,
            "ttft_s": best.ttft_s, "output_tok_s_per_gpu": best.output_tok_s_per_gpu,
            "gain": gain, "text": text}
