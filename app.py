"""sizer's what-if UI: `streamlit run app.py`.

A thin layout over the same sizer functions the CLI runs (ui/core.py caches them); the sidebar
sets the deployment, the tabs show Fit, Latency, Communication, Recommend, Pipeline,
Calibration and Traffic as plotly charts. No torch here.
"""

import os
import sys
import time

import streamlit as st

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # the ui/ package beside this file

from ui import core, traffic, views  # noqa: E402
from ui.sidebar import sidebar  # noqa: E402

TABS = ("Fit", "Latency", "Communication", "Recommend", "Pipeline", "Calibration", "Traffic")


def main() -> None:
    st.set_page_config(page_title="sizer: what-if", layout="wide")
    t0 = time.perf_counter()
    st.title("sizer: what if?")
    inp = sidebar()
    draw = _views(inp)
    # Only the open tab runs (state-tracked tabs): an interaction pays for one view's charts. The
    # tab bar is drawn on every run, even without a model, so the open view is kept.
    for tab, name in zip(st.tabs(TABS, key="view", on_change="rerun"), TABS):
        if tab.open:
            with tab:
                draw(name)
    st.caption(f"rendered in {(time.perf_counter() - t0) * 1e3:.0f} ms", help="script run time of this interaction")


def _views(inp):
    """Draw the headline numbers; return the function that draws one view."""
    if inp is None:
        st.info("Choose a model in the sidebar: a preset, an uploaded Hugging Face config.json, or a path.")
        return lambda name: None
    try:
        model = core.load_model(inp.model)
    except core.InputError as exc:
        st.error(str(exc))
        return lambda name: None
    est = core.estimate_doc(inp)
    dp = f"DP{inp.dp}" if inp.gpus % (inp.tp * inp.pp) == 0 else "DP?"
    st.caption(f"{model.name} on {inp.gpus} x {inp.gpu} ({inp.nodes} node(s)): TP{inp.tp} PP{inp.pp} {dp}"
               + (f" EP{inp.ep}" if inp.ep > 1 else "") + f"; ISL {inp.isl}, OSL {inp.osl}")
    views.profile_warning(inp)
    views.headline(est)
    draw = {"Fit": lambda: views.fit(inp, est), "Latency": lambda: views.latency(inp, est),
            "Communication": lambda: views.communication(inp, est), "Recommend": lambda: views.recommend(inp),
            "Pipeline": lambda: views.pipeline(inp, est), "Calibration": lambda: views.calibration(inp),
            "Traffic": lambda: traffic.view(inp)}
    return lambda name: draw[name]()


main()
