"""Wide expert parallelism (issue #18 item 2): EP groups across nodes, attention data-parallel,
dispatch/combine by algorithm (NCCL all-to-all, DeepEP normal, DeepEP low-latency), expert load
imbalance and EPLB's redundant experts. DeepEP's numbers: deepseek-ai/DeepEP docs/legacy.md
(commit dd758caf), H800 (NVLink 400 GB/s bidirectional) with one CX7 400 Gb/s NIC per GPU."""

import dataclasses

import numpy as np
import pytest

from sizer.cli.main import main
from sizer.cost.collectives import collective_time
from sizer.cost.moe_comm import FP8_WITH_SCALES, ep_all_to_all, effective_imbalance
from sizer.errors import InputError
from sizer.hardware.gpus import get_gpu
from sizer.hardware.topology import get_topology
from sizer.model.catalog import get_model
from sizer.model.split import Split, check_split

H800 = dataclasses.replace(get_gpu("h100-sxm"), id="h800", nvlink_bytes_per_s=400e9)


def _h800(n):
    return get_topology("nvswitch", H800, n, max(n // 8, 1))


@pytest.mark.parametrize("ep, dispatch_us, combine_us", [
    (16, 118, 195), (32, 155, 273), (64, 173, 314), (128, 192, 369), (256, 194, 360)])
def test_deepep_low_latency_reproduces_its_table(ep, dispatch_us, combine_us):
    """128 tokens per rank, hidden 7168, top-8, FP8 dispatch / BF16 combine: within 15%
    (dispatch -6..+3%, combine -3..+12%)."""
    x = ep_all_to_all("deepep-ll", "decode", 128, 8, 7168, 2, range(ep), _h800(ep))
    assert float(x.dispatch_s) * 1e6 == pytest.approx(dispatch_us, rel=0.15)
    assert float(x.combine_s) * 1e6 == pytest.approx(combine_us, rel=0.15)


@pytest.mark.parametrize("ep, rdma_GBps", [(16, 43), (32, 58), (64, 51)])
def test_deepep_normal_reaches_its_rdma_bandwidth(ep, rdma_GBps):
    """Normal kernels, 4096 tokens per rank: RDMA logical bandwidth (token copies bound for
    other nodes over the time) 43 / 58 / 51 GB/s: sizer 50 (+16%, -14%, -2%); the network leg
    is the slower of the two pipelined legs."""
    x = ep_all_to_all("deepep", "prefill", 4096, 8, 7168, 2, range(ep), _h800(ep))
    logical = 4096 * 8 * 7168 * FP8_WITH_SCALES * (ep - 8) / ep
    assert logical / float(x.dispatch_s) / 1e9 == pytest.approx(rdma_GBps, rel=0.17)


def test_deepep_intranode_nvlink_bandwidth():
    """EP8 in one node: 153 GB/s NVLink bottleneck bandwidth (0.77 of H800's 200 per direction)."""
    x = ep_all_to_all("deepep", "prefill", 4096, 8, 7168, 2, range(8), _h800(8))
    nvl = 4096 * 8 * 7168 * FP8_WITH_SCALES * 7 / 8
    assert nvl / float(x.dispatch_s) / 1e9 == pytest.approx(153, rel=0.10)


def test_two_level_dispatch_is_the_slower_leg():
    """DeepEP normal: latency + max(RDMA once per destination node, NVLink forward inside): with
    more tokens the time grows by the slower leg's seconds per token only."""
    topo = _h800(32)
    t1 = ep_all_to_all("deepep", "prefill", 4096, 8, 7168, 2, range(32), topo)
    t2 = ep_all_to_all("deepep", "prefill", 8192, 8, 7168, 2, range(32), topo)
    per_token = (float(t2.dispatch_s) - float(t1.dispatch_s)) / 4096
    rdma = 8 * 7168 * FP8_WITH_SCALES * 24 / 32 / 50e9
    nvl = 8 * 7168 * FP8_WITH_SCALES * 7 / 8 / (200e9 * 0.8)
    assert per_token == pytest.approx(max(rdma, nvl), rel=1e-9) and rdma > nvl
    one = ep_all_to_all("deepep", "prefill", 4096, 8, 7168, 2, range(8), _h800(8))
    assert float(one.dispatch_s) == pytest.approx(20e-6 + 4096 * nvl, rel=1e-9)  # no network leg


def test_nccl_dispatch_is_the_nccl_all_to_all():
    topo = _h800(16)
    x = ep_all_to_all("nccl", "decode", 256, 8, 7168, 2, range(16), topo)
    size = 256 * 8 * 7168 * 2
    assert float(x.dispatch_s) == float(collective_time("all_to_all", size, range(16), topo).time_s)


def test_auto_picks_low_latency_for_decode_and_normal_for_prefill():
    topo = _h800(16)
    assert ep_all_to_all("auto", "decode", 64, 8, 7168, 2, range(16), topo).algorithm == "deepep-ll"
    assert ep_all_to_all("auto", "prefill", 64, 8, 7168, 2, range(16), topo).algorithm == "deepep"


def test_deepep_needs_nvlink():
    t = get_topology("pcie-2socket", get_gpu("l40s"), 8)
    with pytest.raises(InputError, match="NVLink"):
        ep_all_to_all("deepep", "decode", 64, 8, 4096, 2, range(8), t)


def test_eplb_redundant_experts_relieve_the_imbalance():
    """One replica per EP rank removes the excess (DeepSeek's prefill: EP32, 32 redundant);
    fewer relieve proportionally; no EP, no relief."""
    assert effective_imbalance(1.5, 32, 32) == 1.0
    assert effective_imbalance(1.5, 144, 32) == pytest.approx(1 + 0.5 * (1 - 32 / 144))
    assert effective_imbalance(1.3, 16, 0) == 1.3
    with pytest.raises(InputError):
        effective_imbalance(0.5, 8, 0)


def test_imbalance_slows_the_moe_step_and_redundancy_buys_it_back():
    from sizer.cost.step import step_time

    m, g = get_model("deepseek-v3"), get_gpu("h200")
    kw = dict(phase="decode", batch=64, context_len=2048)
    base = step_time(m, g, Split(dp=16, ep=16), **kw, topology=get_topology("nvswitch", g, 16, 2))
    hot = step_time(m, g, Split(dp=16, ep=16), **kw, moe_imbalance=1.5,
                    topology=get_topology("nvswitch", g, 16, 2))
    fixed = step_time(m, g, Split(dp=16, ep=16, redundant_experts=16), **kw, moe_imbalance=1.5,
                      topology=get_topology("nvswitch", g, 16, 2))
    assert float(hot.time_s) > float(base.time_s)
    assert float(fixed.comm_s) == pytest.approx(float(base.comm_s), rel=1e-9)


@pytest.mark.parametrize("split, message", [
    (Split(dp=512, ep=512), "more than its 256"),              # EP larger than the experts
    (Split(dp=144, ep=144), "--redundant-experts"),             # 256 experts over EP144
    (Split(dp=16, ep=16, redundant_experts=300), "more than"),  # more replicas than experts
    (Split(tp=8, redundant_experts=8), "needs expert parallelism"),
])
def test_bad_expert_layouts(split, message):
    with pytest.raises(InputError, match=message):
        check_split(get_model("deepseek-v3"), split)


def test_deepseek_decode_layout_ep144_with_32_redundant_experts():
    """DeepSeek's published decode deployment: EP144 with 32 redundant experts (288 slots, two
    per GPU) across 18 nodes of 8: each rank holds two experts' weights, exactly as EP128
    without replicas does; EP144 with 16 replicas does not divide (272 slots)."""
    from sizer.cost.memory import resolve_precision, stage_weight_bytes

    m = get_model("deepseek-v3")
    s = check_split(m, Split(dp=144, ep=144, redundant_experts=32))
    prec = resolve_precision(m)
    assert s.label().endswith("(+32 redundant experts)")
    assert stage_weight_bytes(m, s, prec) == stage_weight_bytes(m, Split(dp=128, ep=128), prec)
    with pytest.raises(InputError, match="256 \\+ 16 redundant experts do not divide by EP=144"):
        check_split(m, Split(dp=144, ep=144, redundant_experts=16))


def test_cli_ep_bad_input_exits_2(capsys):
    argv = ["estimate", "--model", "deepseek-v3", "--gpu", "h200", "--batch", "8"]
    assert main(argv + ["--dp", "144", "--ep", "144", "--nodes", "18"]) == 2
    assert "--redundant-experts" in capsys.readouterr().err
    assert main(argv + ["--tp", "8", "--ep", "8", "--ep-a2a", "bogus"]) == 2
    assert main(argv + ["--tp", "8", "--ep", "8", "--moe-imbalance", "0.5"]) == 2  # argparse's one line
    err = capsys.readouterr().err
    assert "Traceback" not in err


@pytest.mark.parametrize("args", [
    ["--tp", "4", "--ep", "4"],            # EP = TP (attention TP)
    ["--dp", "4", "--ep", "4"],            # attention data-parallel, experts over the DP ranks
    ["--tp", "2", "--dp", "2", "--ep", "4", "--ep-a2a", "deepep-ll"],
])
def test_moe_presets_run_with_ep_tp_and_attention_dp(capsys, args):
    assert main(["estimate", "--model", "qwen3-30b-a3b", "--batch", "16", "--json"] + args) == 0
    capsys.readouterr()


def test_wide_ep_across_nodes_and_racks(capsys):
    """DeepSeek-V3 attention-DP EP16 over two H200 nodes crosses the NICs; EP72 on one GB200
    NVL72 rack stays on NVLink (its DeepEP low-latency time has no RDMA leg)."""
    import json

    assert main(["estimate", "--model", "deepseek-v3", "--gpu", "h200", "--dp", "16", "--ep", "16",
                 "--nodes", "2", "--batch", "32", "--ep-a2a", "deepep-ll", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    a2a = next(o for o in doc["decode_ops"] if o["name"] == "ep_all_to_all")
    assert a2a["time_s"] > 0
    rack = get_topology("nvl72", get_gpu("gb200"), 72)
    x = ep_all_to_all("deepep-ll", "decode", 128, 8, 7168, 2, range(72), rack)
    volume = 128 * 8 * 7168 * FP8_WITH_SCALES
    assert float(x.dispatch_s) == pytest.approx(10e-6 + volume * 71 / 72 / (900e9 * 0.55), rel=1e-9)
    assert np.isfinite(x.combine_s)
