"""`python -m probes.validate`: run DP/TP/PP/EP/TP+PP for real, check them, set sizer's prediction beside.

Each strategy runs a scaled-down block stack of a model preset (probes/parallel.py) on the local
ranks -- gloo CPU ranks, one GPU per rank with NCCL, or the ranks torchrun gives -- and

* checks its output against the single-device reference (in fp32: a 1-ulp bf16 difference flips
  near-tied top-k routing decisions, so half-precision outputs cannot be compared token-wise);
* times it in `--dtype` (median over `--reps` of the slowest rank's time);
* asks `sizer.step.step_time` for the same shapes on a device built from the hardware profile,
  and `sizer.collectives.collective_time` for each collective the forward issued.

Without `--profile` the quick calibration (`python -m probes.calibrate --quick`) runs first so
that every row has a prediction. stdout: a table, or with `--json` one document
{"rows": [...], "env": {...}, "skipped": [...]}. Exit 0 all match, 1 a strategy does not match
its reference (or a rank failed), 2 bad input.
"""

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile

from sizer.errors import InputError

from .block import STRATEGIES, Dims, Layout
from .stack import DEFAULT_MODEL, dims_of, load_spec, plan, scaled_config

TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 5e-3}  # max |err| / max |reference|
EXCLUDED_OPS = ("embedding", "final_norm", "lm_head", "logits_all_gather")  # not in the stack


# ----- predictions --------------------------------------------------------------------------

class Predictor:
    """sizer's time model on the profiled device: step_time for a layout, collective_time for
    one collective. `why` says why there is no prediction when it cannot be built."""

    def __init__(self, profile, model, world: int, dtype: str, nodes: int = 1):
        self.profile, self.model, self.dtype, self.why = profile, model, dtype, None
        self.device = self.topology = None
        if profile is None:
            self.why = "no hardware profile"
            return
        try:
            from sizer.hardware.gpus import get_gpu
            from sizer.cost.step import device_from_profile
            from sizer.hardware.topology import default_topology, get_topology

            gpu_id = profile.env.get("gpu_id")
            gpu = get_gpu(gpu_id) if gpu_id else None
            try:
                self.device = device_from_profile(profile)
            except InputError:
                if gpu is None:
                    raise
                from sizer.hardware.constants import device_for
                self.device = device_for(gpu, profile)
            # CPU ranks: a PCIe node only names the group; the profile's fits price the collectives.
            self.topology = (default_topology(gpu, world, nodes) if gpu is not None
                             else get_topology("pcie", get_gpu("l40s"), max(world, 2)))
        except (InputError, ImportError) as exc:
            self.device, self.why = None, f"cannot build the device from the profile: {exc}"

    def fitted(self, op: str, ranks: int) -> bool:
        """True when the profile holds a fit for this op over ranks 0..ranks-1 (which decides
        collective_time's answer); False: the time model's link constants answer."""
        if self.profile is None or self.topology is None:
            return False
        spanned = -(-ranks // self.topology.gpus_per_node)
        return self.profile.collective(op, ranks, spanned) is not None

    def collective(self, op: str, nbytes: float, ranks: int):
        """collective_time with NCCL's algorithms only: the probe times torch.distributed (NCCL
        on GPUs, gloo on CPU ranks), never an engine's custom all-reduce, so the prediction is
        the profile's fit (or NCCL's curve), as the measurement is (trial 1 item 8)."""
        if self.device is None or ranks < 2:
            return None
        from sizer.cost.collectives import collective_time

        return float(collective_time(op, nbytes, tuple(range(ranks)), self.topology, self.profile,
                                     algorithms="nccl").time_s)

    def row(self, lay: Layout, batch: int, seq: int) -> dict:
        """predict_row: the stack's predicted time (step_time without the embedding and LM
        head, which the stack does not run); pipelines: the GPipe makespan (m + p - 1) x the
        slowest stage's time per micro-batch (sizer.pipeline.Schedule)."""
        if self.device is None:
            return {"predicted_s": None, "predicted_compute_s": None, "predicted_comm_s": None,
                    "predicted_ops": []}
        from sizer.cost.pipeline import Schedule
        from sizer.cost.step import step_time

        per_rank = batch // lay.dp // lay.micro
        res = step_time(self.model, self.device, tp=lay.tp, pp=lay.pp, ep=lay.ep, dp=lay.dp,
                        phase="prefill", batch=per_rank, seq_len=seq, weight_dtype=self.dtype,
                        topology=self.topology, profile=self.profile, comm_algorithms="nccl")
        kept = [o for o in res.ops if o.name not in EXCLUDED_OPS]
        comp = sum(float(o.time_s) for o in kept if o.bound != "comm")
        comm = sum(float(o.time_s) for o in kept if o.bound == "comm")
        clocks = Schedule(lay.pp, lay.micro, 1.0).clocks if lay.pp > 1 else 1
        return {"predicted_s": (comp + comm) * clocks, "predicted_compute_s": comp * clocks,
                "predicted_comm_s": comm * clocks,
                "predicted_ops": [{"name": o.name, "time_s": float(o.time_s) * clocks,
                                   "flops": float(o.flops) * clocks, "bound": o.bound}
                                  for o in kept]}


def calibrate_profile(backend: str, world: int, timeout_s: float):
    """Run the quick calibration in a child process and load what it wrote (None on failure)."""
    from sizer.hardware.profile import load_profile

    fd, path = tempfile.mkstemp(prefix="validate-profile-", suffix=".json")
    os.close(fd)
    cmd = [sys.executable, "-m", "probes.calibrate", "--quick", "--backend", backend,
           "--world-size", str(world), "--out", path, "--timeout", str(timeout_s)]
    sys.stderr.write(f"validate: no --profile; calibrating first: {' '.join(cmd[1:])}\n")
    try:
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, timeout=timeout_s + 30)
        if done.returncode not in (0, 1) or os.path.getsize(path) == 0:
            sys.stderr.write(f"validate: warning: calibration exited {done.returncode}; no predictions\n")
            return None
        return load_profile(path)
    except (subprocess.TimeoutExpired, InputError) as exc:
        sys.stderr.write(f"validate: warning: calibration failed ({exc}); no predictions\n")
        return None
    finally:
        for leftover in (path, path[:-len(".json")] + ".partial.json"):
            if os.path.exists(leftover):
                os.unlink(leftover)


