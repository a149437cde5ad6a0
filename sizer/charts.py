"""Plotly figures of the core's results, for the what-if UI (app.py) and for HTML export.

Every function takes what the CLI prints with --json (MemoryPlan.to_json(), Estimate.to_json(),
a collective sweep, a recommendation) and returns a plotly.graph_objects.Figure. No model here:
the numbers are drawn as they come, only converted for display (GiB = 2**30 bytes for memory,
as engines budget it; GB/s = 1e9 bytes/s for bandwidth, as nccl-tests reports it; ms for time).
This module imports plotly only (no streamlit, no torch), so the figures can be tested and saved
without a browser.
"""

import plotly.graph_objects as go
from plotly.subplots import make_subplots

GIB = 2**30
MEMORY_PARTS = (("weights_bytes", "weights", "#4C78A8"), ("kv_cache_bytes", "KV cache", "#F58518"),
                ("activation_bytes", "activations", "#54A24B"), ("overhead_bytes", "runtime overhead", "#B279A2"))
TIME_PARTS = (("compute_s", "compute", "#4C78A8"), ("comm_s", "communication", "#E45756"),
              ("bubble_s", "pipeline bubble", "#BAB0AC"))
BOUND_COLORS = {"compute": "#4C78A8", "memory": "#F58518", "latency": "#BAB0AC", "comm": "#E45756"}


_AXIS = dict(gridcolor="#EBF0F8", zerolinecolor="#EBF0F8", linecolor="#CCC", automargin=True)


def _layout(fig: go.Figure, title: str, shapes=(), annotations=(), **kw) -> go.Figure:
    """Common look: a light grid on white (the "none" template, styled here: plotly's named
    templates cost tens of ms per figure to copy), the legend on the right, the given shapes."""
    fig.update_layout(title=title, template="none", plot_bgcolor="white", paper_bgcolor="white",
                      font=dict(family="sans-serif", size=12), margin=dict(l=60, r=20, t=70, b=50),
                      shapes=list(shapes), annotations=list(fig.layout.annotations) + list(annotations), **kw)
    fig.update_xaxes(**_AXIS)
    fig.update_yaxes(**_AXIS)
    return fig


def _hline(y: float, text: str) -> tuple[dict, dict]:
    """A dashed horizontal line across the plot and its label (cheaper than fig.add_hline)."""
    return (dict(type="line", xref="paper", x0=0, x1=1, yref="y", y0=y, y1=y,
                 line=dict(color="black", dash="dash", width=1)),
            dict(xref="paper", x=1, yref="y", y=y, text=text, showarrow=False, xanchor="right",
                 yanchor="bottom"))


def _vline(x: float, text: str | None, axis: str = "") -> tuple[dict, dict | None]:
    """A dotted vertical line at data x on the subplot whose axes end in `axis` ('' or '2')."""
    line = dict(type="line", xref=f"x{axis}", x0=x, x1=x, yref=f"y{axis} domain", y0=0, y1=1,
                line=dict(color="#555", dash="dot", width=1))
    label = (dict(xref=f"x{axis}", x=_log10(x), yref=f"y{axis} domain", y=1, text=text, showarrow=False,
                  textangle=-90, xanchor="right", yanchor="top") if text else None)
    return line, label


def _log10(x: float) -> float:
    import math

    return math.log10(x) if x > 0 else 0.0


def memory_bars(plan: dict, title: str = "Memory of the most loaded GPU") -> go.Figure:
    """One stacked bar (weights, KV, activations, overhead, headroom) against the GPU capacity,
    from MemoryPlan.to_json()."""
    pg = plan["per_gpu"]
    fig = go.Figure()
    for key, label, color in MEMORY_PARTS:
        fig.add_bar(x=["per GPU"], y=[pg[key] / GIB], name=label, marker_color=color,
                    hovertemplate=f"{label}: %{{y:.2f}} GiB<extra></extra>")
    head = pg["capacity_bytes"] - pg["total_bytes"]
    if head > 0:
        fig.add_bar(x=["per GPU"], y=[head / GIB], name="headroom", marker_color="rgba(0,0,0,0.06)",
                    marker_line=dict(color="#999", width=1),
                    hovertemplate="headroom: %{y:.2f} GiB<extra></extra>")
    line, label = _hline(pg["capacity_bytes"] / GIB, f"capacity {pg['capacity_bytes'] / GIB:.1f} GiB")
    return _layout(fig, title, [line], [label], barmode="stack", yaxis_title="GiB", height=420)


