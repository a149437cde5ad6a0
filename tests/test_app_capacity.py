"""The Recommend view's capacity question (issue #13 item 3): GPUs needed per GPU type for a
request rate and percentile targets, as a bar chart with cost, and the emitted engine command;
its numbers are `sizer recommend --rate ... --json`'s for the command line it shows."""

import json
import os
import shlex

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sizer.cli.main import main as sizer_main  # noqa: E402

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")


def test_capacity_view_numbers_are_the_clis(capsys):
    at = AppTest.from_file(APP, default_timeout=180)
    at.run()
    for key, value in (("model", "llama-3.1-8b"), ("isl", 256), ("osl", 64)):
        [w for kind in ("selectbox", "number_input") for w in getattr(at, kind) if w.key == key][0].set_value(value)
        at.run()
    # every capacity input at once, so the view plans once
    for key, value in (("view", "Recommend"), ("rec_question", "How many GPUs for a request rate"),
                       ("cap_rate", 120.0), ("cap_ttft_ms", 500.0), ("cap_tpot_ms", 15.0), ("cap_nodes", 1),
                       ("cap_requests", 300), ("cap_gpus", ["h100-sxm", "a100-80g-sxm"]), ("cap_prices", "2.5,1.2")):
        at.session_state[key] = value
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    command = next(c.value for c in at.caption if "sizer recommend" in c.value).split("`")[1]
    assert "--rate 120 --percentile 99" in command and "--gpu h100-sxm,a100-80g-sxm" in command
    capsys.readouterr()
    assert sizer_main(shlex.split(command)[1:]) == 0
    doc = json.loads(capsys.readouterr().out)
    metrics = {m.label: m.value for m in at.metric}
    for row in doc["by_gpu"]:
        assert metrics[f"GPUs needed: {row['gpu']}"] == str(row["gpus_needed"])
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert fig["data"][0]["type"] == "bar"
    assert fig["data"][0]["y"] == [r["gpus_needed"] for r in doc["by_gpu"]]
    assert any(f"${r['cost_per_hour']:,.2f}/h" in t for r in doc["by_gpu"] for t in fig["data"][0]["text"])
    code = at.code[0].value  # st.code: the copy button
    assert code.startswith("vllm serve ") and code.split("\n")[0].split() == doc["emit"]["commands"][0]["argv"]
    shown = json.loads(at.json[-1].value)
    doc.pop("search_time_s")
    assert shown == doc
