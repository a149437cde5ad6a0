"""The Pipeline view: one definition of the bubble and one number for it, drawn as the schedule
the headline TTFT and TPOT come from (sizer/cost/estimate.py).

Bubble = the idle share of stage-time in that schedule. A static batch's prompt chunks fill and
drain the pipeline once (fill-run-drain, makespan = TTFT); decode, and every step of continuous
batching, runs in the steady state of vLLM's virtual engines: m = min(batch, p) micro-batches in
flight, micro-batch i at stage (c - i) mod p at clock c, so a step of p clocks (TPOT) leaves each
stage idle 1 - m / p of the time. Drawing a one-off fill and drain for the steady state would show
a bubble (and a makespan) that no headline number has.
"""

import streamlit as st

from sizer import charts
from sizer.units import fmt_seconds


def steady_schedule(stages: int, microbatches: int, clock_s: float, steps: int = 1) -> dict:
    """A window of `steps` x p clocks of the steady state (module docstring), in the format of
    sizer.cost.pipeline.Schedule.to_json() that sizer.charts.gantt draws."""
    p, m = int(stages), max(1, min(int(microbatches), int(stages)))
    clocks = max(1, int(steps)) * p
    cells = [{"microbatch": i, "stage": (c - i) % p, "clock": c, "start_s": c * clock_s,
              "end_s": (c + 1) * clock_s} for c in range(clocks) for i in range(m)]
    return {"stages": p, "microbatches": m, "clocks": clocks, "clock_s": clock_s,
            "makespan_s": clocks * clock_s, "bubble_fraction": 1 - m / p, "schedule": cells,
            "span_label": "one step (TPOT)"}


def pipeline(inp, est: dict, chart, json_download) -> None:
    if "error" in est:
        st.error(est["error"])
        return
    pipe = est.get("pipeline")
    if not pipe:
        st.info("PP = 1: no pipeline schedule. Choose PP > 1 in the sidebar to see the pipeline "
                "schedule and its bubble.")
        return
    dec, pre = pipe["decode"], pipe["prefill"]
    p, clock = dec["stages"], dec["clock_s"]
    steps = max(1, round(est["tpot_s"] / (p * clock))) if clock else 1  # forwards per step
    window = steady_schedule(p, dec["microbatches"], clock, steps)
    m = window["microbatches"]
    st.caption("Bubble = the idle share of stage-time in the schedule the headline numbers come "
               f"from. Decode keeps {m} micro-batch{'es' if m > 1 else ''} in flight over {p} stages "
               f"(vLLM's virtual engines), so a step leaves each stage idle 1 - {m}/{p} of the time.")
    if est.get("mode") == "static":
        c = st.columns(2)
        c[0].metric("Prefill bubble (fill and drain)", f"{pre['bubble_fraction']:.1%}")
        c[1].metric("Decode bubble (steady state)", f"{window['bubble_fraction']:.1%}")
        chart(charts.gantt(pre, f"Prefill: {pre['microbatches']} prompt chunk(s) fill and drain the "
                                f"pipeline (TTFT {fmt_seconds(est['ttft_s'])})"), "gantt-prefill")
        chart(charts.gantt(window, f"Decode: the steady state (TPOT {fmt_seconds(est['tpot_s'])})"),
              "gantt-decode")
    else:
        chunks = max(1, round(est["ttft_s"] / (p * pre["clock_s"]))) if pre["clock_s"] else 1
        c = st.columns(3)
        c[0].metric("Pipeline bubble (steady state)", f"{window['bubble_fraction']:.1%}")
        c[1].metric("Micro-batches in flight", f"{m}")
        c[2].metric("Stage clock (decode)", fmt_seconds(clock))
        chart(charts.gantt(window, f"Continuous batching: one step in the steady state "
                                   f"(TPOT {fmt_seconds(est['tpot_s'])})"), "gantt-steady")
        st.caption(f"Prefill and decode share this schedule: a new prompt's chunk rides in one of the "
                   f"micro-batches through the {p} stages, so TTFT {fmt_seconds(est['ttft_s'])} = "
                   f"{chunks} chunk(s) x {p} stages x {fmt_seconds(pre['clock_s'])} (a stage's forward "
                   "carrying the chunk), with no fill or drain.")
    json_download({**pipe, "steady_state": window}, "pipeline")
