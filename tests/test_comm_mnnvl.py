"""All-reduce inside one GB200 NVL72 NVLink domain (trial 2, item 6): NCCL's ring on NVLink5
fitted to a measured GB200 curve, NVLS by group size on the rack fabric, and TensorRT-LLM's
multi-node-NVLink (MNNVL) all-reduce across trays, which only the trtllm engine runs."""

import json
import os

import numpy as np
import pytest

from sizer.cli.main import main
from sizer.cost.collectives import MNNVL_MAX_BYTES, collective_time, engine_kernels
from sizer.cost.estimate import estimate
from sizer.hardware.gpus import get_gpu
from sizer.hardware.profile import profile_from_dict
from sizer.hardware.topology import get_topology, nodes_for_domain
from sizer.model.catalog import get_model
from sizer.model.split import Split

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "nccl_multinode.json")
KIB = 1024

# lightseekorg/tokenspeed PR #860 (merged 2026-07-31): fused MNNVL all-reduce + RMSNorm one-shot,
# GB200, world 8 over 2 trays, hidden 7168 bf16: (bytes = tokens x 7168 x 2, median us)
TOKENSPEED_ONE_SHOT = [(1 * 14336, 10.9), (8 * 14336, 10.9)]
# vllm-project/vllm PR #53318 (merged 2026-08-21): FlashInfer mnnvl all-reduce (TRT-LLM's kernel)
# on GB300 NVL72, FlashInfer 0.6.15: (GPUs, bytes, us); TP8 over 2 trays is the fitted point,
# TP16 over 4 trays held out
FLASHINFER_MNNVL = [(8, 63.998 * 2**20, 180.87, 0.02), (16, 7.998 * 2**20, 36.92, 0.12)]


def rack(n):
    return get_topology("nvl72", get_gpu("gb200"), n)


def nccl(size, ranks, topo):
    return collective_time("all_reduce", size, ranks, topo, algorithms="nccl")


def test_tray_ring_matches_azure_gb200_below_one_mib():
    """Azure ND GB200 v6, one tray, NCCL 2.25.1 ring (M00047-57, 1 KiB - 1 MiB): 15-20 us where
    the Hopper constants gave 23-26 us; the 128 KiB point (M00054, busbw 11.29 GB/s) is 17.4 us."""
    rows = [r for r in json.load(open(DATA)) if "M00047" <= r["id"] <= "M00057"]
    sizes = np.array([r["conditions"]["message_size_bytes"] for r in rows], float)
    measured = sizes * 1.5 / (np.array([r["value"] for r in rows]) * 1e9)
    model = nccl(sizes, range(4), get_topology("nvl72", get_gpu("gb200"), 4)).time_s
    err = np.abs(model / measured - 1)
    assert np.median(err) <= 0.02 and err.max() <= 0.06
    assert measured[sizes == 128 * KIB][0] == pytest.approx(17.41e-6, rel=1e-3)


def test_two_trays_are_one_nvlink_node_for_nccl():
    """8 GPUs over 2 trays: one NVLink switch fabric, no NIC (NCCL runs the MNNVL clique as one
    node): the ring is NVLink5 LL128 over 14 steps, 14 us + 14 x 0.5 us + 1.75 size / (900 GB/s
    x 0.67), 21.4 us at 128 KiB (it read 37.3 us with Hopper's protocol constants)."""
    c = nccl(128 * KIB, range(8), rack(8))
    assert c.algorithm == "ring/LL128"
    assert c.time_s == pytest.approx(14e-6 + 14 * 0.5e-6 + 128 * KIB * 1.75 / (900e9 * 0.67), rel=1e-9)


def test_inside_the_rack_never_costs_more_than_over_nics():
    """The same 8 GPUs as two NVL4 partitions joined by their NDR NICs (NVIDIA/nccl#1801) never
    beat one NVLink domain, at any size."""
    sizes = np.array([2.0**k for k in range(10, 34)])
    gpu = get_gpu("gb200")
    one = nccl(sizes, range(8), rack(8)).time_s
    two = nccl(sizes, range(8), get_topology("nvl72", gpu, 8, nodes_for_domain(8, 4))).time_s
    assert np.all(one <= two)


