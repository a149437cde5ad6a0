"""`python -m probes.calibrate`: measure this machine and write a sizer hardware profile.

Starts one rank per local GPU (NCCL) or `--world-size N` CPU ranks (`--backend gloo`), or uses
the ranks torchrun gives it; runs the phases (coll: collective sweeps, p2p: pairwise matrix,
compute: GEMM / memory / launch / attention, forward: sharded transformer layers); fits the
constants (probes/fit.py) and writes a version-1 profile (sizer/hardware/profile.py) that every sizer
command reads with `--profile FILE`. Rank 0 draws a progress bar per phase on stderr; stdout gets
a summary table and, last, one JSON line. Exit 0 done, 1 partial or wrong values, 2 bad input.
Nothing measured is lost: rank 0 rewrites `<out>.partial.json` (printed at start) after every
step; a failed, timed-out, interrupted or SIGTERMed run writes it to --out with env.status
'partial: <why>' (probes/partial.py), and a killed one leaves it in place, loadable as it is.
"""

import argparse
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import torch.distributed as dist

from sizer.errors import InputError

from . import coll, compute, env, fit, forward
from . import partial as partial_mod
from .args import Parser, positive_int, seconds, size_bytes, writable_file
from .device import CudaDevice
from .launch import LaunchError, RankFailure, Terminated, plan, run_ranks
from .report import summary

PHASES = ("coll", "p2p", "compute", "forward")
PROFILE_VERSION = 1  # sizer/hardware/profile.py PROFILE_VERSION
FAULTS = ("raise", "hang", "abort")


@dataclass(frozen=True)
class Options:
    phases: tuple
    quick: bool
    max_bytes: int | None
    partial_path: str
    launcher: str = "spawn"
    fault: tuple | None = None  # (kind, rank, phase): tests inject a failing or hanging rank


def _max_bytes(opts: Options, gpu: bool) -> int:
    """--max-bytes, else 1 GiB on GPUs (64 MiB --quick), 16 MiB on CPU (1 MiB --quick)."""
    if opts.max_bytes:
        return opts.max_bytes
    if gpu:
        return (64 << 20) if opts.quick else (1 << 30)
    return (1 << 20) if opts.quick else (16 << 20)


def _gather(ctx, obj) -> list | None:
    """Every rank's obj on rank 0 (None elsewhere)."""
    if ctx.world_size == 1:
        return [obj]
    out = [None] * ctx.world_size if ctx.rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def _fault(opts: Options, ctx, phase: str) -> None:
    """The injected fault (a hidden flag for the failure tests): raise, hang or abort -- the
    last as NCCL's watchdog ends a process, without Python's clean-up."""
    if opts.fault is None:
        return
    kind, rank, where = opts.fault
    if rank != ctx.rank or where != phase:
        return
    if kind == "raise":
        raise RuntimeError(f"injected failure on rank {rank} at phase {phase}")
    if kind == "hang":
        time.sleep(3600)
    if kind == "abort":
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file: the test wants speed
        sys.stderr.flush()
        os.abort()


def calibrate_rank(ctx, opts: Options):
    """All phases on one rank; rank 0 returns the profile document (others None) and keeps
    `opts.partial_path` -- a loadable profile -- up to date after every step."""
    gpu = ctx.device.type == "cuda"
    raw = {"collectives": [], "p2p_matrix": [], "gemm": [], "membw": [], "launch": [],
           "attention": [], "sharded_forward": [], "phases_done": []}
    infos = _gather(ctx, env.rank_info(ctx))
    env_doc = None
    if ctx.rank == 0:
        raw["rank_info"] = infos
        raw["world_size"], raw["nodes"], raw["backend"] = ctx.world_size, ctx.nodes, ctx.backend
        env_doc = env.capture(infos, ctx.backend, ctx.world_size, ctx.nodes, opts.launcher)

    def save(step):
        """Rank 0 rewrites the partial profile (what an interrupted run still has)."""
        if ctx.rank == 0:
            doc = build_profile(raw, f"partial: running (last step: {step})", opts.phases,
                                env_doc)
            partial_mod.write_atomic(opts.partial_path, doc)

    def done(phase):
        if ctx.rank == 0:
            raw["phases_done"].append(phase)
        save(f"phase {phase} done")

    def coll_checkpoint(rows):
        raw["collectives"] = rows
        last = rows[-1] if rows else None
        save(f"coll {last['op']} over {last['ranks']} ranks" if last else "coll")

    done("env")
    multi = ctx.world_size > 1
    _fault(opts, ctx, "coll")
    if "coll" in opts.phases and multi:
        factor = 4 if opts.quick and not gpu else 2
        raw["collectives"] = coll.sweep_collectives(ctx, _max_bytes(opts, gpu), opts.quick,
                                                    factor=factor, checkpoint=coll_checkpoint)
        done("coll")
    _fault(opts, ctx, "p2p")
    if "p2p" in opts.phases and multi:
        big = min(_max_bytes(opts, gpu), (64 << 20) if gpu else (1 << 20))
        views = _gather(ctx, coll.p2p_matrix(ctx, big))
        if ctx.rank == 0:
            raw["p2p_matrix"] = coll.merge_p2p(views)
        done("p2p")
    _fault(opts, ctx, "compute")
    if "compute" in opts.phases:
        parts = _gather(ctx, compute.run_compute(ctx, opts.quick))
        if ctx.rank == 0:
            for part in parts:
                for key, rows in (part or {}).items():
                    raw[key].extend(rows)
        done("compute")
    _fault(opts, ctx, "forward")
    if "forward" in opts.phases:
        parts = _gather(ctx, forward.run_forward(ctx, opts.quick))
        if ctx.rank == 0:
            raw["sharded_forward"] = [r for part in parts for r in part or ()]
        done("forward")
    if multi:
        ctx.barrier()
    return build_profile(raw, "complete", opts.phases, env_doc) if ctx.rank == 0 else None


