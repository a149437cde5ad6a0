"""Collective costs: nccl-tests conventions, monotonic facts, algorithm choice, profiles."""

import numpy as np
import pytest

from comm_gpus import GPUS
from sizer.cost.collectives import OPS, algorithm_label, busbw_factor, collective_time, profile_fit
from sizer.errors import InputError
from sizer.hardware.profile import profile_from_dict
from sizer.hardware.topology import get_topology

SIZES = np.array([2.0**k for k in range(10, 34)])


def topo(name, gpu="h100-sxm", n=8, nodes=1, inter=None):
    return get_topology(name, GPUS[gpu], n, nodes, inter)


def test_busbw_factors_follow_nccl_tests_performance_md():
    """nccl-tests doc/PERFORMANCE.md: all_reduce 2(n-1)/n; all_gather, reduce_scatter,
    alltoall (n-1)/n; broadcast and sendrecv 1."""
    for n in (2, 4, 8, 16):
        assert busbw_factor("all_reduce", n) == pytest.approx(2 * (n - 1) / n)
        for op in ("all_gather", "reduce_scatter", "all_to_all"):
            assert busbw_factor(op, n) == pytest.approx((n - 1) / n)
        assert busbw_factor("send_recv", n) == 1.0
        assert busbw_factor("broadcast", n) == 1.0


def test_algbw_and_busbw_are_size_over_time_times_factor():
    c = collective_time("all_reduce", 2**30, tuple(range(8)), topo("nvswitch"))
    assert c.algbw_GBps == pytest.approx(2**30 / c.time_s / 1e9)
    assert c.busbw_GBps == pytest.approx(c.algbw_GBps * 1.75)


@pytest.mark.parametrize("preset,gpu,n", [("nvswitch", "h100-sxm", 8), ("nvswitch", "a100-80g-sxm", 4),
                                          ("nvlink-pairs", "h100-nvl", 4), ("pcie", "l40s", 4),
                                          ("pcie-2socket", "rtx-4090", 8), ("xgmi", "mi300x", 8)])
@pytest.mark.parametrize("op", OPS)
def test_more_bytes_never_cheaper(preset, gpu, n, op):
    t = collective_time(op, SIZES, tuple(range(n)), topo(preset, gpu, n)).time_s
    assert np.all(np.diff(t) >= 0)


@pytest.mark.parametrize("op", OPS)
def test_more_bytes_never_cheaper_across_nodes(op):
    t = collective_time(op, SIZES, tuple(range(16)), topo("nvswitch", n=16, nodes=2)).time_s
    assert np.all(np.diff(t) >= 0)


@pytest.mark.parametrize("op", OPS)
def test_cross_socket_group_never_faster_than_same_socket(op):
    """pcie-2socket: GPUs 0-3 on socket 0, 4-7 on socket 1; {0,1} vs {3,4} crosses UPI."""
    t = topo("pcie-2socket", "l40s", 8)
    same = collective_time(op, SIZES, (0, 1), t).time_s
    cross = collective_time(op, SIZES, (3, 4), t).time_s
    assert np.all(cross >= same)
    assert cross[-1] > same[-1]


@pytest.mark.parametrize("op", OPS)
def test_nvlink_faster_than_pcie_at_equal_size(op):
    gpu = GPUS["h100-nvl"]
    pairs = get_topology("nvlink-pairs", gpu, 4)
    pcie = get_topology("pcie", gpu, 4)
    fast = collective_time(op, SIZES, (0, 1), pairs, algorithms="nccl").time_s
    slow = collective_time(op, SIZES, (0, 1), pcie, algorithms="nccl").time_s
    assert np.all(fast <= slow)
    assert fast[-1] < slow[-1] / 3


def test_a_group_of_one_costs_nothing():
    c = collective_time("all_reduce", 2**20, (3,), topo("nvswitch"))
    assert c.time_s == 0.0 and c.busbw_GBps == 0.0


