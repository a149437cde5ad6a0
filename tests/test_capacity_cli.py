"""`sizer recommend --rate R` (issue #13): the JSON document's keys, the rerun command of every
reported seed, GPU types side by side with their cost, --emit for the winner, and the issue's
"Bad input" (one line on stderr, exit 2) and the unservable rate (exit 1 with the highest rate
reached and by what). Sizes as tests/test_capacity.py: 8B, 256/64 tokens, 300 requests a seed."""

import json
import shlex

import pytest

from sizer.cli.main import main

BASE = ["recommend", "--model", "8b", "--isl", "256", "--osl", "64", "--requests", "300", "--nodes", "1"]
SLO = ["--ttft-slo", "500ms", "--tpot-slo", "15ms"]


def run(capsys, *argv):
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def doc_200():
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        assert main(BASE + SLO + ["--rate", "200", "--json"]) == 0
    return json.loads(buf.getvalue())


def test_json_has_the_issues_keys(doc_200):
    d = doc_200
    assert d["rate"] == 200 and d["percentile"] == 99 and d["gpus_needed"] == d["winner"]["gpus"]
    assert d["slo"] == {"ttft_s": 0.5, "tpot_s": 0.015} and d["seeds"] == [0, 1, 2]
    for c in d["candidates"]:
        assert {"gpus", "nodes", "gpus_per_node", "tp", "pp", "dp", "ep", "sustainable_rate_rps", "simulated"} <= set(c)
        # one node count (trial 2 item 4): the whole nodes that hold it, the last part idle
        assert c["gpus"] + c["idle_gpus"] == c["nodes"] * c["gpus_per_node"] and 0 <= c["idle_gpus"] < 8
        assert c["gpus"] == c["tp"] * c["pp"] * c["dp"] and c["gpus_per_node"] == 8
        given = c["as_given"]  # the --gpus G --nodes N that run it again
        assert given["gpus"] == c["gpus"] and given["gpus"] % given["nodes"] == 0
        for run_ in c["simulated"]["runs"]:
            for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s", "queue_s"):  # sizer simulate --json's blocks
                assert set(run_[key]) == {"mean", "p50", "p90", "p99", "max"}
    w = d["winner"]
    assert w["simulated"]["seeds"] == [0, 1, 2] and w["simulated"]["meets"]
    assert w["sustainable_rate_rps"] >= 200 and w["fewer"]["replicas"] == w["replicas"] - 1
    assert d["simulations"] >= 4 and isinstance(d["why_not"], list)


def test_every_reported_seed_reruns_exactly_with_sizer_simulate(capsys, doc_200):
    sim = doc_200["winner"]["simulated"]
    for command, seen in zip(sim["commands"], sim["runs"]):
        code, out, _ = run(capsys, *shlex.split(command)[1:], "--json")
        assert code == 0
        again = json.loads(out)
        assert again["ttft_s"] == seen["ttft_s"] and again["tpot_s"] == seen["tpot_s"]
        assert again["requests"] == sim["requests"]


def test_human_report_names_the_answer_and_the_run_one_replica_fewer(capsys):
    code, out, _ = run(capsys, *BASE, *SLO, "--rate", "200")
    assert code == 0
    assert "Answer: " in out and "serves 200 req/s within P99 TTFT <= 500.0 ms and P99 TPOT <= 15.0 ms" in out
    assert "one step fewer" in out and "misses: P99" in out
    assert "rerun a seed: sizer simulate" in out


