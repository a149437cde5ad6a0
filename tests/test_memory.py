"""The memory model: exact identities, KV replication, MLA, precisions, engine rows and bad input."""

import json

import pytest

from sizer.cli.main import main
from sizer.cost.engines import memory_plan
from sizer.errors import InputError
from sizer.cost.memory import kv_bytes_per_token, resolve_precision, stage_weight_bytes
from sizer.model.catalog import model_from_config
from sizer.model.split import Split, check_split
from shapes import DSV3, LLAMA_70B
LLAMA_8B = dict(LLAMA_70B, hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
                intermediate_size=14336, max_position_embeddings=8192)  # Meta-Llama-3-8B: 8k context

GIB = 2**30




def test_llama70b_kv_bytes_per_token_exact(l70):
    """2 (K,V) x 8 KV heads x 128 x 2 bytes x 80 layers = 327,680 B/token; TP=4 -> 81,920 per GPU
    (issue #2; GQA, not 64 attention heads: the 8x error of head-count formulas)."""
    prec = resolve_precision(l70)
    assert sum(kv_bytes_per_token(l70, Split(), prec)) == 327_680
    assert sum(kv_bytes_per_token(l70, Split(tp=4), prec)) == 81_920
    assert sum(kv_bytes_per_token(l70, Split(tp=8), prec)) == 40_960


def test_kv_heads_replicate_when_tp_exceeds_them(l70):
    """TP=16 > 8 KV heads: each rank keeps one whole KV head (vLLM replicates), so per-GPU KV
    stops shrinking at TP=8."""
    prec = resolve_precision(l70)
    assert sum(kv_bytes_per_token(l70, Split(tp=16), prec)) == 40_960


def test_mla_cache_not_sharded_by_tp():
    """DeepSeek-V3 caches kv_lora_rank + rope dim = 576 elements per layer (R: mla_kv_cache_elements),
    on every TP rank: 576 x 61 x 2 bytes = 70,272 B/token at any TP."""
    m = model_from_config(DSV3, "deepseek-v3")
    prec = resolve_precision(m)
    for tp in (1, 8):
        assert sum(kv_bytes_per_token(m, Split(tp=tp), prec)) == 576 * 61 * 2


def test_weights_split_exactly_by_tp_and_pp(l70):
    """Sharded weights: 70.55B params x 2 bytes; TP shards every matrix and the vocab, so the sum
    over TP ranks equals the whole model plus the replicated norm vectors (no KV-head
    replication at TP<=8)."""
    prec = resolve_precision(l70)
    whole = stage_weight_bytes(l70, Split(), prec)[0]
    assert whole == 2 * l70.params_total() == 2 * 70_553_706_496
    norms = (2 * 80 + 1) * 8192 * 2
    assert stage_weight_bytes(l70, Split(tp=8), prec)[0] * 8 == whole + 7 * norms
    stages = stage_weight_bytes(l70, Split(pp=4), prec)
    assert sum(stages) == pytest.approx(whole)
    assert stages[0] < stages[-1]  # LM head (untied) + final norm on the last stage


def test_rule_of_thumb_175b_tp2_pp4_is_44_gb_not_88():
    """A 175B (GPT-3 shape) bf16 model over TP=2 x PP=4: 350 GB / 8 GPUs = ~44 GB per GPU, not
    the 88 GB some guides print (they divide by TP only)."""
    gpt3 = model_from_config(dict(model_type="gpt2", n_embd=12288, n_layer=96, n_head=96,
                                  n_inner=4 * 12288, vocab_size=50257, n_positions=2048), "gpt3-175b")
    assert gpt3.params_total() == pytest.approx(175e9, rel=0.01)
    per_gpu = max(stage_weight_bytes(gpt3, Split(tp=2, pp=4), resolve_precision(gpt3)))
    assert per_gpu == pytest.approx(44e9, rel=0.03)


