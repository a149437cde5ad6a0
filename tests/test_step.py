"""The time model: FLOP/byte counts by hand for Llama-3.1-8B, MoE routing, pipeline schedule,
monotonic facts and the compute + comm identity."""

import numpy as np
import pytest

from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import model_from_config
from sizer.cost.ops import expected_experts
from sizer.cost.pipeline import Schedule
from sizer.cost.step import step_time
from shapes import LLAMA_8B, MIXTRAL_8X7B as MIXTRAL





def ops_by_name(res):
    return {o.name: o for o in res.ops}


def test_llama8b_decode_op_counts_by_hand(l8, h100):
    """Decode, batch 4, context 1000, TP=1, bf16: 2*M*N*K FLOPs per GEMM; weights read once."""
    b, c, layers = 4, 1000, 32
    res = step_time(l8, h100, phase="decode", batch=b, context_len=c)
    o = ops_by_name(res)
    qkv_n = (32 + 2 * 8) * 128  # 6144 output features
    assert float(o["qkv_proj"].flops) == 2 * b * qkv_n * 4096 * layers
    assert float(o["qkv_proj"].bytes) == (qkv_n * 4096 * 2 + b * (4096 + qkv_n) * 2) * layers
    assert float(o["o_proj"].flops) == 2 * b * 4096 * 4096 * layers
    assert float(o["mlp_up"].flops) == 2 * b * 2 * 14336 * 4096 * layers
    assert float(o["mlp_down"].flops) == 2 * b * 4096 * 14336 * layers
    # KV read: batch x context x (2 x 8 heads x 128 x 2 bytes) per layer
    assert float(o["attention"].bytes) == b * c * 2 * 8 * 128 * 2 * layers
    # LM head: one token per sequence, full vocab
    assert float(o["lm_head"].flops) == 2 * b * 128256 * 4096
    assert res.comm_s == 0.0


def test_llama8b_prefill_attention_flops_and_last_token_logits(l8, h100):
    """Causal attention: 2 GEMMs x 2 FLOPs x S x S/2 x head_dim x heads per sequence; the LM head
    runs on the last token of each prompt only (serving engines' convention)."""
    b, s = 2, 2048
    o = ops_by_name(step_time(l8, h100, phase="prefill", batch=b, seq_len=s))
    assert float(o["attention"].flops) == 2 * b * 32 * s * (s / 2) * (128 + 128) * 32
    assert float(o["lm_head"].flops) == 2 * b * 128256 * 4096
    assert float(o["qkv_proj"].flops) == 2 * b * s * 6144 * 4096 * 32


def test_time_is_compute_plus_comm_without_overlap(l8, h100):
    res = step_time(l8, h100, tp=4, phase="decode", batch=8, context_len=2048)
    assert res.comm_s > 0
    assert float(res.time_s) == pytest.approx(float(res.compute_s) + float(res.comm_s), rel=1e-12)
    assert float(res.time_s) == pytest.approx(sum(float(o.time_s) for o in res.ops), rel=1e-12)
    over = step_time(l8, h100, tp=4, phase="decode", batch=8, context_len=2048, overlap=True)
    assert float(over.time_s) == pytest.approx(max(float(res.compute_s), float(res.comm_s)))


def test_tp_pays_two_all_reduces_per_layer(l8, h100):
    o = ops_by_name(step_time(l8, h100, tp=2, phase="decode", batch=1, context_len=128))
    assert o["tp_all_reduce"].count == 2 * 32


def test_monotonic_facts(l8, h100):
    """More context, batch or prompt never makes a step cheaper; more TP never adds weight bytes."""
    ctx = [step_time(l8, h100, phase="decode", batch=8, context_len=c).time_s for c in (128, 1024, 8192)]
    assert ctx[0] < ctx[1] < ctx[2]
    bat = step_time(l8, h100, phase="decode", batch=np.array([1, 8, 64, 256]), context_len=1024).time_s
    assert np.all(np.diff(bat) > 0)
    pre = [step_time(l8, h100, phase="prefill", batch=1, seq_len=s).time_s for s in (128, 1024, 8192)]
    assert pre[0] < pre[1] < pre[2]


def test_vectorised_batch_equals_scalar_calls(l8, h100):
    batches = np.array([1, 3, 17, 200])
    vec = step_time(l8, h100, tp=2, phase="decode", batch=batches, context_len=900).time_s
    for b, t in zip(batches, vec):
        assert float(step_time(l8, h100, tp=2, phase="decode", batch=int(b), context_len=900).time_s) == pytest.approx(t)


def test_decode_floor_without_cuda_graphs_is_slower(l8, h100):
    """Eager kernels pay the CPU launch path; a small decode step is bound by it."""
    g = step_time(l8, h100, tp=8, phase="decode", batch=1, context_len=256, cuda_graphs=True)
    e = step_time(l8, h100, tp=8, phase="decode", batch=1, context_len=256, cuda_graphs=False)
    assert float(e.time_s) > float(g.time_s)


def test_expected_experts_formula():
    """E x (1 - (1 - k/E)^T): one token reaches exactly k experts; many tokens reach all E."""
    assert expected_experts(8, 2, 1) == pytest.approx(2.0)
    assert expected_experts(256, 8, 1) == pytest.approx(8.0)
    assert expected_experts(8, 2, 2) == pytest.approx(8 * (1 - 0.75**2))
    assert expected_experts(128, 8, 10_000) == pytest.approx(128.0)
    vals = expected_experts(64, 6, np.arange(1, 200))
    assert np.all(np.diff(vals) > 0)


