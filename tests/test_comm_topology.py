"""Topologies, the nvidia-smi topo -m parser (real samples in tests/data/topo, see SOURCES.md)
and placement."""

import argparse
import os

import pytest

from comm_gpus import GPUS
from sizer.cost.collectives import collective_time
from sizer.errors import InputError
from sizer.hardware.links import LINKS
from sizer.hardware.placement import layout
from sizer.hardware.topo_smi import parse_topo_matrix, read_topology_file
from sizer.cli.common import add_topology_args, topology_from_args
from sizer.hardware.topology import default_topology, get_topology

DATA = os.path.join(os.path.dirname(__file__), "data", "topo")


def sample(name, gpu):
    return read_topology_file(os.path.join(DATA, name), GPUS[gpu])


def test_defaults_follow_the_catalog_node():
    """Issue #3: SXM -> nvswitch with one 400 Gb/s NIC per GPU; h100-nvl / a100-80g-pcie ->
    nvlink-pairs; other PCIe cards pcie-2socket past 4 GPUs else pcie; mi300x -> xgmi."""
    assert default_topology(GPUS["h100-sxm"], 8).name == "nvswitch"
    multi = default_topology(GPUS["h100-sxm"], 16, nodes=2)
    assert multi.inter_node.bytes_per_s == 50e9 and multi.nics_per_gpu == 1.0
    assert default_topology(GPUS["h100-nvl"], 4).name == "nvlink-pairs"
    assert default_topology(GPUS["a100-80g-pcie"], 2).name == "nvlink-pairs"
    assert default_topology(GPUS["l40s"], 4).name == "pcie"
    assert default_topology(GPUS["l40s"], 8).name == "pcie-2socket"
    assert default_topology(GPUS["mi300x"], 8).name == "xgmi"


def test_no_p2p_cards_go_through_host_memory():
    t = default_topology(GPUS["rtx-4090"], 8)
    assert t.paths[0][1] == ("host",) and t.paths[0][7] == ("host", "upi")


def test_pcie_2socket_splits_half_and_half():
    t = get_topology("pcie-2socket", GPUS["l40s"], 8)
    assert t.socket_of == (0, 0, 0, 0, 1, 1, 1, 1)
    assert t.paths[0][3] == ("pcie",) and t.paths[3][4] == ("pcie", "upi")


@pytest.mark.parametrize("call", [
    lambda: get_topology("nvswich", GPUS["h100-sxm"], 8),
    lambda: get_topology("nvswitch", GPUS["h100-sxm"], 16),  # 16 per node > 8
    lambda: get_topology("nvswitch", GPUS["h100-sxm"], 8, nodes=3),  # 3 does not divide 8
    lambda: get_topology("nvswitch", GPUS["l40s"], 8),  # no NVLink
    lambda: get_topology("nvswitch", GPUS["h100-sxm"], 16, 2, inter_node="pcie4"),
    lambda: get_topology("nvswitch", GPUS["h100-sxm"], 16, 2, inter_node="infiniband9"),
])
def test_bad_topologies_are_input_errors(call):
    with pytest.raises(InputError):
        call()


def test_unknown_topology_is_named():
    with pytest.raises(InputError, match="'torus'"):
        get_topology("torus", GPUS["h100-sxm"], 8)


def test_parser_dgx_a100_nv12_is_an_nvswitch():
    t = sample("a100_sxm_8gpu_nv12.txt", "a100-80g-sxm")
    assert t.gpus_per_node == 8
    assert {p for row in t.paths for p in row if p} == {("nvswitch",)}
    assert t.nics_per_gpu == 0.5  # 4 NIC columns for 8 GPUs


def test_parser_h100_nv18_with_8_nics():
    t = sample("h100_sxm_8gpu_nv18_8nic.txt", "h100-sxm")
    assert t.paths[2][6] == ("nvswitch",) and t.nics_per_gpu == 1.0
    assert t.links["nvswitch"].nvls is not None  # Hopper: NVLink SHARP


def test_parser_nvlink_pairs_across_sockets():
    t = sample("a100_pcie_4gpu_nvlink_pairs.txt", "a100-80g-pcie")
    assert t.paths[0][1] == ("nv12",) and t.paths[1][2] == ("pcie", "upi")
    assert t.links["nv12"].bytes_per_s == 300e9  # 12 links x 25 GB/s, A100 datasheet
    assert t.socket_of == (0, 0, 1, 1)


def test_parser_rtx4090_box_six_and_two():
    t = sample("rtx4090_8gpu_phb_node_sys.txt", "rtx-4090")
    assert t.socket_of == (0, 0, 0, 0, 0, 0, 1, 1)
    assert t.paths[0][2] == ("host",) and t.paths[5][6] == ("host", "upi")


def test_parser_dgx1_pcie_matrix():
    t = sample("dgx1_v100_pix_phb_sys.txt", "l40s")
    assert t.socket_of == (0, 0, 0, 0, 1, 1, 1, 1) and t.nics_per_gpu == 0.5