def test_weight_dtype_applies_to_linear_layers_only(l70):
    """--weight-dtype int4 quantises attention/MLP; embeddings and LM head stay bf16; int4 counts
    its group-128 scale/zero overhead (4.156 bits per weight)."""
    bf16 = stage_weight_bytes(l70, Split(), resolve_precision(l70))[0]
    int4 = stage_weight_bytes(l70, Split(), resolve_precision(l70, "int4"))[0]
    emb = 2 * l70.embedding_params() * 2
    linear = l70.params_total() - 2 * l70.embedding_params() - l70.hidden_size * (2 * 80 + 1)
    expected = emb + l70.hidden_size * (2 * 80 + 1) * 2 + linear * (4 + 20 / 128) / 8
    assert int4 == pytest.approx(expected)
    assert int4 < bf16 / 3


def test_checkpoint_fp8_quantization_is_default():
    m = model_from_config(DSV3, "deepseek-v3")
    prec = resolve_precision(m)
    assert (prec.linear, prec.experts, prec.kv) == ("fp8", "fp8", "bf16")


def test_vllm_llama3_8b_row(h100):
    """vLLM log (memory_facts R03097-R03101, H100 79.22 GiB, util 0.9, TP=1): weights 14.96 GiB,
    KV 53.29 GiB. Weights must match to the rounding; KV within 1%."""
    m = model_from_config(LLAMA_8B, "llama-3-8b")
    # the log's V0 engine ran 256 sequences (vLLM V1 on an H100 runs 1024: test_engine_profile.py)
    plan = memory_plan(m, h100, Split(), engine="vllm", context=8192, max_num_seqs=256)
    assert plan.weights_bytes / GIB == pytest.approx(14.96, abs=0.005)
    assert plan.capacity_bytes * 0.9 / GIB == pytest.approx(71.29, abs=0.01)
    assert plan.kv_cache_bytes / GIB == pytest.approx(53.29, rel=0.01)
    tp2 = memory_plan(m, h100, Split(tp=2), engine="vllm", context=8192)
    assert tp2.weights_bytes / GIB == pytest.approx(7.48, abs=0.005)  # R03102
    assert tp2.overhead_bytes / GIB == pytest.approx(3.58, abs=0.01)  # R03103


def test_without_engine_kv_is_the_workload(l70, h100):
    plan = memory_plan(l70, h100, Split(tp=4), batch=8, context=8192)
    assert plan.kv_cache_bytes == 8 * 8192 * 81_920
    assert plan.fits
    big = memory_plan(l70, h100, Split(tp=1), batch=1, context=8192)
    assert not big.fits  # 141 GB of weights on one 80 GB GPU is an answer, not an error


@pytest.mark.parametrize("split, needle", [
    (Split(tp=3), "heads"), (Split(pp=3, uneven_pp=False), "layers"), (Split(ep=2), "dense"),
    (Split(tp=0), "positive"),
])
def test_bad_splits_are_input_errors(l70, split, needle):
    with pytest.raises(InputError, match=needle):
        check_split(l70, split)


def test_ep_must_divide_tp_times_dp():
    mix = model_from_config(dict(LLAMA_8B, model_type="mixtral", num_local_experts=8,
                                 num_experts_per_tok=2), "mixtral")
    check_split(mix, Split(tp=2, dp=4, ep=8))
    with pytest.raises(InputError, match="TP x DP"):
        check_split(mix, Split(tp=2, pp=4, ep=8))
    with pytest.raises(InputError, match="experts"):
        check_split(mix, Split(tp=2, dp=3, ep=3))


def test_gpus_must_equal_product(l70, h100):
    with pytest.raises(InputError, match="differs"):
        memory_plan(l70, h100, Split(tp=4), gpus=8)


