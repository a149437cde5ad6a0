"""The Streamlit what-if UI (issue #8), driven headless by streamlit.testing.v1.AppTest.

Specification: the app runs without exception for several models and splits; every number it
shows is what `sizer estimate --json` / `sizer memory --json` print for the same inputs (the UI
calls the same functions: no second model); changing a widget changes the numbers to the CLI's
new values; each view draws its plotly charts.
"""

import json
import os
import sys

import pytest

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

from sizer.cli.main import main as sizer_main  # noqa: E402
from sizer.units import fmt_bytes, fmt_seconds  # noqa: E402

APP = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "app.py")
VIEWS = ("Fit", "Latency", "Communication", "Recommend", "Pipeline", "Calibration")


def cli(capsys, *argv) -> dict:
    """The one JSON document `sizer <argv> --json` prints."""
    capsys.readouterr()
    assert sizer_main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def app(**widgets) -> AppTest:
    """Run the app once with its defaults, then with `widgets` (key -> value) set."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception
    if widgets:
        set_widgets(at, **widgets)
    return at


def set_widgets(at: AppTest, **widgets) -> None:
    for key, value in widgets.items():
        if key == "view":  # the tab bar exists once a model is chosen; its state picks the tab
            at.run()
            at.session_state["view"] = value
            continue
        for kind in ("selectbox", "number_input", "radio", "text_input"):
            found = [w for w in getattr(at, kind) if w.key == key]
            if found:
                found[0].set_value(value)
                break
        else:
            raise KeyError(key)
        at.run()  # widgets appear/disappear with others (batch, concurrency)
    at.run()
    assert not at.exception, [e.value for e in at.exception]


def metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def shown_json(at: AppTest) -> dict:
    assert len(at.json) == 1
    return json.loads(at.json[0].value)


def charts(at: AppTest) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


SPLITS = [  # (model, gpu, gpus, tp, pp, ep): dense and MoE, TP, PP, EP
    ("llama-3.1-8b", "h100-sxm", 1, 1, 1, 1),
    ("llama-3.1-70b", "h100-sxm", 8, 8, 1, 1),
    ("llama-3.1-70b", "a100-80g-sxm", 8, 4, 2, 1),
    ("mixtral-8x7b", "h100-sxm", 4, 2, 1, 2),
    ("qwen3-30b-a3b", "l40s", 4, 2, 2, 1),
]


@pytest.mark.parametrize("model, gpu, gpus, tp, pp, ep", SPLITS)
def test_headline_numbers_are_the_cli_estimate(capsys, model, gpu, gpus, tp, pp, ep):
    """Headline metrics equal `sizer estimate --json` for the same model, GPU and split."""
    at = app(model=model, gpu=gpu, gpus=gpus, tp=tp, pp=pp, ep=ep, view="Latency")
    doc = cli(capsys, "estimate", "--model", model, "--gpu", gpu, "--tp", str(tp), "--pp", str(pp),
              "--dp", str(gpus // (tp * pp)), "--ep", str(ep))
    m = metrics(at)
    assert m["TTFT"] == fmt_seconds(doc["ttft_s"])
    assert m["TPOT"] == fmt_seconds(doc["tpot_s"])
    assert m["Output tok/s"] == f"{doc['output_tok_s']:,.0f}"
    assert m["tok/s per GPU"] == f"{doc['output_tok_s_per_gpu']:,.0f}"
    assert m["Batch per replica"] == str(doc["batch"])
    assert m["Memory per GPU"] == fmt_bytes(doc["memory"]["per_gpu"]["total_bytes"])
    assert shown_json(at) == doc  # every number of the Latency view, exactly
    assert not at.error


def test_changing_widgets_moves_the_numbers_to_the_cli_values(capsys):
    """fp8 weights, fp8 KV, SGLang rules (vLLM's are the default), a fixed batch and a longer
    prompt: after each change
    the Latency view shows exactly the CLI's document for the new inputs."""
    at = app(model="llama-3.1-70b", gpus=4, tp=4, view="Latency")
    base = ["estimate", "--model", "llama-3.1-70b", "--gpu", "h100-sxm", "--tp", "4"]
    before = shown_json(at)
    assert before == cli(capsys, *base)
    steps = [({"weight_dtype": "fp8"}, ["--weight-dtype", "fp8"]),
             ({"kv_dtype": "fp8"}, ["--kv-dtype", "fp8"]),
             ({"engine": "sglang"}, ["--engine", "sglang"]),
             ({"isl": 4096, "osl": 512}, ["--isl", "4096", "--osl", "512"]),
             ({"load": "batch", "batch": 16}, ["--batch", "16"])]
    flags = []
    for widgets, extra in steps:
        set_widgets(at, **widgets)
        flags += extra
        doc = cli(capsys, *base, *flags)
        shown = shown_json(at)
        assert shown == doc, widgets
        assert shown != before, widgets  # the widget moved the numbers
        assert metrics(at)["TPOT"] == fmt_seconds(doc["tpot_s"])
        before = shown
    assert doc["batch"] == 16 and doc["isl"] == 4096


def test_fit_view_is_the_cli_memory_plan(capsys):
    """The Fit view shows `sizer memory --json --batch B --context ISL+OSL` (B: the estimate's
    batch), e.g. Llama-3.1-70B TP2 on H100 with SGLang rules."""
    at = app(model="llama-3.1-70b", gpus=2, tp=2, engine="sglang", isl=2000, osl=500, view="Fit")
    batch = int(metrics(at)["Batch per replica"])
    doc = cli(capsys, "memory", "--model", "llama-3.1-70b", "--tp", "2", "--engine", "sglang",
              "--batch", str(batch), "--context", "2500")
    assert shown_json(at) == doc
    m = metrics(at)
    assert m["Weights / GPU"] == fmt_bytes(doc["per_gpu"]["weights_bytes"])
    assert m["KV capacity (tokens / replica)"] == f"{doc['max_kv_tokens']:,}"
    assert m["Outside budget / GPU"] == fmt_bytes(doc["per_gpu"]["capacity_bytes"] - doc["per_gpu"]["total_bytes"])
    assert any(doc["budget"] in x.value for x in list(at.success) + list(at.error))  # trial 1 item 13
    bars, splits = charts(at)
    assert [t["name"] for t in bars["data"]][:4] == ["weights", "KV cache", "activations", "runtime overhead"]
    assert bars["data"][0]["y"][0] == pytest.approx(doc["per_gpu"]["weights_bytes"] / 2**30)
    assert splits["data"][0]["x"] == ["TP1 PP1", "TP1 PP2", "TP2 PP1"]  # TP x PP <= 2 GPUs


def test_model_that_does_not_fit_shows_an_error_not_a_traceback():
    """Llama-3.1-405B (810 GB of bf16 weights) on one H100: the estimate is infeasible (CLI exit 1)."""
    at = app(model="llama-3.1-405b", view="Fit")
    assert any("does not fit" in e.value.lower() for e in at.error)
    assert not at.exception


def test_split_that_does_not_divide_is_an_input_error():
    at = app(gpus=6, tp=4, view="Latency")
    assert any("do not divide" in e.value for e in at.error)


def test_uploaded_config_json_is_a_model(capsys, tmp_path):
    """An uploaded Hugging Face config.json (here Llama-3.1-8B's shapes) gives the same numbers
    as `sizer estimate --model path/config.json`."""
    cfg = dict(model_type="llama", hidden_size=4096, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=8, intermediate_size=14336, vocab_size=128256, torch_dtype="bfloat16",
               max_position_embeddings=131072)
    path = tmp_path / "my-llama" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps(cfg))
    at = app(model_source="Upload config.json")
    assert any("Choose a model" in i.value for i in at.info)  # no file yet: a hint, no tabs
    at.sidebar.file_uploader(key="model_upload").set_value(("config.json", path.read_bytes(), "application/json"))
    set_widgets(at, view="Latency")
    assert not at.exception and not at.error
    doc = cli(capsys, "estimate", "--model", str(path), "--dp", "8")  # the default 8 GPUs, TP1
    shown = shown_json(at)
    assert {k: shown[k] for k in ("ttft_s", "tpot_s", "memory", "batch")} == \
        {k: doc[k] for k in ("ttft_s", "tpot_s", "memory", "batch")}
    set_widgets(at, model_source="Path to config.json", model_path=str(path))
    assert shown_json(at) == doc  # a path is exactly the CLI's --model PATH (same model name)


