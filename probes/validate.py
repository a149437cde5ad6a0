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

from .parallel import STRATEGIES, Dims, Layout

TOLERANCE = {"fp32": 1e-4, "bf16": 3e-2, "fp16": 5e-3}  # max |err| / max |reference|
DEFAULT_MODEL = "mixtral-8x7b"
EXCLUDED_OPS = ("embedding", "final_norm", "lm_head", "logits_all_gather")  # not in the stack
TORCH_DTYPE = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
MAX_EXPERTS = 32  # expert ids ride in the dispatched rows: exact below 256 in bf16
# Mixtral-8x7B's shape ratios (official config.json), used when the preset files are absent.
BUILTIN = {"model_type": "mixtral", "hidden_size": 4096, "num_hidden_layers": 32,
           "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
           "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000}


# ----- the model: a preset scaled down ------------------------------------------------------

def _round_to(x: float, step: int) -> int:
    return max(step, int(round(x / step)) * step)


def load_spec(name: str):
    """The preset's ModelSpec (sizer.models), or the built-in Mixtral shape when presets are
    missing and the default was asked for."""
    from sizer.models import get_model, model_from_config

    try:
        return get_model(name)
    except InputError:
        if name != DEFAULT_MODEL:
            raise
        return model_from_config(BUILTIN, name=DEFAULT_MODEL, path="built-in")


def scaled_config(spec, hidden: int, layers: int, dtype: str, seq: int) -> tuple[dict, list]:
    """An HF config.json-style dict of the stack that runs: the preset with hidden scaled to
    `hidden` (heads halved, with KV heads, until head_dim >= 16; FFN widths scaled and rounded to
    64), `layers` layers, every layer MoE when the preset has experts. Returns (config, notes)."""
    if hidden < 16 or hidden % 2:
        raise InputError(f"--hidden must be an even number >= 16, got {hidden}")
    notes = []
    heads, kv = spec.num_heads, spec.num_kv_heads
    while hidden // heads < 16 and heads % 2 == 0 and heads > 1:
        heads //= 2
        kv = kv // 2 if kv % 2 == 0 else kv
    kv = min(kv, heads)
    if hidden % heads:
        raise InputError(f"--hidden {hidden} does not divide into {heads} attention heads")
    head_dim = hidden // heads
    if head_dim % 2:
        raise InputError(f"head_dim {head_dim} (= hidden {hidden} / {heads} heads) must be even for rotary")
    ratio = hidden / spec.hidden_size
    cfg = {"model_type": "mixtral" if spec.is_moe else "llama", "hidden_size": hidden,
           "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
           "head_dim": head_dim, "vocab_size": spec.vocab_size, "torch_dtype": TORCH_DTYPE[dtype],
           "tie_word_embeddings": False, "max_position_embeddings": seq}
    if spec.is_moe:
        experts = min(spec.num_experts, MAX_EXPERTS)
        if experts < spec.num_experts:
            notes.append(f"experts {spec.num_experts} -> {experts}")
        width = _round_to(spec.moe_intermediate_size * ratio, 64)
        cfg.update(num_local_experts=experts, num_experts_per_tok=min(spec.experts_per_token, experts),
                   moe_intermediate_size=width, intermediate_size=width)
        if len(spec.moe_layers) < spec.num_layers:
            notes.append("dense leading/interleaved layers made MoE")
        if spec.num_shared_experts or spec.shared_expert_intermediate_size:
            notes.append("shared experts dropped")
    else:
        cfg["intermediate_size"] = _round_to(spec.intermediate_size * ratio, 64)
    if spec.is_mla:
        notes.append("MLA attention run as GQA")
    if spec.sliding_layers:
        notes.append("sliding-window layers run with full attention")
    if spec.qkv_bias or spec.mlp_bias or spec.qk_norm:
        notes.append("biases / q-k norms dropped")
    notes.insert(0, f"hidden {spec.hidden_size} -> {hidden}, heads {spec.num_heads}/{spec.num_kv_heads}"
                    f" -> {heads}/{kv}, layers {spec.num_layers} -> {layers}")
    return cfg, notes


def dims_of(model) -> Dims:
    return Dims(hidden=model.hidden_size, layers=model.num_layers, heads=model.num_heads,
                kv_heads=model.num_kv_heads, head_dim=model.head_dim,
                inter=model.intermediate_size, experts=model.num_experts,
                top_k=model.experts_per_token, moe_inter=model.moe_intermediate_size,
                moe_layers=tuple(model.moe_layers))


# ----- which strategies the world hosts -----------------------------------------------------

def _micro(batch: int, pp: int) -> int:
    """Micro-batches: the largest divisor of the batch up to 2 x stages."""
    return max(d for d in range(1, min(batch, 2 * pp) + 1) if batch % d == 0)


def _tp_reason(d: Dims, tp: int):
    if d.heads % tp:
        return f"{d.heads} attention heads do not divide by TP={tp}"
    if d.kv_heads % tp and tp % d.kv_heads:
        return f"{d.kv_heads} KV heads and TP={tp}: one must divide the other"
    width = d.moe_inter if d.moe_layers else d.inter
    if width % tp or (d.inter and d.inter % tp):
        return f"FFN width {width} does not divide by TP={tp}"
    return None


def plan(d: Dims, world: int, batch: int, wanted, inject=None) -> tuple[list, list]:
    """(layouts to run, skipped [{strategy, reason}]) for this world size."""
    runs, skipped = [], []
    for s in wanted:
        reason, lay = None, None
        if world < 2:
            reason = f"needs at least 2 ranks, the world has {world}"
        elif s == "dp":
            reason = batch % world and f"batch {batch} does not divide over {world} ranks"
            lay = Layout("dp", dp=world, inject=inject)
        elif s == "tp":
            reason = _tp_reason(d, world)
            lay = Layout("tp", tp=world, inject=inject)
        elif s == "pp":
            reason = d.layers % world and f"{d.layers} layers do not divide into {world} stages"
            lay = Layout("pp", pp=world, micro=_micro(batch, world), inject=inject)
        elif s == "ep":
            if not d.experts:
                reason = "the model is dense: EP needs a mixture-of-experts model"
            elif d.experts % world:
                reason = f"{d.experts} experts do not divide over EP={world}"
            elif batch % world:
                reason = f"batch {batch} does not divide over {world} ranks (EP runs attention data-parallel)"
            lay = Layout("ep", dp=world, ep=world, inject=inject)
        elif s == "tp+pp":
            if world < 4 or world % 2:
                reason = f"needs an even world of at least 4 ranks (TP2 x PP2), the world has {world}"
            else:
                pp = world // 2
                reason = _tp_reason(d, 2) or (d.layers % pp and f"{d.layers} layers do not divide into {pp} stages")
                lay = Layout("tp+pp", tp=2, pp=pp, micro=_micro(batch, pp), inject=inject)
        if reason:
            skipped.append({"strategy": s, "world_size": world, "reason": reason})
        else:
            runs.append(lay)
    return runs, skipped


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
            from sizer.gpus import get_gpu
            from sizer.step import device_from_profile
            from sizer.topology import default_topology, get_topology

            gpu_id = profile.env.get("gpu_id")
            gpu = get_gpu(gpu_id) if gpu_id else None
            try:
                self.device = device_from_profile(profile)
            except InputError:
                if gpu is None:
                    raise
                from sizer.hardware import device_for
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
        if self.device is None or ranks < 2:
            return None
        from sizer.collectives import collective_time

        return float(collective_time(op, nbytes, tuple(range(ranks)), self.topology, self.profile).time_s)

    def row(self, lay: Layout, batch: int, seq: int) -> dict:
        """predict_row: the stack's predicted time (step_time without the embedding and LM
        head, which the stack does not run); pipelines: the GPipe makespan (m + p - 1) x the
        slowest stage's time per micro-batch (sizer.pipeline.Schedule)."""
        if self.device is None:
            return {"predicted_s": None, "predicted_compute_s": None, "predicted_comm_s": None,
                    "predicted_ops": []}
        from sizer.pipeline import Schedule
        from sizer.step import step_time

        per_rank = batch // lay.dp // lay.micro
        res = step_time(self.model, self.device, tp=lay.tp, pp=lay.pp, ep=lay.ep, dp=lay.dp,
                        phase="prefill", batch=per_rank, seq_len=seq, weight_dtype=self.dtype,
                        topology=self.topology, profile=self.profile)
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
    from sizer.profile import load_profile

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
        if os.path.exists(path):
            os.unlink(path)


# ----- rows ---------------------------------------------------------------------------------

def _pct(pred, meas):
    return None if pred is None or not meas else 100.0 * (pred - meas) / meas


def _group_size(label: str, lay: Layout) -> int:
    return lay.tp if label.startswith("tp") else lay.ep if label.startswith("ep") else 2


def collectives(per_rank: list, lay: Layout, pred: Predictor) -> list:
    """One entry per (op, label): mean bytes and median seconds per call over the calls of the
    traced forwards (ceil(reps / 2)) on every rank (the median keeps a descheduled rank's outlier out), the
    number of calls, and collective_time's prediction for the mean size."""
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
                    ("time model" if p is not None else None)})
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
    p = argparse.ArgumentParser(prog="python -m probes.validate", description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=("nccl", "gloo"), help="default: nccl on GPUs, else gloo")
    p.add_argument("--world-size", type=int, help="local ranks (default: one per GPU; CPU: 2)")
    p.add_argument("--model", default=DEFAULT_MODEL, help=f"preset id or config.json (default {DEFAULT_MODEL})")
    p.add_argument("--layers", type=int, help="layers of the stack (default: 2 x ranks up to 4 ranks, then one per rank; at least 4)")
    p.add_argument("--hidden", type=int, help="hidden size (default CPU 256, --quick 128; GPU 1024, --quick 512)")
    p.add_argument("--batch", type=int, help="sequences (default 2 x ranks)")
    p.add_argument("--seq", type=int, help="tokens per sequence (default CPU 64, --quick 32; GPU 1024, --quick 256)")
    p.add_argument("--strategies", default=",".join(STRATEGIES), help="comma-separated subset of "
                   + ",".join(STRATEGIES))
    p.add_argument("--quick", action="store_true", help="a short pass: smaller shapes, fewer reps")
    p.add_argument("--profile", help="hardware profile (default: run the quick calibration first)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--html", metavar="FILE", help="write plotly charts to FILE")
    p.add_argument("--reps", type=int, help="timed repetitions (default 5, --quick 3)")
    p.add_argument("--dtype", choices=tuple(TOLERANCE), help="timing dtype (default bf16 on GPU, fp32 on CPU)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds before every rank is stopped")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--inject-bug", choices=("wrong-shard",), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _positive(name, value):
    if value is not None and value < 1:
        raise InputError(f"--{name} must be a positive integer, got {value}")


