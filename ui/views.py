"""The six views (tabs) of the what-if UI. Each takes the Inputs and the cached core documents
and draws numbers, plotly charts (sizer.charts) and download buttons."""

import json

import numpy as np
import streamlit as st

from sizer import charts
from sizer.cost.collectives import OPS
from sizer.hardware.gpus import get_gpu
from sizer.hardware.constants import device_for
from sizer.units import fmt_bytes, fmt_seconds

from . import core
from .sidebar import cli_command

GIB = 2**30


def chart(fig, key: str) -> None:
    """A zoomable plotly chart and a button that downloads it as standalone HTML (built on click)."""
    st.plotly_chart(fig, width="stretch", key=f"chart-{key}")
    st.download_button("Download chart (HTML)", data=lambda: charts.to_html(fig), file_name=f"sizer-{key}.html",
                       mime="text/html", key=f"dl-chart-{key}", on_click="ignore")


def json_download(doc: dict, key: str, label: str = "Download result (JSON)") -> None:
    st.download_button(label, data=json.dumps(doc, indent=2), file_name=f"sizer-{key}.json",
                       mime="application/json", key=f"dl-json-{key}", on_click="ignore")


def headline(est: dict) -> None:
    """The main numbers, above the tabs (the browser check looks for these)."""
    if "error" in est:
        st.error(f"estimate: {est['error']}")
        return
    pg = est["memory"]["per_gpu"]
    c = st.columns(6)
    c[0].metric("TTFT", fmt_seconds(est["ttft_s"]))
    c[1].metric("TPOT", fmt_seconds(est["tpot_s"]))
    c[2].metric("Output tok/s", f"{est['output_tok_s']:,.0f}")
    c[3].metric("tok/s per GPU", f"{est['output_tok_s_per_gpu']:,.0f}")
    c[4].metric("Batch per replica", f"{est['batch']}")
    c[5].metric("Memory per GPU", fmt_bytes(pg["total_bytes"]),
                delta="fits" if pg["fits"] else "does not fit", delta_color="normal" if pg["fits"] else "inverse")


def fit(inp, est: dict) -> None:
    batch = est.get("batch") or inp.batch or 1
    mem = core.memory_doc(inp, batch)
    st.caption(f"Same numbers as `{cli_command(inp, 'memory', batch)}`")
    if "error" in mem:
        st.error(mem["error"])
        return
    pg = mem["per_gpu"]
    c = st.columns(5)
    c[0].metric("Weights / GPU", fmt_bytes(pg["weights_bytes"]))
    c[1].metric("KV cache / GPU", fmt_bytes(pg["kv_cache_bytes"]))
    c[2].metric("KV capacity (tokens / replica)", f"{mem['max_kv_tokens']:,}")
    c[3].metric("Max sequences", f"{mem['max_sequences']:,}", help=f"at {mem['context']:,} tokens each")
    c[4].metric("Headroom / GPU", fmt_bytes(pg["capacity_bytes"] - pg["total_bytes"]))
    if pg["fits"]:
        st.success(f"Fits: {fmt_bytes(pg['total_bytes'])} of {fmt_bytes(pg['capacity_bytes'])} on the most loaded GPU.")
    else:
        st.error(f"Does not fit: {fmt_bytes(pg['total_bytes'])} needed, {fmt_bytes(pg['capacity_bytes'])} available.")
    prec = ", ".join(f"{k} {v}" for k, v in mem["precision"].items())
    st.caption(f"{mem['params_total'] / 1e9:.2f}B parameters ({mem['params_active'] / 1e9:.2f}B active); "
               f"precision: {prec}; KV {mem['kv_bytes_per_token']:,.0f} bytes/token per GPU")
    left, right = st.columns(2)
    with left:
        chart(charts.memory_bars(mem, f"{mem['model']} on {mem['gpu']}, TP{inp.tp} PP{inp.pp}"), "memory")
    with right:
        rows = core.splits_doc(inp, batch)
        if rows:
            chart(charts.memory_across_splits(rows, pg["capacity_bytes"]), "memory-splits")
    json_download(mem, "memory")
    with st.expander("Result JSON (sizer memory --json)"):
        st.json(mem, expanded=False)