def _profile(tmp_path) -> tuple[str, bytes]:
    """A synthetic calibrated profile: an 8-GPU all-reduce fit and its raw rows, HBM and GEMM."""
    lat, bw = 30e-6, 150e9
    rows = []
    for k in range(10, 31, 2):
        size = 2**k
        t = lat + size * 2 * 7 / 8 / bw
        rows.append({"op": "all_reduce", "size_bytes": size, "ranks": 8, "nodes": 1, "time_us": t * 1e6,
                     "algbw_GBps": size / t / 1e9, "busbw_GBps": size / t / 1e9 * 2 * 7 / 8})
    gemm = [{"op": "gemm", "dtype": "bf16", "M": m, "N": 8192, "K": 8192,
             "flops_per_s": 5e14 * m / (m + 80)} for m in (1, 8, 64, 512, 4096)]
    doc = {"sizer_profile_version": 1, "env": {"device": "NVIDIA H100 80GB HBM3", "backend": "nccl"},
           "collectives": [{"op": "all_reduce", "ranks": 8, "nodes": 1,
                            "segments": [{"latency_s": lat, "busbw_bytes_per_s": bw}],
                            "fit_error_pct": {"median": 0.0, "max": 0.0}}],
           "compute": {"hbm_bytes_per_s": 2.9e12, "matmul_flops_per_s": {"bf16": 5e14}, "matmul_half_rows": 80.0},
           "raw": {"collectives": rows, "gemm": gemm,
                   "membw": [{"op": "copy", "size_bytes": 2**30, "bytes_per_s": 2.9e12}]}}
    path = tmp_path / "h100-profile.json"
    path.write_text(json.dumps(doc))
    return str(path), path.read_bytes()


