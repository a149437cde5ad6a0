"""What FP8 would give: the one line `sizer recommend` adds when it searched the checkpoint's own
precision ("fp8 weights+KV: TP1 PP2 DP4, +87% tok/s per GPU; pass --weight-dtype fp8 --kv-dtype
fp8").

Why: the answer stays in the checkpoint's precision unless the user asks for another (serving a
bf16 checkpoint in fp8 is a quantization decision, not a sizing one), but on a GPU with FP8
tensor cores (an `fp8` peak in data/gpus.json: Hopper, Ada, Blackwell, MI300X) FP8 weights halve
the bytes a decode step streams and an FP8 KV cache doubles the sequences that fit, so it is
often the largest lever there is. The recommender searches the same splits once more in FP8
(sizer/plan/recommend.py) and this module words the comparison, by the same objective.
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


def describe_alternative(best, winner, alt: tuple, objective: str) -> dict:
    """The hint: {"weight_dtype", "kv_dtype", "flags", "text", and the best fp8 candidate's numbers
    (None when nothing fits or meets the targets in fp8)}, compared with the winner by the
    objective."""
    wd, kd = alt
    what = "fp8 weights+KV" if wd and kd == "fp8" else ("fp8 weights" if wd else "fp8 KV")
    flags = " ".join(f for f, on in (("--weight-dtype fp8", wd), ("--kv-dtype fp8", kd == "fp8")) if on)
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
