"""The GPU catalog (data/gpus.json + sizer.hardware.gpus) and the `sizer gpus` command.

Datasheet numbers are pinned with their source; the rest are invariants every preset must keep.
"""

import dataclasses
import json

import pytest

from sizer.cli.main import main
from sizer.errors import InputError
from sizer.hardware.gpus import GPUSpec, all_gpus, get_gpu
from sizer.model.resources import read_json

GiB = 2**30
IDS = ("a100-40g-sxm", "a100-80g-sxm", "a100-80g-pcie", "h100-sxm", "h100-pcie", "h100-nvl", "h200",
       "b200", "l40s", "l4", "a10", "rtx-4090", "mi300x")
DTYPES = {"fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"}
TOPOLOGIES = {"nvswitch", "nvlink-pairs", "pcie", "xgmi"}
# Fields that are identity or bookkeeping rather than facts needing a citation.
UNCITED = {"id", "name", "vendor", "aliases", "sources"}


def test_catalog_has_exactly_the_requested_gpus():
    assert tuple(all_gpus()) == IDS


def test_every_record_has_exactly_the_gpuspec_fields():
    fields = {f.name for f in dataclasses.fields(GPUSpec)}
    for rec in read_json("gpus.json"):
        assert set(rec) == fields, rec["id"]


@pytest.mark.parametrize("gpu_id", IDS)
def test_each_gpu_loads_with_sane_values(gpu_id):
    g = get_gpu(gpu_id)
    assert g.id == gpu_id
    assert g.form_factor in {"SXM", "PCIe", "OAM"}
    assert set(g.peak_flops_per_s) <= DTYPES and {"fp32", "bf16", "fp16"} <= set(g.peak_flops_per_s)
    assert g.peak_flops_per_s["bf16"] == g.peak_flops_per_s["fp16"]
    assert g.default_topology in TOPOLOGIES
    assert g.pcie_lanes == 16 and g.pcie_gen in (4, 5)
    assert g.gpus_per_node == 8 and g.nics_per_gpu > 0 and g.nic_bits_per_s > 0
    assert g.tdp_watts > 0 and g.hbm_bytes_per_s > 0


@pytest.mark.parametrize("gpu_id", IDS)
def test_reported_capacity_is_below_marketing_capacity(gpu_id):
    """CUDA reports less than the marketing size (driver/ECC reservations): 0.25-4 GiB less.

    Marketing 'GB' on memory capacity are binary (80 GB H100 = 5 x 16 GiB stacks): the H100
    reports 79.22 GiB = 85.06e9 bytes (memory_facts R03107), more than 80e9 bytes.
    """
    g = get_gpu(gpu_id)
    assert g.memory_bytes % GiB == 0
    assert g.capacity_bytes <= g.memory_bytes
    assert 0.25 * GiB <= g.memory_bytes - g.capacity_bytes <= 4 * GiB


@pytest.mark.parametrize("gpu_id", IDS)
def test_every_fact_has_a_source(gpu_id):
    g = get_gpu(gpu_id)
    needed = {f.name for f in dataclasses.fields(GPUSpec)} - UNCITED
    assert needed <= set(g.sources), needed - set(g.sources)
    for name in needed:
        assert isinstance(g.sources[name], str) and len(g.sources[name]) > 20, (gpu_id, name)
    # a measured capacity, or an estimate that says so and how it was derived
    cap = g.sources["capacity_bytes"]
    assert "GiB" in cap and ("estimate" in cap or "R03107" in cap or "total capacity" in cap)


@pytest.mark.parametrize("gpu_id", IDS)
def test_nvlink_fields_agree(gpu_id):
    g = get_gpu(gpu_id)
    if g.nvlink_bytes_per_s == 0:
        assert g.nvlink_generation is None and g.default_topology == "pcie"
    if g.default_topology in ("nvswitch", "nvlink-pairs"):
        assert g.nvlink_bytes_per_s > 0 and g.nvlink_generation in (3, 4, 5)


def test_h100_sxm_datasheet_numbers():
    """H100 SXM5: BF16 989.4 TFLOP/s dense (1,979 with sparsity), FP8 1978.9, 3.35 TB/s HBM3,
    NVLink 900 GB/s (NVIDIA H100 datasheet; Hopper whitepaper dense table)."""
    g = get_gpu("h100-sxm")
    assert g.peak_flops_per_s["bf16"] == 989.4e12
    assert g.peak_flops_per_s["fp8"] == pytest.approx(1979e12, rel=1e-3)
    assert g.hbm_bytes_per_s == 3.35e12
    assert g.nvlink_bytes_per_s == 900e9
    assert g.memory_bytes == 80 * GiB