def memory_across_splits(rows: list[dict], capacity_bytes: float,
                         title: str = "Memory per GPU across TP x PP") -> go.Figure:
    """Stacked bars, one per split: rows are {"label": str, "plan": MemoryPlan.to_json()}."""
    labels = [r["label"] for r in rows]
    fig = go.Figure()
    for key, label, color in MEMORY_PARTS:
        fig.add_bar(x=labels, y=[r["plan"]["per_gpu"][key] / GIB for r in rows], name=label,
                    marker_color=color, hovertemplate=f"%{{x}} {label}: %{{y:.2f}} GiB<extra></extra>")
    line, label = _hline(capacity_bytes / GIB, "capacity")
    return _layout(fig, title, [line], [label], barmode="stack", yaxis_title="GiB per GPU", height=420)


def latency_breakdown(est: dict, title: str = "TTFT and TPOT") -> go.Figure:
    """TTFT and TPOT (ms) split into compute, communication and pipeline bubble
    (Estimate.to_json()["breakdown"]); the bar tops are the estimate's ttft_s and tpot_s."""
    b = est["breakdown"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=(f"TTFT {est['ttft_s'] * 1e3:.1f} ms",
                                                        f"TPOT {est['tpot_s'] * 1e3:.2f} ms"))
    for key, label, color in TIME_PARTS:
        for col, phase in ((1, "prefill"), (2, "decode")):
            fig.add_bar(x=[phase], y=[b[phase][key] * 1e3], name=label, marker_color=color,
                        legendgroup=label, showlegend=col == 1, row=1, col=col,
                        hovertemplate=f"{label}: %{{y:.3f}} ms<extra></extra>")
    _layout(fig, title, barmode="stack", height=400)
    fig.update_yaxes(title_text="ms", row=1, col=1)
    return fig


def ops_breakdown(ops: list[dict], title: str) -> go.Figure:
    """Time per op of one step on the slowest rank (StepResult ops), longest first, coloured by
    what bounds it (compute, memory, kernel floor, communication)."""
    rows = sorted(ops, key=lambda o: o["time_s"])
    total = sum(o["time_s"] for o in rows) or 1.0
    fig = go.Figure()
    for bound, color in BOUND_COLORS.items():
        part = [o for o in rows if o["bound"] == bound]
        if part:
            fig.add_bar(y=[o["name"] for o in part], x=[o["time_s"] * 1e3 for o in part],
                        orientation="h", name=bound, marker_color=color,
                        customdata=[[o["time_s"] / total, o["count"]] for o in part],
                        hovertemplate="%{y}: %{x:.4f} ms (%{customdata[0]:.1%}, "
                                      "%{customdata[1]} kernels)<extra></extra>")
    _layout(fig, title, xaxis_title="ms per step", height=max(300, 28 * len(rows) + 120), barmode="stack")
    fig.update_yaxes(categoryorder="array", categoryarray=[o["name"] for o in rows])
    return fig


