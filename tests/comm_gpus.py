"""Fixture GPUSpecs for the communication tests (datasheet values; the catalog data/gpus.json is
written concurrently, so these tests do not depend on it).

Sources: NVIDIA A100 / H100 / H200 / H100 NVL / A100 PCIe / RTX 4090 datasheets, AMD MI300X
datasheet. nvlink_bytes_per_s is the bidirectional per-GPU NVLink/xGMI total the datasheet states.
"""

from sizer.hardware.gpus import GPUSpec


def spec(id, form, nvlink, gen, pcie, p2p, per_node, nics, nic_bits, topo, vendor="NVIDIA"):
    return GPUSpec(id=id, name=id, vendor=vendor, form_factor=form, memory_bytes=80 * 10**9,
                   capacity_bytes=80 * 2**30, hbm_bytes_per_s=2e12, peak_flops_per_s={"bf16": 1e15},
                   nvlink_bytes_per_s=nvlink, nvlink_generation=gen, pcie_gen=pcie, pcie_lanes=16,
                   p2p=p2p, gpus_per_node=per_node, nics_per_gpu=nics, nic_bits_per_s=nic_bits,
                   default_topology=topo, tdp_watts=700)


GPUS = {
    "a100-80g-sxm": spec("a100-80g-sxm", "SXM", 600e9, 3, 4, True, 8, 1.0, 200e9, "nvswitch"),
    "h100-sxm": spec("h100-sxm", "SXM", 900e9, 4, 5, True, 8, 1.0, 400e9, "nvswitch"),
    "h200": spec("h200", "SXM", 900e9, 4, 5, True, 8, 1.0, 400e9, "nvswitch"),
    "b200": spec("b200", "SXM", 1800e9, 5, 5, True, 8, 1.0, 400e9, "nvswitch"),
    "h100-nvl": spec("h100-nvl", "PCIe", 600e9, 4, 5, True, 4, 0.0, 0.0, "nvlink-pairs"),
    "h100-pcie": spec("h100-pcie", "PCIe", 600e9, 4, 5, True, 8, 0.0, 0.0, "pcie"),
    "a100-80g-pcie": spec("a100-80g-pcie", "PCIe", 600e9, 3, 4, True, 4, 0.0, 0.0, "nvlink-pairs"),
    "l40s": spec("l40s", "PCIe", 0.0, None, 4, True, 8, 0.0, 0.0, "pcie"),
    "rtx-4090": spec("rtx-4090", "PCIe", 0.0, None, 4, False, 8, 0.0, 0.0, "pcie"),
    "rtx-5090": spec("rtx-5090", "PCIe", 0.0, None, 5, False, 8, 0.0, 0.0, "pcie"),
    "mi300x": spec("mi300x", "OAM", 896e9, None, 5, True, 8, 1.0, 400e9, "xgmi", vendor="AMD"),
}
