"""How far sizer's default communication model is from every public reference curve.

Reads data/reference/nccl_collectives.json (a copy of the shared reference file, shipped with the
repository; override with --reference) and the multi-node tables in data/nccl_multinode.json
(GB200 NVL72 racks 1-20, H100 2-8 nodes, NVL partitions; each record cites its source), runs
sizer.cost.collectives with NCCL's algorithms only (the references are NCCL runs; no custom
all-reduce), and prints, per system and collective, the median and worst |error| % for small
(< 1 MB) and large (>= 1 MB) messages, then single-value references (peak busbw statements),
then the multi-node error by node count (busbw error of every multi-node curve point and
single-value reference of >= 32 MiB: median |error|, p90, worst, signed median), then one JSON
line with everything.

Each curve is mapped to a GPU, topology and node count below (SYSTEMS), with the reason where the
source leaves something open (e.g. vidur's undocumented 2-node network).
"""

import argparse
import dataclasses
import json
import os
import statistics
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from sizer.cost.collectives import collective_time  # noqa: E402
from sizer.hardware.gpus import get_gpu  # noqa: E402
from sizer.hardware.topology import get_topology  # noqa: E402

REFERENCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "reference",
                         "nccl_collectives.json")
MULTINODE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "nccl_multinode.json")
BY_NODES_MIN_BYTES = 32 * 2**20  # the range: 32 MiB and up
SIZE_KEYS = ("message_size_bytes", "message_size_label")


def _gpu(name, **changes):
    spec = get_gpu(name)
    return dataclasses.replace(spec, **changes) if changes else spec


# first record id of a curve -> (system label, gpu, topology, GPUs per node, nodes, inter-node,
# ranks override or None, note)
CURVES = {
    "R00001": ("nccl-tests#194 H100 PCIe pair", "h100-pcie", "nvlink-pairs", 2, 1, None, None,
               "user reports this as low"),
    "R00004": ("nccl#1244 H20 2x8 NVLSTree", "h20", "nvswitch", 8, 2, "ndr", None,
               "H20: 1 NDR NIC per GPU"),
    # data/nccl_multinode.json
    "M00001": ("CoreWeave GB200 NVL72 1 rack", "gb200", "nvl72", 72, 1, None, None, ""),
    "M00006": ("CoreWeave GB200 NVL72 2 racks", "gb200", "nvl72", 72, 2, None, None, ""),
    "M00012": ("CoreWeave GB200 NVL72 20 racks", "gb200", "nvl72", 72, 20, None, None,
               "NCCL's ring across 1,440 ranks (ms latency); sizer prices it too"),
    "M00018": ("CoreWeave H100 8x8 IB SHARP", "h100-sxm", "nvswitch", 8, 8, "ndr", None,
               "CollNet (switch reduction) is not modelled: NCCL's own algorithms answer"),
    "M00023": ("GCP A3 Mega H100 2x8 TCPXO", "h100-sxm", "nvswitch", 8, 2, "tcpxo-200g", None,
               "8x 200 Gb/s per node; the tcpxo-200g class is fitted to this curve"),
    "M00047": ("Azure GB200 1 tray (4) ring", "gb200", "nvl72", 4, 1, None, None, "ring (table says)",
               {"ring"}),
    "R00012": ("nccl-tests#232 H100 2x1 RoCE", "h100-sxm", "nvswitch", 1, 2, "roce-400g", None,
               "user reports a misconfigured network (41 GB/s plateau)"),
    "R00029": ("Azure ND A100 v4", "a100-80g-sxm", "nvswitch", 8, 1, None, None, ""),
    "R00058": ("Azure ND H100 v5", "h100-sxm", "nvswitch", 8, 1, None, None, ""),
    "R00088": ("Azure ND H200 v5", "h200", "nvswitch", 8, 1, None, None, ""),
}
_VIDUR = {
    "h100_dgx": ("h100-sxm", "nvswitch", "ndr"),
    "a100_dgx": ("a100-80g-sxm", "nvswitch", "tcp-100g"),
    "h100_pairwise_nvlink": ("h100-nvl", "nvlink-pairs", "tcp-25g"),
    "a100_pairwise_nvlink": ("a100-80g-pcie", "nvlink-pairs", "tcp-25g"),
}
VIDUR_NOTE = ("vidur's 2-node network is undocumented; a100_dgx and pairwise 2-node rows behave "
              "like NCCL's TCP socket transport (7.8 and 2.5 GB/s send_recv), so they run with "
              "tcp-100g / tcp-25g; h100_dgx with its catalog NDR NIC")

