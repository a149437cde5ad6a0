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
from reference_data import by_id

GiB = 2**30
IDS = ("a100-40g-sxm", "a100-80g-sxm", "a100-80g-pcie", "h100-sxm", "h100-pcie", "h100-nvl", "h200",
       "b200", "l40s", "l4", "a10", "rtx-4090", "mi300x",
       "b300", "gb200", "gb300", "h20", "rtx-pro-6000", "mi325x", "mi355x")  # issue #18 item 5
DTYPES = {"fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4"}
TOPOLOGIES = {"nvswitch", "nvlink-pairs", "pcie", "xgmi", "nvl72"}
OPTIONAL = {"nvlink_domain_gpus"}  # defaulted GPUSpec fields a record may leave out
# Fields that are identity or bookkeeping rather than facts needing a citation.
UNCITED = {"id", "name", "vendor", "aliases", "sources"}


def test_catalog_has_exactly_the_requested_gpus():
    assert tuple(all_gpus()) == IDS


def test_every_record_has_exactly_the_gpuspec_fields():
    fields = {f.name for f in dataclasses.fields(GPUSpec)}
    for rec in read_json("gpus.json"):
        assert fields - OPTIONAL <= set(rec) <= fields, rec["id"]


@pytest.mark.parametrize("gpu_id", IDS)
def test_each_gpu_loads_with_sane_values(gpu_id):
    g = get_gpu(gpu_id)
    assert g.id == gpu_id
    assert g.form_factor in {"SXM", "PCIe", "OAM", "Superchip"}
    assert set(g.peak_flops_per_s) <= DTYPES and {"fp32", "bf16", "fp16"} <= set(g.peak_flops_per_s)
    assert g.peak_flops_per_s["bf16"] == g.peak_flops_per_s["fp16"]
    assert g.default_topology in TOPOLOGIES
    assert g.pcie_lanes == 16 and g.pcie_gen in (4, 5, 6)
    # 8 per node, or 4-GPU trays of a 72-GPU NVLink rack (GB200/GB300 NVL72)
    assert (g.gpus_per_node, g.domain_gpus) in ((8, 8), (4, 72))
    assert (g.default_topology == "nvl72") == (g.domain_gpus == 72)
    assert g.nics_per_gpu > 0 and g.nic_bits_per_s > 0
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
    rec = next(r for r in read_json("gpus.json") if r["id"] == gpu_id)
    needed = (set(rec) & {f.name for f in dataclasses.fields(GPUSpec)}) - UNCITED
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
    if g.default_topology in ("nvswitch", "nvlink-pairs", "nvl72"):
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
    assert "79.22 GiB" in by_id("memory_facts.json")["R03107"]["conditions"]["gpu"]
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
    assert get_gpu("rtx-pro-6000").default_topology == "pcie"  # 8 per node over PCIe (issue #18)
    for gid in ("mi325x", "mi355x"):
        assert get_gpu(gid).default_topology == "xgmi"
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


# --- issue #18 item 5: the current GPUs, each number against the source its record cites ------
TB, PF, TF = 1e12, 1e15, 1e12