def test_uploaded_profile_changes_numbers_as_the_cli_profile_flag(capsys, tmp_path):
    """With a profile, the estimate is the CLI's `--profile` one (measured all-reduce fit,
    HBM and GEMM rates), and the Calibration view marks those constants measured."""
    path, data = _profile(tmp_path)
    at = app(model="llama-3.1-70b", gpus=8, tp=8, view="Latency")
    no_profile = shown_json(at)
    at.sidebar.file_uploader(key="profile").set_value(("h100-profile.json", data, "application/json"))
    at.run()
    doc = cli(capsys, "estimate", "--model", "llama-3.1-70b", "--tp", "8", "--profile", path)
    shown = shown_json(at)
    assert shown == doc and shown["tpot_s"] != no_profile["tpot_s"]
    set_widgets(at, view="Calibration")
    table = at.dataframe[0].value
    source = dict(zip(table["constant"], table["source"]))
    assert source["hbm_bytes_per_s"] == "measured" and source["matmul_flops_per_s[bf16]"] == "measured"
    assert source["kernel_launch_s[graph]"] == "default"
    figs = charts(at)
    assert len(figs) == 3  # all-reduce fit, GEMM bf16, memory bandwidth
    measured = figs[0]["data"][0]
    assert measured["name"] == "measured" and len(measured["x"]) == 11


@pytest.mark.parametrize("view", VIEWS)
def test_each_view_renders_its_charts(view, tmp_path):
    """Every tab draws plotly figures (Pipeline needs PP > 1; Calibration an uploaded profile;
    Recommend needs sizer.plan.recommend)."""
    at = app(model="mixtral-8x7b", gpus=8, tp=2, pp=2, ep=2, view=view)
    if view == "Calibration":
        _, data = _profile(tmp_path)
        at.sidebar.file_uploader(key="profile").set_value(("p.json", data, "application/json"))
        at.run()
    if view == "Recommend":
        sys.path.insert(0, os.path.dirname(APP))
        from ui.core import recommend_available

        if not recommend_available():
            assert any("sizer.plan.recommend" in i.value for i in at.info)
            pytest.skip("sizer.plan.recommend not built yet")
    assert not at.exception and not at.error, [e.value for e in at.error]
    figs = charts(at)
    # Pipeline: continuous batching has one schedule, the steady state (issue #15.8); Latency:
    # at vLLM's 1024-sequence H100 default each micro-batch carries whole prompts every round,
    # so the forward with a new prompt is the steady one and one op chart is drawn
    expected = {"Fit": 2, "Latency": 2, "Communication": 2, "Recommend": 1, "Pipeline": 1, "Calibration": 3}
    assert len(figs) == expected[view]
    assert all(f["data"] for f in figs)
    assert len([b for b in at.get("download_button") if "chart" in b.label]) == len(figs)


