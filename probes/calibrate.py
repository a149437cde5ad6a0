"""`python -m probes.calibrate`: measure this machine and write a sizer hardware profile.

Starts one rank per local GPU (NCCL) or `--world-size N` CPU ranks (`--backend gloo`), or uses
the ranks torchrun gives it; runs the phases (coll: collective sweeps, p2p: pairwise matrix,
compute: GEMM / memory / launch / attention, forward: sharded transformer layers); fits the
constants (probes/fit.py) and writes a version-1 profile (sizer/hardware/profile.py) that every sizer
command reads with `--profile FILE`. Rank 0 draws a progress bar per phase on stderr; stdout gets
a summary table and, last, one JSON line. Exit 0 done, 1 partial or wrong values, 2 bad input.
Interrupted or failed runs still write what was measured (env.status says 'partial: ...').
"""

import argparse
import json
import os
import socket
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone

import torch.distributed as dist

from . import coll, compute, env, fit, forward
from .launch import LaunchError, RankFailure, resolve, run_ranks, under_torchrun
from .report import summary

PHASES = ("coll", "p2p", "compute", "forward")
PROFILE_VERSION = 1  # sizer/hardware/profile.py PROFILE_VERSION


@dataclass(frozen=True)
class Options:
    phases: tuple
    quick: bool
    max_bytes: int | None
    partial_path: str


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


def calibrate_rank(ctx, opts: Options):
    """All phases on one rank; rank 0 returns the raw measurements (others None) and keeps
    `opts.partial_path` up to date after every phase."""
    gpu = ctx.device.type == "cuda"
    raw = {"collectives": [], "p2p_matrix": [], "gemm": [], "membw": [], "launch": [],
           "attention": [], "sharded_forward": [], "phases_done": []}
    infos = _gather(ctx, env.rank_info(ctx))

    def save():
        """Rank 0 keeps the partial file current (what an interrupted run still writes)."""
        if ctx.rank == 0:
            raw["rank_info"] = infos
            raw["world_size"], raw["nodes"], raw["backend"] = ctx.world_size, ctx.nodes, ctx.backend
            tmp = opts.partial_path + ".tmp"
            with open(tmp, "w", encoding="utf-8") as fh:
                json.dump(raw, fh)
            os.replace(tmp, opts.partial_path)

    def done(phase):
        if ctx.rank == 0:
            raw["phases_done"].append(phase)
        save()

    def coll_checkpoint(rows):
        raw["collectives"] = rows
        save()

    done("env")
    multi = ctx.world_size > 1
    if "coll" in opts.phases and multi:
        factor = 4 if opts.quick and not gpu else 2
        raw["collectives"] = coll.sweep_collectives(ctx, _max_bytes(opts, gpu), opts.quick,
                                                    factor=factor, checkpoint=coll_checkpoint)
        done("coll")
    if "p2p" in opts.phases and multi:
        big = min(_max_bytes(opts, gpu), (64 << 20) if gpu else (1 << 20))
        views = _gather(ctx, coll.p2p_matrix(ctx, big))
        if ctx.rank == 0:
            raw["p2p_matrix"] = coll.merge_p2p(views)
        done("p2p")
    if "compute" in opts.phases:
        parts = _gather(ctx, compute.run_compute(ctx, opts.quick))
        if ctx.rank == 0:
            for part in parts:
                for key, rows in (part or {}).items():
                    raw[key].extend(rows)
        done("compute")
    if "forward" in opts.phases:
        parts = _gather(ctx, forward.run_forward(ctx, opts.quick))
        if ctx.rank == 0:
            raw["sharded_forward"] = [r for part in parts for r in part or ()]
        done("forward")
    if multi:
        dist.barrier()
    return raw if ctx.rank == 0 else None