def test_gb200_tp8_nccl_not_slower_than_an_h100_node():
    """An NVL72 2-tray ring crosses the same one switch hop per step as HGX H100's, at twice the
    per-GPU NVLink rate: NCCL on it is never slower than on an H100 NVSwitch node."""
    sizes = np.array([2.0**k for k in range(10, 34)])
    h100 = get_topology("nvswitch", get_gpu("h100-sxm"), 8)
    assert np.all(nccl(sizes, range(8), rack(8)).time_s <= nccl(sizes, range(8), h100).time_s)


def test_nvls_latency_grows_with_the_rack_group():
    """NVLS over the rack fabric: 575 us fitted at 72 ranks (CoreWeave, M00001-5), HGX B200's
    75 us at 8, a straight line between (36 ranks: 75 + 28 x 500 / 64 = 293.75 us)."""
    size = np.array([2.0**32, 2.0**33])
    for n, lat in ((72, 575e-6), (36, 293.75e-6), (8, 75e-6)):
        c = collective_time("all_reduce", size, range(n), rack(n), algorithms={"nvls"})
        slope = (c.time_s[1] - c.time_s[0]) / 2**32
        assert slope == pytest.approx(1 / (900e9 * 0.484), rel=1e-9)
        assert c.time_s[0] - 2**32 * slope == pytest.approx(lat, rel=1e-9)


def test_only_trtllm_runs_mnnvl_across_trays():
    """TensorRT-LLM AUTO tries MNNVLAllReduce first when the TP group spans hosts of an MNNVL
    domain; vLLM and SGLang run NCCL there by default; inside one tray every engine keeps the
    custom one-shot; an HGX node is never MNNVL."""
    assert "mnnvl_two_shot" in engine_kernels("trtllm") and "mnnvl_two_shot" not in engine_kernels("vllm")
    size = 128 * KIB
    for engine in (None, "vllm", "sglang", "none"):
        assert collective_time("all_reduce", size, range(8), rack(8), engine=engine).algorithm == "ring/LL128"
    assert collective_time("all_reduce", size, range(8), rack(8), engine="trtllm").algorithm == "mnnvl_two_shot"
    assert collective_time("all_reduce", 32 * KIB, range(8), rack(8), engine="trtllm").algorithm == "mnnvl_one_shot"
    for engine in ("vllm", "trtllm"):
        assert collective_time("all_reduce", size, range(4), rack(4), engine=engine).algorithm == "one_shot"
    h100 = get_topology("nvswitch", get_gpu("h100-sxm"), 8)
    assert collective_time("all_reduce", size, range(8), h100, engine="trtllm").algorithm == "one_shot"
    big = collective_time("all_reduce", 2.0 * MNNVL_MAX_BYTES, range(8), rack(8), engine="trtllm")
    assert not big.algorithm.startswith("mnnvl")  # the uint32 workspace bound: NCCL again


def test_mnnvl_against_published_nvl72_runs():
    """One-shot: tokenspeed's on 8 GB200 over 2 trays, 10.9 us at 1 and 8 tokens (the 8-token
    message is two-shot under TRT-LLM's 512 KiB rule, within 6% of it still). Two-shot:
    FlashInfer's mnnvl backend on GB300 NVL72, 180.87 us at 64 MiB over 8 GPUs, 36.92 us at
    8 MiB over 16 (4 trays, not fitted: sizer reads 10.6% low)."""
    for size, us in TOKENSPEED_ONE_SHOT:
        c = collective_time("all_reduce", size, range(8), rack(8), engine="trtllm")
        assert c.algorithm.startswith("mnnvl") and c.time_s == pytest.approx(us * 1e-6, rel=0.06)
    assert collective_time("all_reduce", 14336, range(8), rack(8), engine="trtllm").algorithm == "mnnvl_one_shot"
    for n, size, us, tol in FLASHINFER_MNNVL:
        t = get_topology("nvl72", get_gpu("gb300"), n)
        c = collective_time("all_reduce", size, range(n), t, engine="trtllm")
        assert c.algorithm == "mnnvl_two_shot" and c.time_s == pytest.approx(us * 1e-6, rel=tol)