def test_communication_view_marks_the_models_message_sizes():
    """Llama-3.1-8B TP2, batch 8, ISL 1024: the decode all-reduce carries 8 x 4096 x 2 bytes =
    65,536 (hidden states in bf16), the prefill one 8 x 1024 x 4096 x 2 = 64 MiB."""
    at = app(gpus=2, tp=2, load="batch", batch=8, view="Communication")
    topo, algo = charts(at)
    marks = sorted(s["x0"] for s in topo["layout"]["shapes"])
    assert marks == [65536, 65536, 8 * 1024 * 4096 * 2, 8 * 1024 * 4096 * 2]
    assert topo["layout"]["xaxis"]["type"] == "log" and topo["layout"]["yaxis2"]["type"] == "log"
    assert {t["name"] for t in topo["data"]} >= {"nvswitch", "pcie"}
    assert {t["name"] for t in algo["data"]} >= {"ring", "nvls", "one_shot"}


def test_recommend_view_is_the_cli_search(capsys):
    """DeepSeek-V3 on 16 H200 over 2 nodes with a 20 ms TPOT target: the Recommend view shows
    `sizer recommend --json`'s document (less its wall-clock search_time_s), and the Pareto plot
    shades the region the target rules out (interactivity below 1 / 20 ms = 50 tok/s)."""
    sys.path.insert(0, os.path.dirname(APP))
    from ui.core import recommend_available

    if not recommend_available():
        pytest.skip("sizer.plan.recommend not built yet")
    at = app(model="deepseek-v3", gpu="h200", gpus=16, nodes=2, tpot_ms=20.0, view="Recommend")
    doc = cli(capsys, "recommend", "--model", "deepseek-v3", "--gpu", "h200", "--gpus", "16",
              "--nodes", "2", "--tpot", "20ms")
    doc.pop("search_time_s")
    assert shown_json(at) == doc
    table = at.dataframe[0].value
    assert list(table["split"]) == [c["label"] for c in doc["candidates"]]
    assert all(table["meets targets"])
    (pareto,) = charts(at)
    (shade,) = pareto["layout"]["shapes"]
    assert shade["x1"] == pytest.approx(50.0)
    front = [t for t in pareto["data"] if t["name"] == "Pareto front"][0]
    assert len(front["x"]) == len(doc["pareto"])


# --- issue #15.8: a UI that does not contradict itself -----------------------------------

def _titles(at) -> list[str]:
    return [f["layout"]["title"]["text"] for f in charts(at)]


def test_pipeline_view_has_one_bubble_number_and_it_is_the_schedule_drawn(capsys):
    """Llama-3.1-70B TP4 PP2 in continuous batching: one schedule (the steady state of two
    micro-batches in flight), whose bubble is the one number shown and whose span is the TPOT;
    the TTFT is explained from the same schedule. Not 'bubble 0.0%' above a Gantt saying 33.3%
    with a makespan no headline number has."""
    at = app(model="llama-3.1-70b", gpus=8, tp=4, pp=2, view="Pipeline")
    doc = cli(capsys, "estimate", "--model", "llama-3.1-70b", "--tp", "4", "--pp", "2")
    bubble = f"{doc['pipeline']['bubble_fraction_decode']:.1%}"
    assert metrics(at)["Pipeline bubble (steady state)"] == bubble
    (title,) = _titles(at)
    assert f"bubble {bubble}" in title and f"one step (TPOT) {doc['tpot_s'] * 1e3:.2f} ms" in title
    assert any(f"TTFT {fmt_seconds(doc['ttft_s'])} = " in c.value for c in at.caption)
    # a static batch: the prompt chunks fill and drain (makespan = TTFT), decode is steady (TPOT)
    set_widgets(at, load="batch", batch=8)
    doc = cli(capsys, "estimate", "--model", "llama-3.1-70b", "--tp", "4", "--pp", "2", "--batch", "8")
    pipe, m = doc["pipeline"], metrics(at)
    prefill, decode = _titles(at)
    assert m["Prefill bubble (fill and drain)"] == f"{pipe['bubble_fraction_prefill']:.1%}"
    assert m["Decode bubble (steady state)"] == f"{pipe['bubble_fraction_decode']:.1%}"
    assert f"bubble {pipe['bubble_fraction_prefill']:.1%}, makespan {doc['ttft_s'] * 1e3:.2f} ms" in prefill
    assert f"bubble {pipe['bubble_fraction_decode']:.1%}, one step (TPOT) {doc['tpot_s'] * 1e3:.2f} ms" in decode