# single-value references: id -> (label, gpu, topology, per_node, nodes, inter, ranks, how, algos)
POINTS = {
    "R00017": ("H200 8 peak busbw", "h200", "nvswitch", 8, 1, None, None, ("at", 4 * 2**30), None),
    "R00018": ("H100 8 NVLS peak (maintainer)", "h100-sxm", "nvswitch", 8, 1, None, None,
               ("at", 8 * 2**30), None),
    "R00019": ("H100 8 ring busbw (maintainer)", "h100-sxm", "nvswitch", 8, 1, None, None,
               ("at", 8 * 2**30), {"ring"}),
    "R00020": ("H100 8 NVLS busbw (maintainer)", "h100-sxm", "nvswitch", 8, 1, None, None,
               ("at", 8 * 2**30), None),
    "R00021": ("H800 8 busbw", ("h100-sxm", {"nvlink_bytes_per_s": 400e9}), "nvswitch", 8, 1,
               None, None, ("at", 8 * 2**30), None),
    "R00022": ("RTX 5090 x8 PCIe5 no-P2P", ("rtx-4090", {"pcie_gen": 5}), "pcie", 8, 1, None,
               None, ("at", 8 * 2**30), None),
    "R00023": ("RTX 5090 x4 PCIe5 no-P2P", ("rtx-4090", {"pcie_gen": 5}), "pcie", 4, 1, None,
               None, ("at", 8 * 2**30), None),
    "R00024": ("A100 SXM 8 busbw ~200", "a100-80g-sxm", "nvswitch", 8, 1, None, None,
               ("at", 2**30), None),
    "R00025": ("A100 NV12 pair busbw", "a100-80g-pcie", "nvlink-pairs", 2, 1, None, None,
               ("at", 8 * 2**30), None),
    "R00026": ("A100 pair + SYS, 3 GPUs", "a100-80g-pcie", "nvlink-pairs", 8, 1, None, (0, 1, 4),
               ("at", 8 * 2**30), None),
    "R00027": ("A100-40G 3x8, 4 HDR/node avg", ("a100-40g-sxm", {"nics_per_gpu": 0.5}),
               "nvswitch", 8, 3, "hdr", None, ("avg", 8, 128 * 2**20), None),
    "R00028": ("A100-40G 3x8, 4 HDR/node peak", ("a100-40g-sxm", {"nics_per_gpu": 0.5}),
               "nvswitch", 8, 3, "hdr", None, ("at", 128 * 2**20), None),
    # data/nccl_multinode.json: GB200 NVL partitions on three racks, IB between (nccl#1801)
    "M00071": ("GB200 3x NVL4 ring (nccl#1801)", "gb200", "nvl72", 4, 3, None, None,
               ("at", 16 * 2**30), {"ring"}),
    "M00072": ("GB200 3x NVL4 tree (nccl#1801)", "gb200", "nvl72", 4, 3, None, None,
               ("at", 16 * 2**30), {"tree"}),
    "M00073": ("GB200 3x NVL8 ring (nccl#1801)", "gb200", "nvl72", 8, 3, None, None,
               ("at", 16 * 2**30), {"ring"}),
    "M00074": ("GB200 3x NVL8 tree (nccl#1801)", "gb200", "nvl72", 8, 3, None, None,
               ("at", 16 * 2**30), {"tree"}),
}


def _spec(gpu):
    return _gpu(gpu[0], **gpu[1]) if isinstance(gpu, tuple) else _gpu(gpu)