def test_parser_polaris_mesh_without_leading_tab():
    """NV4 to every peer is a direct mesh (4 x 25 GB/s < A100's 300 GB/s), not a switch."""
    t = sample("polaris_a100_4gpu_nv4_mesh.txt", "a100-80g-sxm")
    assert t.paths[0][3] == ("nv4",) and t.links["nv4"].bytes_per_s == 100e9
    assert t.is_direct(0, 3)


def test_parser_a6000_pair_plus_one():
    t = sample("rtx_a6000_3gpu_nv4_pair.txt", "a100-80g-pcie")
    assert t.paths[0][1] == ("nv4",) and t.paths[0][2] == ("pcie",) and t.sockets == 1


def test_parsed_topology_prices_the_slow_link():
    t = sample("a100_pcie_4gpu_nvlink_pairs.txt", "a100-80g-pcie")
    pair = collective_time("all_reduce", 2**28, (0, 1), t).time_s
    cross = collective_time("all_reduce", 2**28, (1, 2), t).time_s
    assert cross > 5 * pair


@pytest.mark.parametrize("text", [
    "", "hello world", "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tNV4\t0-3\n",
    "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tFOO\t0-3\nGPU1\tFOO\t X \t0-3\n",
    "\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \nGPU1\tSYS\t X \t0-3\n"])
def test_bad_topology_text_is_an_input_error(text):
    with pytest.raises(InputError):
        parse_topo_matrix(text, GPUS["h100-sxm"])


def args_for(*argv):
    p = argparse.ArgumentParser()
    add_topology_args(p)
    return p.parse_args(list(argv))


def test_topology_from_args_file_and_nodes():
    path = os.path.join(DATA, "h100_sxm_8gpu_nv18_8nic.txt")
    t = topology_from_args(args_for("--topology-file", path, "--nodes", "2"), GPUS["h100-sxm"], 8)
    assert t.nodes == 2 and t.gpus_per_node == 4 and t.n_gpus == 8
    with pytest.raises(InputError):
        topology_from_args(args_for("--topology-file", path), GPUS["h100-sxm"], 16)
    with pytest.raises(InputError):
        topology_from_args(args_for("--topology", "pcie", "--topology-file", path),
                           GPUS["h100-sxm"], 8)


def test_placement_tp_inside_node_then_socket():
    t = get_topology("pcie-2socket", GPUS["l40s"], 16, nodes=2)
    lay = layout(t, tp=4, pp=2, dp=2)
    assert lay.tp_group == (0, 1, 2, 3)  # one socket
    assert lay.stage_groups == ((0, 1, 2, 3), (4, 5, 6, 7))
    assert lay.pp_links == ((0, 4),)
    assert lay.dp_group == (0, 8)
    assert lay.ep_group(8) == (0, 1, 2, 3, 8, 9, 10, 11)  # TP x DP of stage 0
    with pytest.raises(InputError):
        lay.ep_group(3)


def test_placement_groups_nvlink_pairs_first():
    """Parsed order GPU0..3 with pairs (0,1),(2,3) on separate sockets: TP=2 takes a pair."""
    t = sample("a100_pcie_4gpu_nvlink_pairs.txt", "a100-80g-pcie")
    assert layout(t, tp=2, pp=2).stage_groups == ((0, 1), (2, 3))


def test_placement_too_many_gpus():
    with pytest.raises(InputError):
        layout(get_topology("nvswitch", GPUS["h100-sxm"], 8), tp=8, pp=2)


@pytest.mark.parametrize("typed,expect", [("ib", "edr, hdr, ndr, xdr"), ("infiniband", "edr, hdr"),
                                          ("roce", "roce-100g, roce-200g, roce-400g"),
                                          ("tcp", "tcp-25g, tcp-100g")])
def test_inter_node_suggestions_are_network_classes(typed, expect):
    """--inter-node ib once suggested "upi, qpi" (links inside a node) that --inter-node then
    rejected: a family word names the catalog's network classes of that family."""
    with pytest.raises(InputError) as info:
        get_topology("nvswitch", GPUS["h100-sxm"], 16, 2, inter_node=typed)
    msg = str(info.value)
    assert f"did you mean {expect}" in msg
    suggested = msg.split("did you mean ")[1].split("?")[0].split(", ")
    assert all(LINKS[name].kind == "net" for name in suggested)
    assert "upi" not in msg and "pcie" not in msg


def test_intra_node_class_as_inter_node_says_so():
    with pytest.raises(InputError, match="'upi' is a link inside a node") as info:
        get_topology("nvswitch", GPUS["h100-sxm"], 16, 2, inter_node="upi")
    assert "ndr" in str(info.value)
    ndr = get_topology("nvswitch", GPUS["h100-sxm"], 16, 2, inter_node="NDR")
    assert ndr.inter_node.name == "ndr"


# --- rack-scale NVLink (issue #18 item 4) -------------------------------------------------------

def _rack_args(**kw):
    p = argparse.ArgumentParser()
    add_topology_args(p)
    argv = []
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}", str(v)]
    return p.parse_args(argv)


