"""The Traffic view: the request-level simulator (`sizer simulate`) for the sidebar's deployment.

A rate slider (around the steady-state maximum that `sizer estimate` gives), latency
percentiles against the rate, TTFT/TPOT distributions, and the queue and KV cache over
simulated time. Every number is what `sizer simulate --json` prints for the same inputs: the
same Deployment and Traffic objects, built from the same flags.
"""

import math

import streamlit as st

from sizer import charts
from sizer.errors import InfeasibleError, InputError
from sizer.hardware.gpus import get_gpu
from sizer.sim import Deployment, Lengths, Traffic, simulate
from sizer.units import fmt_seconds

from . import core

CURVE = (0.1, 0.3, 0.5, 0.7, 0.9, 1.1, 1.3)  # rates of the curve, x the steady-state maximum


@st.cache_resource(max_entries=16, show_spinner=False)
def deployment(inp: core.Inputs) -> Deployment:
    """The Deployment `sizer simulate` builds for these inputs (step-cost tables kept)."""
    model = core.load_model(inp.model)
    return Deployment(model, get_gpu(inp.gpu), inp.split, engine=inp.engine, weight_dtype=inp.weight_dtype,
                      kv_dtype=inp.kv_dtype, topology=core.topology(inp), profile=core.load_profile(inp.profile),
                      context=inp.isl + inp.osl)


def traffic(inp: core.Inputs, rate: float, requests: int, seed: int) -> Traffic:
    return Traffic(rate_rps=rate, requests=requests, isl=Lengths("fixed", inp.isl), osl=Lengths("fixed", inp.osl),
                   seed=seed)


@st.cache_data(max_entries=16, show_spinner=False)
def steady_rps(inp: core.Inputs) -> dict:
    try:
        return {"rps": deployment(inp).steady_state_rps(traffic(inp, 1.0, 100, 0))}
    except (InputError, InfeasibleError) as exc:
        return {"error": str(exc)}


@st.cache_data(max_entries=128, show_spinner=False)
def simulate_doc(inp: core.Inputs, rate: float, requests: int, seed: int) -> dict:
    """{"doc": what `sizer simulate --json` prints, "ttft"/"tpot": per request, "timeline"}."""
    def run():
        dep = deployment(inp)
        res = simulate(dep, traffic(inp, rate, requests, seed), ttft_slo_s=inp.ttft_s, tpot_slo_s=inp.tpot_s)
        model = core.load_model(inp.model)
        doc = {"model": model.name, "gpu": inp.gpu, "split": inp.split.to_json(), "engine": dep.engine or "none",
               "seed": seed, **res.to_json()}
        return {"doc": core.plain(doc), "ttft": res.per_request["ttft"].tolist(),
                "tpot": res.per_request["tpot"].tolist(), "timeline": res.timeline}
    return core._guard(run)


def simulate_command(inp: core.Inputs, rate: float, requests: int, seed: int) -> str:
    """The `sizer simulate` command line that prints the same document."""
    ref = inp.model
    parts = ["sizer", "simulate", "--model", ref[1], "--gpu", inp.gpu]
    parts += [f"--{k} {v}" for k, v in dict(tp=inp.tp, pp=inp.pp, dp=inp.dp, ep=inp.ep).items() if v != 1]
    if inp.weight_dtype:
        parts += ["--weight-dtype", inp.weight_dtype]
    if inp.kv_dtype != "auto":
        parts += ["--kv-dtype", inp.kv_dtype]
    parts += ["--engine", inp.engine or "none", "--isl", str(inp.isl), "--osl", str(inp.osl)]
    for flag, value in (("--nodes", inp.nodes if inp.nodes > 1 else None), ("--topology", inp.topology),
                        ("--inter-node", inp.inter_node), ("--profile", inp.profile[0] if inp.profile else None)):
        if value:
            parts += [flag, str(value)]
    parts += ["--rate", repr(rate), "--requests", str(requests), "--seed", str(seed)]
    parts += [f"--{k}-slo {v * 1e3:g}ms" for k, v in (("ttft", inp.ttft_s), ("tpot", inp.tpot_s)) if v]
    return " ".join(parts + ["--json"])