def test_vectorised_matches_scalar():
    t = topo("nvswitch", n=16, nodes=2)
    vec = collective_time("all_reduce", SIZES, tuple(range(16)), t)
    for k in (0, 10, 23):
        one = collective_time("all_reduce", SIZES[k], tuple(range(16)), t)
        assert one.time_s == pytest.approx(vec.time_s[k])
        assert one.algorithm == vec.algorithm[k]


def test_algorithm_choice_small_vs_large():
    """Decode-sized all-reduces are latency-bound (custom one-shot all-reduce or LL), prefill-
    sized ones bandwidth-bound (NVLS on Hopper NVSwitch, ring elsewhere)."""
    t = topo("nvswitch")
    ranks = tuple(range(8))
    assert collective_time("all_reduce", 16 * 1024, ranks, t).algorithm == "one_shot"
    assert collective_time("all_reduce", 16 * 1024, ranks, t, algorithms="nccl").algorithm == "ring/LL"
    assert collective_time("all_reduce", 2**30, ranks, t).algorithm == "nvls"
    a100 = topo("nvswitch", "a100-80g-sxm")
    assert collective_time("all_reduce", 2**30, ranks, a100).algorithm == "ring/Simple"
    nopeer = topo("pcie", "rtx-4090", 4)  # no P2P: no custom all-reduce
    assert not collective_time("all_reduce", 1024, (0, 1, 2, 3), nopeer).algorithm.startswith("one")


def test_custom_allreduce_capped_at_8mib():
    t = topo("nvswitch")
    c = collective_time("all_reduce", np.array([4 * 2**20, 64 * 2**20]), tuple(range(8)), t,
                        algorithms={"one_shot", "two_shot", "ring"})
    assert c.algorithm[1].startswith("ring")


def test_multi_node_is_slower_than_one_node():
    one = collective_time("all_reduce", 2**28, tuple(range(8)), topo("nvswitch", n=16, nodes=2))
    two = collective_time("all_reduce", 2**28, (0, 1, 2, 3, 8, 9, 10, 11),
                          topo("nvswitch", n=16, nodes=2))
    assert two.time_s > one.time_s


def test_all_to_all_bottleneck_is_the_socket_link():
    """8 GPUs on two sockets: 4x4 flows of size/8 share one UPI direction."""
    t = topo("pcie-2socket", "l40s", 8)
    c = collective_time("all_to_all", 2**30, tuple(range(8)), t)
    upi = t.links["upi"]
    expect = 16 * (2**30 / 8) / (upi.bytes_per_s * upi.p2p.efficiency)
    assert c.time_s == pytest.approx(expect, rel=0.01)


def test_profile_fit_replaces_defaults():
    doc = {"sizer_profile_version": 1, "collectives": [
        {"op": "all_reduce", "ranks": 8, "nodes": 1,
         "segments": [{"latency_s": 1e-5, "busbw_bytes_per_s": 1e11},
                      {"latency_s": 5e-5, "busbw_bytes_per_s": 4e11}]}]}
    prof = profile_from_dict(doc)
    c = collective_time("all_reduce", np.array([1e3, 1e9]), tuple(range(8)), topo("nvswitch"), prof,
                        algorithms="nccl")
    assert c.algorithm == ["measured", "measured"]
    assert c.time_s[0] == pytest.approx(1e-5 + 1e3 * 1.75 / 1e11)
    assert c.time_s[1] == pytest.approx(5e-5 + 1e9 * 1.75 / 4e11)
    other = collective_time("all_gather", 1e9, tuple(range(8)), topo("nvswitch"), prof)
    assert other.algorithm != "measured"