def test_a_profile_of_another_device_gets_the_cli_warning(capsys, tmp_path):
    """A profile measured on an A100 applied to an H100: the same warning as the CLI prints."""
    doc = {"sizer_profile_version": 1, "env": {"gpu_id": "a100-sxm", "device": "NVIDIA A100"}}
    path = tmp_path / "a100.json"
    path.write_text(json.dumps(doc))
    at = app(model="llama-3.1-70b", gpus=8, tp=8)
    assert not at.warning
    at.sidebar.file_uploader(key="profile").set_value(("a100.json", path.read_bytes(), "application/json"))
    at.run()
    capsys.readouterr()
    assert sizer_main(["estimate", "--model", "llama-3.1-70b", "--tp", "8", "--profile", str(path), "--json"]) == 0
    line = capsys.readouterr().err.strip().removeprefix("sizer: warning: ")
    assert [w.value for w in at.warning] == [line.replace(str(path), "a100.json")]


def test_recommend_view_shows_a_dash_and_how_to_set_a_price(capsys):
    """No GPU-hour price: a dash in $/Mtok (not None) and a line saying how to set one; with a
    price, the CLI's cost per million tokens. The fp8 line is shown as on the CLI."""
    at = app(model="llama-3.1-70b", gpus=8, view="Recommend")
    table = at.dataframe[0].value
    assert set(table["$/Mtok"]) == {"—"}
    assert any("set a GPU-hour price" in c.value for c in at.caption)
    doc = cli(capsys, "recommend", "--model", "llama-3.1-70b", "--gpus", "8")
    assert any(i.value == doc["precision_hint"]["text"] for i in at.info)
    set_widgets(at, rec_price=2.0)
    doc = cli(capsys, "recommend", "--model", "llama-3.1-70b", "--gpus", "8", "--gpu-hour-price", "2")
    table = at.dataframe[0].value
    assert list(table["$/Mtok"]) == [f"{c['cost_per_million_tokens']:.3f}" for c in doc["candidates"]]
    assert not any("set a GPU-hour price" in c.value for c in at.caption)


def test_continuous_latency_view_draws_one_step_when_both_forwards_are_the_same(capsys):
    """Llama-3.1-8B on one H100 at its default load: its sequences x 1024 / 256 prompt tokens
    per step = one whole prompt, so the forward that carries a new prompt is the steady step:
    one op chart, said so. Llama-3.1-70B TP2 PP2: memory holds 344 sequences, under one whole
    prompt per micro-batch a round, so the two forwards differ, both drawn, the difference
    named."""
    at = app(gpus=1, view="Latency")
    doc = cli(capsys, "estimate", "--model", "llama-3.1-8b")
    assert doc["mode"] == "continuous" and doc["prefill_ops"] == doc["decode_ops"]
    assert len(charts(at)) == 2  # latency breakdown + one step
    assert any("TTFT and TPOT come from the same forward" in c.value for c in at.caption)
    set_widgets(at, model="llama-3.1-70b", gpus=4, tp=2, pp=2)
    assert len(charts(at)) == 3 and any(c.value.startswith("They differ most in: ") for c in at.caption)


def test_default_gpu_count_is_a_node_of_8():
    at = app()
    assert [w.value for w in at.sidebar.number_input if w.key == "gpus"] == [8]
    assert any("DP = GPUs / (TP x PP) = 8" in c.value for c in at.sidebar.caption)


def test_calibration_view_without_a_profile_shows_the_default_curves(capsys):
    """Before any upload: the constants in use with the probe that would replace each, the
    default all-reduce curve (the CLI's `sizer comm --sweep` numbers) and the GEMM curves."""
    at = app(model="llama-3.1-70b", gpus=8, tp=8, view="Calibration")
    assert any("No profile uploaded" in i.value for i in at.info)
    table = at.dataframe[0].value
    assert set(table["source"]) == {"default"} and "a profile replaces it with" in table
    assert list(table["default"]) == list(table["in use"])
    ar, gemm = charts(at)
    doc = cli(capsys, "comm", "--op", "all_reduce", "--gpus", "8", "--sweep")
    (curve,) = ar["data"][1:]  # the measured trace is empty
    assert curve["y"] == pytest.approx(doc["busbw_GBps"])
    assert {t["name"] for t in gemm["data"][1:]} == {"model, bf16", "model, fp8", "model, int8"}
