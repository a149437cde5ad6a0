"""Speculative decoding (issue #18 item 6): tokens per step from the acceptance rate, the draft's
extra forwards, the verify step's larger batch; flags validated."""

import json

import pytest

from sizer.cli.main import main
from sizer.cost.estimate import estimate
from sizer.cost.speculative import METHODS, Speculative, speculative_config
from sizer.cost.step import step_time
from sizer.errors import InputError
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.split import Split

M70, H100 = get_model("70b"), get_gpu("h100-sxm")


@pytest.mark.parametrize("k, a, expect", [
    (3, 0.0, 1.0),          # nothing accepted: the bonus token only
    (3, 1.0, 4.0),          # everything accepted: k + 1
    (1, 0.85, 1.85),        # DeepSeek-V3 MTP: 85% second-token acceptance, 1.8x TPS reported
    (3, 0.75, (1 - 0.75**4) / 0.25),
    (4, 0.6, (1 - 0.6**5) / 0.4),
])
def test_tokens_per_step_is_leviathans_expectation(k, a, expect):
    """E = (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, eq. 1)."""
    assert Speculative("eagle", k, a, M70).tokens_per_step == pytest.approx(expect, rel=1e-12)


def test_method_defaults_are_documented():
    assert {m: METHODS[m][:2] for m in METHODS} == {"mtp": (1, 0.85), "eagle": (3, 0.75),
                                                   "draft": (4, 0.6)}
    spec = speculative_config(M70, "eagle")
    assert (spec.num_tokens, spec.acceptance, spec.draft.num_layers) == (3, 0.75, 1)


def _est(spec, **kw):
    return estimate(M70, H100, Split(tp=4), isl=1024, osl=256, batch=kw.pop("batch", 1),
                    weight_dtype="fp8", speculative=spec, **kw)


def test_acceptance_zero_is_no_gain_minus_the_draft_cost():
    """a = 0: one token per step, so TPOT = verify step (k + 1 queries) + draft forwards, which
    is slower than plain decoding."""
    spec = speculative_config(M70, "eagle", acceptance=0.0)
    e = _est(spec)
    sp = e.speculative
    assert sp["tokens_per_step"] == 1.0
    assert e.tpot_s == pytest.approx(sp["verify_step_s"] + sp["draft_s"], rel=1e-9)
    assert e.tpot_s > sp["tpot_without_s"] and sp["speedup_tpot"] < 1
    assert sp["verify_step_s"] >= sp["tpot_without_s"] and sp["draft_s"] > 0


def test_tpot_is_step_over_tokens_per_step():
    spec = speculative_config(M70, "eagle")
    sp = _est(spec).speculative
    assert _est(spec).tpot_s == pytest.approx((sp["verify_step_s"] + sp["draft_s"]) / sp["tokens_per_step"])
    assert sp["speedup_tpot"] > 1.5  # memory-bound batch-1 decode gains most


def test_verify_step_is_the_larger_batch_for_gemms_but_reads_kv_once():
    """k + 1 query tokens per sequence: every linear layer sees batch x (k + 1) rows, as a plain
    step of batch x (k + 1); attention still reads each sequence's KV once."""
    kw = dict(phase="decode", context_len=2048, weight_dtype="fp8")
    verify = {o.name: o for o in step_time(M70, H100, Split(tp=4), batch=8, query_tokens=4, **kw).ops}
    wide = {o.name: o for o in step_time(M70, H100, Split(tp=4), batch=32, **kw).ops}
    plain = {o.name: o for o in step_time(M70, H100, Split(tp=4), batch=8, **kw).ops}
    for name in ("qkv_proj", "o_proj", "mlp_up", "mlp_down", "lm_head"):
        assert verify[name].flops == pytest.approx(wide[name].flops)
    assert verify["attention"].bytes == pytest.approx(plain["attention"].bytes)
    assert verify["attention"].flops == pytest.approx(4 * plain["attention"].flops)


def test_mtp_draft_is_one_block_of_the_target():
    m = get_model("deepseek-v3")
    spec = speculative_config(m, "mtp")
    assert spec.draft.num_layers == 1 and spec.draft.moe_layers == (0,)
    e = estimate(m, get_gpu("h200"), Split(tp=8), isl=1024, osl=256, batch=1, speculative=spec)
    assert 1 < e.speculative["speedup_tpot"] < 1.85


def test_separate_draft_model():
    spec = speculative_config(M70, "draft", draft_model=get_model("8b"))
    sp = _est(spec).speculative
    assert sp["draft"] == "llama-3.1-8b" and sp["draft_s"] > 0


@pytest.mark.parametrize("kw, message", [
    (dict(method="medusa"), "unknown speculative method"),
    (dict(method="eagle", num_tokens=0), "1..16"),
    (dict(method="eagle", num_tokens=17), "1..16"),
    (dict(method="eagle", acceptance=1.2), r"\[0, 1\]"),
    (dict(method="eagle", acceptance=float("nan")), r"\[0, 1\]"),
    (dict(method="draft"), "needs --draft-model"),
    (dict(method=None, acceptance=0.5), "need --speculative"),
])
def test_bad_speculative_settings(kw, message):
    with pytest.raises(InputError, match=message):
        speculative_config(M70, kw.pop("method"), **kw)


def test_draft_with_another_tokenizer_is_refused():
    with pytest.raises(InputError, match="vocabulary"):
        speculative_config(M70, "draft", draft_model=get_model("qwen2.5-7b"))