def comm_curves(curves: list[dict], marks: list[dict] = (), title: str = "Collective cost") -> go.Figure:
    """Time and busbw against message size, log axes. curves: {"label", "bytes", "time_s",
    "busbw_GBps", "algorithm"} (a sizer comm --sweep); marks: {"label", "bytes"} drawn as
    vertical lines (the chosen model's decode / prefill message sizes)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("time", "bus bandwidth"))
    for i, c in enumerate(curves):
        color = _palette(i)
        algo = list(c.get("algorithm") or [""] * len(c["bytes"]))
        fig.add_scatter(x=list(c["bytes"]), y=[t * 1e6 for t in c["time_s"]], name=c["label"],
                        mode="lines+markers", marker_size=4, line_color=color, legendgroup=c["label"],
                        customdata=algo, row=1, col=1,
                        hovertemplate="%{x:.3s}B: %{y:.2f} us (%{customdata})<extra>" + c["label"] + "</extra>")
        fig.add_scatter(x=list(c["bytes"]), y=list(c["busbw_GBps"]), name=c["label"], mode="lines+markers",
                        marker_size=4, line_color=color, legendgroup=c["label"], showlegend=False,
                        customdata=algo, row=1, col=2,
                        hovertemplate="%{x:.3s}B: %{y:.1f} GB/s (%{customdata})<extra>" + c["label"] + "</extra>")
    shapes, labels = [], []
    for m in marks:
        for axis in ("", "2"):
            line, label = _vline(m["bytes"], m["label"] if axis == "" else None, axis)
            shapes.append(line)
            labels += [label] if label else []
    _layout(fig, title, shapes, labels, height=460)
    fig.update_xaxes(type="log", title_text="message size (bytes, nccl-tests size)")
    fig.update_yaxes(type="log", title_text="us", row=1, col=1)
    fig.update_yaxes(type="log", title_text="busbw GB/s", row=1, col=2)
    return fig


def pareto(rec: dict, ttft_s: float | None = None, tpot_s: float | None = None,
           title: str = "Throughput vs interactivity") -> go.Figure:
    """Output tok/s per GPU against tokens/s per user (1 / TPOT) for every candidate of a
    recommendation; the Pareto front joined by a line; the region a TPOT target rules out shaded.
    Candidates missing the TTFT target are drawn hollow."""
    cands = [c for c in rec.get("candidates", []) if c.get("tpot_s")]
    front = [c for c in rec.get("pareto", []) if isinstance(c, dict) and c.get("tpot_s")]
    fig = go.Figure()
    for ok in (True, False):
        part = [c for c in cands if bool(c.get("meets_targets", True)) == ok]
        if not part:
            continue
        fig.add_scatter(x=[1 / c["tpot_s"] for c in part], y=[c["output_tok_s_per_gpu"] for c in part],
                        mode="markers", name="meets targets" if ok else "misses a target",
                        marker=dict(size=10, symbol="circle" if ok else "circle-open",
                                    color="#4C78A8" if ok else "#E45756"),
                        text=[candidate_label(c) for c in part],
                        customdata=[[c.get("ttft_s", 0) * 1e3, c["tpot_s"] * 1e3, c.get("batch")] for c in part],
                        hovertemplate="%{text}<br>TTFT %{customdata[0]:.1f} ms, TPOT %{customdata[1]:.2f} ms,"
                                      " batch %{customdata[2]}<br>%{y:.0f} tok/s/GPU<extra></extra>")
    if front:
        front = sorted(front, key=lambda c: 1 / c["tpot_s"])
        fig.add_scatter(x=[1 / c["tpot_s"] for c in front], y=[c["output_tok_s_per_gpu"] for c in front],
                        mode="lines", name="Pareto front", line=dict(color="black", dash="dash"))
    shapes, labels = [], []
    if tpot_s:
        shapes.append(dict(type="rect", xref="x", x0=0, x1=1 / tpot_s, yref="paper", y0=0, y1=1,
                           fillcolor="#E45756", opacity=0.10, line_width=0, layer="below"))
        labels.append(dict(xref="x", x=0, yref="paper", y=1, text=f"TPOT > {tpot_s * 1e3:g} ms",
                           showarrow=False, xanchor="left", yanchor="top"))
    sub = f" (TTFT target {ttft_s * 1e3:g} ms: hollow = missed)" if ttft_s else ""
    return _layout(fig, title + sub, shapes, labels, xaxis_title="tokens/s per user (1 / TPOT)",
                   yaxis_title="output tokens/s per GPU", height=460, xaxis_rangemode="tozero",
                   yaxis_rangemode="tozero")


def disagg_pareto(doc: dict, title: str = "Aggregated vs disaggregated: throughput vs interactivity") -> go.Figure:
    """The two Pareto frontiers of `sizer recommend --disagg --json` (its `pareto` object:
    `aggregated` and `disaggregated` rows), output tok/s per GPU against tokens/s per user,
    each mode's pick marked, the region a TPOT target rules out shaded."""
    fronts = doc.get("pareto") or {}
    fig = go.Figure()
    for key, color, name in (("aggregated", "#4C78A8", "aggregated"), ("disaggregated", "#F58518", "disaggregated")):
        rows = sorted((r for r in fronts.get(key, []) if r.get("tpot_s")), key=lambda r: 1 / r["tpot_s"])
        if rows:
            fig.add_scatter(x=[1 / r["tpot_s"] for r in rows], y=[r["output_tok_s_per_gpu"] for r in rows],
                            mode="lines+markers", name=f"{name} frontier", line=dict(color=color, shape="hv"),
                            marker=dict(size=6, color=color), text=[r.get("label", "") for r in rows],
                            customdata=[[r.get("ttft_s", 0) * 1e3, r["tpot_s"] * 1e3] for r in rows],
                            hovertemplate="%{text}<br>TTFT %{customdata[0]:.0f} ms, TPOT %{customdata[1]:.2f} ms"
                                          "<br>%{y:.0f} tok/s/GPU<extra></extra>")
        pick = doc.get(key)
        if isinstance(pick, dict) and pick.get("tpot_s"):
            fig.add_scatter(x=[1 / pick["tpot_s"]], y=[pick["output_tok_s_per_gpu"]], mode="markers",
                            name=f"{name} pick", marker=dict(size=14, symbol="star", color=color,
                                                             line=dict(color="black", width=1)),
                            hovertemplate=f"{name} pick<br>%{{y:.0f}} tok/s/GPU<extra></extra>")
    shapes, labels = [], []
    tpot_s = (doc.get("targets") or {}).get("tpot_s")
    if tpot_s:
        shapes.append(dict(type="rect", xref="x", x0=0, x1=1 / tpot_s, yref="paper", y0=0, y1=1,
                           fillcolor="#E45756", opacity=0.10, line_width=0, layer="below"))
        labels.append(dict(xref="x", x=0, yref="paper", y=1, text=f"TPOT > {tpot_s * 1e3:g} ms",
                           showarrow=False, xanchor="left", yanchor="top"))
    ttft_s = (doc.get("targets") or {}).get("ttft_s")
    sub = f" (points meeting TTFT <= {ttft_s * 1e3:g} ms)" if ttft_s else ""
    return _layout(fig, title + sub, shapes, labels, xaxis_title="tokens/s per user (1 / TPOT)",
                   yaxis_title="output tokens/s per GPU", height=480, xaxis_rangemode="tozero",
                   yaxis_rangemode="tozero")