def build_profile(raw: dict, status: str, phases, env_doc: dict | None = None) -> dict:
    """The version-1 profile document from rank 0's raw measurements (`env_doc`: env.capture's
    provenance, captured here when not given)."""
    infos = raw.get("rank_info") or []
    world, nodes = raw.get("world_size", len(infos) or 1), raw.get("nodes", 1)
    e = dict(env_doc) if env_doc else env.capture(infos, raw.get("backend", "gloo"), world, nodes)
    e["topology"] = dict(e.get("topology") or {})
    measured_topo = env.topology_from_p2p(raw.get("p2p_matrix") or [], world)
    if measured_topo:
        e["topology"]["measured"] = measured_topo
    notes = []
    if world < 2:
        notes.append("collectives not measured: one rank (collectives need two or more GPUs; "
                     "NCCL refuses two ranks on one GPU)")
    elif "coll" not in phases:
        notes.append("collectives not measured: phase 'coll' not selected")
    if e["device"] == "cpu":
        notes.append("cpu ranks: collective numbers are gloo over loopback, compute numbers are "
                     "one rank's share of this CPU (cpu_count / world threads, all ranks measuring at once)")
    collectives = fit.fit_collectives(raw.get("collectives", []))
    comp, detail = fit.fit_compute(raw)
    fwd = fit.check_forward(raw.get("sharded_forward", []), comp)
    timing = sorted({r.get("timing", "eager") for r in raw.get("collectives", [])})
    e.update(status=status, phases=list(raw.get("phases_done", [])), notes=notes,
             collectives_measured=bool(collectives), collective_timing=timing,
             time_average="mean over ranks (nccl-tests -a 1); compute: median of 3 loops")
    wrong = sum(r.get("wrong", 0) for r in raw.get("collectives", []))
    raw_out = {k: raw.get(k, []) for k in ("collectives", "p2p_matrix", "gemm", "membw",
                                           "launch", "attention")}
    raw_out["sharded_forward"] = fwd
    raw_out["fits"] = detail
    raw_out["wrong_total"] = wrong
    return {"sizer_profile_version": PROFILE_VERSION,
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "env": e, "collectives": collectives, "compute": comp, "raw": raw_out}


def default_out(device: str) -> str:
    """data/profiles/<hostname>-<device>-<date>.json"""
    slug = "".join(c if c.isalnum() else "-" for c in device.lower()).strip("-") or "cpu"
    while "--" in slug:
        slug = slug.replace("--", "-")
    date = datetime.now().strftime("%Y%m%d")
    return os.path.join("data", "profiles", f"{socket.gethostname()}-{slug}-{date}.json")


def _device_label(launch) -> str:
    """The catalog id (or name) of this process's GPU, 'cpu' for gloo ranks: the default --out."""
    if launch.backend != "nccl" or not launch.is_rank0:
        return "cpu" if launch.backend != "nccl" else "gpu"
    index = launch.device_index if launch.torchrun else launch.device_for(0)
    name = CudaDevice(index).properties()["name"]
    return env.gpu_id_for(name) or name