def test_nccl_profile_keeps_the_engines_custom_all_reduce():
    """Issue #15 item 7: a profile measured NCCL (the probes time torch.distributed), so it must
    not replace vLLM's custom all-reduce where vLLM uses it (up to 8 MiB on one NVSwitch host):
    there the default curve stays; above it, and with NCCL only, the profile answers. A fit whose
    implementation is "custom" (the engine's kernel was timed) replaces it too."""
    seg = {"latency_s": 3e-5, "busbw_bytes_per_s": 3e11}
    doc = {"sizer_profile_version": 1, "collectives": [
        {"op": "all_reduce", "ranks": 8, "nodes": 1, "segments": [seg]}]}
    sizes = np.array([4e3, 1e6, 2**30])
    t = topo("nvswitch")
    default = collective_time("all_reduce", sizes, tuple(range(8)), t)
    c = collective_time("all_reduce", sizes, tuple(range(8)), t, profile_from_dict(doc))
    for i, name in enumerate(default.algorithm):
        if name in ("one_shot", "two_shot"):
            assert (c.algorithm[i], c.time_s[i]) == (name, default.time_s[i])
        else:
            assert c.algorithm[i] == "measured"
    assert default.algorithm[0] in ("one_shot", "two_shot") and c.algorithm[2] == "measured"
    custom = profile_from_dict({"sizer_profile_version": 1, "collectives": [
        {"op": "all_reduce", "ranks": 8, "nodes": 1, "segments": [seg], "implementation": "custom"}]})
    assert collective_time("all_reduce", sizes, tuple(range(8)), t, custom).algorithm == ["measured"] * 3
    with pytest.raises(InputError, match="implementation"):
        profile_from_dict({"sizer_profile_version": 1, "collectives": [
            {"op": "all_reduce", "ranks": 8, "segments": [seg], "implementation": "vllm"}]})


@pytest.mark.parametrize("bad", [("all_reducee", 1), ("all_reduce", -1), ("all_reduce", float("nan"))])
def test_bad_input_is_an_input_error(bad):
    op, size = bad
    with pytest.raises(InputError):
        collective_time(op, size, (0, 1), topo("nvswitch"))


def test_unknown_op_is_named():
    with pytest.raises(InputError, match="allreduse"):
        collective_time("allreduse", 1, (0, 1), topo("nvswitch"))


def test_ranks_outside_topology_rejected():
    with pytest.raises(InputError):
        collective_time("all_reduce", 1, (0, 8), topo("nvswitch"))


def test_profile_fit_says_what_a_profile_covers_and_how_far():
    """profile_fit answers (op, group size, nodes spanned) without pricing anything; the largest
    measured size comes from the raw nccl-tests rows; collective_time labels sizes beyond it
    "measured (extrapolated)" and stays quiet (no warning: it is a library call)."""
    seg = [{"latency_s": 1e-5, "busbw_bytes_per_s": 1e11}]
    doc = {"sizer_profile_version": 1,
           "collectives": [{"op": "all_reduce", "ranks": 8, "nodes": 1, "segments": seg},
                           {"op": "all_reduce", "ranks": 16, "nodes": 2, "segments": seg}],
           "raw": {"collectives": [{"op": "all_reduce", "ranks": 8, "nodes": 1, "size_bytes": s,
                                    "time_us": 10.0} for s in (1024, 2**20, 2**26)]
                   + [{"op": "all_reduce", "ranks": 8, "nodes": 1, "size_bytes": 2**30,
                       "time_us": 0}]}}  # a failed row (no time) is not a measurement
    prof = profile_from_dict(doc)
    two = topo("nvswitch", n=16, nodes=2)
    assert profile_fit("all_reduce", range(8), two, prof).max_bytes == 2**26
    assert profile_fit("allreduce", range(16), two, prof).nodes == 2
    assert profile_fit("all_reduce", range(16), two, prof).max_bytes is None  # no raw rows
    assert profile_fit("all_reduce", (0, 1, 2, 3, 8, 9, 10, 11), two, prof) is None  # 8 over 2
    assert profile_fit("all_gather", range(8), two, prof) is None
    assert profile_fit("all_reduce", range(8), two, None) is None
    c = collective_time("all_reduce", np.array([2**26, 2**26 + 1, 2**33]), tuple(range(8)),
                        topo("nvswitch"), prof)
    assert c.algorithm == ["measured", "measured (extrapolated)", "measured (extrapolated)"]
    assert c.time_s[2] == pytest.approx(1e-5 + 2**33 * 1.75 / 1e11)  # the same fit, extended
    wide = collective_time("all_reduce", 2**33, tuple(range(16)), two, prof)
    assert wide.algorithm == "measured"  # range unknown: not claimed to be extrapolated


