"""The UI's Traffic view (issue #12 item 4) shows what `sizer simulate --json` prints for the
same deployment, rate, request count and seed, and draws its three charts."""

import json
import os
import shlex

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sizer.cli.main import main as sizer_main  # noqa: E402
from sizer.units import fmt_seconds  # noqa: E402

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def traffic_view(**sidebar) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    for key, value in sidebar.items():
        [w for kind in ("selectbox", "number_input") for w in getattr(at, kind) if w.key == key][0].set_value(value)
        at.run()
    at.session_state["view"] = "Traffic"
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def cli_doc(capsys, command: str) -> dict:
    argv = shlex.split(command)[1:]
    capsys.readouterr()
    assert sizer_main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_traffic_view_numbers_are_the_cli_simulation(capsys):
    at = traffic_view(model="llama-3.1-8b", isl=512, osl=128)
    at.slider(key="traffic_rate").set_value(12.0).run()
    at.number_input(key="traffic_requests").set_value(200).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    command = next(c.value for c in at.caption if "sizer simulate" in c.value).split("`")[1]
    assert "--rate 12.0 --requests 200 --seed 0" in command
    doc = cli_doc(capsys, command)
    m = {x.label: x.value for x in at.metric}
    assert m["P50 TTFT"] == fmt_seconds(doc["ttft_s"]["p50"])
    assert m["P99 TPOT"] == fmt_seconds(doc["tpot_s"]["p99"])
    assert m["Throughput (req/s)"] == f"{doc['throughput']['requests_per_s']:.3g}"
    shown = json.loads(at.json[-1].value)
    assert shown == doc  # every number of the view, exactly
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(figs) == 3  # latency vs rate, CDFs, queue and KV over time
    rate_fig = figs[0]
    assert 12.0 in rate_fig["data"][0]["x"]
    i = rate_fig["data"][0]["x"].index(12.0)
    assert rate_fig["data"][0]["y"][i] == pytest.approx(doc["ttft_s"]["p50"] * 1e3)