def latency(inp, est: dict) -> None:
    st.caption(f"Same numbers as `{cli_command(inp, 'estimate')}`")
    if "error" in est:
        st.error(est["error"])
        return
    b = est["breakdown"]
    c = st.columns(4)
    c[0].metric("TTFT", fmt_seconds(est["ttft_s"]))
    c[1].metric("TPOT", fmt_seconds(est["tpot_s"]))
    c[2].metric("End to end", fmt_seconds(est["e2e_s"]))
    c[3].metric("Comm share of decode", f"{b['comm_share_decode']:.1%}")
    for target, key, name in ((inp.ttft_s, "ttft_s", "TTFT"), (inp.tpot_s, "tpot_s", "TPOT")):
        if target:
            ok = est[key] <= target
            (st.success if ok else st.warning)(
                f"{name} {fmt_seconds(est[key])} {'meets' if ok else 'misses'} the {fmt_seconds(target)} target")
    chart(charts.latency_breakdown(est), "latency")
    left, right = st.columns(2)
    with left:
        chart(charts.ops_breakdown(est["prefill_ops"], "Prefill step (one chunk), slowest rank"), "prefill-ops")
    with right:
        chart(charts.ops_breakdown(est["decode_ops"], "Decode step, slowest rank"), "decode-ops")
    json_download(est, "estimate")
    with st.expander("Result JSON (sizer estimate --json)"):
        st.json(est, expanded=False)


def communication(inp, est: dict) -> None:
    c1, c2 = st.columns(2)
    op = c1.selectbox("Collective", OPS, key="comm_op")
    default_n = inp.tp if inp.tp > 1 else max(inp.gpus, 2)
    n = int(c2.number_input("Group size (GPUs)", min_value=2, max_value=1024, value=default_n, key="comm_n"))
    doc = core.comm_doc(inp, op, n)
    if "error" in doc:
        st.error(doc["error"])
        return
    marks = core.message_sizes(est, op) if "error" not in est else []
    if marks:
        st.caption("Marked: " + "; ".join(f"{m['label']} {fmt_bytes(m['bytes'])}" for m in marks))
    st.caption(f"Selected: {doc['describe']}")
    chart(charts.comm_curves(doc["by_topology"], marks, f"{op} over {n} x {inp.gpu}, by topology (best algorithm)"),
          "comm-topology")
    chart(charts.comm_curves(doc["by_algorithm"], marks, f"{op} over {n} GPUs on {doc['topology']}, by algorithm"),
          "comm-algorithm")
    json_download(doc, "comm")


def recommend(inp) -> None:
    if not core.recommend_available():
        st.info("`sizer.plan.recommend` is not installed in this build yet; the ranked table, why-not list "
                "and Pareto plot appear here once it is.")
        return
    c1, c2, c3 = st.columns(3)
    objective = c1.selectbox("Objective", ("throughput", "latency", "cost"), key="rec_objective")
    top = int(c2.number_input("Show top", min_value=1, max_value=100, value=10, key="rec_top"))
    price = c3.number_input("GPU-hour price (USD)", min_value=0.0, value=0.0, step=0.5, key="rec_price",
                            help="for cost per million tokens; 0 = none")
    rec = core.recommend_doc(inp, objective, top, price or None)
    st.caption(f"Same search as `{cli_command(inp, 'recommend')}`")
    if "error" in rec:
        st.error(rec["error"])
        return
    if rec.get("targets_error"):
        st.warning(rec["targets_error"])
    elif rec.get("winner_reason"):
        st.success(rec["winner_reason"])
    cands = rec.get("candidates", [])
    if cands:
        st.dataframe([_candidate_row(c) for c in cands], hide_index=True, key="rec_table")
    st.caption(f"{rec.get('evaluated_splits', 0)} splits, {rec.get('evaluated_points', 0)} (split, precision, "
               f"batch) points on {rec.get('topology', '')}")
    chart(charts.pareto(rec, inp.ttft_s, inp.tpot_s), "pareto")
    if rec.get("why_not"):
        st.markdown("**Why not the others**\n" + "\n".join(f"- {line}" for line in rec["why_not"]))
    rejected = rec.get("rejected", [])
    if rejected:
        with st.expander(f"Rejected: {len(rejected)} configurations"):
            st.dataframe([_rejected_row(r) for r in rejected], hide_index=True, key="rec_rejected")
    for note in rec.get("notes", []):
        st.caption(note)
    json_download(rec, "recommend")
    with st.expander("Result JSON (sizer recommend --json)"):
        st.json(rec, expanded=False)


