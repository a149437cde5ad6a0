"""A DP count beyond one node (trial 1: `simulate --tp 4 --dp 15` failed "60 GPUs per node is
more than ... holds (8)"): without --nodes the replicas, which exchange nothing, are spread over
nodes holding whole replicas, said on stderr; the answer is the one --nodes gives, and a
replica's numbers are those of a single TP4 replica."""

import json

from sizer.cli.main import main


def _json(capsys, argv):
    code = main(argv + ["--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return json.loads(out), err


def test_estimate_spreads_dp_replicas_over_nodes(capsys):
    spread, err = _json(capsys, ["estimate", "--model", "70b", "--tp", "4", "--dp", "15"])
    assert "the 15 DP replicas (4 GPUs each, exchanging nothing)" in err and "on 15 nodes of 4" in err
    given, err2 = _json(capsys, ["estimate", "--model", "70b", "--tp", "4", "--dp", "15", "--nodes", "15"])
    assert "exchanging nothing" not in err2
    one, _ = _json(capsys, ["estimate", "--model", "70b", "--tp", "4"])
    for key in ("ttft_s", "tpot_s"):
        assert spread[key] == given[key] == one[key]
    assert spread["output_tok_s"] == 15 * one["output_tok_s"]


def test_simulate_spreads_dp_replicas_over_nodes(capsys):
    code = main(["simulate", "--model", "70b", "--tp", "4", "--dp", "15", "--rate", "2", "--requests", "30"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.startswith("llama-3.1-70b on 60x h100-sxm, TP4 PP1 DP15") and "exchanging nothing" in err


def test_what_cannot_spread_still_asks_for_nodes(capsys):
    """TP16 does not fit a node of 8 whatever the DP; EP32 over TP8 x DP4 makes the all-to-all span
    replicas, so their placement matters; an explicit --nodes 1 is the user's layout."""
    for argv in (["--model", "70b", "--tp", "16"],
                 ["--model", "deepseek-v3", "--gpu", "h200", "--tp", "8", "--dp", "4", "--ep", "32"],
                 ["--model", "70b", "--tp", "4", "--dp", "15", "--nodes", "1"]):
        assert main(["estimate"] + argv) == 2
        assert "use --nodes to spread them" in capsys.readouterr().err
