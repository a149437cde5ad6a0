"""The six views (tabs) of the what-if UI. Each takes the Inputs and the cached core documents
and draws numbers, plotly charts (sizer.charts) and download buttons."""

import json

import streamlit as st

from sizer import charts
from sizer.cost.collectives import OPS
from sizer.hardware.gpus import get_gpu
from sizer.hardware.profile import device_mismatch
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
    engine = mem.get("engine", "none") != "none"  # with an engine the rest is outside its budget
    c[4].metric("Outside budget / GPU" if engine else "Headroom / GPU",
                fmt_bytes(pg["capacity_bytes"] - pg["total_bytes"]),
                help="GPU memory the engine's budget leaves out (not free for KV)" if engine else None)
    if pg["fits"]:
        st.success(f"Fits: {fmt_bytes(pg['total_bytes'])} on the most loaded GPU, against the {mem['budget']}.")
    else:
        st.error(f"Does not fit: {fmt_bytes(pg['total_bytes'])} on the most loaded GPU, against the {mem['budget']}.")
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
    _step_charts(est)
    json_download(est, "estimate")
    with st.expander("Result JSON (sizer estimate --json)"):
        st.json(est, expanded=False)


def _same_ops(a: list, b: list) -> bool:
    return [r["name"] for r in a] == [r["name"] for r in b] and all(
        abs(x["time_s"] - y["time_s"]) <= 1e-9 * max(abs(y["time_s"]), 1e-30) for x, y in zip(a, b))


def _step_charts(est: dict) -> None:
    """The op rows of the two forwards the headline numbers come from. In continuous batching
    (sizer/cost/estimate.py) both are mixed steps: the steady step (TPOT) carries the decode batch
    and its share of prompt tokens, the TTFT forward a new prompt's chunk. When the chunk is that
    share, the two are one step: one chart. Otherwise two, and what differs is said."""
    pre, dec = est["prefill_ops"], est["decode_ops"]
    if est.get("mode") != "static" and _same_ops(pre, dec):
        chart(charts.ops_breakdown(dec, "One forward, slowest rank: the steady step carries the decode "
                                        "batch and new prompts' chunks"), "step-ops")
        st.caption("Continuous batching: the forward that carries a new prompt's chunk is the steady step "
                   "itself here (each step's share of prompt tokens is a whole prompt chunk), so TTFT and "
                   "TPOT come from the same forward.")
        return
    if est.get("mode") == "static":
        titles = ("Prefill step (one chunk), slowest rank", "Decode step, slowest rank")
    else:
        titles = ("Forward carrying a new prompt's chunk (TTFT), slowest rank",
                  "Steady step: decode batch + its share of prompt tokens (TPOT), slowest rank")
    left, right = st.columns(2)
    with left:
        chart(charts.ops_breakdown(pre, titles[0]), "prefill-ops")
    with right:
        chart(charts.ops_breakdown(dec, titles[1]), "decode-ops")
    times = {r["name"]: r["time_s"] for r in dec}
    diffs = sorted(((abs(r["time_s"] - times.get(r["name"], 0.0)), r["name"], r["time_s"], times.get(r["name"], 0.0))
                    for r in pre), reverse=True)[:3]
    st.caption("They differ most in: " + "; ".join(f"{name} {fmt_seconds(a)} vs {fmt_seconds(b)}"
                                                     for _, name, a, b in diffs if _ > 0))


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


QUESTIONS = ("How to split these GPUs", "How many GPUs for a request rate")


def recommend(inp) -> None:
    if not core.recommend_available():
        st.info("`sizer.plan.recommend` is not installed in this build yet; the ranked table, why-not list "
                "and Pareto plot appear here once it is.")
        return
    if st.radio("Question", QUESTIONS, horizontal=True, key="rec_question") == QUESTIONS[1]:
        from .capacity import view  # sizer recommend --rate (issue #13)

        view(inp)
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
    if (rec.get("precision_hint") or {}).get("text"):
        st.info(rec["precision_hint"]["text"])
    cands = rec.get("candidates", [])
    if cands:
        st.dataframe([_candidate_row(c) for c in cands], hide_index=True, key="rec_table")
        if not price:
            st.caption("$/Mtok: set a GPU-hour price above (the CLI's --gpu-hour-price) to see the cost "
                       "per million output tokens.")
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
            "$/Mtok": f"{c['cost_per_million_tokens']:.3f}" if c.get("cost_per_million_tokens") else "—",
            "meets targets": c.get("meets_targets")}


def _rejected_row(r: dict) -> dict:
    return {"split": r.get("label") or charts.candidate_label(r), "weights": r.get("weight_dtype") or "any",
            "KV": r.get("kv_dtype") or "any", "kind": r.get("kind"), "reason": r.get("reason")}


def pipeline(inp, est: dict) -> None:
    from .pipeline import pipeline as draw

    draw(inp, est, chart, json_download)


def calibration(inp) -> None:
    from .calibration import calibration as draw

    draw(inp, chart, json_download)


def profile_warning(inp) -> None:
    """The CLI's warning when the uploaded profile was measured on another device than the GPU
    chosen (sizer.hardware.profile.device_mismatch): its constants replace the catalog's."""
    if inp.profile is None:
        return
    try:
        message = device_mismatch(core.load_profile(inp.profile), get_gpu(inp.gpu))
    except core.InputError:
        return  # the Calibration view says what is wrong with the file
    if message:
        st.warning(message)