def candidate_label(c: dict) -> str:
    """'TP4 PP2 EP1 DP1 fp8/auto b64' for a recommendation candidate (its own label when given)."""
    s = c["label"] if c.get("label") else " ".join(f"{k.upper()}{c[k]}" for k in ("tp", "pp", "ep", "dp") if c.get(k) is not None)
    dt = "/".join(str(c[k]) for k in ("weight_dtype", "kv_dtype") if c.get(k))
    return " ".join(x for x in (s, dt, f"b{c['batch']}" if c.get("batch") else "") if x)


def gantt(schedule: dict, title: str) -> go.Figure:
    """The fill-run-drain schedule (sizer.pipeline.Schedule.to_json()): one row per stage,
    one box per (micro-batch, stage) cell from start_s to end_s; empty stage-clocks are the
    bubble."""
    fig = go.Figure()
    cells = schedule["schedule"]
    mbs = sorted({c["microbatch"] for c in cells})
    for mb in mbs:
        part = [c for c in cells if c["microbatch"] == mb]
        fig.add_bar(y=[f"stage {c['stage']}" for c in part], x=[(c["end_s"] - c["start_s"]) * 1e3 for c in part],
                    base=[c["start_s"] * 1e3 for c in part], orientation="h", name=f"micro-batch {mb}",
                    marker_color=_palette(mb), marker_line=dict(color="white", width=1),
                    text=[str(mb) for _ in part], textposition="inside",
                    hovertemplate="%{y}, micro-batch " + str(mb) + ": starts %{base:.3f} ms, runs %{x:.3f} ms<extra></extra>")
    stages = [f"stage {s}" for s in range(schedule["stages"])]
    sub = (f"{schedule['microbatches']} micro-batches x {schedule['stages']} stages, "
           f"bubble {schedule['bubble_fraction']:.1%}, {schedule.get('span_label', 'makespan')} "
           f"{schedule['makespan_s'] * 1e3:.2f} ms")
    _layout(fig, f"{title}<br><sup>{sub}</sup>", barmode="overlay", xaxis_title="ms",
            height=max(260, 50 * schedule["stages"] + 160), showlegend=len(mbs) <= 16)
    fig.update_yaxes(categoryorder="array", categoryarray=stages[::-1])
    return fig