def test_algorithm_labels_tell_custom_from_nccl():
    """one_shot / two_shot are the engines' custom all-reduce (vLLM csrc/custom_all_reduce.cuh),
    not NCCL: the labels say which is which."""
    assert algorithm_label("one_shot") == "custom one-shot (vLLM)"
    assert algorithm_label("two_shot") == "custom two-shot (vLLM)"
    assert algorithm_label("ring/LL128") == "NCCL ring/LL128"
    assert algorithm_label("nvls") == "NCCL nvls"
    assert algorithm_label("measured (extrapolated)") == "measured (extrapolated)"


# --- all_to_all grouped by link class (issue #16 item 1) ----------------------------------------

def _a2a_pairwise(ranks, topo):
    """The per-pair loop the grouped all_to_all replaced: every rank sends 1/n to every peer,
    time set by the most loaded resource (kept here as the specification)."""
    load, cap, share = {}, {}, 1.0 / len(ranks)
    for a in ranks:
        for b in ranks:
            if a == b:
                continue
            for lk in topo.path(a, b):
                if lk.kind == "net":
                    res = ("nic", topo.node_of(a)) if lk.per_node else ("nic", a)
                    c = lk.bytes_per_s * (1.0 if lk.per_node else max(topo.nics_per_gpu, 1e-9))
                elif lk.kind == "cpu":
                    res, c = ("cpu", topo.node_of(a), topo.socket(a), topo.socket(b)), lk.bytes_per_s
                elif lk.kind in ("nvlink", "xgmi"):
                    res, c = ("link", a, b), lk.bytes_per_s
                else:
                    res, c = ("out", a, lk.kind), lk.bytes_per_s
                load[res] = load.get(res, 0.0) + share
                cap[res] = c * lk.p2p.efficiency
    return max(load[r] / cap[r] for r in load)


@pytest.mark.parametrize("gpu, topo_name, n, nodes, inter, ranks", [
    ("l40s", "pcie-2socket", 16, 2, None, None),
    ("a100-80g-pcie", "nvlink-pairs", 16, 2, "tcp-25g", None),
    ("mi300x", "xgmi", 16, 2, None, None),
    ("h100-sxm", "nvswitch", 32, 4, None, (0, 1, 2, 8, 9, 17, 25, 26, 27)),  # uneven nodes
    ("rtx-4090", "pcie-2socket", 8, 1, None, (0, 5, 6, 7)),
])
def test_grouped_all_to_all_equals_the_pairwise_loop(gpu, topo_name, n, nodes, inter, ranks):
    from sizer.cost.collectives import _a2a_seconds_per_byte
    from sizer.cost.comm_group import analyse_group
    from sizer.hardware.gpus import get_gpu
    from sizer.hardware.topology import get_topology

    topo = get_topology(topo_name, get_gpu(gpu), n, nodes, inter)
    ranks = ranks or tuple(range(n))
    g = analyse_group(tuple(ranks), topo)
    assert _a2a_seconds_per_byte(g, topo) == pytest.approx(_a2a_pairwise(ranks, topo), rel=1e-12)


def test_gpu_count_is_bounded_at_a_million():
    """Issue #16: valid requests answer in seconds; sizer prices at most 1,000,000 GPUs
    (benchmarks/comm_speed.py times the largest ones)."""
    from sizer.cli.main import main
    from sizer.hardware.topology import MAX_GPUS

    assert MAX_GPUS == 1_000_000
    assert main(["comm", "--op", "all_to_all", "--bytes", "1MiB", "--gpus", "1000008",
                 "--nodes", "125001"]) == 2