def _candidate_row(c: dict) -> dict:
    pg = (c.get("memory") or {}).get("per_gpu", {})
    return {"split": c.get("label") or charts.candidate_label(c), "GPUs": c.get("gpus_used"),
            "weights": c.get("weight_dtype"), "KV": c.get("kv_dtype"), "batch": c.get("batch"),
            "TTFT ms": round(c["ttft_s"] * 1e3, 2), "TPOT ms": round(c["tpot_s"] * 1e3, 3),
            "tok/s/GPU": round(c["output_tok_s_per_gpu"], 1),
            "comm share (decode)": f"{c.get('comm_op_share', c.get('comm_share_decode', 0)):.0%}",
            "GiB/GPU": round(pg["total_bytes"] / GIB, 2) if "total_bytes" in pg else None,
            "$/Mtok": round(c["cost_per_million_tokens"], 3) if c.get("cost_per_million_tokens") else None,
            "meets targets": c.get("meets_targets")}


def _rejected_row(r: dict) -> dict:
    return {"split": r.get("label") or charts.candidate_label(r), "weights": r.get("weight_dtype"),
            "kind": r.get("kind"), "reason": r.get("reason")}


def pipeline(inp, est: dict) -> None:
    if "error" in est:
        st.error(est["error"])
        return
    pipe = est.get("pipeline")
    if not pipe:
        st.info("PP = 1: no pipeline schedule. Choose PP > 1 in the sidebar to see the fill-run-drain "
                "schedule and its bubble.")
        return
    c = st.columns(2)
    c[0].metric("Prefill bubble", f"{pipe['bubble_fraction_prefill']:.1%}")
    c[1].metric("Decode bubble", f"{pipe['bubble_fraction_decode']:.1%}")
    chart(charts.gantt(pipe["prefill"], "Prefill (TTFT)"), "gantt-prefill")
    chart(charts.gantt(pipe["decode"], "Decode, one step (TPOT)"), "gantt-decode")
    json_download(pipe, "pipeline")