def test_cli_memory_json_one_document(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(LLAMA_70B))
    assert main(["memory", "--model", str(cfg), "--tp", "4", "--batch", "2", "--context", "4096", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kv_bytes_per_token"] == 81_920
    assert set(doc["per_gpu"]) >= {"weights_bytes", "kv_cache_bytes", "activation_bytes",
                                   "overhead_bytes", "total_bytes", "capacity_bytes", "fits"}
    assert doc["params_total"] == 70_553_706_496


@pytest.mark.parametrize("argv, needle", [
    (["memory", "--model", "no-such-model"], "unknown model"),
    (["memory", "--model", "MODEL", "--gpu", "h1000"], "unknown GPU"),
    (["memory", "--model", "MODEL", "--tp", "3"], "heads"),
    (["memory", "--model", "MODEL", "--tp", "0"], "positive"),
    (["memory", "--model", "MODEL", "--tp", "4", "--gpus", "8"], "differs"),
    (["memory", "--model", "NOTJSON"], "not valid JSON"),
    (["memory", "--model", "MISSING"], "num_hidden_layers"),
])
def test_bad_input_exit_2_one_line(tmp_path, capsys, argv, needle):
    good = tmp_path / "good" / "config.json"
    good.parent.mkdir()
    good.write_text(json.dumps(LLAMA_70B))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    missing = tmp_path / "missing.json"
    missing.write_text(json.dumps({k: v for k, v in LLAMA_70B.items() if k != "num_hidden_layers"}))
    subst = {"MODEL": str(good), "NOTJSON": str(bad), "MISSING": str(missing)}
    assert main([subst.get(a, a) for a in argv]) == 2  # usage errors too: main returns, no SystemExit
    err = capsys.readouterr().err.strip()
    assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_sglang_qwen3_235b_fp8_kv_tokens(h100):
    """SGLang log (R03114): Qwen3-235B-A22B-FP8, 4x H100, mem_fraction_static 0.93 ->
    367,404 KV tokens. SGLang's rule reproduces it within 2%."""
    from sizer.model.catalog import get_model

    plan = memory_plan(get_model("qwen3-235b-a22b"), h100, Split(tp=4), weight_dtype="fp8",
                       engine="sglang", fraction=0.93, context=40960)
    assert plan.max_kv_tokens == pytest.approx(367_404, rel=0.02)
    # K and V each 8.23 GB (GiB in SGLang's log) per GPU (R03115)
    assert plan.max_kv_tokens * plan.kv_bytes_per_token / 2 / GIB == pytest.approx(8.23, rel=0.02)


def test_gpt_oss_120b_fits_one_80gb_gpu(h100):
    """OpenAI: gpt-oss-120b 'fits a single 80GB GPU' with MXFP4 MoE weights (R00907)."""
    from sizer.model.catalog import get_model

    plan = memory_plan(get_model("gpt-oss-120b"), h100, Split(), batch=1, context=8192)
    assert plan.fits and plan.weights_bytes < 65 * GIB
    bf16 = memory_plan(get_model("gpt-oss-120b"), h100, Split(), weight_dtype="bf16", batch=1, context=8192)
    assert not bf16.fits


@pytest.mark.parametrize("rid, pid, wdtype, tokens, mib", [
    ("R02412", "qwen3-30b-a3b", "bf16", 2049, 58462.0),
    ("R02414", "qwen3-30b-a3b", "fp8", 2049, 30296.0),
])
def test_transformers_peak_rows(rid, pid, wdtype, tokens, mib):
    """Qwen speed benchmark, HF Transformers generate, batch 1, 1 input + 2048 output tokens:
    weights + KV of 2049 tokens within 2% of the published peak (MiB)."""
    from sizer.cost.memory import kv_bytes_per_sequence
    from sizer.model.catalog import get_model

    m = get_model(pid)
    prec = resolve_precision(m, wdtype)
    total = stage_weight_bytes(m, Split(), prec)[0] + kv_bytes_per_sequence(m, Split(), prec, tokens)
    assert total / 2**20 == pytest.approx(mib, rel=0.02)


def test_another_engines_memory_flag_is_an_error(capsys):
    """--gpu-memory-utilization is vLLM's: with --engine sglang it would be silently ignored."""
    assert main(["memory", "--model", "70b", "--tp", "4", "--engine", "sglang",
                 "--gpu-memory-utilization", "0.8"]) == 2
    assert "vllm's flag" in capsys.readouterr().err
    assert main(["memory", "--model", "70b", "--tp", "4", "--engine", "sglang",
                 "--mem-fraction-static", "0.8", "--json"]) == 0


def test_engine_fits_only_when_the_batch_fits_its_kv(h100):
    """With --engine the KV pool is fixed: a concurrency beyond it would queue, so `fits` says no."""
    from sizer.model.catalog import get_model

    m = get_model("70b")
    ok = memory_plan(m, h100, Split(tp=4), engine="vllm", batch=8, context=16384)
    assert ok.fits and ok.max_sequences >= 8
    too_many = memory_plan(m, h100, Split(tp=4), engine="vllm", batch=256, context=16384)
    assert not too_many.fits and too_many.max_sequences < 256


def test_nvfp4_counts_its_16_element_e4m3_scales():
    from sizer.model.precision import weight_bytes_per_param

    assert weight_bytes_per_param("nvfp4") == pytest.approx(4.5 / 8)
    assert weight_bytes_per_param("fp4") == pytest.approx(4.25 / 8)


def test_kv_per_token_takes_the_stage_with_most_full_layers():
    """gpt-oss-120b (alternating sliding/full over 36 layers) at PP4: stages hold 4 or 5 full
    layers; the 5-full-layer stage decides memory at long contexts."""
    from sizer.model.catalog import get_model

    m = get_model("gpt-oss-120b")
    full, slide = kv_bytes_per_token(m, Split(pp=4), resolve_precision(m))
    per_layer = 8 * 128 * 2
    assert (full, slide) == (5 * per_layer, 4 * per_layer)


def test_uneven_pp_follows_vllm_partition():
    """vLLM get_pp_indices: L // PP layers each, the L % PP extra ones to the stages before the
    last, second-to-last first. The default (issue #15.2: engines split unevenly); with
    --even-pp (uneven_pp=False) a non-dividing PP is bad input that says what the default gives."""
    from sizer.model.catalog import get_model
    from sizer.model.split import stage_layers

    dsv3, l405 = get_model("deepseek-v3"), get_model("405b")
    assert [len(r) for r in stage_layers(dsv3, 2)] == [31, 30]
    assert [len(r) for r in stage_layers(l405, 4)] == [31, 32, 32, 31]
    assert [r.start for r in stage_layers(l405, 4)] == [0, 31, 63, 95]
    with pytest.raises(InputError, match="--even-pp asks for equal stages; without it the stages get 31/30"):
        check_split(dsv3, Split(tp=8, pp=2, uneven_pp=False))
    check_split(dsv3, Split(tp=8, pp=2))
    check_split(dsv3, Split(tp=8, pp=2, uneven_pp=True))
    assert Split(pp=2, uneven_pp=False) == Split(pp=2)  # the same layout: a flag, not an identity
    with pytest.raises(InputError, match="exceeds"):
        check_split(dsv3, Split(pp=62, uneven_pp=True))


def test_cli_uneven_pp_is_the_default_and_even_pp_asks_for_equal_stages(capsys):
    """DeepSeek-R1's 61 layers over PP2 on 2x8 H100: 31 + 30 layers by default (and with the
    explicit --uneven-pp), bad input under --even-pp; both flags at once are a usage error."""
    for flags in ([], ["--uneven-pp"]):
        capsys.readouterr()
        assert main(["memory", "--model", "deepseek-r1", "--tp", "8", "--pp", "2", "--json", *flags]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert len(doc["stage_weights_bytes"]) == 2 and doc["per_gpu"]["fits"]
    capsys.readouterr()
    assert main(["memory", "--model", "deepseek-r1", "--tp", "8", "--pp", "2"]) == 0
    assert "pipeline stages: 31/30 layers (vLLM's partition" in capsys.readouterr().out
    assert main(["memory", "--model", "deepseek-r1", "--tp", "8", "--pp", "2", "--even-pp", "--json"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "31/30 layers" in err
    assert main(["memory", "--model", "deepseek-r1", "--pp", "2", "--even-pp", "--uneven-pp"]) == 2
    for cmd in (["step", "--phase", "decode", "--context", "1024"], ["estimate"]):  # every command: the same default
        capsys.readouterr()
        base = [*cmd, "--model", "deepseek-r1", "--tp", "8", "--pp", "2", "--nodes", "2", "--json"]
        assert main(base) == 0
        assert main([*base, "--even-pp"]) == 2
