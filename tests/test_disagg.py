"""Disaggregated prefill/decode (issue #18 item 1): the KV bytes a request moves between pools,
pinned by hand from the configs; the transfer's time on the link between them; the steady
state's identities; and the bad input that exits 2 in one line."""

import numpy as np
import pytest

from sizer.cli.main import main
from sizer.cost.collectives import collective_time
from sizer.cost.disagg import Pools, TransferModel, estimate_disagg
from sizer.cost.estimate import estimate
from sizer.cost.kv_transfer import kv_transfer, rank_heads, source_ranks
from sizer.hardware.gpus import get_gpu
from sizer.hardware.topology import default_topology
from sizer.model.catalog import get_model
from sizer.model.split import Split

LLAMA70 = 2 * 8 * 128 * 2 * 80  # K+V x 8 KV heads x head_dim 128 x bf16 x 80 layers = 327,680 B/token
MLA_V3 = (512 + 64) * 2 * 61  # (kv_lora_rank + qk_rope_head_dim) x bf16 x 61 layers = 70,272 B/token


@pytest.fixture(scope="module")
def llama70():
    return get_model("70b")


@pytest.fixture(scope="module")
def deepseek():
    return get_model("deepseek-r1")


def _per_token(kvt, which):
    return sorted({float(v) / 1000 for v in getattr(kvt, which)(1000).values()})


# -- who sends what to whom --------------------------------------------------------------------