def calibration_collectives(measured: list[dict], curves: list[dict], title: str) -> go.Figure:
    """A profile's measured busbw points (nccl-tests rows: size_bytes, busbw_GBps) against the
    model's curves (default constants, and with the profile's fit)."""
    fig = go.Figure()
    fig.add_scatter(x=[r["size_bytes"] for r in measured], y=[r["busbw_GBps"] for r in measured],
                    mode="markers", name="measured", marker=dict(color="black", size=7),
                    hovertemplate="%{x:.3s}B: %{y:.2f} GB/s measured<extra></extra>")
    for i, c in enumerate(curves):
        fig.add_scatter(x=list(c["bytes"]), y=list(c["busbw_GBps"]), mode="lines", name=c["label"],
                        line=dict(color=_palette(i), dash="solid" if i == 0 else "dash"))
    _layout(fig, title, height=400)
    fig.update_xaxes(type="log", title_text="message size (bytes)")
    fig.update_yaxes(type="log", title_text="busbw GB/s")
    return fig


def calibration_rates(measured: list[dict], curves: list[dict], title: str, x_title: str,
                      y_title: str) -> go.Figure:
    """Measured rate points {"x", "y"} (e.g. GEMM FLOP/s against rows M) against model curves
    {"label", "x", "y"}; log axes."""
    fig = go.Figure()
    fig.add_scatter(x=[r["x"] for r in measured], y=[r["y"] for r in measured], mode="markers",
                    name="measured", marker=dict(color="black", size=7))
    for i, c in enumerate(curves):
        fig.add_scatter(x=list(c["x"]), y=list(c["y"]), mode="lines", name=c["label"],
                        line=dict(color=_palette(i), dash="solid" if i == 0 else "dash"))
    _layout(fig, title, height=400)
    fig.update_xaxes(type="log", title_text=x_title)
    fig.update_yaxes(type="log", title_text=y_title)
    return fig


def to_html(fig: go.Figure) -> str:
    """A standalone HTML page of the figure (plotly.js inlined, so it opens offline)."""
    return fig.to_html(include_plotlyjs=True, full_html=True)


def _palette(i: int) -> str:
    colors = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6",
              "#9D755D", "#EECA3B", "#BAB0AC")
    return colors[i % len(colors)]


# -- traffic (sizer simulate) -----------------------------------------------------------------

def latency_vs_rate(curve: list[dict], title: str = "Latency percentiles vs request rate",
                    ttft_slo_s: float | None = None, tpot_slo_s: float | None = None) -> go.Figure:
    """TTFT and TPOT (p50, p90, p99, in ms) of simulations at several rates: `curve` rows are
    {"rate_rps", "ttft_s": {p50, p90, p99}, "tpot_s": {...}} as in `sizer simulate --find-rate`."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT", "TPOT"))
    rates = [r["rate_rps"] for r in curve]
    for col, key, slo in ((1, "ttft_s", ttft_slo_s), (2, "tpot_s", tpot_slo_s)):
        for i, p in enumerate(("p50", "p90", "p99")):
            fig.add_scatter(x=rates, y=[r[key][p] * 1e3 for r in curve], mode="lines+markers", name=p,
                            legendgroup=p, showlegend=col == 1, line=dict(color=_palette(i)), row=1, col=col)
        if slo:
            fig.add_scatter(x=[min(rates), max(rates)], y=[slo * 1e3] * 2, mode="lines", name="SLO",
                            legendgroup="slo", showlegend=col == 1 or not ttft_slo_s,
                            line=dict(color="black", dash="dash", width=1), row=1, col=col)
    _layout(fig, title, height=380)
    fig.update_xaxes(title_text="request rate (req/s)")
    fig.update_yaxes(title_text="ms", type="log")
    return fig


def latency_cdfs(ttft_s, tpot_s, title: str = "Distribution over requests") -> go.Figure:
    """Empirical CDFs of per-request TTFT and TPOT (ms)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("TTFT", "TPOT"))
    for col, (values, name) in enumerate(((ttft_s, "TTFT"), (tpot_s, "TPOT")), 1):
        v = sorted(x * 1e3 for x in values if x == x)
        n = len(v)
        fig.add_scatter(x=v, y=[(i + 1) / n for i in range(n)], mode="lines", name=name,
                        line=dict(color=_palette(col - 1)), row=1, col=col)
    _layout(fig, title, height=340, showlegend=False)
    fig.update_xaxes(title_text="ms")
    fig.update_yaxes(title_text="share of requests", range=[0, 1.02])
    return fig