def _model(op, sizes, gpu, topo_name, per_node, nodes, inter, ranks, algos="nccl"):
    spec = _spec(gpu)
    topo = get_topology(topo_name, spec, per_node * nodes, nodes, inter)
    ranks = ranks or tuple(range(per_node * nodes))
    return collective_time(op, np.asarray(sizes, dtype=float), ranks, topo, algorithms=algos)


def load_curves(path, multinode=None):
    records = []
    for p in (path, multinode):
        if p and os.path.exists(p):
            with open(p, encoding="utf-8") as fh:
                records += json.load(fh)
    groups = {}
    for r in records:
        cond = {k: v for k, v in r["conditions"].items() if k not in SIZE_KEYS}
        key = json.dumps(cond, sort_keys=True) + r["metric"]
        groups.setdefault(key, []).append(r)
    return [g for g in groups.values()], {r["id"]: r for r in records}


def curve_setup(rs):
    first = rs[0]
    cond = first["conditions"]
    if first["id"] in CURVES:
        return CURVES[first["id"]]
    system = cond.get("system")
    if system in _VIDUR:
        gpu, topo, inter = _VIDUR[system]
        per_node = cond["gpus_per_node"]
        return (f"vidur {system} {cond['nodes']}x{per_node}", gpu, topo, per_node,
                cond["nodes"], inter, None, VIDUR_NOTE if cond["nodes"] > 1 else "")
    return None


def evaluate(path=REFERENCE, multinode=MULTINODE):
    groups, by_id = load_curves(path, multinode)
    rows, skipped, by_nodes = [], [], {}
    for rs in groups:
        if len(rs) < 3:
            continue
        setup = curve_setup(rs)
        if setup is None:
            skipped.append(rs[0]["id"])
            continue
        label, gpu, topo, per_node, nodes, inter, ranks, note = setup[:8]
        algos = setup[8] if len(setup) > 8 else "nccl"
        op = rs[0]["conditions"]["collective"]
        sizes = np.array([r["conditions"]["message_size_bytes"] for r in rs], dtype=float)
        ref = np.array([r["value"] for r in rs], dtype=float)
        cost = _model(op, sizes, gpu, topo, per_node, nodes, inter, ranks, algos)
        metric = rs[0]["metric"]
        model = cost.time_s * 1e6 if metric.startswith("time") else cost.busbw_GBps
        signed_all = (model - ref) / ref * 100
        err = np.abs(signed_all)
        if nodes > 1:  # busbw error; a time curve's busbw error is ref time / model time - 1
            keep = sizes >= BY_NODES_MIN_BYTES
            signed = ((model[keep] - ref[keep]) / ref[keep] * 100 if metric == "busbw"
                      else (ref[keep] / model[keep] - 1) * 100)
            by_nodes.setdefault(nodes, []).extend((float(e), label) for e in signed)
        signed = signed_all
        for part, mask in (("small", sizes < 1e6), ("large", sizes >= 1e6)):
            if mask.any():
                rows.append({"system": label, "op": op, "n": per_node * nodes, "nodes": nodes,
                             "metric": metric, "sizes": part, "points": int(mask.sum()),
                             "median_err_pct": float(np.median(err[mask])),
                             "median_signed_err_pct": float(np.median(signed[mask])),
                             "worst_err_pct": float(np.max(err[mask])), "first_id": rs[0]["id"],
                             "note": note})
    points = []
    for rid, (label, gpu, topo, per_node, nodes, inter, ranks, how, algos) in POINTS.items():
        rec = by_id.get(rid)
        if rec is None:
            continue
        op = "all_reduce"
        if how[0] == "at":
            value = float(_model(op, how[1], gpu, topo, per_node, nodes, inter, ranks,
                                 algos or "nccl").busbw_GBps)
        else:
            sizes = [how[1] * 2**i for i in range(int(np.log2(how[2] / how[1])) + 1)]
            value = float(np.mean(_model(op, sizes, gpu, topo, per_node, nodes, inter, ranks,
                                         algos or "nccl").busbw_GBps))
        points.append({"id": rid, "label": label, "ref_GBps": rec["value"], "model_GBps": value,
                       "err_pct": abs(value - rec["value"]) / rec["value"] * 100})
        if nodes > 1 and rec["conditions"].get("message_size_bytes", BY_NODES_MIN_BYTES) >= BY_NODES_MIN_BYTES:
            by_nodes.setdefault(nodes, []).append(((value - rec["value"]) / rec["value"] * 100, label))
    return rows, points, skipped, _node_table(by_nodes)