def parse_args(argv=None):
    p = Parser(prog="python -m probes.calibrate", description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("nccl", "gloo"), help="default: nccl on GPUs, else gloo")
    p.add_argument("--world-size", type=positive_int, help="local ranks (default: one per GPU)")
    p.add_argument("--quick", action="store_true", help="a short pass (smaller sizes and shapes)")
    p.add_argument("--max-bytes", help="largest collective size (default 1GiB on GPU, 16MiB CPU)")
    p.add_argument("--out", help="profile path (default data/profiles/<host>-<device>-<date>.json); "
                   "partial results go to <out>.partial.json while the run lasts")
    p.add_argument("--timeout", type=seconds, default=1800.0,
                   help="the run's deadline in seconds: every rank is stopped after it and what "
                   "was measured is saved (default 1800)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)}")
    p.add_argument("--inject-fault", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _fail(message: str) -> int:
    sys.stderr.write(f"calibrate: error: {message}\n")
    return 2


def _parse_fault(text):
    """'raise@1:compute' -> ('raise', 1, 'compute')."""
    if not text:
        return None
    try:
        kind, rest = text.split("@", 1)
        rank, phase = rest.split(":", 1)
        fault = (kind, int(rank), phase)
    except ValueError:
        raise InputError(f"--inject-fault {text!r}: use KIND@RANK:PHASE") from None
    if kind not in FAULTS or phase not in PHASES:
        raise InputError(f"--inject-fault {text!r}: KIND in {FAULTS}, PHASE in {PHASES}")
    return fault


def _inputs(args):
    """Everything checked before a rank starts: (phases, max_bytes, launch, out, fault)."""
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases:
        raise InputError(f"unknown phase(s) {', '.join(unknown) or '(none)'}; choose from "
                         f"{', '.join(PHASES)}")
    max_bytes = size_bytes(args.max_bytes) if args.max_bytes else None
    try:
        launch = plan(args.world_size, args.backend)
    except LaunchError as exc:
        raise InputError(str(exc)) from None
    out = args.out if args.out is not None else default_out(_device_label(launch))
    if launch.is_rank0:  # only rank 0 writes; other nodes need not have the folder
        out = writable_file(out, "--out", create_folder=args.out is None)
    return phases, max_bytes, launch, out, _parse_fault(args.inject_fault)


def _report(doc: dict, out: str, status: str) -> None:
    """The human summary, then ONE JSON line last on stdout."""
    sys.stdout.write(summary(doc))
    sys.stdout.write(json.dumps({"profile": out, "status": status,
                                 "wrong": doc["raw"]["wrong_total"],
                                 "collective_fits": len(doc["collectives"]),
                                 "compute_keys": sorted(k for k in doc["compute"]
                                                        if k != "fit_error_pct")}) + "\n")
    sys.stdout.flush()


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        phases, max_bytes, launch, out, fault = _inputs(args)
    except InputError as exc:
        return _fail(str(exc))
    partial = partial_mod.partial_path(out)
    if launch.is_rank0:
        for note in launch.notes:
            sys.stderr.write(f"calibrate: note: {note}\n")
        sys.stderr.write(f"calibrate: partial results go to {partial} as they are measured "
                         f"(a loadable profile; replaced by {out} at the end)\n")
        sys.stderr.flush()
    opts = Options(phases, args.quick, max_bytes, partial, launch.mode, fault)

    def on_exit(message, code):
        """A torchrun rank leaving early: rank 0 moves what it has to --out."""
        if launch.is_rank0:
            status = f"partial: {message}"
            doc = partial_mod.finish(partial, out, status)
            if doc is not None:
                _report(doc, out, status)
            sys.stderr.write(f"calibrate: {status}; wrote {out if doc else 'nothing'}\n")

    status, code, doc = "complete", 0, None
    try:
        doc = run_ranks(calibrate_rank, (opts,), launch=launch, timeout_s=args.timeout,
                        on_exit=on_exit)[0]
    except RankFailure as exc:
        status, code = f"partial: {exc.message}", 1
    except KeyboardInterrupt:
        status, code = "partial: interrupted", 130
    except Terminated:
        status, code = "partial: stopped by SIGTERM", 143
    if not launch.is_rank0:
        return code
    if doc is None:
        sys.stderr.write(f"calibrate: {status}; writing what was measured\n")
        doc = partial_mod.finish(partial, out, status)
        if doc is None:  # nothing measured yet: a profile that says so
            doc = build_profile({"backend": launch.backend, "world_size": launch.world_size},
                                status, phases)
            partial_mod.write_atomic(out, doc)
    else:
        partial_mod.write_atomic(out, doc)
        if os.path.exists(partial):
            os.unlink(partial)
    if doc["raw"]["wrong_total"] and code == 0:
        code = 1
    _report(doc, out, status)
    return code


if __name__ == "__main__":
    sys.exit(main())
