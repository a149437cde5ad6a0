"""`sizer simulate`: the --json document, --find-rate, --requests-out, the flag aliases, and
every bad input of issue #12 (one line on stderr, exit 2; infeasible deployments exit 1)."""

import csv
import json

import pytest

from sizer.cli.main import main

BASE = ["simulate", "--model", "8b", "--requests", "60"]


def run(capsys, *argv):
    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_document_has_the_issues_keys(capsys):
    code, out, err = run(capsys, *BASE, "--rate", "4", "--ttft-slo", "200ms", "--tpot-slo", "20ms", "--json")
    assert code == 0
    doc = json.loads(out)
    for key in ("requests", "completed", "duration_s", "throughput", "preemptions", "kv_utilization", "batch",
                "goodput"):
        assert key in doc
    assert set(doc["throughput"]) == {"requests_per_s", "output_tok_s", "total_tok_s"}
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s", "queue_s"):
        assert set(doc[key]) == {"mean", "p50", "p90", "p99", "max"}
    assert set(doc["goodput"]) == {"requests_per_s", "fraction"}
    assert doc["requests"] == doc["completed"] == 60
    assert doc["split"]["label"] == "TP1 PP1 DP1"


def test_human_output_has_the_table_and_a_verdict(capsys):
    code, out, _ = run(capsys, *BASE, "--rate", "4")
    assert code == 0
    assert "TTFT" in out and "p99" in out and "verdict: stable" in out
    code, out, err = run(capsys, *BASE, "--rate", "inf")
    assert "verdict: saturated" in out


def test_requests_out_writes_one_row_per_request(capsys, tmp_path):
    f = tmp_path / "r.csv"
    code, _, _ = run(capsys, *BASE, "--rate", "10", "--requests-out", str(f))
    rows = list(csv.DictReader(open(f)))
    assert code == 0 and len(rows) == 60
    assert {"arrival_s", "first_token_s", "finish_s", "input_tokens", "output_tokens", "preemptions"} <= set(rows[0])
    assert all(float(r["finish_s"]) >= float(r["first_token_s"]) >= float(r["arrival_s"]) for r in rows)


