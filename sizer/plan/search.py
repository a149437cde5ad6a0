"""The search space of `sizer recommend`, one split evaluated over a vector of batch sizes, and
the best batch of one split (a quarter-octave grid, then every integer around its best point).

Why a module of its own: the recommender asks the same question as `sizer estimate` for hundreds
of (split, precision, batch) points. Building an Estimate per point would spend most of the time
in Python objects, so one split is costed for a whole numpy vector of batch sizes with
sizer.estimate.serving_curve (one step_time call per phase), the function estimate() itself uses:
continuous batching by default, a static batch when the user fixes --batch.
tests/test_recommend.py checks equality with estimate() to 1e-6.

Splits follow sizer/model/split.py: GPUs = TP x PP x DP, EP formed inside TP x DP. Placement follows
sizer/hardware/placement.py (TP innermost, consecutive GPUs of a node); a TP group wider than a node is
flagged and only searched when nothing else fits (the recommender's rule).
"""

from dataclasses import dataclass, replace

import numpy as np

from sizer.cost.engines import caps_share, get_engine, memory_plan
from sizer.errors import InputError
from sizer.hardware.placement import layout
from sizer.model.split import Split, check_split
from sizer.cost.estimate import Curve, serving_curve, spread

GIB = 2**30


@dataclass(frozen=True)
class Workload:
    """What every point is costed for: the scheduler caps (sizer.cost.engines.scheduler_limits
    for the engine and GPU unless given), which also size an engine's profiling forward."""

    isl: int
    osl: int
    max_batch: int
    max_num_tokens: int
    engine: str | None = None
    cuda_graphs: bool | None = None
    mode: str = "continuous"  # "static" when the user fixes --batch (sizer/cost/estimate.py)
    given_caps: tuple = (None, None)  # --max-num-seqs / --max-num-batched-tokens as given

    def for_split(self, split: Split) -> "Workload":
        """This workload with one replica's share of the engine's caps where none were given
        (caps_share: SGLang's data-parallel attention ranks split the deployment's caps)."""
        k = caps_share(get_engine(self.engine), split)
        if k == 1:
            return self
        return replace(self, max_batch=self.given_caps[0] or max(self.max_batch // k, 1),
                       max_num_tokens=self.given_caps[1] or max(self.max_num_tokens // k, 1))

    @property
    def context(self) -> int:
        return self.isl + self.osl

    def memory_kwargs(self, weight_dtype, kv_dtype) -> dict:
        """The memory_plan keywords estimate() uses, so plans here equal its `memory` object."""
        return dict(weight_dtype=weight_dtype, kv_dtype=kv_dtype, context=self.context,
                    engine=self.engine, fraction=None, max_num_batched_tokens=self.max_num_tokens,
                    max_num_seqs=self.max_batch if get_engine(self.engine) is not None else None,
                    cuda_graphs=True if self.cuda_graphs is None else self.cuda_graphs)


def divisors(n: int) -> list[int]:
    """The divisors of n in ascending order, in O(sqrt n) steps (n reaches 1e6 GPUs)."""
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return small + [n // d for d in reversed(small) if d * d != n]


IDLE_ALL_COUNTS_UP_TO = 16  # with idle GPUs allowed, every count 1..gpus up to this many GPUs


def gpu_counts(gpus: int, allow_idle: bool) -> list[int]:
    """GPU counts to search, most first: exactly `gpus`; with idle GPUs allowed every count
    1..gpus for a box of up to 16 GPUs (6 of 7 GPUs as TP2 DP3), above that every divisor of
    `gpus` and every power of two below it (the counts engines are usually run at)."""
    if not allow_idle:
        return [gpus]
    if gpus <= IDLE_ALL_COUNTS_UP_TO:
        return list(range(gpus, 0, -1))
    powers = {1 << k for k in range(gpus.bit_length()) if 1 << k <= gpus}
    return sorted(set(divisors(gpus)) | powers, reverse=True)


def enumerate_splits(model, n: int, uneven_pp: bool = True) -> tuple[list[Split], list[tuple[Split, str]]]:
    """Every TP x PP x DP = n split the model divides into (with every valid EP for MoE
    models: EP divides TP x DP and the expert count), and the splits it does not divide
    into, each with check_split's one-line reason. PP need not divide the layers unless
    uneven_pp is False (--even-pp)."""
    valid, invalid = [], []
    for tp in divisors(n):
        for pp in divisors(n // tp):
            dp = n // (tp * pp)
            base = Split(tp=tp, pp=pp, dp=dp, uneven_pp=uneven_pp)
            try:
                check_split(model, base)
            except InputError as exc:
                invalid.append((base, str(exc)))
                continue
            eps = [1]
            if model.is_moe:
                eps = [e for e in divisors(tp * dp) if model.num_experts % e == 0]
            valid.extend(Split(tp=tp, pp=pp, dp=dp, ep=e, uneven_pp=uneven_pp) for e in eps)
    return valid, invalid


def divisibility_cause(model, split: Split) -> tuple[str, str]:
    """(the dimension that does not divide, what it fails to divide), in check_split's order:
    ('TP3', '64 attention heads'), ('TP16', '8 KV heads'), ('PP3', '80 layers')."""
    if split.tp > model.num_heads:  # a rank without a head, not a remainder
        return f"TP{split.tp}", f"{model.num_heads} attention heads" + FEWER_RANKS
    if model.num_heads % split.tp:
        return f"TP{split.tp}", f"{model.num_heads} attention heads"
    kv = model.num_kv_heads
    if not model.is_mla and kv % split.tp and split.tp % kv:
        return f"TP{split.tp}", f"{kv} KV heads"
    if split.pp > model.num_layers:  # uneven stages are fine; a stage without a layer is not
        return f"PP{split.pp}", f"{model.num_layers} layers" + FEWER
    return f"PP{split.pp}", f"{model.num_layers} layers"


FEWER = " are fewer than the stages"  # divisibility_cause's `what` when PP exceeds the layers
FEWER_RANKS = " are fewer than the TP ranks"  # ... when TP exceeds the attention heads


def divisibility_reason(what: str) -> str:
    """'80 layers do not divide', '32 layers are fewer than the stages' (PP over the layers) or
    '32 attention heads are fewer than the TP ranks' (TP over the heads)."""
    return what if what.endswith((FEWER, FEWER_RANKS)) else f"{what} do not divide"


def divisibility_groups(model, dropped) -> dict:
    """{what does not divide: [the dimensions it fails, first-seen order]} over the splits
    enumerate_splits dropped: {'64 attention heads': ['TP3', 'TP6'], '80 layers': ['PP3']}."""
    groups: dict = {}
    for split, _ in dropped:
        tag, what = divisibility_cause(model, split)
        tags = groups.setdefault(what, [])
        if tag not in tags:
            tags.append(tag)
    return groups


def placement_flags(topology, split: Split) -> tuple:
    """Where the first TP group lands: ('tp_spans_nodes',) / ('tp_spans_sockets',) / ()."""
    if split.gpus == 1 or split.tp == 1:
        return ()
    group = layout(topology, split.tp, split.pp, split.dp).tp_group
    if len({topology.node_of(g) for g in group}) > 1:
        return ("tp_spans_nodes",)
    if len({topology.socket(g) for g in group}) > 1:
        return ("tp_spans_sockets",)
    return ()


def group_links(topology, split: Split, op: str) -> str:
    """Names of the link classes the dominant collective crosses ('nvswitch4', 'pcie5+upi').
    Nodes are identical, so the in-node pairs are read once per distinct set of local GPUs
    the group holds in a node, and every cross-node pair crosses the network's link class:
    O(group + GPUs per node squared), not O(group squared) (a 256-rank EP group has 65,280
    pairs)."""
    if split.gpus == 1:
        return ""
    lay = layout(topology, split.tp, split.pp, split.dp)
    ranks = {"tp": lay.tp_group, "ep": lay.ep_group(split.ep) if split.ep > 1 else (),
             "pp": lay.pp_links[0] if lay.pp_links else ()}[op]
    by_node: dict = {}
    for g in ranks:
        by_node.setdefault(topology.node_of(g), []).append(g)
    names = set()
    for local in {tuple(topology.local(g) for g in gs) for gs in by_node.values()}:
        for a in local:
            for b in local:
                if a != b:
                    names.add("+".join(lk.name for lk in topology.path(a, b)))
    if len(by_node) > 1:
        first, second = (gs[0] for gs in list(by_node.values())[:2])
        names.add("+".join(lk.name for lk in topology.path(first, second)))
    return ", ".join(sorted(names))


class MemoryCache:
    """memory_plan results keyed by everything they depend on (DP changes nothing but the
    communication buffers, which depend on TP x PP and EP)."""

    def __init__(self, model, gpu, workload: Workload):
        self.model, self.gpu, self.wl = model, gpu, workload
        self._plans: dict = {}

    def plan(self, split: Split, weight_dtype, kv_dtype, batch: int):
        key = (split.tp, split.pp, split.ep, split.tp * split.pp > 1 or split.ep > 1,
               weight_dtype, kv_dtype, int(batch))
        hit = self._plans.get(key)
        if hit is None:
            hit = memory_plan(self.model, self.gpu, split, batch=int(batch),
                              **self.wl.for_split(split).memory_kwargs(weight_dtype, kv_dtype))
            self._plans[key] = hit
        return hit

    def max_batch(self, split: Split, weight_dtype, kv_dtype) -> int:
        """Largest batch per replica whose plan fits (0 if not even one sequence): the KV
        capacity estimate() starts from, lowered until the plan's own `fits` agrees (the
        sampler's logits grow with the batch), capped by the engine's max_num_seqs."""
        probe = self.plan(split, weight_dtype, kv_dtype, 1)
        if not probe.fits:
            return 0
        hi = min(self.wl.for_split(split).max_batch, probe.max_sequences)
        if hi < 1 or self.plan(split, weight_dtype, kv_dtype, hi).fits:
            return max(hi, 0)
        lo = 1  # fits; hi does not: bisect
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self.plan(split, weight_dtype, kv_dtype, mid).fits:
                lo = mid
            else:
                hi = mid
        return lo


def batch_grid(b_max: int) -> np.ndarray:
    """Every batch 1..8, then quarter-octave steps round(2^(k/4)) (10, 11, 13, 16, 19, 23, 27,
    32, ...: neighbours at most 19% apart) below the memory/engine limit, and the limit itself.
    The recommender then refines around the best grid point (refine_batches)."""
    grid = {b for b in range(1, min(b_max, 8) + 1)}
    k = 12  # 2^(12/4) = 8
    while round(2 ** (k / 4)) < b_max:
        grid.add(round(2 ** (k / 4)))
        k += 1
    grid.add(b_max)
    return np.array(sorted(grid), dtype=float)


def refine_batches(grid: np.ndarray, i: int) -> np.ndarray:
    """Every integer batch strictly between the grid neighbours of grid point i (the best point
    on the grid): the true best batch, e.g. the largest that meets a TPOT target, lies there
    when the objective is unimodal along the batch axis. Empty when i is the largest batch."""
    if i >= len(grid) - 1:
        return np.array([], dtype=float)
    lo = int(grid[i - 1]) if i > 0 else int(grid[0])
    hi = int(grid[i + 1])
    known = set(int(b) for b in grid)
    return np.array([b for b in range(lo + 1, hi) if b not in known], dtype=float)


@dataclass(frozen=True)
class Points:
    """One split and precision over a vector of batch sizes: the estimate.Curve (batch, ttft_s,
    tpot_s, e2e_s, output_tok_s[_per_gpu], comm shares, bubble_decode: read through), plus the
    decode step's largest communication row per batch."""

    split: Split
    weight_dtype: str | None
    kv_dtype: str
    curve: Curve
    comm_op: np.ndarray  # per batch, the largest communication row of the decode step ('' when none)
    comm_op_share: np.ndarray  # that row's share of the decode step

    def __getattr__(self, name):  # only called for names not defined above: the curve's arrays
        if name.startswith("__") or name == "curve":  # (unpickling: no curve yet)
            raise AttributeError(name)
        return getattr(self.curve, name)


def evaluate(model, device, split: Split, batches, wl: Workload, *, weight_dtype=None,
             kv_dtype="auto", topology=None, profile=None) -> Points:
    """estimate()'s TTFT/TPOT/throughput for every batch in `batches`: the same
    sizer.estimate.serving_curve, one step_time call per phase for the whole vector.
    `device` is a catalog GPUSpec or a ready hardware Device."""
    b = np.atleast_1d(np.asarray(batches, dtype=float))
    c = serving_curve(model, device, split, b, isl=wl.isl, osl=wl.osl,
                      max_num_tokens=wl.max_num_tokens, mode=wl.mode, cuda_graphs=wl.cuda_graphs,
                      weight_dtype=weight_dtype, kv_dtype=kv_dtype, topology=topology, profile=profile,
                      engine=wl.engine)
    dec = c.decode
    dec_time = np.broadcast_to(np.asarray(dec.time_s, dtype=float), b.shape)
    comm_rows = [o for o in dec.ops if o.bound == "comm"]
    if comm_rows:  # the largest row at each batch (an all-to-all may give way to an all-reduce)
        times = np.stack([np.broadcast_to(np.asarray(o.time_s, dtype=float), b.shape) for o in comm_rows])
        top = np.argmax(times, axis=0)
        op = np.array([comm_rows[j].name for j in top], dtype=object)
        op_share = times[top, np.arange(b.size)] / dec_time
    else:
        op, op_share = np.full(b.shape, "", dtype=object), np.zeros_like(b)
    return Points(split, weight_dtype, kv_dtype, c, op, op_share)


def concurrency_batch(concurrency: int, split: Split) -> int:
    """Sequences on the busiest replica for a concurrency over the deployment (estimate()'s rule,
    sizer.cost.estimate.spread)."""
    return spread(concurrency, split.dp)["busy_batch"]


def spread_points(model, device, split: Split, pts: Points, concurrency: int, wl, **kw) -> Points:
    """`pts` (at the busiest replica's batch) with the throughput summed over replicas that
    hold ceil and floor of concurrency / dp (estimate()'s rule): 1 request over 8 replicas is
    one request's tokens/s, not eight."""
    load = spread(concurrency, split.dp)
    if not load["rest_replicas"]:
        return pts
    rest = 0.0
    if load["rest_batch"]:
        rest = evaluate(model, device, split, [load["rest_batch"]], wl, **kw).output_tok_s / split.dp
    tok = load["busy_replicas"] * pts.output_tok_s / split.dp + load["rest_replicas"] * rest
    return replace(pts, curve=replace(pts.curve, output_tok_s=tok, output_tok_s_per_gpu=tok / split.gpus))


def split_json(split: Split) -> dict:
    return split.to_json()


def objective_key(objective: str, tok_gpu, tpot, ttft, gpus=0):
    """Lexicographic sort keys, smaller is better (sizer/plan/recommend.py docstring); a full tie goes to the
    split using more of the GPUs (more tokens/s in all)."""
    if objective == "latency":
        return (tpot, ttft, -tok_gpu, -gpus)
    return (-tok_gpu, tpot, ttft, -gpus)  # throughput; cost is monotone in tokens/s per GPU


def search_split(model, device, split, wd, kd, wl, topo, profile, mem, batch, concurrency,
                  targets, flags, objective="throughput") -> dict:
    """Cost one split and precision over its batch grid, then over every batch between the best
    grid point's neighbours (refine_batches); a `rejected` dict when it cannot fit."""
    wl = wl.for_split(split)
    out = {"split": split, "weight_dtype": wd, "kv_dtype": kd, "flags": flags, "points": None,
           "rejected": None, "plan1": mem.plan(split, wd, kd, 1), "batch_limit": "given"}
    b_max = mem.max_batch(split, wd, kd)
    if batch is not None or concurrency is not None:
        want = batch if batch is not None else concurrency_batch(concurrency, split)
        if b_max < want:
            plan = mem.plan(split, wd, kd, want)
            out["rejected"] = reject_memory(split, wd, plan, f"batch {want}")
            return out
        grid = np.array([float(want)])
    else:
        if b_max < 1:
            out["rejected"] = reject_memory(split, wd, out["plan1"], "one sequence")
            return out
        grid = batch_grid(b_max)
        out["batch_limit"] = "max_num_seqs" if b_max >= wl.max_batch else "memory"
    kw = dict(weight_dtype=wd, kv_dtype=kd, topology=topo, profile=profile)
    pts = evaluate(model, device, split, grid, wl, **kw)
    if concurrency is not None and batch is None:
        pts = spread_points(model, device, split, pts, concurrency, wl, **kw)
    extra = refine_batches(grid, best_index(pts, objective, targets)[0]) if len(grid) > 1 else grid[:0]
    if extra.size:
        pts = evaluate(model, device, split, np.union1d(grid, extra), wl, **kw)
    out["points"] = pts
    return out


def miss_ratio(pts, targets) -> np.ndarray:
    miss = np.zeros_like(pts.batch)
    for key, arr in (("ttft_s", pts.ttft_s), ("tpot_s", pts.tpot_s)):
        if targets[key]:
            miss = np.maximum(miss, arr / targets[key])
    return miss


def best_index(pts, objective, targets) -> tuple[int, np.ndarray]:
    """The point the objective prefers among those meeting the targets (else the closest miss),
    and every point's miss ratio."""
    miss = miss_ratio(pts, targets)
    keys = [objective_key(objective, pts.output_tok_s_per_gpu[i], pts.tpot_s[i], pts.ttft_s[i])
            for i in range(len(pts.batch))]
    ok = np.flatnonzero(miss <= 1.0)
    if ok.size:
        return int(min(ok, key=lambda j: keys[j])), miss
    return int(min(range(len(pts.batch)), key=lambda j: (miss[j], keys[j]))), miss


def weight_label(weight_dtype, precision: dict) -> str:
    """The user's --weight-dtype, or the checkpoint's own: 'bf16', or 'bf16+fp4' when its
    experts are stored differently (gpt-oss: MXFP4 experts, bf16 attention)."""
    if weight_dtype:
        return weight_dtype
    w, e = precision["weights"], precision["experts"]
    return w if w == e else f"{w}+{e}"


def reject_memory(split, wd, plan, what) -> dict:
    pg = plan.to_json()["per_gpu"]
    # the KV the engine needs for the batch, as it keeps it: sliding / chunked layers hold their
    # window, and under vLLM the sequence in prefill its whole chunk (sizer.cost.kv_cache)
    need = (plan.budget_fixed_bytes + plan.kv_bytes_first_sequence
            + plan.kv_bytes_per_sequence * (max(plan.batch, 1) - 1))
    reason = (f"doesn't fit: {what} of {plan.context} tokens {plan.shortfall(need)} "
              f"(weights {plan.weights_bytes / GIB:.1f} GiB)")
    return {**split_json(split), "weight_dtype": weight_label(wd, plan.precision),
            "kv_dtype": plan.precision["kv_cache"], "kind": "memory",
            "reason": reason, "needs_bytes": need, "capacity_bytes": pg["capacity_bytes"],
            "budget_bytes": plan.budget_bytes, "budget": plan.budget}
