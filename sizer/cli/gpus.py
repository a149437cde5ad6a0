"""`sizer gpus`: the GPU catalog, as a table or as JSON.

Shows what the sizer will assume for each accelerator: the memory the device reports to CUDA
(what engines budget against, not the marketing number), HBM bandwidth, dense tensor-core peaks,
NVLink bandwidth and the default node (GPUs per node and topology). Every number comes from
`data/gpus.json`, where each field carries its citation (`--json` includes them).
"""

import dataclasses

from sizer.hardware.gpus import all_gpus, get_gpu
from .common import nonempty

_COLUMNS = ("id", "mem GiB", "HBM TB/s", "bf16 TF/s", "fp8 TF/s", "fp4 TF/s", "NVLink GB/s", "form",
            "default node")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "gpus", help="list the GPU catalog (datasheet numbers with sources)",
        description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="*", metavar="GPU", type=nonempty,
                   help="only these GPUs (id or alias, case-insensitive); default: all")
    p.add_argument("--json", action="store_true",
                   help="print one JSON list with every field, sources included")
    p.set_defaults(func=run)


def run(args) -> int:
    gpus = [get_gpu(n) for n in args.names] if args.names else list(all_gpus().values())
    if args.json:
        from sizer.output import emit_json

        emit_json([gpu_record(g) for g in gpus])
        return 0
    print(format_table(gpus))
    print("mem GiB: capacity reported to CUDA (torch.cuda.mem_get_info total); "
          "TF/s: dense, no sparsity; NVLink: total bidirectional per GPU.")
    return 0


def gpu_record(gpu) -> dict:
    """All fields of a GPUSpec as plain JSON types (aliases as a list)."""
    rec = dataclasses.asdict(gpu)
    rec["aliases"] = list(gpu.aliases)
    return rec


def table_row(gpu) -> tuple:
    """One display row; units converted here only (GiB for memory, 1e9/1e12 for rates)."""
    flops = gpu.peak_flops_per_s
    fp8 = f"{flops['fp8'] / 1e12:.1f}" if flops.get("fp8") else "-"
    fp4 = f"{flops['fp4'] / 1e12:.0f}" if flops.get("fp4") else "-"
    nvlink = f"{gpu.nvlink_bytes_per_s / 1e9:.0f}" if gpu.nvlink_bytes_per_s else "-"
    node = f"{gpu.gpus_per_node}x {gpu.default_topology}"
    if gpu.domain_gpus > gpu.gpus_per_node:  # rack-scale NVLink: trays of 4 in a 72-GPU domain
        node = f"{gpu.domain_gpus}x {gpu.default_topology} ({gpu.gpus_per_node}/tray)"
    return (gpu.id, f"{gpu.capacity_bytes / 2**30:.2f}", f"{gpu.hbm_bytes_per_s / 1e12:.2f}",
            f"{flops['bf16'] / 1e12:.1f}", fp8, fp4, nvlink, gpu.form_factor, node)


def format_table(gpus) -> str:
    rows = [_COLUMNS] + [table_row(g) for g in gpus]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = []
    for n, row in enumerate(rows):
        cells = [c.ljust(w) if i in (0, 7, 8) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