def test_70b_tp8_tpot_on_gb200_by_engine():
    """The trial's case: Llama 70B TP8, batch 8. On GB200 (2 trays) TRT-LLM's MNNVL all-reduce
    beats vLLM's NCCL; with either, GB200 is no slower than H100 TP8 (it read 13.86 ms against
    H100's 12.56 ms)."""
    model, split = get_model("70b"), Split(tp=8)
    kw = dict(isl=1024, osl=256, batch=8)
    tpot = {(g, e): estimate(model, get_gpu(g), split, engine=e, **kw).tpot_s
            for g in ("gb200", "h100-sxm") for e in ("vllm", "trtllm")}
    assert tpot[("gb200", "trtllm")] < tpot[("gb200", "vllm")] < tpot[("h100-sxm", "vllm")]
    assert tpot[("h100-sxm", "trtllm")] == tpot[("h100-sxm", "vllm")]  # one host: same kernels


def test_comm_cli_engine(capsys):
    argv = ["comm", "--op", "all_reduce", "--bytes", "128KiB", "--gpus", "8", "--gpu", "gb200", "--json"]
    assert main(argv + ["--engine", "trtllm"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["engine"] == "trtllm" and doc["algorithm"] == "mnnvl_two_shot"
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["engine"] == "vllm" and doc["algorithm"] == "ring/LL128"
    assert main(argv + ["--engine", "nope"]) == 2
    assert "unknown engine" in capsys.readouterr().err


def test_nccl_profile_keeps_trtllm_mnnvl():
    """A profile times NCCL (torch.distributed): over 2 NVL72 trays it answers for vLLM, while
    TensorRT-LLM keeps its MNNVL curve up to MNNVL_MAX_BYTES and the profile's beyond."""
    prof = profile_from_dict({"sizer_profile_version": 1, "collectives": [
        {"op": "all_reduce", "ranks": 8, "nodes": 1,
         "segments": [{"latency_s": 2e-5, "busbw_bytes_per_s": 5e11}]}]})
    sizes = np.array([128.0 * KIB, 4.0 * MNNVL_MAX_BYTES])
    vllm = collective_time("all_reduce", sizes, range(8), rack(8), prof, engine="vllm")
    trt = collective_time("all_reduce", sizes, range(8), rack(8), prof, engine="trtllm")
    model = collective_time("all_reduce", sizes[:1], range(8), rack(8), engine="trtllm")
    assert list(vllm.algorithm) == ["measured"] * 2  # no raw rows: no range to extrapolate from
    assert trt.algorithm[0] == "mnnvl_two_shot" and trt.time_s[0] == model.time_s[0]
    assert trt.algorithm[1] == "measured" and trt.time_s[1] == vllm.time_s[1]



def test_the_simulator_prices_the_engines_all_reduce_kernel(capsys):
    """simulate costs its steps with the engine's collective kernels, as estimate does: 70B TP8
    over two GB200 trays under TensorRT-LLM (MNNVL all-reduce) decodes a lone request at
    estimate's batch-1 TPOT, faster than under vLLM (NCCL across trays); the simulator priced
    NCCL for every engine (11.2 ms under trtllm)."""
    def tpot(command, engine):
        extra = ["--rate", "0.01", "--requests", "4"] if command == "simulate" else ["--batch", "1"]
        assert main([command, "--model", "70b", "--gpu", "gb200", "--tp", "8", "--engine", engine,
                     "--isl", "512", "--osl", "64", "--json", *extra]) == 0
        d = json.loads(capsys.readouterr().out)
        return d["tpot_s"]["p50"] if command == "simulate" else d["tpot_s"]

    sim, est = {e: tpot("simulate", e) for e in ("vllm", "trtllm")}, {e: tpot("estimate", e) for e in ("vllm", "trtllm")}
    for e in sim:
        assert sim[e] == pytest.approx(est[e], rel=0.01)
    assert sim["trtllm"] < 0.9 * sim["vllm"]
