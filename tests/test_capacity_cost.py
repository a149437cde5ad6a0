"""What a capacity plan costs and how GPU types compare (sizer/plan/capacity_cost.py, trial 2
items 4 and 9): one node count everywhere, whole-node cost beside the per-GPU figure, and a tie
said to be one and broken on the sustainable rate. Plans are stand-ins: only the winner's GPUs,
its sustainable rate and the node size matter here."""

from types import SimpleNamespace

import pytest

from sizer.plan.capacity_cost import compare, cost, node_count, verdict


def stub(gpu, gpus, per_node=8, sustains=None, label="TP2 PP1 DP25"):
    w = SimpleNamespace(gpus=gpus, sustainable_rate_rps=sustains)
    return SimpleNamespace(gpu=gpu, winner=w, per_node=per_node, mean_osl=256.0, simulations=7, mode="rate",
                           candidate=lambda r: {"label": label, "gpus": r.gpus})


def test_node_count_packs_whole_nodes_and_counts_the_idle_gpus():
    assert node_count(50, 8) == (7, 6)  # the trial's 50 H200s: 7 nodes of 8, not "25x2"
    assert node_count(13, 8) == (2, 3)  # 13 MI300X: 2 OAM nodes of 8, not "13x1"
    assert node_count(48, 8) == (6, 0) and node_count(3, 8) == (1, 5) and node_count(16, 16) == (1, 0)


def test_cost_on_whole_nodes_with_the_per_gpu_figure_beside_it():
    """The trial: 50 H200s at $3.79 were billed $189.50/h, but 7 whole nodes are 56 x 3.79."""
    c = cost(50, 8, 3.79, 100.0, 256.0)
    assert c["cost_per_hour"] == pytest.approx(56 * 3.79) == pytest.approx(212.24)
    assert c["cost_per_hour_per_gpu"] == pytest.approx(50 * 3.79) == pytest.approx(189.50)
    tokens_per_hour = 100 * 256 * 3600
    assert c["cost_per_million_output_tokens"] == pytest.approx(212.24 / tokens_per_hour * 1e6)
    assert c["cost_per_million_output_tokens_per_gpu"] == pytest.approx(189.50 / tokens_per_hour * 1e6)
    assert (c["nodes"], c["per_node"], c["idle_gpus"]) == (7, 8, 6)
    assert cost(50, 8, None, 100.0, 256.0)["cost_per_hour"] is None


def test_the_cheapest_type_is_cheapest_on_whole_nodes_and_a_per_gpu_winner_is_named():
    """56 H100s (7 full nodes) at $2.99 = $167.44/h; 50 H200s at $3.79 = $212.24/h on 7 nodes."""
    doc = compare([stub("h100-sxm", 56), stub("h200", 50)], [2.99, 3.79], 100.0)
    rows = {r["gpu"]: r for r in doc["by_gpu"]}
    assert doc["cheapest"] == doc["pick"] == "h100-sxm" and not doc["tie"]
    assert rows["h200"]["nodes"] == rows["h100-sxm"]["nodes"] == 7 and rows["h200"]["idle_gpus"] == 6
    # H200 at $3.30: $184.80/h on whole nodes, above H100's $167.44, but $165.00 billed per GPU
    doc = compare([stub("h100-sxm", 56), stub("h200", 50)], [2.99, 3.30], 100.0)
    assert doc["cheapest"] == "h100-sxm" and doc["cheapest_per_gpu"] == "h200"
    text = verdict(doc, 100.0)
    assert text.startswith("h100-sxm is cheapest: 56 GPUs (7 nodes of 8) at $167.44/h on whole nodes")
    assert "billed per GPU, h200 is cheaper ($165.00/h vs $167.44/h)" in text


def test_a_tie_is_said_and_broken_on_the_sustainable_rate():
    """The trial: "h100-sxm needs the fewest GPUs: 12 (vs mi300x 12)". The one that sustains more
    wins, whichever comes first in --gpu, and the sentence says why."""
    doc = compare([stub("h100-sxm", 12, sustains=21.0), stub("mi300x", 12, sustains=23.1)], None, 20.0)
    assert doc["tie"] == ["h100-sxm", "mi300x"] and doc["pick"] == doc["fewest_gpus"] == "mi300x"
    assert doc["tie_broken_by"] == "sustainable_rate_rps"
    text = verdict(doc, 20.0)
    assert "needs the fewest" not in text
    assert text.startswith("a tie: h100-sxm and mi300x both need 12 GPUs; mi300x wins on headroom: it sustains "
                           "23.1 req/s (+16% over 20) vs 21 req/s (+5%) for h100-sxm")
    assert "near-even" not in text  # 10% apart, more than the 5% bracket
    close = verdict(compare([stub("h100-sxm", 12, sustains=20.5), stub("mi300x", 12, sustains=21.0)], None, 20.0), 20.0)
    assert "mi300x wins on headroom" in close and "closer than the 5% the rates are bracketed to" in close
    # priced: the cost ties (12 GPUs, 2 nodes each, one price), the rate breaks it the same way
    doc = compare([stub("h100-sxm", 12, sustains=21.0), stub("mi300x", 12, sustains=23.1)], [2.0, 2.0], 20.0)
    assert doc["tie"] == ["h100-sxm", "mi300x"] and doc["cheapest"] == "mi300x"
    # nothing tells them apart: the order of --gpu, said
    doc = compare([stub("h100-sxm", 12), stub("mi300x", 12)], None, 20.0)
    assert doc["pick"] == "h100-sxm" and doc["tie_broken_by"] == "order"
    assert "first in --gpu" in verdict(doc, 20.0)
    # no tie: fewer GPUs win on their own
    doc = compare([stub("h100-sxm", 12, sustains=21.0), stub("mi300x", 8, sustains=20.5)], None, 20.0)
    assert doc["pick"] == "mi300x" and doc["tie"] == [] and verdict(doc, 20.0).startswith("mi300x needs the fewest")


def test_with_gpus_given_the_type_that_sustains_the_most_wins():
    """--rate --gpus N: every type has N GPUs, so "fewest GPUs" says nothing; the highest
    sustainable rate (the split winner's own rule) picks the type."""
    a, b = stub("h100-sxm", 2, sustains=131.0), stub("a100-80g-sxm", 2, sustains=98.0)
    a.mode = b.mode = "gpus"
    doc = compare([b, a], None, 50.0)
    assert doc["pick"] == "h100-sxm" and doc["ranked_by"] == "sustainable_rate_rps" and not doc["tie"]
    assert verdict(doc, 50.0).startswith("h100-sxm sustains the most on 2 GPUs: 131 req/s (+162% over 50) "
                                         "(vs a100-80g-sxm 98 req/s)")
