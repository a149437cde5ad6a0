"""`sizer estimate`: TTFT/TPOT/throughput semantics, pipeline bubbles, DP and the CLI contract."""

import json

import numpy as np
import pytest

from sizer.cli.main import main
from sizer.cost.estimate import estimate
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.split import Split
from sizer.cost.step import step_time
from shapes import LLAMA_8B





def test_tpot_is_the_mean_decode_step_over_the_output(l8, h100):
    """The decode step is affine in the KV length, so TPOT at the mean length isl + (osl-1)/2
    equals the mean of the osl steps as the KV grows."""
    isl, osl = 500, 9
    est = estimate(l8, h100, Split(), isl=isl, osl=osl, batch=4)
    steps = [float(step_time(l8, h100, phase="decode", batch=4, context_len=isl + i).time_s) for i in range(osl)]
    assert est.tpot_s == pytest.approx(np.mean(steps), rel=1e-9)
    assert est.e2e_s == pytest.approx(est.ttft_s + (osl - 1) * est.tpot_s)
    assert est.output_tok_s == pytest.approx(4 * osl / est.e2e_s)


def test_dp_multiplies_throughput_not_speed(l8, h100):
    one = estimate(l8, h100, Split(), isl=256, osl=64, batch=8)
    four = estimate(l8, h100, Split(dp=4), isl=256, osl=64, batch=8)
    assert four.tpot_s == pytest.approx(one.tpot_s) and four.ttft_s == pytest.approx(one.ttft_s)
    assert four.output_tok_s == pytest.approx(4 * one.output_tok_s)
    assert four.output_tok_s_per_gpu == pytest.approx(one.output_tok_s_per_gpu)


def test_pipeline_reported_with_bubble(l8, h100):
    est = estimate(l8, h100, Split(pp=4), isl=1024, osl=16, batch=2)
    pipe = est.to_json()["pipeline"]
    assert pipe["decode"]["microbatches"] == 2 and pipe["bubble_fraction_decode"] == pytest.approx(0.5)
    assert pipe["prefill"]["clocks"] == pipe["prefill"]["microbatches"] + 3
    assert "pipeline" not in estimate(l8, h100, Split(), isl=64, osl=4, batch=1).to_json()


def test_max_throughput_point_is_capped_by_memory_and_max_batch(l8, h100):
    # vLLM serve's max_num_seqs on an H100 is 1024 (arg_utils.py): memory binds first here
    est = estimate(l8, h100, Split(), isl=512, osl=512)
    assert 256 < est.batch < 1024 and est.memory["per_gpu"]["fits"]
    assert estimate(l8, h100, Split(), isl=64, osl=64).batch == 1024  # short sequences: the cap
    assert estimate(l8, get_gpu("a100-80g-sxm"), Split(), isl=64, osl=64).batch == 256  # A100: 256
    capped = estimate(l8, h100, Split(), isl=512, osl=512, max_batch=32)
    assert capped.batch == 32 and capped.output_tok_s < est.output_tok_s
    long = estimate(l8, get_gpu("l4"), Split(), isl=8192, osl=8192)
    assert long.batch < 256 and long.memory["per_gpu"]["fits"]


def test_cli_estimate_json_keys(capsys, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(LLAMA_8B))
    assert main(["estimate", "--model", str(cfg), "--tp", "2", "--pp", "2", "--isl", "512",
                 "--osl", "64", "--batch", "8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    for key in ("ttft_s", "tpot_s", "e2e_s", "output_tok_s", "output_tok_s_per_gpu", "memory",
                "breakdown", "pipeline"):
        assert key in doc
    assert doc["memory"]["per_gpu"]["fits"] is True


def test_cli_step_json_identity(capsys, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(LLAMA_8B))
    assert main(["step", "--model", str(cfg), "--tp", "4", "--phase", "prefill", "--batch", "2",
                 "--seq", "1024", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["time_s"] == pytest.approx(doc["compute_s"] + doc["comm_s"])
    assert {o["bound"] for o in doc["ops"]} <= {"compute", "memory", "latency", "comm"}


@pytest.mark.parametrize("argv", [
    ["step", "--phase", "prefill"],  # no --seq
    ["step", "--phase", "decode", "--batch", "0", "--context", "5"],
    ["estimate", "--isl", "-3"],
    ["estimate", "--pp", "5", "--even-pp"],  # 32 layers: uneven stages unless --even-pp
    ["estimate", "--pp", "33"],  # more stages than layers
])
def test_bad_input_exit_2(capsys, tmp_path, argv):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(LLAMA_8B))
    try:
        code = main(argv[:1] + ["--model", str(cfg)] + argv[1:])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_context_beyond_model_maximum_warns(capsys, tmp_path):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(dict(LLAMA_8B, max_position_embeddings=2048)))
    assert main(["step", "--model", str(cfg), "--phase", "decode", "--context", "4096", "--json"]) == 0
    out = capsys.readouterr()
    json.loads(out.out)
    assert "exceed" in out.err


def test_concurrency_spreads_over_replicas_without_rounding_up(capsys):
    """Trial 1 item 5: --dp 8 --concurrency 1 is one request on one replica (seven idle), so its
    throughput is one request's, not eight; 3 requests over 2 replicas are 2 + 1, and the
    throughput is the sum of a 2-sequence and a 1-sequence replica. Latency is the busier ones'."""
    from sizer.cost.estimate import spread

    m, g = get_model("8b"), get_gpu("h100-sxm")
    one = estimate(m, g, Split(tp=1), isl=1024, osl=256, concurrency=1)
    dp8 = estimate(m, g, Split(tp=1, dp=8), isl=1024, osl=256, concurrency=1)
    assert dp8.output_tok_s == pytest.approx(one.output_tok_s, rel=1e-12)
    assert dp8.output_tok_s_per_gpu == pytest.approx(one.output_tok_s / 8, rel=1e-12)
    assert dp8.tpot_s == pytest.approx(one.tpot_s, rel=1e-12)
    assert dp8.spread == {"concurrency": 1, "busy_batch": 1, "busy_replicas": 1,
                          "rest_batch": 0, "rest_replicas": 7}
    tp4 = Split(tp=4)
    two = estimate(m, g, tp4, isl=1024, osl=256, concurrency=2)
    single = estimate(m, g, tp4, isl=1024, osl=256, concurrency=1)
    three = estimate(m, g, Split(tp=4, dp=2), isl=1024, osl=256, concurrency=3)
    assert three.batch == 2 and three.tpot_s == pytest.approx(two.tpot_s, rel=1e-12)
    assert three.output_tok_s == pytest.approx(two.output_tok_s + single.output_tok_s, rel=1e-12)
    even = estimate(m, g, Split(tp=4, dp=2), isl=1024, osl=256, concurrency=4)
    assert even.output_tok_s == pytest.approx(2 * two.output_tok_s, rel=1e-12)
    assert spread(16, 8)["rest_replicas"] == 0 and spread(17, 8)["busy_replicas"] == 1
    assert main(["estimate", "--model", "8b", "--dp", "8", "--concurrency", "1"]) == 0
    assert "1 request over 8 replicas: 1 hold 1, 7 hold 0 (idle)" in capsys.readouterr().out