def test_nvl72_rack_is_one_nvlink_domain_of_4_gpu_trays():
    """GB200 NVL72: 72 GPUs on one NVLink switch fabric, 18 trays of 4 (NVIDIA GB200 NVL72 spec);
    every pair is one switch hop and no pair inside the rack touches a NIC."""
    from sizer.hardware.gpus import get_gpu

    t = default_topology(get_gpu("gb200"), 72)
    assert (t.name, t.nodes, t.gpus_per_node, t.host_gpus) == ("nvl72", 1, 72, 4)
    assert {t.path(0, j)[0].kind for j in range(1, 72)} == {"nvswitch"}
    assert t.host_of(3) == 0 and t.host_of(4) == 1
    two = get_topology("nvl72", get_gpu("gb300"), 144, nodes=2)
    assert two.path(0, 71)[0].kind == "nvswitch" and two.path(0, 72)[0].kind == "net"
    assert two.inter_node.bytes_per_s == 100e9  # one ConnectX-8 800 Gb/s per GB300 GPU


def test_tp72_rides_nvlink():
    """TP (or EP) up to 72 on an NVL72 rack: the group's all-reduce is NCCL's NVLS inside one
    NVLink domain; TP144 over two racks crosses the NICs."""
    from sizer.hardware.gpus import get_gpu

    gpu = get_gpu("gb200")
    t = default_topology(gpu, 72)
    group = layout(t, 72).tp_group
    assert len(group) == 72
    assert collective_time("all_reduce", 2**30, group, t, algorithms="nccl").algorithm == "nvls"
    t2 = get_topology("nvl72", gpu, 144, nodes=2)
    assert collective_time("all_reduce", 2**30, layout(t2, 144).tp_group, t2,
                           algorithms="nccl").algorithm != "nvls"


def test_custom_all_reduce_stays_on_one_host():
    """vLLM's custom all-reduce shares CUDA IPC buffers, so it stops at the host (a 4-GPU tray
    on NVL72): TP4 in one tray may use it, TP8 over two trays uses NCCL."""
    from sizer.hardware.gpus import get_gpu

    t = default_topology(get_gpu("gb200"), 72)
    assert collective_time("all_reduce", 64 * 2**10, range(4), t).algorithm in ("one_shot", "two_shot")
    assert collective_time("all_reduce", 64 * 2**10, range(8), t).algorithm not in ("one_shot", "two_shot")


def test_nvl36x2_crosses_two_switch_tiers_between_racks():
    from sizer.hardware.gpus import get_gpu

    t = get_topology("nvl36x2", get_gpu("gb200"), 72)
    near, far = t.path(0, 35), t.path(0, 36)
    assert len(near) == 1 and len(far) == 2 and far[0].bytes_per_s == near[0].bytes_per_s


@pytest.mark.parametrize("kw, gpus, message", [
    (dict(nvlink_domain=72), 100, "does not divide 100 GPUs"),
    (dict(nvlink_domain=16), 16, "rack-scale"),  # h100: NVLink ends at the node
    (dict(nvlink_domain=36, nodes=3), 72, "disagree"),
    (dict(topology="nvl72"), 72, "rack-scale NVLink domain"),  # h100 has no NVL72 rack
])
def test_bad_rack_requests_are_input_errors(kw, gpus, message):
    from sizer.hardware.gpus import get_gpu

    gpu = get_gpu("h100-sxm" if "topology" in kw or kw.get("nvlink_domain") == 16 else "gb200")
    with pytest.raises(InputError, match=message):
        topology_from_args(_rack_args(**kw), gpu, gpus)


def test_nvlink_domain_zero_is_refused_by_the_flag_parser(capsys):
    with pytest.raises(SystemExit):
        _rack_args(nvlink_domain=0)
    assert "argument --nvlink-domain: count must be a positive whole number" in capsys.readouterr().err


def test_nvlink_domain_splits_a_rack_into_partitions():
    """--nvlink-domain 8 on 24 GB200 GPUs: three NVL8 partitions joined by the NICs (the layout
    of NVIDIA/nccl#1801); more GPUs than one rack need --nodes or --nvlink-domain."""
    from sizer.hardware.gpus import get_gpu

    gpu = get_gpu("gb200")
    t = topology_from_args(_rack_args(nvlink_domain=8), gpu, 24)
    assert (t.nodes, t.gpus_per_node) == (3, 8)
    assert topology_from_args(_rack_args(nvlink_domain=72), gpu, 144).nodes == 2
    with pytest.raises(InputError, match="--nodes"):
        topology_from_args(_rack_args(), gpu, 144)


def test_cli_rack_domain_not_dividing_exits_2(capsys):
    from sizer.cli.main import main

    assert main(["comm", "--op", "all_reduce", "--bytes", "1GiB", "--gpus", "100", "--gpu",
                 "gb200", "--nvlink-domain", "72"]) == 2
    err = capsys.readouterr().err
    assert "does not divide" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