def test_find_rate_reports_the_rate_and_the_curve(capsys):
    code, out, _ = run(capsys, "simulate", "--model", "8b", "--requests", "150", "--find-rate",
                       "--ttft-slo", "100ms", "--tpot-slo", "15ms", "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["percentile"] == 99.0 and doc["max_rate_rps"] > 0
    rates = [p["rate_rps"] for p in doc["curve"]]
    assert rates == sorted(rates)
    best = next(p for p in doc["curve"] if p["rate_rps"] == doc["max_rate_rps"])
    assert best["meets"] and best["ttft_p99_s"] <= 0.1 and best["tpot_p99_s"] <= 0.015
    above = [p for p in doc["curve"] if p["rate_rps"] > doc["max_rate_rps"]]
    assert above and not above[0]["meets"]
    assert {"rate_rps", "ttft_s", "tpot_s"} <= set(doc["curve"][0])



def test_find_rate_never_counts_a_saturated_run_as_meeting(capsys):
    """Trial 3: 70B TP8 --find-rate answered 12.7 req/s from rows reading "saturated, meets"; a
    longer run at 12.6 missed the P99 TPOT. A run whose queue grows meets nothing, as in
    recommend --rate."""
    code, out, _ = run(capsys, "simulate", "--model", "70b", "--tp", "8", "--requests", "600", "--find-rate",
                       "--ttft-slo", "2s", "--tpot-slo", "50ms", "--json")
    doc = json.loads(out)
    assert code == 0 and any(p["verdict"] == "saturated" for p in doc["curve"])
    assert not any(p["verdict"] == "saturated" and p["meets"] for p in doc["curve"])

def test_find_rate_with_an_unreachable_slo_exits_1(capsys):
    code, out, err = run(capsys, "simulate", "--model", "8b", "--requests", "50", "--find-rate",
                         "--ttft-slo", "1ms")
    assert code == 1 and "no rate meets the SLOs" in err


def test_aliases_set_the_same_caps(capsys):
    a = json.loads(run(capsys, *BASE, "--rate", "inf", "--max-batch", "8", "--max-num-tokens", "2048", "--json")[1])
    b = json.loads(run(capsys, *BASE, "--rate", "inf", "--max-num-seqs", "8", "--max-num-batched-tokens", "2048",
                       "--json")[1])
    assert a == b
    assert a["deployment"]["max_num_seqs"] == 8 and a["batch"]["max"] == 8
    assert a["deployment"]["max_num_batched_tokens"] == 2048


def test_engine_none_is_generic_continuous_batching(capsys):
    doc = json.loads(run(capsys, *BASE, "--rate", "5", "--engine", "none", "--json")[1])
    assert doc["deployment"]["engine"] == doc["engine"] == "none"
    default = json.loads(run(capsys, *BASE, "--rate", "5", "--json")[1])
    assert default["engine"] == "vllm"  # every command's default engine


def test_emit_prints_the_engines_command_for_the_simulated_caps(capsys):
    doc = json.loads(run(capsys, *BASE, "--rate", "5", "--emit", "vllm", "--max-num-seqs", "64", "--json")[1])
    argv = doc["emit"]["commands"][0]["argv"]
    assert "--max-num-seqs" in argv and argv[argv.index("--max-num-seqs") + 1] == "64"


@pytest.mark.parametrize("args, message", [
    (["--rate", "0"], "--rate must be positive"),
    (["--rate", "-3"], "--rate must be positive"),
    (["--rate", "nan"], "--rate must be positive"),
    (["--rate", "fast"], "--rate must be a number"),
    ([], "--rate is required"),
    (["--rate", "5", "--requests", "0"], "positive whole number"),
    (["--rate", "5", "--duration", "0"], "argument --duration"),
    (["--rate", "5", "--duration=-4s"], "argument --duration"),
    (["--rate", "5", "--trace", ""], "argument --trace"),
    (["--rate", "inf", "--duration", "10s"], "--duration needs a finite --rate"),
    (["--rate", "5", "--isl", "-10"], "positive whole number"),
    (["--rate", "5", "--isl-dist", "uniform:500,100"], "impossible length distribution"),
    (["--rate", "5", "--osl-dist", "normal:-1,3"], "impossible length distribution"),
    (["--rate", "5", "--osl-dist", "zipf:1,2"], "unknown length distribution"),
    (["--rate", "5", "--ttft-slo", "2"], "needs a unit"),
    (["--rate", "5", "--tpot-slo", "0ms"], "duration must be positive"),
    (["--rate", "5", "--tpot-slo=-5ms"], "duration must be positive"),
    (["--rate", "5", "--requests", "20000000"], "limit of 10,000,000"),
    (["--rate", "1e6", "--duration", "100s"], "limit of 10,000,000"),
    (["--rate", "5", "--percentile", "0", "--find-rate", "--ttft-slo", "1s"], None),
    (["--find-rate"], "--find-rate needs --ttft-slo"),
    (["--rate", "5", "--warmup", "60"], "leaves no request"),
    (["--rate", "5", "--router", "random"], "invalid choice"),
    (["--rate", "5", "--mem-fraction-static", "0.8"], "needs --engine sglang"),
])
def test_bad_input_is_one_line_and_exit_2(capsys, args, message):
    if message is None:  # --percentile 0 with --find-rate (and --rate given too)
        args, message = ["--percentile", "0", "--find-rate", "--ttft-slo", "1s"], "--percentile must be in"
    bounded = any(a.startswith(("--requests", "--duration")) for a in args)
    argv = ["simulate", "--model", "8b", *([] if bounded else ["--requests", "60"]), *args]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and message in err
    assert out == ""


def test_bad_trace_names_line_and_column(capsys, tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("arrival_s,input_tokens,output_tokens\n0,10,5\n0.5,ten,5\n")
    code, _, err = run(capsys, "simulate", "--model", "8b", "--trace", str(f))
    assert code == 2 and "line 3, column 'input_tokens'" in err and err.count("\n") == 1
    g = tmp_path / "lengths.csv"
    g.write_text("input_tokens,output_tokens\n10,5\n")
    code, _, err = run(capsys, "simulate", "--model", "8b", "--trace", str(g))
    assert code == 2 and "has no arrival times: give --rate" in err


def test_a_deployment_that_cannot_hold_one_request_exits_1(capsys):
    code, _, err = run(capsys, "simulate", "--model", "405b", "--rate", "1", "--requests", "5")
    assert code == 1 and "does not fit" in err
    # TP4 at 0.6 of memory: 81k tokens of KV, a 128k-token request cannot be held (at TP2 the
    # 1024-row profiling sampler of vLLM on an H100 leaves no KV at all)
    code, _, err = run(capsys, "simulate", "--model", "70b", "--tp", "4", "--engine", "vllm",
                       "--gpu-memory-utilization", "0.6", "--rate", "1",
                       "--requests", "5", "--isl", "120000", "--osl", "8000")
    assert code == 1 and "does not fit the KV cache" in err


def test_gemma_hybrid_pool_and_prefix_caching_flag_in_the_json(capsys):
    """The trial's Gemma-3-27B case: the JSON names vLLM's 7 KV groups sharing one pool (7 x the
    printed 17,216 tokens / 16, give or take a spare block) and prefix caching; the flag turns
    it off."""
    argv = ["simulate", "--model", "gemma-3-27b", "--isl", "8000", "--osl", "500", "--requests", "12",
            "--rate", "inf", "--json"]
    code, out, _ = run(capsys, *argv)
    assert code == 0
    d = json.loads(out)["deployment"]
    assert d["kv_groups"] == 7 and d["prefix_caching"] is True
    assert 0 <= d["kv_blocks_per_replica"] - d["kv_tokens_per_replica"] // 16 * 7 < 7
    code, out, _ = run(capsys, *argv, "--no-enable-prefix-caching")
    assert code == 0 and json.loads(out)["deployment"]["prefix_caching"] is False
    assert d["reserve_full_isl"] is True  # vLLM's full-sequence admission gate, its default
    code, out, _ = run(capsys, *argv, "--no-scheduler-reserve-full-isl")
    assert code == 0 and json.loads(out)["deployment"]["reserve_full_isl"] is False
    code, out, _ = run(capsys, *argv, "--scheduler-reserve-full-isl")
    assert code == 0 and json.loads(out)["deployment"]["reserve_full_isl"] is True


@pytest.mark.parametrize("engine", ["sglang", "trtllm", "none"])
@pytest.mark.parametrize("flag", ["--no-enable-prefix-caching", "--no-scheduler-reserve-full-isl",
                                  "--scheduler-reserve-full-isl"])
def test_vllm_scheduler_flags_outside_vllm_are_bad_input(capsys, engine, flag):
    """vLLM's prefix-cache and admission-gate switches mean nothing to the other engines'
    schedulers: one line naming the flag and the engine, exit 2 (they were silently ignored)."""
    code, out, err = run(capsys, *BASE, "--rate", "4", "--engine", engine, flag)
    assert code == 2 and out == ""
    line = err.strip()
    assert "\n" not in line and flag.lstrip("-").split("-", 1)[-1] in line and engine in line


def test_short_run_warns_too_short_not_saturated(capsys):
    code, out, err = run(capsys, "simulate", "--model", "8b", "--rate", "10", "--duration", "5s")
    assert code == 0
    assert "verdict: too short to tell" in out
    assert "too short to tell" in err and "saturated" not in err and "depend on --requests" not in err


def test_vllm_scheduler_flags_reach_the_disaggregated_pools(capsys):
    """--disagg builds each pool's Deployment with the same switches: bad input under SGLang,
    and the gate off in both of vLLM's pools."""
    argv = ["simulate", "--model", "8b", "--disagg", "--prefill-tp", "1", "--decode-tp", "1", "--rate", "1",
            "--requests", "20"]
    code, out, err = run(capsys, *argv, "--engine", "sglang", "--no-enable-prefix-caching")
    assert code == 2 and out == "" and "enable-prefix-caching" in err
    code, out, _ = run(capsys, *argv, "--no-scheduler-reserve-full-isl", "--json")
    d = json.loads(out)["deployment"]
    assert code == 0 and d["prefill"]["reserve_full_isl"] is False and d["decode"]["reserve_full_isl"] is False