def traffic_timeline(timeline: dict, title: str = "Queue and KV cache over simulated time") -> go.Figure:
    """Waiting and running requests (all replicas) and KV-cache use (mean over replicas, %) on
    the simulated clock: `timeline` as sizer.sim.metrics.timeline returns it."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    t = timeline["time_s"]
    fig.add_scatter(x=t, y=timeline["waiting"], mode="lines", name="waiting", line=dict(color=_palette(3)))
    fig.add_scatter(x=t, y=timeline["running"], mode="lines", name="running", line=dict(color=_palette(0)))
    fig.add_scatter(x=t, y=[100 * k for k in timeline["kv_utilization"]], mode="lines", name="KV cache used %",
                    line=dict(color=_palette(1), dash="dot"), secondary_y=True)
    _layout(fig, title, height=340)
    fig.update_xaxes(title_text="simulated time (s)")
    fig.update_yaxes(title_text="requests", secondary_y=False)
    fig.update_yaxes(title_text="KV cache used (%)", range=[0, 105], secondary_y=True)
    return fig


# -- capacity (sizer recommend --rate) --------------------------------------------------------

def capacity_by_gpu(doc: dict, title: str = "GPUs needed per GPU type") -> go.Figure:
    """GPUs each type needs for the traffic (`sizer recommend --rate --json`: its `by_gpu` rows,
    or the one plan's `gpus_needed`), the winning split on each bar, and the cost per hour and
    per million output tokens over it when priced; the cheapest (else the fewest) highlighted."""
    rows = doc.get("by_gpu") or [{"gpu": doc.get("gpu"), "gpus_needed": doc.get("gpus_needed"),
                                  "winner": doc.get("winner"), "cost_per_hour": doc.get("cost_per_hour"),
                                  "cost_per_million_output_tokens": doc.get("cost_per_million_output_tokens")}]
    rows = [r for r in rows if r.get("gpus_needed")]
    best = doc.get("cheapest") or doc.get("fewest_gpus") or (rows[0]["gpu"] if len(rows) == 1 else None)
    text = []
    for r in rows:
        parts = [(r.get("winner") or {}).get("label", "")]
        if r.get("cost_per_hour") is not None:
            parts.append(f"${r['cost_per_hour']:,.2f}/h, ${r['cost_per_million_output_tokens']:.3f}/M tok")
        text.append("<br>".join(p for p in parts if p))
    fig = go.Figure()
    fig.add_bar(x=[r["gpu"] for r in rows], y=[r["gpus_needed"] for r in rows], text=text, textposition="outside",
                marker_color=["#54A24B" if r["gpu"] == best else "#4C78A8" for r in rows],
                hovertemplate="%{x}: %{y} GPUs<br>%{text}<extra></extra>")
    q = f"P{doc.get('percentile', 99):g}"
    slo = ", ".join(f"{q} {k[:-2].upper()} {v * 1e3:g} ms" for k, v in (doc.get("slo") or {}).items() if v)
    return _layout(fig, f"{title} at {doc.get('rate', 0):g} req/s" + (f" ({slo})" if slo else ""),
                   xaxis_title="GPU type", yaxis_title="GPUs needed", height=420, yaxis_rangemode="tozero",
                   showlegend=False)
