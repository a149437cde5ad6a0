"""`sizer comm`: time, algbw, busbw and algorithm of one collective on a topology.

    sizer comm --op all_reduce --bytes 16MiB --gpus 8 [--nodes K] [--gpu G] [--engine E]
               [--topology T | --topology-file F] [--inter-node L] [--profile P] [--sweep] [--json]

Sizes follow nccl-tests' size column; algbw = size / time, busbw = algbw x busbw_factor
(sizer/cost/collectives.py). --sweep prints 1 KiB .. 8 GiB in powers of two. With --profile, the
profile's fit for this (op, GPUs, nodes) answers; stderr says when it has none (the catalog model
answers) and when sizes go beyond the largest one it measured ("measured (extrapolated)").
--engine says whose all-reduce kernels exist besides NCCL (sizer/cost/collectives.py
engine_kernels): TensorRT-LLM's MNNVL all-reduce across the trays of an NVL72 domain is trtllm's only.
"""

import re

import numpy as np

from sizer.output import emit_json, warn
from .common import check_profile_device
from sizer.cost.collectives import (CUSTOM_ALGOS, CUSTOM_MAX_BYTES, ENGINE_ALGOS, EXTRAPOLATED,
                                    MNNVL_ALGOS, OPS, algorithm_label, analyse_group, busbw_factor,
                                    check_op, collective_time, profile_fit)
from sizer.cost.engines import DEFAULT_ENGINE, get_engine
from sizer.errors import InputError
from sizer.hardware.gpus import get_gpu
from sizer.hardware.profile import load_profile
from .common import add_topology_args, gpu_count, nonempty, size, topology_from_args
from sizer.units import fmt_bytes, fmt_seconds

SWEEP_BYTES = np.array([2.0**k for k in range(10, 34)])  # 1 KiB .. 8 GiB
CUSTOM_NOTE = ("custom: the engines' own all-reduce over peer memory (vLLM, SGLang, TRT-LLM), "
               f"used up to {CUSTOM_MAX_BYTES // 2**20} MiB as vLLM does; NCCL above it, hence "
               "the busbw step. --nccl-only: NCCL's curve as nccl-tests measures it")
MNNVL_NOTE = ("MNNVL: TensorRT-LLM's multi-node-NVLink all-reduce over the trays of one NVL72 "
              "domain, used at every size up to 2 GiB (one-shot while size x GPUs <= 512 KiB); vLLM and "
              "SGLang run NCCL there unless their flashinfer all-reduce is switched on. "
              "--nccl-only: NCCL's curve")


def register(subparsers) -> None:
    p = subparsers.add_parser("comm", help="collective / P2P communication time on a topology",
                              description=__doc__.splitlines()[0])
    p.add_argument("--op", required=True, metavar="OP", type=nonempty, help=", ".join(OPS))
    p.add_argument("--bytes", metavar="SIZE", type=size, help="nccl-tests size: 4096, 16MiB, 1GB")
    p.add_argument("--gpus", type=gpu_count, required=True, metavar="N", help="GPUs over all nodes")
    p.add_argument("--gpu", default="h100-sxm", metavar="G", type=nonempty, help="GPU type (default h100-sxm)")
    p.add_argument("--sweep", action="store_true", help="print the curve from 1 KiB to 8 GiB")
    p.add_argument("--nccl-only", action="store_true",
                   help="NCCL's algorithms only (no vLLM/SGLang custom all-reduce)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--engine", default=DEFAULT_ENGINE, metavar="E", type=nonempty,
                   help=f"whose all-reduce kernels run besides NCCL: vllm, sglang, trtllm, or none "
                        f"(default {DEFAULT_ENGINE})")
    add_topology_args(p)
    # A value that starts with '-' and a digit ("--bytes -16MiB") is a value, not an option, as
    # Python 3.13's argparse decides (its matcher is this one); 3.11's only takes bare numbers,
    # so "-16MiB" read as an unknown option and the error was "expected one argument".
    p._negative_number_matcher = re.compile(r"-\.?\d")
    p.set_defaults(func=run)


