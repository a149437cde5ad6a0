"""Small all-reduces inside one GB200 NVL72 domain, per engine, against an HGX H100 / B200 node
and the published NVL72 points (tests/test_comm_mnnvl.py holds the same figures as assertions).

    python benchmarks/nvl72_allreduce.py

Prints the 128 KiB all-reduce over 8 GPUs (2 trays on GB200) per engine, the published MNNVL
points against sizer, and Llama-3.1-70B TP8 batch-8 TPOT per GPU and engine; the last line of
stdout is one JSON document.
"""

import json

from sizer.cost.collectives import collective_time
from sizer.cost.estimate import estimate
from sizer.hardware.gpus import get_gpu
from sizer.hardware.topology import default_topology, get_topology
from sizer.model.catalog import get_model
from sizer.model.split import Split

ENGINES = ("vllm", "sglang", "trtllm")
GPUS = ("h100-sxm", "b200", "gb200")
# (source, gpu, GPUs, bytes, published us): MNNVL all-reduce over NVL72 trays
PUBLISHED = [
    ("tokenspeed#860 one-shot, 1 token", "gb200", 8, 14336, 10.9),
    ("tokenspeed#860, 8 tokens", "gb200", 8, 8 * 14336, 10.9),
    ("vLLM#53318 FlashInfer mnnvl TP8", "gb300", 8, 63.998 * 2**20, 180.87),
    ("vLLM#53318 FlashInfer mnnvl TP16", "gb300", 16, 7.998 * 2**20, 36.92),
]


def allreduce_rows(size=128 * 1024) -> list:
    rows = []
    for gid in GPUS:
        topo = default_topology(get_gpu(gid), 8)
        for engine in ENGINES:
            c = collective_time("all_reduce", size, range(8), topo, engine=engine)
            rows.append({"gpu": gid, "engine": engine, "time_us": c.time_s * 1e6, "algorithm": c.algorithm})
        nccl = collective_time("all_reduce", size, range(8), topo, algorithms="nccl")
        rows.append({"gpu": gid, "engine": "nccl only", "time_us": nccl.time_s * 1e6, "algorithm": nccl.algorithm})
    return rows


def published_rows() -> list:
    out = []
    for name, gid, n, size, us in PUBLISHED:
        c = collective_time("all_reduce", size, range(n), get_topology("nvl72", get_gpu(gid), n), engine="trtllm")
        out.append({"source": name, "gpus": n, "bytes": int(size), "published_us": us,
                    "sizer_us": c.time_s * 1e6, "err_pct": (c.time_s * 1e6 / us - 1) * 100, "algorithm": c.algorithm})
    return out


def tpot_rows() -> list:
    model, split = get_model("70b"), Split(tp=8)
    return [{"gpu": gid, "engine": e,
             "tpot_ms": estimate(model, get_gpu(gid), split, isl=1024, osl=256, batch=8, engine=e).tpot_s * 1e3}
            for gid in GPUS for e in ENGINES]


def main() -> None:
    ar, pub, tpot = allreduce_rows(), published_rows(), tpot_rows()
    print("all_reduce 128 KiB over 8 GPUs (GB200: 2 trays of one NVL72 domain)")
    for r in ar:
        print(f"  {r['gpu']:9s} {r['engine']:10s} {r['time_us']:7.2f} us  {r['algorithm']}")
    print("MNNVL all-reduce, published NVL72 runs vs sizer (engine trtllm)")
    for r in pub:
        print(f"  {r['source']:34s} {r['gpus']:3d} GPUs {r['bytes']:>10d} B  {r['published_us']:7.2f} us  "
              f"sizer {r['sizer_us']:7.2f} us  {r['err_pct']:+6.1f}%  {r['algorithm']}")
    print("Llama-3.1-70B TP8, batch 8, 1024/256: TPOT")
    for r in tpot:
        print(f"  {r['gpu']:9s} {r['engine']:7s} {r['tpot_ms']:6.2f} ms")
    print(json.dumps({"benchmark": "nvl72_allreduce", "allreduce_128KiB": ar, "published": pub, "tpot": tpot}))


if __name__ == "__main__":
    main()