def _node_table(by_nodes) -> list:
    """Per node count: busbw error over every multi-node curve point of >= 32 MiB."""
    out = []
    for nodes in sorted(by_nodes):
        signed = [e for e, _ in by_nodes[nodes]]
        absolute = sorted(abs(e) for e in signed)
        out.append({"nodes": nodes, "points": len(signed),
                    "curves": sorted({c for _, c in by_nodes[nodes]}),
                    "median_abs_err_pct": statistics.median(absolute),
                    "p90_abs_err_pct": absolute[min(len(absolute) - 1, int(0.9 * len(absolute)))],
                    "worst_abs_err_pct": absolute[-1],
                    "median_signed_err_pct": statistics.median(signed)})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", default=REFERENCE)
    args = parser.parse_args(argv)
    rows, points, skipped, nodes = evaluate(args.reference)
    print(f"{'system':38s} {'op':10s} {'n':>3s} {'metric':11s} {'sizes':5s} {'pts':>3s} "
          f"{'median|e|%':>10s} {'worst|e|%':>9s}")
    for r in rows:
        print(f"{r['system']:38s} {r['op']:10s} {r['n']:3d} {r['metric']:11s} {r['sizes']:5s} "
              f"{r['points']:3d} {r['median_err_pct']:10.1f} {r['worst_err_pct']:9.1f}")
    print()
    print(f"{'single-value reference':38s} {'id':7s} {'ref GB/s':>9s} {'model':>8s} {'|e|%':>6s}")
    for p in points:
        print(f"{p['label']:38s} {p['id']:7s} {p['ref_GBps']:9.1f} {p['model_GBps']:8.1f} "
              f"{p['err_pct']:6.1f}")
    print()
    print(f"{'multi-node busbw >= 32 MiB':28s} {'pts':>4s} {'median|e|%':>10s} {'p90|e|%':>8s} "
          f"{'worst|e|%':>9s} {'signed%':>8s}  curves")
    for r in nodes:
        print(f"{str(r['nodes']) + ' nodes':28s} {r['points']:4d} {r['median_abs_err_pct']:10.1f} "
              f"{r['p90_abs_err_pct']:8.1f} {r['worst_abs_err_pct']:9.1f} "
              f"{r['median_signed_err_pct']:+8.1f}  {'; '.join(r['curves'])}")
    summary = {}
    for part in ("small", "large"):
        part_rows = [r for r in rows if r["sizes"] == part]
        errs = [r["median_err_pct"] for r in part_rows]
        summary[f"{part}_median_of_medians_pct"] = statistics.median(errs) if errs else None
        if part_rows:  # the worst curve (by its median) and the worst single point, with names
            worst = max(part_rows, key=lambda r: r["median_err_pct"])
            point = max(part_rows, key=lambda r: r["worst_err_pct"])
            summary[f"{part}_worst_curve"] = {k: worst[k] for k in ("system", "op", "n", "median_err_pct",
                                                                    "median_signed_err_pct")}
            summary[f"{part}_worst_point"] = {k: point[k] for k in ("system", "op", "n", "worst_err_pct")}
    print(f"\nnotes: {VIDUR_NOTE}", file=sys.stderr)
    every = [abs(e) for r in nodes for e in [r["median_abs_err_pct"]]]
    summary["multinode_median_of_node_medians_pct"] = statistics.median(every) if every else None
    print(json.dumps({"benchmark": "comm_vs_reference", "curves": rows, "points": points,
                      "skipped": skipped, "by_nodes": nodes, "summary": summary}))


if __name__ == "__main__":
    main()