def test_gpu_types_side_by_side_with_their_cost(capsys):
    code, out, _ = run(capsys, *BASE, *SLO, "--rate", "120", "--gpu", "h100-sxm,a100-80g-sxm",
                       "--gpu-hour-price", "2.5,1.2", "--json")
    assert code == 0
    d = json.loads(out)
    rows = {r["gpu"]: r for r in d["by_gpu"]}
    assert set(rows) == {"h100-sxm", "a100-80g-sxm"} and d["gpu"] == ["h100-sxm", "a100-80g-sxm"]
    for gpu, price in (("h100-sxm", 2.5), ("a100-80g-sxm", 1.2)):
        r = rows[gpu]  # cost on the whole nodes that hold the GPUs, the per-GPU figure beside it
        assert r["nodes"] == -(-r["gpus_needed"] // 8) == r["winner"]["nodes"] and r["per_node"] == 8
        assert r["cost_per_hour"] == pytest.approx(r["nodes"] * 8 * price)
        assert r["cost_per_hour_per_gpu"] == pytest.approx(r["gpus_needed"] * price)
        assert r["cost_per_million_output_tokens"] == pytest.approx(r["cost_per_hour"] / (120 * 64 * 3600) * 1e6)
        assert r["winner"]["gpus"] == r["gpus_needed"]
    cheapest = min(rows.values(), key=lambda r: r["cost_per_hour"])
    assert d["cheapest"] == cheapest["gpu"] and d["gpus_needed"] == cheapest["gpus_needed"]
    code, out, _ = run(capsys, *BASE, *SLO, "--rate", "120", "--gpu", "h100-sxm,a100-80g-sxm",
                       "--gpu-hour-price", "2.5,1.2")
    assert "Side by side:" in out and f"Verdict: {cheapest['gpu']} is cheapest" in out


def test_one_priced_gpu_type_gets_its_cost(capsys):
    """Trial 2 item 5: --gpu-hour-price with one --gpu was silently ignored."""
    code, out, _ = run(capsys, *BASE, *SLO, "--rate", "120", "--gpu-hour-price", "2.5", "--json")
    assert code == 0
    d = json.loads(out)
    nodes = -(-d["gpus_needed"] // 8)
    assert d["nodes"] == nodes and d["idle_gpus"] == nodes * 8 - d["gpus_needed"] and d["gpu_hour_price"] == 2.5
    assert d["cost_per_hour"] == pytest.approx(nodes * 8 * 2.5)
    assert d["cost_per_hour_per_gpu"] == pytest.approx(d["gpus_needed"] * 2.5)
    assert d["cost_per_million_output_tokens"] == pytest.approx(d["cost_per_hour"] / (120 * 64 * 3600) * 1e6)
    code, out, _ = run(capsys, *BASE, *SLO, "--rate", "120", "--gpu-hour-price", "2.5")
    assert f"Cost at $2.5/GPU-hour: ${d['cost_per_hour']:,.2f}/h on {nodes} whole node" in out
    assert f"billed per GPU ({d['gpus_needed']} GPUs) ${d['cost_per_hour_per_gpu']:,.2f}/h" in out


def test_rate_mode_has_a_precision_line_with_what_fp8_saves(capsys, doc_200):
    """Trial 2 item 3, from the CLI: the line, its JSON, and with a price the cost it saves."""
    h = doc_200["precision_hint"]
    assert h["gpus"] < doc_200["gpus_needed"] and h["flags"] == "--weight-dtype fp8 --kv-dtype fp8"
    _, out, _ = run(capsys, *BASE, *SLO, "--rate", "200", "--gpu-hour-price", "2.5")
    line = next(x for x in out.splitlines() if x.startswith("Precision: "))
    assert line.startswith("Precision: " + h["text"])
    # 3 GPUs and 2 both sit on one node of 8: nothing saved on whole nodes, one GPU's $2.50 per GPU
    assert line.endswith("; the same whole nodes, $2.50/h less billed per GPU")


def test_emit_prints_the_winners_command(capsys):
    code, out, _ = run(capsys, *BASE, *SLO, "--rate", "200", "--emit", "vllm", "--json")
    assert code == 0
    d = json.loads(out)
    w, argvs = d["winner"], [c["argv"] for c in d["emit"]["commands"]]
    assert len(argvs) >= 1 and all(a[:2] == ["vllm", "serve"] for a in argvs)
    flat = argvs[0]
    assert flat[flat.index("--tensor-parallel-size") + 1] == str(w["tp"])
    servers = sum(int(a[a.index("--data-parallel-size") + 1]) if "--data-parallel-size" in a else 1 for a in argvs)
    assert servers == w["dp"]


@pytest.mark.parametrize("argv,needle", [
    (["--ttft-slo", "2s", "--gpus", "8"], "--ttft-slo belongs to rate-driven planning"),
    (["--per-node", "8", "--gpus", "8"], "--per-node belongs to rate-driven planning"),
    (["--gpu", "h100-sxm,h200", "--gpus", "8"], "a list of GPU types compares capacity"),
    ([], "--gpus is required"),
    (["--rate", "10", "--gpu", "h100-sxm,no-such-gpu"], "no-such-gpu"),
    (["--rate", "10", "--gpu", "h100-sxm,h200", "--gpu-hour-price", "2"], "1 price for 2 GPU types"),
    (["--rate", "10", "--gpu", "h100-sxm,h100-sxm"], "listed twice"),
    (["--rate", "10", "--ttft", "2s"], "--ttft is a steady-state mean target"),
    (["--rate", "10", "--batch", "8"], "--batch fixes the load"),
    (["--rate", "10", "--objective", "latency"], "drop --objective"),
    (["--rate", "10", "--gpus", "8", "--per-node", "8"], "--per-node counts whole nodes"),
    (["--rate", "0"], "argument --rate"), (["--rate", "inf"], "argument --rate"), (["--rate", "x"], "argument --rate"),
    (["--rate", "10", "--percentile", "0"], "--percentile must be in (0, 100]"),
    (["--rate", "10", "--ttft-slo", "2"], "needs a unit"),
    (["--rate", "10", "--emit", "ollama"], "unknown engine"),
    (["--rate", "10", "--gpu-hour-price", "2,-1"], "argument --gpu-hour-price"),
    (["--rate", "10", "--isl-dist", "uniform:10,5"], "impossible length distribution"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, "recommend", "--model", "8b", *argv)
    assert code == 2, err
    assert needle in err and len(err.strip().splitlines()) == 1 and not out


def test_emit_for_a_precision_the_engine_cannot_run_is_exit_2(capsys):
    code, _, err = run(capsys, *BASE, "--rate", "50", "--weight-dtype", "fp8", "--emit", "trtllm")
    assert code == 2 and "fp8" in err and len(err.strip().splitlines()) == 1


def test_a_rate_no_allowed_deployment_serves_is_exit_1_with_the_highest_reached(capsys):
    code, out, err = run(capsys, *BASE[:-2], "--nodes", "1", "--per-node", "2", *SLO, "--rate", "5000", "--json")
    assert code == 1
    d = json.loads(out)  # still one document
    h = d["highest"]
    assert d["gpus_needed"] is None and d["error"] and 0 < h["rate_rps"] < 5000 and h["gpus"] <= 2
    assert "no deployment of up to 2x h100-sxm serves 5000 req/s" in err and f"{h['rate_rps']:.3g} req/s" in err
    assert h["label"] in err and "limited by" in err
    # the steady-state bound already rules 5000 req/s out on 2 GPUs (trial 2 item 7): no simulation
    assert d["simulations"] == 0 and h["simulated"] is False and "nothing was simulated" in err


def test_progress_goes_to_stderr_after_ten_seconds_then_every_ten():
    import io

    from sizer.cli.capacity import Progress

    now, buf = [0.0], io.StringIO()
    progress = Progress("h100-sxm", stream=buf, clock=lambda: now[0])
    for t, n in ((1.0, 1), (9.9, 2), (10.0, 3), (15.0, 4), (20.5, 5)):
        now[0] = t
        progress(n, f"TP1 PP1 DP{n} at 10 req/s, seed 0")
    lines = buf.getvalue().splitlines()
    assert lines == ["sizer recommend --rate: h100-sxm: 3 simulations in 10 s; now TP1 PP1 DP3 at 10 req/s, seed 0",
                     "sizer recommend --rate: h100-sxm: 5 simulations in 20 s; now TP1 PP1 DP5 at 10 req/s, seed 0"]


def test_a_trace_with_arrival_times_simulates_whole_deployments(capsys, tmp_path):
    """No round-robin shortcut for a replayed trace: one workload, so one run per count, of the
    whole deployment; its rerun command (with --dp) gives the same numbers."""
    import random

    rng = random.Random(1)
    t, rows = 0.0, ["arrival_s,input_tokens,output_tokens"]
    for _ in range(300):
        t += rng.expovariate(50)
        rows.append(f"{t:.4f},{rng.randint(100, 400)},{rng.randint(20, 100)}")
    trace = tmp_path / "timed.csv"
    trace.write_text("\n".join(rows) + "\n")
    code, out, _ = run(capsys, "recommend", "--model", "8b", "--rate", "150", "--trace", str(trace), "--nodes", "1",
                       *SLO, "--json")
    assert code == 0
    w = json.loads(out)["winner"]
    sim = w["simulated"]
    assert sim["simulated"] == "the whole deployment" and sim["seeds"] == [0] and sim["replica_rate_rps"] == 150
    assert f"--dp {w['dp']}" in sim["commands"][0] and "--trace" in sim["commands"][0]
    code, out, _ = run(capsys, *shlex.split(sim["commands"][0])[1:], "--json")
    assert code == 0 and json.loads(out)["tpot_s"] == sim["runs"][0]["tpot_s"]