def test_h100_capacity_matches_reference_record():
    """vLLM logs an H100-80G total of 79.22 GiB (memory_facts.json R03107, vLLM PR #12126)."""
    ref = {r["id"]: r for r in json.load(open("/work/shared/reference/memory_facts.json"))} \
        if _has_reference() else {}
    if ref:
        assert "79.22 GiB" in ref["R03107"]["conditions"]["gpu"]
    assert get_gpu("h100-sxm").capacity_bytes / GiB == pytest.approx(79.22, abs=0.005)


def test_h200_datasheet_numbers():
    """H200 SXM: 141 GB HBM3e at 4.8 TB/s, same compute as H100 SXM (NVIDIA H200 datasheet)."""
    g = get_gpu("h200")
    assert g.memory_bytes == 141 * GiB
    assert g.hbm_bytes_per_s == 4.8e12
    assert g.peak_flops_per_s == get_gpu("h100-sxm").peak_flops_per_s


def test_mi300x_datasheet_numbers():
    """MI300X: 192 GB HBM3 at 5.3 TB/s, FP16/BF16 1307.4 TFLOP/s dense (AMD MI300X data sheet)."""
    g = get_gpu("mi300x")
    assert g.memory_bytes == 192 * GiB
    assert g.hbm_bytes_per_s == 5.3e12
    assert g.peak_flops_per_s["bf16"] == 1307.4e12
    assert (g.vendor, g.form_factor, g.default_topology) == ("AMD", "OAM", "xgmi")


def test_default_nodes():
    """SXM: 8 per node on NVSwitch, one 400 Gb/s NIC per GPU (DGX H100) or 200 Gb/s HDR (DGX A100)."""
    for gid in ("h100-sxm", "h200", "b200"):
        g = get_gpu(gid)
        assert (g.default_topology, g.gpus_per_node, g.nics_per_gpu, g.nic_bits_per_s) == \
            ("nvswitch", 8, 1.0, 400e9)
    for gid in ("a100-40g-sxm", "a100-80g-sxm"):
        assert get_gpu(gid).nic_bits_per_s == 200e9
    assert get_gpu("h100-nvl").default_topology == "nvlink-pairs"
    assert get_gpu("a100-80g-pcie").default_topology == "nvlink-pairs"
    assert get_gpu("mi300x").default_topology == "xgmi"
    for gid in ("l4", "l40s", "a10", "rtx-4090"):
        g = get_gpu(gid)
        assert (g.default_topology, g.nvlink_bytes_per_s) == ("pcie", 0.0)
    assert get_gpu("rtx-4090").p2p is False
    assert all(g.p2p for g in all_gpus().values() if g.id != "rtx-4090")


def test_default_gpu_exists():
    assert get_gpu("h100-sxm").name.startswith("NVIDIA H100 SXM")


@pytest.mark.parametrize("alias, gpu_id", [
    ("h100", "h100-sxm"), ("H100", "h100-sxm"), ("h100-sxm5", "h100-sxm"), ("H100_SXM5_80GB", "h100-sxm"),
    ("a100", "a100-80g-sxm"), ("A100-40GB", "a100-40g-sxm"), ("4090", "rtx-4090"), ("RTX 4090", "rtx-4090"),
    ("mi300", "mi300x"), ("MI300X", "mi300x"), ("h200", "h200"), ("H100-NVL", "h100-nvl"), ("L40S", "l40s"),
    ("a10g", "a10"), ("B200", "b200"),
])
def test_aliases_resolve_case_insensitively(alias, gpu_id):
    assert get_gpu(alias).id == gpu_id


def test_aliases_are_unique():
    seen = {}
    for g in all_gpus().values():
        for name in (g.id,) + g.aliases:
            assert name == name.lower()
            assert seen.setdefault(name, g.id) == g.id, name


def test_unknown_gpu_is_an_input_error_with_a_suggestion():
    with pytest.raises(InputError, match=r"did you mean .*h100"):
        get_gpu("h10")


def test_unknown_gpu_exits_2_through_the_cli(capsys):
    assert main(["gpus", "h1000"]) == 2
    err = capsys.readouterr().err
    assert "unknown GPU 'h1000'" in err and "did you mean" in err and "Traceback" not in err


def test_table_lists_every_gpu(capsys):
    assert main(["gpus"]) == 0
    out = capsys.readouterr().out
    for gid in IDS:
        assert f"\n{gid} " in out
    assert "79.22" in out and "989.4" in out


def test_json_output_parses_and_round_trips(capsys):
    assert main(["gpus", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in doc] == list(IDS)
    rebuilt = GPUSpec(**{**doc[3], "aliases": tuple(doc[3]["aliases"])})
    assert rebuilt == get_gpu("h100-sxm")


def test_json_for_selected_gpus(capsys):
    assert main(["gpus", "--json", "4090", "MI300"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["rtx-4090", "mi300x"]


def _has_reference() -> bool:
    import os

    return os.path.exists("/work/shared/reference/memory_facts.json")