def calibration(inp) -> None:
    if inp.profile is None:
        st.info("Upload a hardware profile (sidebar) to compare its measurements with the model's curves "
                "and see which constants are measured and which are defaults.")
        return
    try:
        profile = core.load_profile(inp.profile)
    except core.InputError as exc:
        st.error(str(exc))
        return
    gpu = get_gpu(inp.gpu)
    st.caption(f"Profile {profile.path}: device {profile.env.get('device', '?')}, "
               f"backend {profile.env.get('backend', '?')}, {len(profile.collectives)} collective fit(s)")
    default, measured = device_for(gpu), device_for(gpu, profile)
    st.dataframe(_constants(default, measured), hide_index=True, key="constants")
    raw = profile.raw or {}
    for k, fit in enumerate(profile.collectives):
        rows = [r for r in raw.get("collectives", []) if r.get("op") == fit.op and r.get("ranks") == fit.ranks
                and r.get("nodes", 1) == fit.nodes and r.get("time_us")]
        curves = []
        try:
            sub = core.Inputs(model=inp.model, gpu=inp.gpu, gpus=fit.ranks, nodes=fit.nodes,
                              topology=inp.topology, inter_node=inp.inter_node)
            topo = core.topology(sub, fit.ranks)
            ranks = core.gpu_order(topo)[:fit.ranks]
            curves.append(core.curve(f"model, {gpu.id} defaults", fit.op, ranks, topo, None))
            curves.append(core.curve("model with this profile", fit.op, ranks, topo, profile))
        except core.InputError as exc:
            st.caption(f"{fit.op} x{fit.ranks}: no model curve ({exc})")
        err = fit.fit_error_pct
        title = f"{fit.op}, {fit.ranks} ranks, {fit.nodes} node(s)" + (
            f" (fit error median {err.get('median', 0):.1f}%)" if err else "")
        chart(charts.calibration_collectives(rows, curves, title), f"calib-{fit.op}-{fit.ranks}-{fit.nodes}-{k}")
    gemm = [r for r in raw.get("gemm", []) if r.get("flops_per_s")]
    for dtype in sorted({r["dtype"] for r in gemm}):
        pts = [{"x": r["M"], "y": r["flops_per_s"] / 1e12} for r in gemm if r["dtype"] == dtype]
        m = np.geomspace(max(min(p["x"] for p in pts), 1), max(p["x"] for p in pts), 40)
        curves = [{"label": label, "x": m.tolist(),
                   "y": (dev.matmul_rate(dtype) * m / (m + dev.matmul_half_rows) / 1e12).tolist()}
                  for label, dev in (("model, defaults", default), ("model with this profile", measured))]
        chart(charts.calibration_rates(pts, curves, f"GEMM {dtype}: achieved TFLOP/s vs rows M",
                                       "rows M (tokens)", "TFLOP/s"), f"calib-gemm-{dtype}")
    copies = [r for r in raw.get("membw", []) if r.get("bytes_per_s")]
    if copies:
        pts = [{"x": r["size_bytes"], "y": r["bytes_per_s"] / 1e9} for r in copies]
        xs = [min(p["x"] for p in pts), max(p["x"] for p in pts)]
        curves = [{"label": label, "x": xs, "y": [dev.hbm_bytes_per_s / 1e9] * 2}
                  for label, dev in (("model, defaults", default), ("model with this profile", measured))]
        chart(charts.calibration_rates(pts, curves, "Memory bandwidth (device copy)", "bytes copied", "GB/s"),
              "calib-membw")
    json_download({"provenance": measured.provenance, "profile": profile.provenance()}, "provenance",
                  "Download provenance (JSON)")


def _constants(default, measured) -> list[dict]:
    """Each time-model constant: default, value in use, and where it came from."""
    rows = [("hbm_bytes_per_s", default.hbm_bytes_per_s, measured.hbm_bytes_per_s, "hbm_bytes_per_s"),
            ("matmul_half_rows", default.matmul_half_rows, measured.matmul_half_rows, "matmul_half_rows"),
            ("attention_flops_per_s", default.attention_flops_per_s, measured.attention_flops_per_s,
             "attention_flops_per_s:bf16")]
    rows += [(f"matmul_flops_per_s[{d}]", default.matmul_flops_per_s[d], measured.matmul_flops_per_s.get(d),
              f"matmul_flops_per_s:{d}") for d in default.matmul_flops_per_s]
    rows += [(f"kernel_launch_s[{m}]", default.kernel_launch_s[m], measured.kernel_launch_s[m],
              f"kernel_launch_s:{m}") for m in default.kernel_launch_s]
    return [{"constant": name, "default": f"{d:.4g}", "in use": f"{u:.4g}" if u is not None else "",
             "source": measured.provenance.get(key, "default")} for name, d, u, key in rows]