def run(args) -> int:
    from .launch import LaunchError, RankFailure, resolve, run_ranks, under_torchrun
    from .parallel import run_all

    for name in ("world_size", "layers", "hidden", "batch", "seq", "reps"):
        _positive(name.replace("_", "-"), getattr(args, name))
    wanted = [s.strip() for s in args.strategies.split(",") if s.strip()]
    bad = [s for s in wanted if s not in STRATEGIES]
    if bad or not wanted:
        raise InputError(f"unknown strategy {', '.join(bad) or '(none)'}; choose from {', '.join(STRATEGIES)}")
    torchrun = under_torchrun()
    if torchrun:
        world, backend = int(os.environ["WORLD_SIZE"]), args.backend or None
    else:
        try:
            world, backend = resolve(args.world_size, args.backend)
        except LaunchError as exc:
            raise InputError(str(exc)) from None
    gpu = (backend or "nccl") == "nccl" and not (torchrun and args.backend == "gloo")
    if torchrun and backend is None:
        import torch
        gpu = torch.cuda.is_available()
    dtype = args.dtype or ("bf16" if gpu else "fp32")
    spec = load_spec(args.model)
    hidden = args.hidden or (min(spec.hidden_size, 512 if args.quick else 1024) if gpu
                             else (128 if args.quick else 256))
    layers = args.layers or max(4, 2 * world if world <= 4 else world)
    seq = args.seq or (256 if args.quick else 1024) if gpu else args.seq or (32 if args.quick else 64)
    batch = args.batch or 2 * world
    reps = args.reps or (3 if args.quick else 5)
    cfg, notes = scaled_config(spec, hidden, layers, dtype, seq)
    from sizer.models import model_from_config

    model = model_from_config(cfg, name=f"{spec.name}-scaled", path="scaled config")
    dims = dims_of(model)
    dims = Dims(**{**dims.__dict__, "seed": args.seed})
    layouts, skipped = plan(dims, world, batch, wanted, args.inject_bug)
    if not layouts:
        raise InputError("no strategy can run: " + "; ".join(f"{s['strategy']}: {s['reason']}" for s in skipped))
    rank0 = not torchrun or int(os.environ["RANK"]) == 0
    if args.profile:
        from sizer.profile import load_profile
        profile = load_profile(args.profile)
    elif torchrun:
        if rank0:
            sys.stderr.write("validate: warning: under torchrun pass --profile (from a torchrun "
                             "calibrate run); rows have no prediction\n")
        profile = None
    else:
        profile = calibrate_profile(backend, world, args.timeout)
    try:
        results = run_ranks(run_all, (dims, layouts, batch, seq, dtype, reps),
                            world_size=None if torchrun else world, backend=backend,
                            timeout_s=args.timeout)[0]
    except LaunchError as exc:
        raise InputError(str(exc)) from None
    except RankFailure as exc:
        sys.stderr.write(f"validate: {exc.message}\n")
        return 1
    if not rank0:
        return 0
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world)) if torchrun else world
    pred = Predictor(profile, model, world, dtype, nodes=max(1, world // max(local, 1)))
    rows = [make_row(lay, per_rank, world, batch, seq, dtype, pred)
            for lay, per_rank in zip(layouts, results)]
    import torch
    env = {"model": spec.name, "config": cfg, "scaled": notes, "batch": batch, "seq": seq,
           "dtype": dtype, "reps": reps, "backend": backend or ("nccl" if gpu else "gloo"),
           "world_size": world, "device": "cuda" if gpu else "cpu", "torch": torch.__version__,
           "profile": args.profile or ("quick calibration" if profile is not None else None),
           "profile_device": profile.env.get("device") if profile is not None else None,
           "prediction": pred.why or "sizer.step.step_time on device_from_profile",
           "profile_compute": {k: v for k, v in (profile.compute if profile is not None else {}).items()
                               if k != "fit_error_pct"},
           "notes": ([] if gpu else [f"cpu ranks share {os.cpu_count()} cores ({max(1, (os.cpu_count() or 1) // world)} "
                                     "thread(s) each); the profile's compute constants were measured "
                                     "by one rank on all cores"]),
           "inject_bug": args.inject_bug, "quick": bool(args.quick)}
    doc = {"rows": rows, "env": env, "skipped": skipped}
    if args.json:
        from sizer.cli import emit_json
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