def test_head_layout_is_vllm_physical_head_range():
    """8 KV heads: TP4 ranks keep 2 each; TP16 ranks one each, two ranks per head."""
    assert [list(rank_heads(4, 8, r)) for r in range(4)] == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert [rank_heads(16, 8, r).start for r in range(16)] == [r // 2 for r in range(16)]
    assert source_ranks(2, 8, 5) == [1] and source_ranks(8, 2, 1) == [4, 5, 6, 7]


@pytest.mark.parametrize("ptp, dtp, wire, per_decode, per_prefill, sources", [
    (4, 4, LLAMA70, LLAMA70 / 4, LLAMA70 / 4, 1),  # equal TP: rank i -> rank i
    (2, 8, LLAMA70, LLAMA70 / 8, LLAMA70 / 2, 1),  # each decode rank one head from rank d // 4
    (8, 2, LLAMA70, LLAMA70 / 2, LLAMA70 / 8, 4),  # each decode rank gathers 4 heads from 4 ranks
    (4, 16, 2 * LLAMA70, LLAMA70 / 8, LLAMA70 / 2, 1),  # TP16 > 8 heads: decode keeps each head twice
])
def test_gqa_bytes_per_request(llama70, ptp, dtp, wire, per_decode, per_prefill, sources):
    """Llama-3.1-70B, a 1000-token request: the wire carries each KV head once per decode rank
    that keeps it; a decode rank receives exactly its heads (vLLM NixlConnector / SGLang
    send_kvcache_slice)."""
    kvt = kv_transfer(llama70, Split(tp=ptp), Split(tp=dtp), "bf16")
    assert float(kvt.bytes_per_request(1000)) == 1000 * wire
    assert _per_token(kvt, "decode_rank_bytes") == [per_decode]
    assert _per_token(kvt, "prefill_rank_bytes") == [per_prefill]
    assert kvt.sources_per_decode_rank == sources


@pytest.mark.parametrize("ptp, dtp, copies", [(8, 8, 8), (1, 8, 8), (8, 2, 2), (8, 1, 1)])
def test_mla_latent_is_replicated_per_decode_tp_rank(deepseek, ptp, dtp, copies):
    """DeepSeek-V3/R1: every decode TP rank receives the whole latent from one prefill rank, so
    decode TP d moves d copies; attention data-parallel decode (TP1 per DP rank) moves one."""
    kvt = kv_transfer(deepseek, Split(tp=ptp), Split(tp=dtp), "bf16")
    assert float(kvt.bytes_per_request(1000)) == 1000 * copies * MLA_V3
    assert _per_token(kvt, "decode_rank_bytes") == [MLA_V3]
    assert kvt.sources_per_decode_rank == 1 and kvt.mla


def test_fp8_kv_halves_the_bytes(deepseek):
    kvt = kv_transfer(deepseek, Split(tp=1), Split(tp=1), "fp8")
    assert float(kvt.bytes_per_request(1000)) == 1000 * MLA_V3 / 2


def test_windowed_layers_send_their_window_and_stages_their_layers():
    """gpt-oss-20b alternates sliding (128) and full layers, 12 each, 8 KV heads of 64:
    2048 B per token-layer; a 1000-token request sends 1000 tokens of the full layers and 128
    of the sliding ones. A decode TP2 rank (one stage) gathers its 4 heads of all 24 layers
    from both prefill stages (PP2)."""
    m = get_model("gpt-oss-20b")
    kvt = kv_transfer(m, Split(tp=1, pp=2), Split(tp=2), "bf16")
    assert float(kvt.bytes_per_request(1000)) == 2048 * (12 * 1000 + 12 * 128) == 27_721_728
    assert kvt.sources_per_decode_rank == 2
    assert _per_token(kvt, "decode_rank_bytes") == [27_721_728 / 2 / 1000]


# -- how long it takes -------------------------------------------------------------------------

def test_transfer_rides_nvlink_inside_a_node_and_the_nic_across(llama70):
    """TP4 -> TP4: every pair moves a quarter of the KV at once; the time is one send_recv of a
    decode rank's share on its path (sizer/cost/collectives.py): NVSwitch when both pools share
    an 8-GPU node, the NDR NIC when each pool is a node of its own."""
    gpu = get_gpu("h100-sxm")
    one = Pools(Split(tp=4), Split(tp=4))
    topo = default_topology(gpu, 8)
    t = float(TransferModel(llama70, one, topo, "bf16").time_s(8192))
    assert t == pytest.approx(float(collective_time("send_recv", 8192 * LLAMA70 / 4, (0, 4), topo).time_s), rel=1e-12)
    two = Pools(Split(tp=8), Split(tp=8))
    topo2 = default_topology(gpu, 16, nodes=2)
    x = TransferModel(llama70, two, topo2, "bf16")
    t2 = float(x.time_s(8192))
    assert t2 == pytest.approx(float(collective_time("send_recv", 8192 * LLAMA70 / 8, (0, 8), topo2).time_s), rel=1e-12)
    assert x.describe(8192).links == "ndr" and TransferModel(llama70, one, topo, "bf16").describe(8192).links == "nvswitch4"
    assert t2 > 3 * t  # 50 GB/s per NIC against 450 GB/s per GPU into NVSwitch, at an eighth the bytes each


def test_wide_ep_pools_on_an_nvl72_slice(capsys):
    """DeepSeek-R1 on 32 GB200 of one NVL72 domain, DeepSeek-style pools (attention DP with EP
    over the DP ranks, EPLB's 32 redundant experts where EP does not divide 256): one latent
    copy per request into one decode DP rank, over the rack's NVLink switch."""
    import json

    argv = ["estimate", "--model", "deepseek-r1", "--gpu", "gb200", "--gpus", "32", "--disagg", "--prefill-dp", "8",
            "--prefill-ep", "8", "--decode-dp", "24", "--decode-ep", "24", "--redundant-experts", "32",
            "--ep-a2a", "auto", "--isl", "2000", "--osl", "500", "--json"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kv_transfer"]["bytes_per_request"] == 2000 * MLA_V3
    assert d["kv_transfer"]["links"].startswith("nvswitch") and d["gpus"] == 32
    assert d["decode"]["split"]["label"] == "TP1 PP1 DP24 EP24 (+32 redundant experts)"
    assert d["prefill"]["split"]["ep"] == 8 and d["decode"]["gpus"] == 24


# -- the steady state --------------------------------------------------------------------------

def test_steady_state_identities(llama70):
    gpu = get_gpu("h100-sxm")
    d = estimate_disagg(llama70, gpu, Pools(Split(tp=4), Split(tp=4)), isl=8192, osl=256, engine="vllm").doc
    assert d["ttft_s"] == pytest.approx(d["prefill"]["prefill_s"] + d["kv_transfer_s"], rel=1e-12)
    assert d["e2e_s"] == pytest.approx(d["ttft_s"] + 255 * d["tpot_s"], rel=1e-12)
    rates = (d["prefill"]["requests_per_s"], d["decode"]["requests_per_s"], d["kv_transfer"]["requests_per_s"])
    assert d["requests_per_s"] == min(rates)
    assert d["limited_by"] == ("prefill", "decode", "kv_transfer")[int(np.argmin(rates))]
    assert d["output_tok_s"] == pytest.approx(d["requests_per_s"] * 256) and d["gpus"] == 8
    assert d["output_tok_s_per_gpu"] == pytest.approx(d["output_tok_s"] / 8)
    # rate matching: the decode pool runs the fewest sequences that keep up with the prefill pool
    fewer = estimate_disagg(llama70, gpu, Pools(Split(tp=4), Split(tp=4)), isl=8192, osl=256, engine="vllm",
                            concurrency=d["decode"]["batch"] - 1).doc
    assert fewer["decode"]["requests_per_s"] < d["prefill"]["requests_per_s"] <= d["decode"]["requests_per_s"]


def test_pools_are_priced_as_estimate_prices_them(llama70):
    """The prefill of one 8192-token prompt is estimate's static batch-1 TTFT on the prefill
    split; the decode pool's TPOT at N sequences is estimate's static decode at batch N."""
    gpu = get_gpu("h100-sxm")
    d = estimate_disagg(llama70, gpu, Pools(Split(tp=4), Split(tp=2, pp=2)), isl=8192, osl=256, engine="vllm",
                        concurrency=12).doc
    assert d["prefill"]["prompts_per_forward"] == 1
    pre = estimate(llama70, gpu, Split(tp=4), isl=8192, osl=256, batch=1, engine="vllm")
    dec = estimate(llama70, gpu, Split(tp=2, pp=2), isl=8192, osl=256, batch=12, engine="vllm")
    assert d["prefill"]["prefill_s"] == pytest.approx(pre.ttft_s, rel=1e-9)
    assert d["tpot_s"] == pytest.approx(dec.tpot_s, rel=1e-9)


def test_decode_concurrency_spreads_over_decode_replicas(l8):
    """--concurrency is over the decode pool, spread as estimate spreads it (sizer.cost.estimate
    spread): one request on a TP1 x DP3 decode pool is one busy rank at batch 1, so the pool
    serves a third of what three ranks at batch 1 serve (it was rounded up to 1 per rank)."""
    gpu = get_gpu("h100-sxm")
    pools = Pools(Split(tp=1), Split(tp=1, dp=3))

    def at(c):
        return estimate_disagg(l8, gpu, pools, isl=2048, osl=256, engine="vllm", concurrency=c).doc

    one, three, five, six = at(1), at(3), at(5), at(6)
    assert one["tpot_s"] == pytest.approx(three["tpot_s"], rel=1e-12)
    assert one["decode"]["requests_per_s"] == pytest.approx(three["decode"]["requests_per_s"] / 3, rel=1e-12)
    # 5 requests: two ranks at 2, one at 1 -> TPOT of batch 2, the rate of 2 + 2 + 1 sequences
    assert five["tpot_s"] == pytest.approx(six["tpot_s"], rel=1e-12)
    want = six["decode"]["requests_per_s"] * 2 / 3 + three["decode"]["requests_per_s"] / 3
    assert five["decode"]["requests_per_s"] == pytest.approx(want, rel=1e-12)


# -- bad input: one line, exit 2 ---------------------------------------------------------------

EST = ["estimate", "--model", "70b", "--isl", "1024", "--osl", "128"]


@pytest.mark.parametrize("argv, needle", [
    (EST + ["--prefill-tp", "4"], "--prefill-tp describes a disaggregated pool: it needs --disagg"),
    (EST + ["--disagg", "--tp", "4"], "--tp describes an aggregated split; with --disagg give --prefill-tp"),
    (EST + ["--disagg", "--gpus", "8", "--prefill-tp", "4", "--decode-tp", "2"],
     "--gpus 8 differs from the prefill pool's 4 + the decode pool's 2 = 6 GPUs"),
    (EST + ["--disagg", "--prefill-tp", "1", "--decode-tp", "4"], "the prefill pool (TP1 PP1 DP1 on h100-sxm) does not fit"),
    (EST + ["--disagg", "--prefill-tp", "4", "--decode-tp", "1"], "the decode pool (TP1 PP1 DP1 on h100-sxm) does not fit"),
    (EST + ["--disagg", "--nodes", "2", "--prefill-tp", "4", "--decode-tp", "4", "--decode-replicas", "3"],
     "the decode pool's 12 GPUs (from GPU 4) neither fill whole nodes of 8 nor fit in one"),
    (EST + ["--disagg", "--prefill-tp", "4", "--decode-tp", "3"], "decode pool: llama-3.1-70b: 64 attention heads do not divide by TP=3"),
    (["estimate", "--model", "mixtral", "--disagg", "--prefill-tp", "2", "--decode-tp", "2", "--decode-ep", "4"],
     "decode pool: EP=4 must divide TP x DP = 2"),
    (EST + ["--disagg", "--prefill-tp", "4", "--decode-tp", "4", "--ep-a2a", "deepep"], "need expert parallelism in a pool"),
    (EST + ["--disagg", "--prefill-tp", "4", "--decode-tp", "4", "--redundant-experts", "8"],
     "--redundant-experts 8 needs expert parallelism in a pool"),
    (EST + ["--disagg", "--prefill-tp", "4", "--decode-tp", "4", "--batch", "4"], "--batch (a static batch) is not modelled"),
    (EST + ["--disagg", "--prefill-tp", "4", "--decode-tp", "4", "--emit", "vllm"], "--emit (launch commands for two pools)"),
    (["simulate", "--model", "70b", "--rate", "1", "--decode-tp", "4"], "--decode-tp describes a disaggregated pool"),
    (["recommend", "--model", "70b", "--gpus", "8", "--pareto-html", "x.html"], "--pareto-html draws the aggregated"),
    (["recommend", "--model", "70b", "--gpus", "8", "--disagg", "--concurrency", "8"], "--concurrency (a fixed concurrency) is not searched"),
])
def test_bad_pools_are_one_line_exit_2(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