# ----- rows ---------------------------------------------------------------------------------

def _pct(pred, meas):
    return None if pred is None or not meas else 100.0 * (pred - meas) / meas


def _group_size(label: str, lay: Layout) -> int:
    return lay.tp if label.startswith("tp") else lay.ep if label.startswith("ep") else 2


def collectives(per_rank: list, lay: Layout, pred: Predictor) -> list:
    """One entry per (op, label): mean bytes and median seconds per call over the calls of the
    traced forwards (ceil(reps / 2)) on every rank -- the median keeps a descheduled rank's
    outlier out --, the number of calls, and collective_time's prediction for the mean size."""
    acc = {}
    for res in per_rank:
        for op, label, nbytes, secs in res["trace"]:
            acc.setdefault((op, label), []).append((nbytes, secs))
    out = []
    for (op, label), calls in sorted(acc.items(), key=lambda kv: kv[0][1]):
        ranks = _group_size(label, lay)
        size = sum(b for b, _ in calls) / len(calls)
        secs = statistics.median(t for _, t in calls)
        p = pred.collective(op, size, ranks)
        out.append({"op": op, "label": label, "ranks": ranks, "bytes": size, "calls": len(calls),
                    "measured_s": secs, "predicted_s": p, "error_pct": _pct(p, secs),
                    "prediction": "measured fit" if pred.fitted(op, ranks) else
                    ("time model (NCCL)" if p is not None else None)})
    return out


def make_row(lay: Layout, per_rank: list, world: int, batch: int, seq: int, dtype: str,
             pred: Predictor) -> dict:
    reps = len(per_rank[0]["times_s"])
    step = [max(r["times_s"][i] for r in per_rank) for i in range(reps)]  # slowest rank per rep
    errs = [r["max_abs_err"] for r in per_rank if r["max_abs_err"] is not None]
    scale = max(r["ref_max"] for r in per_rank if r["ref_max"] is not None)
    err = max(errs)
    rel = err / scale if scale > 0 else err
    ok = math.isfinite(rel) and rel <= TOLERANCE["fp32"]
    measured = statistics.median(step)
    row = {"strategy": lay.strategy, "world_size": world, "tp": lay.tp, "pp": lay.pp,
           "dp": lay.dp, "ep": lay.ep, "microbatches": lay.micro, "batch": batch, "seq": seq,
           "dtype": dtype, "check_dtype": "fp32", "matches_reference": bool(ok),
           "max_abs_err": err if math.isfinite(err) else None,
           "max_rel_err": rel if math.isfinite(rel) else None, "tolerance": TOLERANCE["fp32"],
           "measured_s": measured, "reps": reps}
    row.update(pred.row(lay, batch, seq))
    row["error_pct"] = _pct(row["predicted_s"], measured)
    row["collectives"] = collectives(per_rank, lay, pred)
    return row


# ----- output -------------------------------------------------------------------------------

def _ms(x):
    return "-" if x is None else f"{x * 1e3:.3f}"


def _num(x, fmt):
    return "-" if x is None else format(x, fmt)