@pytest.mark.parametrize("gpu_id, mem_gib, hbm, peaks, nvlink, tdp", [
    # NVIDIA HGX B300 specs: 8-GPU FP4 144 | 108 PF (sparse | dense), FP8 72 PF*, BF16 36 PF*,
    # TF32 18 PF* (* sparse), FP32 600 TF; Verda per-GPU table: 270 GB, 7.7 TB/s, 1.1 kW
    ("b300", 270, 7.7 * TB, {"fp4": 108 / 8 * PF, "fp8": 72 / 16 * PF, "bf16": 36 / 16 * PF,
                             "tf32": 18 / 16 * PF, "fp32": 600 / 8 * TF}, 1.8 * TB, 1100),
    # GB200 NVL72 rack / 72 GPUs, sparse / 2: FP4 1440 PF, FP8 720, BF16 360, TF32 180; 13.4 TB
    # at 576 TB/s; MLPerf v6.1 Crusoe system: 186 GB per GPU
    ("gb200", 186, 576 / 72 * TB, {"fp4": 1440 / 144 * PF, "fp8": 720 / 144 * PF,
                                   "bf16": 360 / 144 * PF, "tf32": 180 / 144 * PF}, 1.8 * TB, 1200),
    # GB300 NVL72: FP4 1,080 PF dense / 72; 576 TB/s / 72; Verda: 279 GB, 1.4 kW
    ("gb300", 279, 576 / 72 * TB, {"fp4": 1080 / 72 * PF, "fp8": 5 * PF, "bf16": 2.5 * PF}, 1.8 * TB, 1400),
    # H20: 96 GB HBM3 at 4.0 TB/s, FP16 148 / INT8-FP8 296 / TF32 74 / FP32 44 TF, NVLink 900 GB/s
    ("h20", 96, 4.0 * TB, {"bf16": 148 * TF, "fp8": 296 * TF, "int8": 296 * TF, "tf32": 74 * TF,
                           "fp32": 44 * TF}, 900e9, 400),
    # RTX PRO 6000 Blackwell Server Edition: 96 GB GDDR7 at 1,597 GB/s, '4,000 AI TOPS' FP4 sparse
    ("rtx-pro-6000", 96, 1.597 * TB, {"fp4": 4000 / 2 * TF, "fp32": 125 * TF}, 0.0, 600),
    # MI325X: 256 GB HBM3E at 6 TB/s, MI300X compute (FP16 1307.4, FP8 2614.9 dense), 1,000 W
    ("mi325x", 256, 6.0 * TB, {"bf16": 1307.4 * TF, "fp8": 2614.9 * TF, "tf32": 653.7 * TF}, 896e9, 1000),
    # MI355X: 288 GB HBM3E at 8 TB/s; 256 CUs x 8192 FP8 FLOP/clk x 2.4 GHz; 1,400 W
    ("mi355x", 288, 8.0 * TB, {"fp8": 256 * 8192 * 2.4e9, "bf16": 256 * 8192 * 2.4e9 / 2,
                               "fp4": 256 * 8192 * 2.4e9 * 2}, 1075.2e9, 1400),
])
def test_current_gpu_datasheet_numbers(gpu_id, mem_gib, hbm, peaks, nvlink, tdp):
    g = get_gpu(gpu_id)
    assert g.memory_bytes == mem_gib * GiB
    assert g.hbm_bytes_per_s == pytest.approx(hbm, rel=1e-6)
    for dtype, value in peaks.items():
        assert g.peak_flops_per_s[dtype] == pytest.approx(value, rel=2e-4), dtype
    assert g.nvlink_bytes_per_s == pytest.approx(nvlink) and g.tdp_watts == tdp


def test_fp4_peaks_where_the_part_has_them():
    """NVFP4/MXFP4 tensor cores: Blackwell (B200/B300/GB200/GB300/RTX PRO) and CDNA 4 (MI355X);
    Hopper (H20) and CDNA 3 (MI325X) have none. Blackwell Ultra's dense FP4 is 1.5x Blackwell's
    (GB300 15 PF vs GB200 10 PF), its INT8 nearly gone (GB300 INT8 24 POPS per 72-GPU rack)."""
    has = {gid for gid in IDS if get_gpu(gid).peak_flops_per_s.get("fp4")}
    assert {"b200", "b300", "gb200", "gb300", "rtx-pro-6000", "mi355x"} <= has
    assert not has & {"h20", "mi325x", "h100-sxm", "h200", "mi300x"}
    assert get_gpu("gb300").peak("fp4") == 1.5 * get_gpu("gb200").peak("fp4")
    assert get_gpu("gb300").peak("int8") < 0.05 * get_gpu("gb200").peak("int8")


def test_rack_scale_gpus_come_in_nvl72_racks():
    """GB200/GB300: 4-GPU compute trays, 72 GPUs per NVLink domain, one NIC per GPU (MLPerf v6.1
    Crusoe GB200 system: 4x ConnectX-7 per 4-GPU node; GB300: one ConnectX-8 800 Gb/s per GPU)."""
    for gid, nic in (("gb200", 400e9), ("gb300", 800e9)):
        g = get_gpu(gid)
        assert (g.gpus_per_node, g.nvlink_domain_gpus, g.domain_gpus) == (4, 72, 72)
        assert (g.default_topology, g.nics_per_gpu, g.nic_bits_per_s) == ("nvl72", 1.0, nic)
    assert get_gpu("b300").domain_gpus == 8 and get_gpu("b300").nic_bits_per_s == 800e9
    assert get_gpu("gb200").form_factor == "Superchip"


def test_estimated_capacities_say_how_they_were_derived():
    """No public torch capacity line for these parts: the estimate scales a sibling's reported
    share of its marketing size (B200 178.36/180, H100 79.22/80, MI300X 191.69/192)."""
    pairs = {"b300": ("b200", 270), "gb300": ("b200", 279), "h20": ("h100-sxm", 96),
             "mi325x": ("mi300x", 256), "mi355x": ("mi300x", 288)}
    for gid, (sibling, gib) in pairs.items():
        s = get_gpu(sibling)
        assert get_gpu(gid).capacity_bytes / GiB == pytest.approx(
            gib * s.capacity_bytes / s.memory_bytes, abs=0.01), gid
        assert "estimate" in get_gpu(gid).sources["capacity_bytes"]
