"""Engine scheduler defaults (issue #14 item 4) and what pipeline parallelism pays (item 3):
the cited defaults, the lockstep clock of micro-batches, and recommend's in-node choice."""

import numpy as np
import pytest

from sizer.cost.engines import get_engine, scheduler_limits
from sizer.cost.estimate import chunk_clock, serving_curve
from sizer.hardware.gpus import get_gpu
from sizer.model.split import Split
from sizer.plan.recommend import recommend


@pytest.mark.parametrize("engine, gpu, caps", [
    # vllm/engine/arg_utils.py _set_default_args @ 99d7eb5d: vllm serve on >= 70 GiB, not A100
    ("vllm", "h100-sxm", (1024, 8192)), ("vllm", "h200", (1024, 8192)), ("vllm", "b200", (1024, 8192)),
    ("vllm", "a100-80g-sxm", (256, 2048)), ("vllm", "l40s", (256, 2048)), (None, "h100-sxm", (1024, 8192)),
    # sglang arg_groups/memory_hook.py @ a82da8da: chunked_prefill_size by GPU memory
    ("sglang", "l4", (2048, 4096)), ("sglang", "l40s", (2048, 4096)), ("sglang", "h100-sxm", (2048, 8192)),
    ("sglang", "h200", (2048, 8192)), ("sglang", "b200", (2048, 16384)),
    # tensorrt_llm/bench/build/tuning.py @ a7e572fb: min(KV requests, 4096) in flight
    ("trtllm", "h100-sxm", (4096, 8192)),
])
def test_each_engine_follows_its_current_defaults_for_the_gpu(engine, gpu, caps):
    assert scheduler_limits(get_engine(engine), get_gpu(gpu)) == caps


def test_every_engine_preset_names_its_entry_point():
    for name in ("vllm", "sglang", "trtllm"):
        assert get_engine(name).entry_point


def test_chunk_clock_identities():
    mean, heavy, light = np.array([2.0]), np.array([5.0]), np.array([1.0])
    # a full forward per chunk or more: the even split holds
    assert chunk_clock(mean, heavy, light, 1.5, 1) == mean
    # no PP: a quarter of the forwards carry a chunk
    assert chunk_clock(mean, heavy, light, 0.25, 1) == pytest.approx(0.25 * 5 + 0.75 * 1)
    # PP4 with one chunk per round: every tick lasts as long as the heavy micro-batch
    assert chunk_clock(mean, heavy, light, 0.25, 4) == heavy
    assert chunk_clock(mean, heavy, light, 0.125, 4) == pytest.approx(0.5 * 5 + 0.5 * 1)


def test_a_prompt_chunk_sets_the_pipeline_clock(l70, h100):
    """70B TP1 PP8 at 1024 sequences, 1024/256 tokens: 4 prompts a round over 8 micro-batches,
    so every tick carries one whole prompt; TPOT = 8 x the heavy micro-batch's stage time,
    not 8 x a micro-batch with half a prompt. (prefill_clock_s is the prompt's own forward,
    which carries the other 1023 sequences' decode tokens: 1/8 token fewer per micro-batch.)"""
    c = serving_curve(l70, h100, Split(pp=8), np.array([1024.0]), isl=1024, osl=256)
    assert c.tpot_s[0] == pytest.approx(8 * c.prefill_clock_s[0], rel=1e-3)
    assert c.pp_costs["chunk_stall"][0] > 0.2


def test_pp_costs_are_shares_and_absent_without_pp(l70, h100):
    c = serving_curve(l70, h100, Split(tp=2, pp=4), np.array([8.0, 64.0]), isl=1024, osl=256)
    for v in c.pp_costs.values():
        assert np.all((v >= 0) & (v < 1))
    assert np.all(c.pp_costs["stage_imbalance"] > 0)  # the last stage carries the LM head
    assert serving_curve(l70, h100, Split(tp=8), np.array([8.0]), isl=1024, osl=256).pp_costs is None


def test_recommend_70b_on_one_node_with_a_latency_target_picks_tp_x_dp(l70, h100):
    """With a 50 ms TPOT target, TP x DP wins on one NVLink node and the pipelined losers name
    their costs, the chunk-set clock first (MLPerf Inference v4.1 closed, NVIDIA, Llama-2-70B
    Server on 8x H100-SXM: tensor_parallelism 2, pipeline_parallelism 1, four replicas)."""
    rec = recommend(l70, h100, 8, isl=1024, osl=256, tpot_s=0.050,
                    weight_dtypes=("fp8",), kv_dtype="fp8")
    assert rec.winner.split.pp == 1 and rec.winner.split.tp == 2
    assert any("PP" in line and "prompt chunk" in line for line in rec.why_not)


def test_recommend_70b_fp8_decode_heavy_max_throughput_matches_mlperf(l70, h100):
    """MLPerf Inference v4.1 closed, NVIDIA, Llama-2-70B Offline on 8x H100-SXM-80GB: TP2 x 4
    replicas in fp8 (closed/NVIDIA/configs/llama2-70b/Offline/__init__.py H100_SXM_80GB_TP2x4).
    At 512/512 tokens sizer's throughput winner is the same split."""
    rec = recommend(l70, h100, 8, isl=512, osl=512, weight_dtypes=("fp8",), kv_dtype="fp8")
    assert (rec.winner.split.tp, rec.winner.split.pp, rec.winner.split.dp) == (2, 1, 4)
