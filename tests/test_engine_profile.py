"""The forward an engine profiles before it sizes the KV cache (sizer.cost.engines.profile_forward):
vLLM V1 runs its sampler over min(max_num_batched_tokens, max_num_seqs) logit rows with the caps it
is configured with, the GPU's defaults unless given (vllm/v1/worker/gpu_model_runner.py
profile_run / _dummy_sampler_run; vllm-project/vllm#15357). One rule in every command."""

import pytest

from sizer.cost.engines import get_engine, memory_plan, profile_forward, scheduler_limits
from sizer.cost.estimate import estimate
from sizer.cost.memory import SAMPLER_LOGIT_COPIES, activation_bytes, resolve_precision
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.resources import read_json
from sizer.model.split import Split

GIB = 2**30


def test_vllm_profiles_the_sampler_at_its_scheduler_caps_for_the_gpu():
    """H100: 1024 sequences and 8192 tokens (`vllm serve` on a >= 70 GiB GPU that is not an
    A100), so 1024 rows; A100-80GB: 256 and 2048."""
    vllm = get_engine("vllm")
    assert profile_forward(vllm, get_gpu("h100-sxm")) == (8192, 1024)
    assert profile_forward(vllm, get_gpu("a100-80g-sxm")) == (2048, 256)
    assert profile_forward(vllm, get_gpu("h100-sxm"), max_num_seqs=64) == (8192, 64)
    assert profile_forward(get_engine("sglang"), get_gpu("h100-sxm"))[1] == 256


def test_the_h100_sampler_reserve_is_four_times_the_v0_one():
    """Llama-3.1-8B on one H100: 1024 x 128,256 fp32 logits x SAMPLER_LOGIT_COPIES = 4.9 GiB,
    four times the 1.22 GiB of the 256-sequence V0 profile (memory_facts R03099: 1.26)."""
    m, h100 = get_model("8b"), get_gpu("h100-sxm")
    plan = memory_plan(m, h100, Split(), engine="vllm", context=8192)
    assert plan.activation_bytes == 1024 * m.vocab_size * 4 * SAMPLER_LOGIT_COPIES
    v0 = memory_plan(m, h100, Split(), engine="vllm", context=8192, max_num_seqs=256)
    assert plan.activation_bytes == pytest.approx(4 * v0.activation_bytes)
    assert v0.activation_bytes / GIB == pytest.approx(1.26, rel=0.05)


def test_gpt_oss_120b_reserve_matches_vllms_start_up_log():
    """K0005/K0006 (vLLM V1, H100, --gpu-memory-utilization 0.95, max_num_batched_tokens 1024):
    0.95 x 79.22 GiB - 64.38 GiB of weights - 1.71 GiB of KV = 9.17 GiB for activations and
    non-torch memory. sizer: 9.46 GiB (+3%); with the sampler at 256 rows it was 3.7 GiB."""
    rows = {r["id"]: r["value"] for r in read_json("engine_kv_logs.json")}
    h100, m = get_gpu("h100-sxm"), get_model("gpt-oss-120b")
    measured = 0.95 * h100.capacity_bytes / GIB - rows["K0006"] - rows["K0005"]
    plan = memory_plan(m, h100, Split(), engine="vllm", fraction=0.95, context=131072,
                       max_num_batched_tokens=1024)
    assert (plan.activation_bytes + plan.overhead_bytes) / GIB == pytest.approx(measured, rel=0.05)


def test_estimate_and_memory_profile_the_same_caps():
    """A --max-num-seqs given to estimate is vLLM's max_num_seqs: it caps the batch and sizes
    the profiling sampler, as `sizer memory` with the same flag does; default caps alike."""
    m, h100 = get_model("8b"), get_gpu("h100-sxm")
    for given in (None, 64):
        e = estimate(m, h100, Split(), isl=1024, osl=256, engine="vllm", max_batch=given)
        seqs, tokens = scheduler_limits(get_engine("vllm"), h100)
        plan = memory_plan(m, h100, Split(), engine="vllm", context=1280, batch=e.batch,
                           max_num_seqs=given or seqs, max_num_batched_tokens=tokens)
        assert e.memory["per_gpu"]["activation_bytes"] == plan.activation_bytes
        prec = resolve_precision(m)
        assert plan.activation_bytes == activation_bytes(m, Split(), prec, tokens, given or seqs)


def test_sglang_dp_attention_ranks_share_the_deployments_caps():
    """SGLang's DP attention (sizer's EP = TP x k: --tp-size 8 --dp-size 8 --enable-dp-attention
    for TP1 DP8 EP8) gives each attention rank max_running_requests // dp_size sequences and
    chunked_prefill_size // dp_size tokens (managers/scheduler.py, server_args.py): 2048 / 8 =
    256 per sizer replica on an H200, where plain TP8 EP8 runs all 2048. recommend agrees."""
    from sizer.cost.engines import caps_share, replica_limits
    from sizer.plan.recommend import recommend

    sglang, h200, ds = get_engine("sglang"), get_gpu("h200"), get_model("deepseek-v3")
    assert replica_limits(sglang, h200, Split(dp=8, ep=8)) == (256, 1024)
    assert replica_limits(sglang, h200, Split(tp=8, ep=8)) == (2048, 8192)
    assert caps_share(get_engine("vllm"), Split(dp=8, ep=8)) == 1
    e = estimate(ds, h200, Split(dp=8, ep=8), isl=256, osl=256, engine="sglang")
    assert e.batch == 256
    rec = recommend(ds, h200, 8, isl=256, osl=256, engine="sglang", top=20)
    attn_dp = [c for c in rec.candidates if c.split.ep > c.split.tp]
    assert attn_dp and all(c.max_batch <= 2048 // (c.split.ep // c.split.tp) for c in attn_dp)
