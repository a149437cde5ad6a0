"""The UI's calls into sizer, cached with st.cache_data: the same functions the CLI runs.

Each cached function takes an `Inputs` (hashable: primitives only) and returns the JSON document
the matching CLI command prints with --json (numbers identical: same calls, same arguments), or
{"error": "..."} for bad input or an infeasible deployment, so errors are cached too.
"""

import json
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import streamlit as st

from sizer.output import jsonable
from sizer.cost.collectives import collective_time
from sizer.cost.engines import memory_plan
from sizer.errors import InfeasibleError, InputError
from sizer.cost.estimate import estimate
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model, model_from_config
from sizer.hardware.placement import gpu_order
from sizer.hardware.profile import profile_from_text
from sizer.model.split import Split, check_split
from sizer.hardware.topology import PRESETS, default_topology, get_topology

SWEEP_BYTES = np.array([2.0**k for k in range(10, 34)])  # 1 KiB .. 8 GiB, as `sizer comm --sweep`
ALGORITHMS = ("ring", "tree", "nvls", "hierarchical", "one_shot", "two_shot", "direct", "p2p")


@dataclass(frozen=True)
class Inputs:
    """Everything the sidebar sets. `model` is ("preset", id) | ("path", path) |
    ("upload", filename, text); `profile` is None | (filename, text)."""

    model: tuple
    gpu: str = "h100-sxm"
    gpus: int = 1
    tp: int = 1
    pp: int = 1
    ep: int = 1
    nodes: int = 1
    topology: str | None = None
    inter_node: str | None = None
    weight_dtype: str | None = None
    kv_dtype: str = "auto"
    engine: str | None = None
    isl: int = 1024
    osl: int = 256
    batch: int | None = None
    concurrency: int | None = None
    ttft_s: float | None = None
    tpot_s: float | None = None
    profile: tuple | None = None

    @property
    def dp(self) -> int:
        return max(self.gpus // (self.tp * self.pp), 1)

    @property
    def split(self) -> Split:
        if self.gpus % (self.tp * self.pp):
            raise InputError(f"{self.gpus} GPUs do not divide into TP {self.tp} x PP {self.pp} "
                             "(DP = GPUs / (TP x PP) must be whole)")
        return Split(tp=self.tp, pp=self.pp, dp=self.dp, ep=self.ep)


def plain(doc):
    """The document exactly as `sizer ... --json` prints it (numpy scalars to floats)."""
    return json.loads(json.dumps(doc, default=jsonable))


@lru_cache(maxsize=64)
def load_model(ref: tuple):
    kind = ref[0]
    if kind == "upload":
        name, text = ref[1], ref[2]
        try:
            cfg = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{name} is not valid JSON ({exc})") from None
        stem = name.rsplit("/", 1)[-1].removesuffix(".json")
        return model_from_config(cfg, name=stem if stem != "config" else "uploaded", path=name)
    return get_model(ref[1])


@lru_cache(maxsize=16)
def load_profile(ref: tuple | None):
    if ref is None:
        return None
    name, text = ref
    return profile_from_text(text, name)  # bounded, strict JSON, schema-checked (issue #16)


def topology(inp: Inputs, n_gpus: int | None = None):
    """The Topology `topology_from_args` builds for these flags (None for one GPU, as the CLI)."""
    n = n_gpus or inp.split.gpus
    if n <= 1:
        return None
    gpu = get_gpu(inp.gpu)
    if inp.topology:
        return get_topology(inp.topology, gpu, n, inp.nodes, inp.inter_node)
    return default_topology(gpu, n, inp.nodes, inp.inter_node)


def _guard(fn):
    try:
        return fn()
    except (InputError, InfeasibleError) as exc:
        return {"error": str(exc)}


@st.cache_data(max_entries=256, show_spinner=False)
def estimate_doc(inp: Inputs) -> dict:
    """What `sizer estimate --json` prints for these inputs."""
    def run():
        model, gpu, split = load_model(inp.model), get_gpu(inp.gpu), inp.split
        est = estimate(model, gpu, split, isl=inp.isl, osl=inp.osl, batch=inp.batch,
                       concurrency=inp.concurrency, weight_dtype=inp.weight_dtype,
                       kv_dtype=inp.kv_dtype, engine=inp.engine, topology=topology(inp),
                       profile=load_profile(inp.profile))
        doc = est.to_json()
        doc.update(model=model.name, gpu=gpu.id, split=split.to_json(), isl=inp.isl, osl=inp.osl,
                   engine=inp.engine or "none")
        return plain(doc)
    return _guard(run)


@st.cache_data(max_entries=256, show_spinner=False)
def memory_doc(inp: Inputs, batch: int, tp: int | None = None, pp: int | None = None) -> dict:
    """What `sizer memory --json --batch B --context ISL+OSL` prints (split overridable)."""
    def run():
        model, gpu = load_model(inp.model), get_gpu(inp.gpu)
        split = Split(tp=tp, pp=pp, dp=1, ep=1) if tp else inp.split
        plan = memory_plan(model, gpu, split, weight_dtype=inp.weight_dtype, kv_dtype=inp.kv_dtype,
                           batch=batch, context=inp.isl + inp.osl, engine=inp.engine)
        doc = plan.to_json()
        doc.update(model=model.name, gpu=gpu.id, split=split.to_json(), engine=inp.engine or "none")
        return plain(doc)
    return _guard(run)


@st.cache_data(max_entries=64, show_spinner=False)
def splits_doc(inp: Inputs, batch: int) -> list[dict]:
    """Memory per GPU for every TP x PP (powers of two, TP x PP <= GPU count, at most 64) the
    model divides into: [{"label", "tp", "pp", "plan"}]."""
    model = load_model(inp.model)
    rows = []
    limit = max(inp.gpus, 1)
    for tp in (1, 2, 4, 8, 16, 32, 64):
        for pp in (1, 2, 4, 8, 16, 32, 64):
            if tp * pp > limit:
                continue
            try:
                check_split(model, Split(tp=tp, pp=pp))
            except InputError:
                continue
            doc = memory_doc(inp, batch, tp, pp)
            if "error" not in doc:
                rows.append({"label": f"TP{tp} PP{pp}", "tp": tp, "pp": pp, "plan": doc})
    return rows


@st.cache_data(max_entries=64, show_spinner=False)
def comm_doc(inp: Inputs, op: str, n: int) -> dict:
    """Collective sweeps (as `sizer comm --sweep --json`) over the first `n` GPUs in placement
    order: {"by_topology": [curve], "by_algorithm": [curve], "topology": name} or {"error"}."""
    def run():
        gpu = get_gpu(inp.gpu)
        profile = load_profile(inp.profile)
        nodes = inp.nodes if n % inp.nodes == 0 and n >= inp.nodes else 1
        chosen = (inp.topology or None)
        by_topo = []
        for name in PRESETS:
            try:
                topo = get_topology(name, gpu, n, nodes, inp.inter_node)
            except InputError:
                continue
            ranks = gpu_order(topo)[:n]
            by_topo.append(curve(name, op, ranks, topo, profile))
        if chosen:
            topo = get_topology(chosen, gpu, n, nodes, inp.inter_node)
        else:
            topo = default_topology(gpu, n, nodes, inp.inter_node)
        ranks = gpu_order(topo)[:n]
        by_algo = []
        for family in ALGORITHMS:
            try:
                c = curve(family, op, ranks, topo, None, {family})
            except InputError:
                continue
            if c["bytes"]:
                by_algo.append(c)
        return {"by_topology": by_topo, "by_algorithm": by_algo, "topology": topo.name,
                "nodes": nodes, "describe": topo.describe()}
    return _guard(run)


def curve(label, op, ranks, topo, profile, algorithms=None) -> dict:
    cost = collective_time(op, SWEEP_BYTES, ranks, topo, profile, algorithms=algorithms)
    t = np.asarray(cost.time_s, dtype=float)
    ok = np.isfinite(t) & (t > 0)
    algo = [a for a, keep in zip(cost.algorithm, ok) if keep]
    return plain({"label": label, "bytes": SWEEP_BYTES[ok], "time_s": t[ok],
                  "busbw_GBps": np.asarray(cost.busbw_GBps)[ok], "algorithm": algo})


def recommend_available() -> bool:
    try:
        import sizer.plan.recommend  # noqa: F401
    except ImportError:
        return False
    return True


@st.cache_data(max_entries=32, show_spinner=False)
def recommend_doc(inp: Inputs, objective: str, top: int, gpu_hour_price: float | None = None) -> dict:
    """What `sizer recommend --json` prints for these inputs (less its search_time_s): the ranked
    candidates, the rejected list, why-not lines and the Pareto front. When no split meets the
    targets, the closest candidates with "targets_error" set (the CLI prints them and exits 1)."""
    from sizer.plan.recommend import TargetsNotMetError, recommend

    def run():
        model, gpu = load_model(inp.model), get_gpu(inp.gpu)
        try:
            rec = recommend(model, gpu, inp.gpus, nodes=inp.nodes, topology=inp.topology,
                            inter_node=inp.inter_node, isl=inp.isl, osl=inp.osl, ttft_s=inp.ttft_s,
                            tpot_s=inp.tpot_s, objective=objective, weight_dtypes=inp.weight_dtype,
                            kv_dtype=inp.kv_dtype, engine=inp.engine, top=top,
                            gpu_hour_price=gpu_hour_price, batch=inp.batch,
                            concurrency=inp.concurrency, profile=load_profile(inp.profile))
        except TargetsNotMetError as exc:
            return {**plain(exc.recommendation.to_json()), "targets_error": str(exc)}
        return plain(rec.to_json())
    return _guard(run)


def message_sizes(est: dict, op: str) -> list[dict]:
    """The chosen deployment's per-call message sizes for `op` (bytes of one collective: an
    op row's bytes / its count), from the estimate's prefill and decode op rows."""
    names = {"all_reduce": ("tp_all_reduce",), "all_to_all": ("ep_all_to_all",),
             "send_recv": ("pp_send_recv",), "all_gather": ("logits_all_gather",),
             "reduce_scatter": (), "broadcast": ()}[op]
    out = []
    for phase in ("prefill", "decode"):
        for row in est.get(f"{phase}_ops", []):
            if row["name"] in names and row["count"] and row["bytes"]:
                out.append({"label": f"{phase} {row['name']}", "bytes": row["bytes"] / row["count"]})
    return out