def test_moe_decode_reads_only_reached_experts(h100):
    mix = model_from_config(MIXTRAL, "mixtral-8x7b")
    one = ops_by_name(step_time(mix, h100, tp=2, phase="decode", batch=1, context_len=512))
    many = ops_by_name(step_time(mix, h100, tp=2, phase="decode", batch=256, context_len=512))
    expert_bytes = 3 * 4096 * 14336 / 2 * 2  # one expert's shard at TP=2, bf16
    assert float(one["experts"].bytes) == pytest.approx(2 * expert_bytes * 32 + 1 * 2 * (2 * 4096 + 3 * 7168) * 2 * 32)
    assert float(many["experts"].bytes) > 3.9 * float(one["experts"].bytes)


def test_pipeline_schedule_3x3():
    """3 micro-batches over 3 stages: 5 clocks (m + p - 1), every stage busy at clock 2."""
    s = Schedule(stages=3, microbatches=3, clock_s=1.0)
    assert s.clocks == 5
    assert s.busy_stages(2) == [0, 1, 2]
    assert s.busy_stages(0) == [0] and s.busy_stages(4) == [2]
    assert s.bubble_fraction == pytest.approx(2 / 5)
    assert {(c["microbatch"], c["stage"]): c["clock"] for c in s.cells()}[(1, 2)] == 3


def test_pp_step_is_slowest_stage(l8, h100):
    res = step_time(l8, h100, pp=2, phase="prefill", batch=1, seq_len=512)
    assert res.stage == int(np.argmax([float(t) for t in res.stage_times_s]))
    assert any(o.name == "pp_send_recv" for o in res.ops) or any(o.name == "lm_head" for o in res.ops)


def test_dp_replicas_do_not_widen_the_tp_group(l8, h100):
    """DP costs no communication: TP=2 x DP=4 pays the same all-reduces as TP=2 alone."""
    a = step_time(l8, h100, tp=2, phase="decode", batch=8, context_len=512)
    b = step_time(l8, h100, tp=2, dp=4, phase="decode", batch=8, context_len=512)
    assert float(b.comm_s) == pytest.approx(float(a.comm_s))


def test_socket_spanning_tp_pays_the_slow_link(l8):
    """TP=8 over two PCIe sockets (UPI hop) is slower than TP=4 inside one socket per byte, and
    slower than the same TP on NVSwitch."""
    from sizer.hardware.topology import get_topology

    l40s = get_gpu("l40s")
    two = get_topology("pcie-2socket", l40s, 8)
    nvs = get_topology("nvswitch", get_gpu("h100-sxm"), 8)
    t_pcie = step_time(l8, l40s, tp=8, phase="prefill", batch=1, seq_len=2048, topology=two)
    t_nvs = step_time(l8, l40s, tp=8, phase="prefill", batch=1, seq_len=2048, topology=nvs)
    assert float(t_pcie.comm_s) > 3 * float(t_nvs.comm_s)
    assert float(t_pcie.compute_s) == pytest.approx(float(t_nvs.compute_s))


@pytest.mark.parametrize("tp, dp, ep", [(8, 1, 1), (8, 1, 8), (8, 1, 2), (2, 4, 8), (1, 8, 8)])
def test_expert_flops_per_rank_are_a_tp_share_of_the_replica(h100, tp, dp, ep):
    """However EP is laid out (inside a TP group, or across DP replicas), a rank computes 1/TP of
    its replica's routed-expert FLOPs: 2 x T x k x 3 x H x I / TP."""
    mix = model_from_config(MIXTRAL, "mixtral-8x7b")
    seq = 4096
    o = ops_by_name(step_time(mix, h100, tp=tp, dp=dp, ep=ep, phase="prefill", batch=1, seq_len=seq))
    whole = 2.0 * seq * 2 * 3 * 4096 * 14336 * 32
    assert float(o["experts"].flops) == pytest.approx(whole / tp)


def test_tp_reduces_moe_outputs_also_with_ep(h100):
    """vLLM's FusedMoE all-reduces the combined expert output over TP when EP is on too."""
    mix = model_from_config(MIXTRAL, "mixtral-8x7b")
    o = ops_by_name(step_time(mix, h100, tp=8, ep=8, phase="decode", batch=8, context_len=256))
    assert o["tp_all_reduce"].count == 2 * 32 and o["ep_all_to_all"].count == 2 * 32


def test_pipeline_send_carries_hidden_states_and_residual(h100):
    """vLLM's IntermediateTensors: hidden states and residual. (A tiny vocabulary makes the
    sending stage the slowest, so its ops are the ones reported.)"""
    tiny_vocab = model_from_config(dict(LLAMA_8B, vocab_size=8), "llama-8b-tiny-vocab")
    o = ops_by_name(step_time(tiny_vocab, h100, pp=2, phase="prefill", batch=1, seq_len=1000))
    assert float(o["pp_send_recv"].bytes) == 2 * 1000 * 4096 * 2


def test_sliding_window_attention_never_costs_more_than_full(h100):
    """Mean keys per query: S/2 causal; with window w < S, w - w^2/(2S) (gpt-oss: w = 128)."""
    from sizer.cost.ops import prefill_attention
    from sizer.hardware.constants import device_for

    dev = device_for(h100)
    for s in (64, 128, 256, 4096):
        full = prefill_attention("a", dev, 1, s, 8, 64, 64, 1, 2, 0.0)
        slid = prefill_attention("a", dev, 1, s, 8, 64, 64, 1, 2, 0.0, window=128)
        keys = s / 2 if s <= 128 else 128 - 128**2 / (2 * s)
        assert float(slid.flops) == pytest.approx(2 * 8 * s * keys * 128)
        assert float(slid.flops) <= float(full.flops)