def test_cli_speculative_and_bad_flags(capsys):
    argv = ["estimate", "--model", "70b", "--tp", "4", "--batch", "1", "--weight-dtype", "fp8"]
    assert main(argv + ["--speculative", "eagle", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["speculative"]["method"] == "eagle" and doc["speculative"]["tokens_per_step"] > 2
    assert main(argv + ["--speculative", "eagle", "--pp", "2", "--tp", "2"]) == 2
    assert "PP > 1" in capsys.readouterr().err
    assert main(argv + ["--speculative", "draft"]) == 2
    assert main(argv + ["--speculative", "eagle", "--acceptance", "inf"]) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_the_draft_takes_its_weights_and_kv_from_the_same_gpus():
    """DeepSeek-V3 with MTP on 8x H200 at TP8: the MTP block (one MoE layer of 11.5B parameters,
    a 1/8 shard of each expert per GPU, plus its 2 x 7168 x 7168 eh_proj) adds 1.55 GiB of
    weights per GPU, and its one MLA layer caches KV for every token beside the target's 61:
    the target keeps 61/62 of the KV memory. A Llama-3.1-8B draft of a 70B TP4 fp8 target adds
    its bf16 weights, a quarter per GPU, and 32 layers of KV (two of its 8 KV heads per GPU)
    beside the target's 80 layers of two heads each: the target keeps 80/112 of the KV memory."""
    from sizer.cost.engines import memory_plan
    from sizer.cost.estimate import draft_memory, estimate
    from sizer.cost.memory import kv_bytes_per_token, resolve_precision, stage_weight_bytes
    from sizer.hardware.gpus import get_gpu
    from sizer.model.catalog import get_model
    from sizer.model.split import Split

    ds, h200, tp8 = get_model("deepseek-v3"), get_gpu("h200"), Split(tp=8)
    mtp = speculative_config(ds, "mtp")
    extra = draft_memory(mtp, tp8)
    layer = ds.moe_layer_params() / 1e9
    assert layer == pytest.approx(11.5, abs=0.05)
    assert extra["draft_weight_bytes"] / 2**30 == pytest.approx(1.55, abs=0.02)
    per_token = sum(kv_bytes_per_token(ds, tp8, resolve_precision(ds)))
    assert extra["draft_kv_bytes_per_token"] == pytest.approx(per_token / 61)
    plain = memory_plan(ds, h200, tp8, context=2048, engine="vllm")
    kv_only = memory_plan(ds, h200, tp8, context=2048, engine="vllm",
                          draft_kv_bytes_per_token=extra["draft_kv_bytes_per_token"])
    assert kv_only.max_kv_tokens / plain.max_kv_tokens == pytest.approx(61 / 62, rel=1e-3)
    both = estimate(ds, h200, tp8, isl=1024, osl=1024, engine="vllm", speculative=mtp)
    assert both.memory["per_gpu"]["weights_bytes"] == pytest.approx(plain.weights_bytes + extra["draft_weight_bytes"])

    l70, l8, tp4 = get_model("70b"), get_model("8b"), Split(tp=4)
    draft = speculative_config(l70, "draft", draft_model=l8)
    extra = draft_memory(draft, tp4, "fp8", "fp8")
    assert extra["draft_weight_bytes"] == max(stage_weight_bytes(l8, tp4, resolve_precision(l8, None, "fp8")))
    target = sum(kv_bytes_per_token(l70, tp4, resolve_precision(l70, "fp8", "fp8")))
    assert target / (target + extra["draft_kv_bytes_per_token"]) == pytest.approx(80 / 112)


def test_mtp_needs_the_checkpoints_own_mtp_layers(capsys):
    """Trial 1 item 2: Llama-3.1-70B ships no MTP module, so `--speculative mtp` invented a 1.78x
    speedup. The DeepSeek-V3 config (and R1, the same architecture) says num_nextn_predict_layers 1;
    Kimi-K2's says 0."""
    assert (get_model("deepseek-v3").mtp_layers, get_model("deepseek-r1").mtp_layers) == (1, 1)
    assert (get_model("kimi-k2").mtp_layers, M70.mtp_layers) == (0, 0)
    for name in ("70b", "kimi-k2"):
        with pytest.raises(InputError, match="multi-token-prediction layers"):
            speculative_config(get_model(name), "mtp")
    assert main(["estimate", "--model", "70b", "--tp", "4", "--concurrency", "1",
                 "--speculative", "mtp"]) == 2
    err = capsys.readouterr().err
    assert "has none" in err and "Traceback" not in err


def test_mtp_layers_are_read_from_either_config_key():
    """num_nextn_predict_layers (DeepSeek-V3, MiMo, GLM-4.5) or mtp_num_hidden_layers (Qwen3-Next)."""
    import dataclasses

    from sizer.model.config import model_from_config

    base = {"model_type": "llama", "hidden_size": 1024, "num_hidden_layers": 2,
            "num_attention_heads": 8, "num_key_value_heads": 8, "intermediate_size": 4096,
            "vocab_size": 32000}
    assert model_from_config(base).mtp_layers == 0
    assert model_from_config({**base, "num_nextn_predict_layers": 1}).mtp_layers == 1
    assert model_from_config({**base, "mtp_num_hidden_layers": 2}).mtp_layers == 2
    with pytest.raises(InputError):
        model_from_config({**base, "num_nextn_predict_layers": -1})
    spec = speculative_config(dataclasses.replace(M70, mtp_layers=1), "mtp")
    assert spec.method == "mtp" and spec.draft.num_layers == 1