def _table(head, rows) -> str:
    cols = [[str(h)] + [str(r[i]) for r in rows] for i, h in enumerate(head)]
    width = [max(len(c) for c in col) for col in cols]
    lines = ["  ".join(c.rjust(w) for c, w in zip(line, width)) for line in zip(*cols)]
    lines.insert(1, "  ".join("-" * w for w in width))
    return "\n".join(lines) + "\n"


def render(doc: dict) -> str:
    e = doc["env"]
    out = [f"validate: {e['model']} scaled ({'; '.join(e['scaled'])}), batch {e['batch']} x seq "
           f"{e['seq']}, {e['dtype']}, {e['backend']} x {e['world_size']} ranks, profile: "
           f"{e['profile']}\n\n"]
    head = ["strategy", "world", "split", "match", "max abs err", "measured ms", "predicted ms",
            "err %"]
    rows = [[r["strategy"], r["world_size"], f"TP{r['tp']} PP{r['pp']} DP{r['dp']} EP{r['ep']}",
             "yes" if r["matches_reference"] else "NO", _num(r["max_abs_err"], ".2e"),
             _ms(r["measured_s"]), _ms(r["predicted_s"]), _num(r["error_pct"], "+.1f")]
            for r in doc["rows"]]
    out.append(_table(head, rows))
    for note in e.get("notes", ()):
        out.append(f"note: {note}\n")
    coll = [[r["strategy"], c["label"], c["ranks"], f"{c['bytes']:.0f}", c["calls"],
             _num(c["measured_s"] * 1e6, ".1f"),
             _num(None if c["predicted_s"] is None else c["predicted_s"] * 1e6, ".1f"),
             _num(c["error_pct"], "+.1f"), c["prediction"] or "-"]
            for r in doc["rows"] for c in r["collectives"]]
    if coll:
        out.append("\ncollectives (per call: median time, mean bytes, over calls and ranks)\n")
        out.append(_table(["strategy", "collective", "ranks", "bytes", "calls", "measured us",
                           "predicted us", "err %", "prediction"], coll))
    for s in doc["skipped"]:
        out.append(f"skipped {s['strategy']}: {s['reason']}\n")
    return "".join(out)


# ----- command line -------------------------------------------------------------------------