def view(inp: core.Inputs) -> None:
    steady = steady_rps(inp)
    if "error" in steady:
        st.error(steady["error"])
        return
    top = max(steady["rps"], 1e-3)
    step = float(f"{top / 100:.1g}")
    c1, c2, c3 = st.columns([3, 1, 1])
    rate = c1.slider("Request rate (req/s)", min_value=step, max_value=round(1.5 * top / step) * step,
                     value=round(0.5 * top / step) * step, step=step, key="traffic_rate",
                     help=f"steady-state maximum (sizer estimate): {top:.3g} req/s")
    requests = int(c2.number_input("Requests", min_value=20, max_value=20000, value=300, step=50, key="traffic_requests"))
    seed = int(c3.number_input("Seed", min_value=0, max_value=10**6, value=0, key="traffic_seed"))
    out = simulate_doc(inp, float(rate), requests, seed)
    st.caption(f"Same numbers as `{simulate_command(inp, float(rate), requests, seed)}`")
    if "error" in out:
        st.error(out["error"])
        return
    doc = out["doc"]
    m = st.columns(6)
    m[0].metric("P50 TTFT", fmt_seconds(doc["ttft_s"]["p50"]))
    m[1].metric("P99 TTFT", fmt_seconds(doc["ttft_s"]["p99"]))
    m[2].metric("P50 TPOT", fmt_seconds(doc["tpot_s"]["p50"]))
    m[3].metric("P99 TPOT", fmt_seconds(doc["tpot_s"]["p99"]))
    m[4].metric("Throughput (req/s)", f"{doc['throughput']['requests_per_s']:.3g}")
    m[5].metric("Preemptions", f"{doc['preemptions']}")
    if doc["verdict"] == "saturated":
        st.warning("Saturated: the requests in the system grow through the run; the engine does not keep up. "
                   "Lower the rate or add replicas.")
    elif doc["verdict"] == "too short":
        st.warning("Too short to tell whether the engine keeps up: the run ends while it is still filling. "
                   "Simulate more requests.")
    else:
        st.success(f"Stable at {rate:.3g} req/s ({rate / top:.0%} of the steady-state maximum {top:.3g} req/s).")
    if doc.get("goodput"):
        st.caption(f"Goodput {doc['goodput']['requests_per_s']:.3g} req/s: {doc['goodput']['fraction']:.1%} of "
                   "requests meet the sidebar's TTFT/TPOT targets")
    curve = []
    for f in CURVE:
        r = float(f"{f * top:.3g}")
        p = simulate_doc(inp, r, requests, seed)
        if "doc" in p:
            curve.append({"rate_rps": r, "ttft_s": p["doc"]["ttft_s"], "tpot_s": p["doc"]["tpot_s"]})
    curve = sorted(curve + [{"rate_rps": float(rate), "ttft_s": doc["ttft_s"], "tpot_s": doc["tpot_s"]}],
                   key=lambda c: c["rate_rps"])
    from .views import chart, json_download

    chart(charts.latency_vs_rate(curve, ttft_slo_s=inp.ttft_s, tpot_slo_s=inp.tpot_s), "traffic-rate")
    left, right = st.columns(2)
    with left:
        chart(charts.latency_cdfs(out["ttft"], out["tpot"], f"At {rate:.3g} req/s"), "traffic-cdf")
    with right:
        chart(charts.traffic_timeline(out["timeline"]), "traffic-timeline")
    json_download(doc, "simulate")
    with st.expander("Result JSON (sizer simulate --json)"):
        st.json(doc, expanded=False)
    if math.isfinite(rate) and rate > 1.5 * top:
        st.caption("Beyond 1.5x the steady-state maximum every rate saturates.")