def build_profile(raw: dict, status: str, phases) -> dict:
    """The version-1 profile document from rank 0's raw measurements."""
    infos = raw.get("rank_info") or []
    world, nodes = raw.get("world_size", len(infos) or 1), raw.get("nodes", 1)
    e = env.capture(infos, raw.get("backend", "gloo"), world, nodes)
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
    e.update(status=status, phases=list(raw.get("phases_done", [])), notes=notes,
             collectives_measured=bool(collectives),
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


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m probes.calibrate", description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("nccl", "gloo"), help="default: nccl on GPUs, else gloo")
    p.add_argument("--world-size", type=int, help="local ranks (default: one per GPU)")
    p.add_argument("--quick", action="store_true", help="a short pass (smaller sizes and shapes)")
    p.add_argument("--max-bytes", help="largest collective size (default 1GiB on GPU, 16MiB CPU)")
    p.add_argument("--out", help="profile path (default data/profiles/<host>-<device>-<date>.json)")
    p.add_argument("--timeout", type=float, default=1800.0,
                   help="seconds before every rank is stopped (default 1800)")
    p.add_argument("--phases", default=",".join(PHASES),
                   help=f"comma-separated subset of {','.join(PHASES)}")
    return p.parse_args(argv)


def _fail(message: str) -> int:
    sys.stderr.write(f"calibrate: error: {message}\n")
    return 2


def main(argv=None) -> int:
    args = parse_args(argv)
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases:
        return _fail(f"unknown phase(s) {', '.join(unknown) or '(none)'}; choose from "
                     f"{', '.join(PHASES)}")
    max_bytes = None
    if args.max_bytes:
        from sizer.errors import InputError
        from sizer.units import parse_bytes
        try:
            max_bytes = parse_bytes(args.max_bytes)
        except InputError as exc:
            return _fail(str(exc))
    torchrun = under_torchrun()
    if not torchrun:
        try:
            world, backend = resolve(args.world_size, args.backend)
        except LaunchError as exc:
            return _fail(str(exc))
    else:
        world, backend = int(os.environ["WORLD_SIZE"]), args.backend
    rank0 = not torchrun or int(os.environ["RANK"]) == 0
    fd, partial = tempfile.mkstemp(prefix="calibrate-", suffix=".partial.json")
    os.close(fd)
    os.unlink(partial)
    opts = Options(phases, args.quick, max_bytes, partial)
    status, code, raw = "complete", 0, None
    try:
        raw = run_ranks(calibrate_rank, (opts,), world_size=None if torchrun else world,
                        backend=backend, timeout_s=args.timeout)[0]
    except RankFailure as exc:
        status, code = f"partial: {exc.message}", 1
        sys.stderr.write(f"calibrate: {exc.message}\n")
    except KeyboardInterrupt:
        status, code = "partial: interrupted", 130
        sys.stderr.write("calibrate: interrupted; writing what was measured\n")
    except Exception as exc:  # noqa: BLE001 -- under torchrun a rank's error lands here
        if not torchrun:
            raise
        status, code = f"partial: rank {os.environ.get('RANK')} failed: {exc}", 1
        sys.stderr.write(f"calibrate: {status}\n")
    if not rank0:
        return code
    if raw is None:
        try:
            with open(partial, encoding="utf-8") as fh:
                raw = json.load(fh)
        except (OSError, json.JSONDecodeError):
            raw = {"backend": backend, "world_size": world}
    if os.path.exists(partial):
        os.unlink(partial)
    profile = build_profile(raw, status, phases)
    out = args.out or default_out(profile["env"]["gpu_id"] or profile["env"]["device"])
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(profile, fh, indent=1)
        fh.write("\n")
    sys.stdout.write(summary(profile))
    wrong = profile["raw"]["wrong_total"]
    if wrong and code == 0:
        code = 1
    sys.stdout.write(json.dumps({"profile": out, "status": status, "wrong": wrong,
                                 "collective_fits": len(profile["collectives"]),
                                 "compute_keys": sorted(k for k in profile["compute"]
                                                        if k != "fit_error_pct")}) + "\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
