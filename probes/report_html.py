"""Charts of a validate run (plotly): predicted vs measured per strategy and per collective.

One self-contained HTML file (plotly.js from the CDN) with three figures: a predicted-vs-measured
scatter on log axes with the y = x line, grouped bars of measured and predicted time per
strategy, and the same scatter for every collective.
"""

import plotly.graph_objects as go
from plotly.subplots import make_subplots


def _scatter(points, title):
    """points: [(label, measured_s, predicted_s)] with both times known."""
    fig = go.Figure()
    if points:
        lo = min(min(m, p) for _, m, p in points) * 0.7e3
        hi = max(max(m, p) for _, m, p in points) * 1.4e3
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="predicted = measured",
                                 line={"dash": "dash", "color": "grey"}))
        fig.add_trace(go.Scatter(x=[m * 1e3 for _, m, _ in points], y=[p * 1e3 for _, _, p in points],
                                 mode="markers+text", text=[lab for lab, _, _ in points],
                                 textposition="top center", name="runs"))
    fig.update_layout(title=title, xaxis_title="measured (ms)", yaxis_title="predicted (ms)",
                      xaxis_type="log", yaxis_type="log")
    return fig


def figures(doc: dict) -> list:
    rows = doc["rows"]
    label = [f"{r['strategy']} x{r['world_size']}" for r in rows]
    pts = [(lab, r["measured_s"], r["predicted_s"]) for lab, r in zip(label, rows)
           if r["predicted_s"]]
    bars = make_subplots(rows=1, cols=1)
    bars.add_trace(go.Bar(x=label, y=[r["measured_s"] * 1e3 for r in rows], name="measured"))
    bars.add_trace(go.Bar(x=label, y=[(r["predicted_s"] or 0) * 1e3 for r in rows], name="predicted",
                          text=[("%+.0f%%" % r["error_pct"]) if r["error_pct"] is not None else "n/a"
                                for r in rows], textposition="outside"))
    bars.update_layout(title="Step time per strategy (median of reps, slowest rank)",
                       yaxis_title="ms", barmode="group")
    coll = [(f"{r['strategy']}:{c['label']}", c["measured_s"], c["predicted_s"])
            for r in rows for c in r["collectives"] if c["predicted_s"]]
    return [_scatter(pts, "Predicted vs measured step time"), bars,
            _scatter(coll, "Collectives: predicted vs measured time per call")]


def write_html(doc: dict, path: str) -> None:
    env = doc["env"]
    parts = [f"<h2>probes.validate: {env['model']} on {env['world_size']} x {env['device']} "
             f"({env['backend']})</h2>",
             "<p>" + "; ".join(env.get("scaled", [])) + "</p>"]
    for i, fig in enumerate(figures(doc)):
        parts.append(fig.to_html(full_html=False, include_plotlyjs="cdn" if i == 0 else False))
    ok = sum(r["matches_reference"] for r in doc["rows"])
    parts.append(f"<p>{ok}/{len(doc['rows'])} strategies match their single-device reference; "
                 "skipped: " + (", ".join(f"{s['strategy']} ({s['reason']})" for s in doc["skipped"])
                                or "none") + "</p>")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("<!doctype html><html><head><meta charset='utf-8'><title>validate</title></head><body>"
                 + "\n".join(parts) + "</body></html>\n")