def run(args) -> int:
    op = check_op(args.op)
    if args.sweep == (args.bytes is not None):
        raise InputError("give --bytes SIZE or --sweep (the whole curve), not both" if args.sweep
                         else "give --bytes SIZE (or --sweep for the whole curve)")
    sizes = SWEEP_BYTES if args.sweep else np.array([float(args.bytes)])
    gpu = get_gpu(args.gpu)
    topo = topology_from_args(args, gpu, args.gpus)
    profile = load_profile(getattr(args, "profile", None))
    check_profile_device(profile, gpu)
    if op == "send_recv" and args.gpus < 2:
        warn("send_recv over one GPU costs nothing")
    ranks = tuple(range(args.gpus))
    cover = profile_fit(op, ranks, topo, profile)
    if profile is not None and cover is None and args.gpus > 1:
        spans = f" over {topo.nodes} nodes" if topo.nodes > 1 else ""
        warn(f"profile has no {op} fit for {args.gpus} ranks{spans}; using the default model"
             + _have(profile, op))
    algos = "nccl" if args.nccl_only else None
    rules = get_engine(args.engine)  # an unknown engine is an error (exit 2)
    cost = collective_time(op, sizes, ranks, topo, profile, algorithms=algos, engine=rules)
    rows = [{"bytes": int(s), "time_s": float(t), "algbw_GBps": float(a),
             "busbw_GBps": float(b), "algorithm": alg, "algorithm_label": algorithm_label(alg)}
            for s, t, a, b, alg in zip(sizes, cost.time_s, cost.algbw_GBps, cost.busbw_GBps,
                                       cost.algorithm)]
    head = {"op": op, "gpus": args.gpus, "nodes": topo.nodes, "gpu": gpu.id,
            "engine": rules.name if rules else "none",
            "topology": topo.name, "busbw_factor": busbw_factor(op, args.gpus),
            "profile": profile.path if profile else None,
            "profile_max_bytes": int(cover.max_bytes) if cover and cover.max_bytes else None}
    if args.json:
        if args.sweep:
            emit_json({**head, "algorithm": rows, "time_s": [r["time_s"] for r in rows],
                       "algbw_GBps": [r["algbw_GBps"] for r in rows],
                       "busbw_GBps": [r["busbw_GBps"] for r in rows]})
        else:
            emit_json({**head, **rows[0]})
        return 0
    if any(r["algorithm"] == EXTRAPOLATED for r in rows):
        warn(f"profile {profile.path} measured {op} over {args.gpus} ranks up to "
             f"{fmt_bytes(cover.max_bytes)}; larger sizes extend its fit (\"{EXTRAPOLATED}\")")
    if cover is not None and any(r["algorithm"] in ENGINE_ALGOS for r in rows):
        timed = {"gloo": "gloo (CPU ranks)", "nccl": "NCCL"}.get(profile.env.get("backend"), "torch.distributed")
        warn(f"profile {profile.path} timed {timed}, not the engines' custom all-reduce: up to "
             f"{CUSTOM_MAX_BYTES // 2**20} MiB the custom curve is kept (--nccl-only for the profile's)")
    print(f"{op} over {args.gpus} x {gpu.id}; {topo.describe()}")
    if args.sweep:
        print(f"{'size':>12s} {'time':>12s} {'algbw GB/s':>11s} {'busbw GB/s':>11s}  algorithm")
        for r in rows:
            print(f"{fmt_bytes(r['bytes']):>12s} {fmt_seconds(r['time_s']):>12s} "
                  f"{r['algbw_GBps']:11.2f} {r['busbw_GBps']:11.2f}  {r['algorithm_label']}")
    else:
        r = rows[0]
        print(f"size       {fmt_bytes(r['bytes'])} ({r['bytes']} bytes)")
        print(f"time       {fmt_seconds(r['time_s'])}")
        print(f"algbw      {r['algbw_GBps']:.2f} GB/s")
        print(f"busbw      {r['busbw_GBps']:.2f} GB/s (factor {head['busbw_factor']:.3f})")
        print(f"algorithm  {r['algorithm_label']}")
    if any(r["algorithm"] in CUSTOM_ALGOS for r in rows):
        print(CUSTOM_NOTE)
    if any(r["algorithm"] in MNNVL_ALGOS for r in rows):
        print(MNNVL_NOTE)
    elif op == "all_reduce" and not args.nccl_only and args.gpus > 1 and analyse_group(ranks, topo).mnnvl:
        print(f"{head['engine']} runs NCCL across the trays of this NVLink domain; TensorRT-LLM "
              "runs its MNNVL all-reduce here (--engine trtllm)")
    return 0


def _have(profile, op: str) -> str:
    """' (it has: 2 ranks on 1 node)' -- the fits the profile does hold for op."""
    fits = sorted((c.ranks, c.nodes) for c in profile.collectives if c.op == op)
    if not fits:
        return f" (it has no {op} fits)"
    return " (it has: " + ", ".join(f"{r} ranks on {k} node{'s' * (k > 1)}" for r, k in fits) + ")"