def parse_args(argv=None):
    from .args import Parser, positive_int, seconds

    p = Parser(prog="python -m probes.validate", description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("nccl", "gloo"), help="default: nccl on GPUs, else gloo")
    p.add_argument("--world-size", type=positive_int,
                   help="local ranks (default: one per GPU; CPU: 2)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"preset id or config.json (default {DEFAULT_MODEL})")
    p.add_argument("--layers", type=positive_int,
                   help="layers of the stack (default 2 x ranks up to 4 ranks, then one per rank)")
    p.add_argument("--hidden", type=positive_int,
                   help="hidden size (default CPU 256, --quick 128; GPU 1024, --quick 512)")
    p.add_argument("--batch", type=positive_int, help="sequences (default 2 x ranks)")
    p.add_argument("--seq", type=positive_int,
                   help="tokens per sequence (default CPU 64, --quick 32; GPU 1024, --quick 256)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset of "
                   + ",".join(STRATEGIES))
    p.add_argument("--quick", action="store_true", help="a short pass: smaller shapes, fewer reps")
    p.add_argument("--profile", help="hardware profile (default: run the quick calibration first)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--html", metavar="FILE", help="write plotly charts to FILE")
    p.add_argument("--reps", type=positive_int, help="timed repetitions (default 5, --quick 3)")
    p.add_argument("--dtype", choices=tuple(TOLERANCE), help="timing dtype (default bf16 on GPU, fp32 on CPU)")
    p.add_argument("--timeout", type=seconds, default=300.0,
                   help="the run's deadline in seconds: every rank is stopped after it")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--inject-bug", choices=("wrong-shard",), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _launch(args):
    """Where the ranks go (probes/placement.py), or InputError saying why they cannot."""
    from .launch import LaunchError, plan

    try:
        return plan(args.world_size, args.backend)
    except LaunchError as exc:
        raise InputError(str(exc)) from None


def cpu_note(world: int, cores: int) -> str:
    """Why CPU-rank rows are not GPU predictions and why their errors are large."""
    return (f"CPU ranks: these times are CPU timings, not predictions for a GPU. Expect large "
            f"errors: sizer's time model is a GPU roofline (tensor-core GEMMs, HBM streaming, "
            f"NVLink/NCCL collectives, microsecond kernel launches), while here {world} rank(s) "
            f"share {cores} core(s) with their caches and memory bandwidth ({max(1, cores // world)} "
            f"thread(s) each) and gloo carries collectives over loopback TCP. On CPU this run "
            f"checks that every strategy reproduces its reference; timings need the GPUs.")


def _env(args, spec, cfg, notes, shape, launch, gpu, profile, pred) -> dict:
    import torch

    world = launch.world_size
    compute = profile.compute if profile is not None else {}
    run_notes = list(launch.notes)
    if not gpu:
        run_notes.append(cpu_note(world, os.cpu_count() or 1))
    return {"model": spec.name, "config": cfg, "scaled": notes, **shape,
            "backend": launch.backend, "world_size": world, "launcher": launch.mode,
            "device": "cuda" if gpu else "cpu", "torch": torch.__version__,
            "profile": args.profile or ("quick calibration" if profile is not None else None),
            "profile_device": profile.env.get("device") if profile is not None else None,
            "profile_compute": {k: v for k, v in compute.items() if k != "fit_error_pct"},
            "prediction": pred.why or "sizer.step.step_time on device_from_profile",
            "notes": run_notes, "inject_bug": args.inject_bug,
            "quick": bool(args.quick)}


def run(args) -> int:
    from sizer.model.catalog import model_from_config

    from .launch import RankFailure, run_ranks
    from .parallel import run_all

    wanted = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in wanted if s not in STRATEGIES]
    if bad or not wanted:
        raise InputError(f"unknown strategy {', '.join(bad) or '(none)'}; "
                         f"choose from {', '.join(STRATEGIES)}")
    launch = _launch(args)
    world, gpu, rank0 = launch.world_size, launch.backend == "nccl", launch.is_rank0
    dtype = args.dtype or ("bf16" if gpu else "fp32")
    spec = load_spec(args.model)
    if gpu:
        hidden = args.hidden or min(spec.hidden_size, 512 if args.quick else 1024)
        seq = args.seq or (256 if args.quick else 1024)
    else:
        hidden = args.hidden or (128 if args.quick else 256)
        seq = args.seq or (32 if args.quick else 64)
    layers = args.layers or max(4, 2 * world if world <= 4 else world)
    shape = {"batch": args.batch or 2 * world, "seq": seq, "dtype": dtype,
             "reps": args.reps or (3 if args.quick else 5)}
    cfg, notes = scaled_config(spec, hidden, layers, dtype, seq)
    model = model_from_config(cfg, name=f"{spec.name}-scaled", path="scaled config")
    dims = Dims(**{**dims_of(model).__dict__, "seed": args.seed})
    layouts, skipped = plan(dims, world, shape["batch"], wanted, args.inject_bug)
    if not layouts:
        raise InputError("no strategy can run: "
                         + "; ".join(f"{s['strategy']}: {s['reason']}" for s in skipped))
    if rank0:
        for note in launch.notes:
            sys.stderr.write(f"validate: note: {note}\n")
    if args.profile:
        from sizer.hardware.profile import load_profile
        profile = load_profile(args.profile)
    elif launch.torchrun:
        if rank0:
            sys.stderr.write("validate: warning: under torchrun pass --profile (from a torchrun "
                             "calibrate run); rows have no prediction\n")
        profile = None
    else:
        profile = calibrate_profile(launch.backend, world, args.timeout)
    try:
        results = run_ranks(run_all, (dims, layouts, shape["batch"], seq, dtype, shape["reps"]),
                            launch=launch, timeout_s=args.timeout)[0]
    except RankFailure as exc:
        sys.stderr.write(f"validate: {exc.message}\n")
        return 1
    if not rank0:
        return 0
    pred = Predictor(profile, model, world, dtype, nodes=launch.nodes)
    rows = [make_row(lay, per_rank, world, shape["batch"], seq, dtype, pred)
            for lay, per_rank in zip(layouts, results)]
    doc = {"rows": rows, "skipped": skipped,
           "env": _env(args, spec, cfg, notes, shape, launch, gpu, profile, pred)}
    unfitted = sorted({(c["op"], c["ranks"]) for r in rows for c in r.get("collectives", ())
                       if c.get("prediction") == "time model (NCCL)"})
    if profile is not None and unfitted:
        what = ", ".join(f"{op} over {n} ranks" for op, n in unfitted)
        sys.stderr.write(f"validate: warning: the profile has no fit for {what}; those predictions "
                         "use sizer's default link constants (GPU interconnects), not this machine\n")
    if args.json:
        from sizer.output import emit_json
        emit_json(doc)
    else:
        sys.stdout.write(render(doc))
    sys.stdout.flush()
    if args.html:
        from .report_html import write_html
        write_html(doc, args.html)
        sys.stderr.write(f"validate: wrote {args.html}\n")
    return 0 if all(r["matches_reference"] for r in rows) else 1


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        return run(args)
    except InputError as exc:
        sys.stderr.write(f"validate: error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
