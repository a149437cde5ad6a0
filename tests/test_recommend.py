"""`sizer recommend`: every returned split is valid, fits and is ranked by its own numbers; the
vectorised search reproduces estimate(); placement rules; rules of thumb; exit codes."""

import json
import math
import re

import numpy as np
import pytest

from sizer.cli.main import main
from sizer.errors import InfeasibleError, InputError
from sizer.cost.estimate import estimate
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import model_from_config
from sizer.plan.recommend import TargetsNotMetError, recommend
from sizer.plan.search import Workload, evaluate, enumerate_splits
from sizer.model.split import Split
from sizer.hardware.topology import default_topology, get_topology
from shapes import GPT3, LLAMA_70B, QWEN3_MOE





@pytest.fixture(scope="module")
def rec8(l70, h100):
    return recommend(l70, h100, 8, top=50)


def _cli(args, capsys):
    code = main(["recommend"] + args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_every_candidate_multiplies_out_fits_and_is_ranked_by_its_own_numbers(rec8):
    assert rec8.candidates and rec8.meets_targets
    for c in rec8.candidates:
        s = c.split
        assert s.tp * s.pp * s.dp == 8 == s.gpus
        assert 64 % s.tp == 0 and 80 % s.pp == 0
        pg = c.memory["per_gpu"]
        assert pg["fits"] and pg["total_bytes"] <= pg["capacity_bytes"]
        assert c.headroom_bytes == pytest.approx(pg["capacity_bytes"] - pg["total_bytes"])
        assert c.memory["batch"] == c.batch and c.meets_targets
        assert c.output_tok_s_per_gpu == pytest.approx(c.output_tok_s / 8)
        assert c.e2e_s == pytest.approx(c.ttft_s + 255 * c.tpot_s)
    tok = [c.output_tok_s_per_gpu for c in rec8.candidates]
    assert tok == sorted(tok, reverse=True)
    doc = json.loads(json.dumps(rec8.to_json()))
    for key in ("tp", "pp", "ep", "dp", "weight_dtype", "kv_dtype", "batch", "ttft_s", "tpot_s",
                "output_tok_s_per_gpu", "memory", "meets_targets", "comm_share_decode", "headroom_bytes"):
        assert key in doc["candidates"][0]
    assert doc["winner_reason"].startswith(rec8.candidates[0].label)
    # TP1 cannot hold 141 GB of bf16 weights on an 80 GB card: rejected for memory, with a reason
    mem = [r for r in doc["rejected"] if r["kind"] == "memory"]
    assert {(r["tp"], r["pp"]) for r in mem} == {(1, 1)}
    assert all("doesn't fit" in r["reason"] and "GiB" in r["reason"] for r in mem)


def test_pareto_frontier_is_non_dominated_and_ends_at_the_throughput_winner(rec8):
    p = rec8.pareto
    tpot = [x["tpot_s"] for x in p]
    tok = [x["output_tok_s_per_gpu"] for x in p]
    assert tpot == sorted(tpot) and all(b > a for a, b in zip(tok, tok[1:]))
    assert tok[-1] == pytest.approx(rec8.candidates[0].output_tok_s_per_gpu)
    assert all(x["interactivity_tok_s"] == pytest.approx(1 / x["tpot_s"]) for x in p)


@pytest.mark.parametrize("split", [Split(tp=8), Split(tp=2, pp=2, dp=2), Split(tp=2, pp=4), Split(tp=1, pp=8)])
def test_vectorised_points_equal_estimate(l70, h100, split):
    """One step_time call per phase over a batch vector reproduces estimate() for each batch
    (TTFT, TPOT, e2e, tokens/s per GPU, comm share) to 1e-6 relative, in both serving modes."""
    topo = default_topology(h100, 8)
    batches = np.array([1, 3, 8, 100, 256], dtype=float)
    static = evaluate(l70, h100, split, batches, Workload(1024, 256, 256, 8192, mode="static"), topology=topo)
    cont = evaluate(l70, h100, split, batches, Workload(1024, 256, 256, 8192), topology=topo)
    for pts, kw in ((static, "batch"), (cont, "concurrency")):
        _check_points(l70, h100, split, topo, batches, pts, kw)


def _check_points(l70, h100, split, topo, batches, pts, kw):
    for i, b in enumerate(batches):
        n = int(b) if kw == "batch" else int(b) * split.dp
        est = estimate(l70, h100, split, isl=1024, osl=256, topology=topo, **{kw: n})
        assert pts.ttft_s[i] == pytest.approx(est.ttft_s, rel=1e-6)
        assert pts.tpot_s[i] == pytest.approx(est.tpot_s, rel=1e-6)
        assert pts.e2e_s[i] == pytest.approx(est.e2e_s, rel=1e-6)
        assert pts.output_tok_s_per_gpu[i] == pytest.approx(est.output_tok_s_per_gpu, rel=1e-6)
        assert pts.comm_share_decode[i] == pytest.approx(est.breakdown["comm_share_decode"], rel=1e-6, abs=1e-12)


def test_recommended_candidates_equal_estimate_including_moe_and_memory(h100):
    """The returned candidates (best batch per split, EP splits of a MoE model included) carry
    estimate()'s numbers and its `memory` object."""
    moe = model_from_config(QWEN3_MOE, "qwen3-30b-a3b")
    rec = recommend(moe, h100, 4, top=6, isl=512, osl=128)
    topo = default_topology(h100, 4)
    assert any(c.split.ep > 1 for c in rec.candidates)
    for c in rec.candidates:
        est = estimate(moe, h100, c.split, isl=512, osl=128, concurrency=c.batch * c.split.dp, topology=topo)
        assert c.ttft_s == pytest.approx(est.ttft_s, rel=1e-6)
        assert c.tpot_s == pytest.approx(est.tpot_s, rel=1e-6)
        assert c.output_tok_s_per_gpu == pytest.approx(est.output_tok_s_per_gpu, rel=1e-6)
        assert c.memory == est.memory


def test_moe_search_includes_ep1_and_ep_over_all_tp_x_dp_ranks():
    moe = model_from_config(QWEN3_MOE, "qwen3-30b-a3b")
    valid, _ = enumerate_splits(moe, 8)
    for tp, pp, dp in {(s.tp, s.pp, s.dp) for s in valid}:
        eps = {s.ep for s in valid if (s.tp, s.pp, s.dp) == (tp, pp, dp)}
        assert 1 in eps and tp * dp in eps
        assert all((tp * dp) % e == 0 and 128 % e == 0 for e in eps)


def test_pcie_two_socket_never_ranks_socket_spanning_tp_above_nvswitch(l70, h100):
    """The same splits on an HGX (NVSwitch) box and on a two-socket PCIe box: a TP group that
    spans the sockets pays for the UPI hop, so it ranks no better than on NVSwitch, and no
    split gets faster on PCIe."""
    nv = recommend(l70, h100, 8, top=50, topology="nvswitch")
    pc = recommend(l70, h100, 8, top=50, topology="pcie-2socket")
    rank_nv = {c.label: i for i, c in enumerate(nv.candidates)}
    rank_pc = {c.label: i for i, c in enumerate(pc.candidates)}
    by_nv = {c.label: c for c in nv.candidates}
    spanning = [c for c in pc.candidates if "tp_spans_sockets" in c.flags]
    assert [c.label for c in spanning] == ["TP8 PP1 DP1"]
    assert "upi" in spanning[0].comm_links
    for c in spanning:
        assert rank_pc[c.label] >= rank_nv[c.label]
        assert rank_pc[c.label] > rank_pc[pc.candidates[0].label]  # never the winner
    for c in pc.candidates:
        assert c.output_tok_s_per_gpu <= by_nv[c.label].output_tok_s_per_gpu * (1 + 1e-9)
    lat_nv = recommend(l70, h100, 8, top=50, topology="nvswitch", objective="latency")
    lat_pc = recommend(l70, h100, 8, top=50, topology="pcie-2socket", objective="latency")
    r_nv = [c.label for c in lat_nv.candidates].index("TP8 PP1 DP1")
    r_pc = [c.label for c in lat_pc.candidates].index("TP8 PP1 DP1")
    assert r_pc >= r_nv


def test_175b_over_tp2_pp4_needs_44_gb_of_weights_per_gpu_not_88(h100):
    """Rule of thumb corrected (issue #5, 'Done means'): guides quote ~88 GB per GPU for a 175B
    bf16 model on TP=2 x PP=4, i.e. 350 GB / 4, dividing by one of the two factors only. TP
    splits every layer in two and PP gives each GPU a quarter of the layers, so each GPU holds
    350 / 8 = 43.75 GB, plus its stage's share of the 50257 x 12288 embedding / LM head."""
    gpt3 = model_from_config(GPT3, "gpt-3-175b")
    assert gpt3.gated_mlp is False
    assert gpt3.params_total() == pytest.approx(175e9, rel=0.01)
    rec = recommend(gpt3, h100, 8, top=20)
    c = next(c for c in rec.candidates if (c.split.tp, c.split.pp) == (2, 4))
    weights_gb = c.memory["per_gpu"]["weights_bytes"] / 1e9
    assert weights_gb == pytest.approx(44.0, abs=0.5)
    assert weights_gb < 88 / 1.9
    # reproduced where right: 350 GB of bf16 weights cannot be served by 4 80-GB GPUs
    with pytest.raises(InfeasibleError, match="would fit on 8 GPUs"):
        recommend(gpt3, h100, 4)


def test_nothing_fits_names_the_gpu_count_or_precision_that_would(l70, h100):
    """Llama-3.1-70B needs 141 GB in bf16 (70.55B params x 2 bytes): not one H100, but two, or
    one in fp8 (70.6 GB)."""
    with pytest.raises(InfeasibleError) as err:
        recommend(l70, h100, 1)
    msg = str(err.value)
    assert "--weight-dtype fp8" in msg and "would fit on 2 GPUs" in msg
    assert "of the 79.22 GiB GPU capacity (engine none)" in msg
    assert recommend(l70, h100, 1, weight_dtypes=["fp8"]).winner.split == Split()


def test_targets_and_objectives(rec8, l70, h100):
    target = 0.015
    rec = recommend(l70, h100, 8, tpot_s=target, top=20)
    assert all(c.tpot_s <= target and c.meets_targets for c in rec.candidates)
    assert rec.winner.output_tok_s_per_gpu <= rec8.winner.output_tok_s_per_gpu
    lat = recommend(l70, h100, 8, objective="latency", top=20)
    tpots = [c.tpot_s for c in lat.candidates]
    assert tpots == sorted(tpots) and lat.winner.tpot_s == pytest.approx(min(p["tpot_s"] for p in rec8.pareto))
    cost = recommend(l70, h100, 8, objective="cost", gpu_hour_price=2.0, top=20)
    assert [c.label for c in cost.candidates] == [c.label for c in rec8.candidates[:20]]
    for c in cost.candidates:
        assert c.cost_per_mtok == pytest.approx(2.0 / 3600 / c.output_tok_s_per_gpu * 1e6)
    with pytest.raises(TargetsNotMetError) as err:
        recommend(l70, h100, 8, tpot_s=0.001)
    closest = err.value.recommendation
    assert closest.candidates and not any(c.meets_targets for c in closest.candidates)
    assert closest.candidates[0].tpot_s == pytest.approx(min(p["tpot_s"] for p in rec8.pareto))


def test_given_batch_or_concurrency(l70, h100):
    rec = recommend(l70, h100, 8, batch=16, top=20)
    assert {c.batch for c in rec.candidates} == {16}
    rec = recommend(l70, h100, 8, concurrency=64, top=20)
    assert all(c.batch == math.ceil(64 / c.split.dp) for c in rec.candidates)


def test_multi_node_keeps_tp_inside_a_node(l70, h100):
    rec = recommend(l70, h100, 64, nodes=8, top=100)
    assert rec.candidates and all(c.split.tp <= 8 and c.split.gpus == 64 for c in rec.candidates)
    assert all("tp_spans_nodes" not in c.flags for c in rec.candidates)
    placed = {r["tp"] for r in rec.to_json()["rejected"] if r["kind"] == "placement"}
    assert placed == {16, 32, 64}


def test_allow_idle_searches_fewer_gpus(l70, h100):
    """64 heads do not divide by 3 or 6: on 6 GPUs only TP in {1, 2} uses all of them."""
    exact = recommend(l70, h100, 6, top=50)
    assert {c.split.gpus for c in exact.candidates} == {6}
    idle = recommend(l70, h100, 6, top=50, allow_idle=True)
    assert {4, 6} <= {c.split.gpus for c in idle.candidates}
    assert idle.winner.output_tok_s_per_gpu >= exact.winner.output_tok_s_per_gpu


def test_bad_input_raises_input_error(l70, h100):
    for kw in (dict(objective="speed"), dict(objective="cost"), dict(batch=4, concurrency=4),
               dict(weight_dtypes=["fp7"]), dict(nodes=3), dict(top=0), dict(tpot_s=-1.0)):
        with pytest.raises(InputError):
            recommend(l70, h100, 8, **kw)


@pytest.fixture(scope="module")
def cfg70(tmp_path_factory):
    path = tmp_path_factory.mktemp("llama-3.1-70b") / "config.json"
    path.write_text(json.dumps(LLAMA_70B))
    return str(path)


def test_cli_table_json_and_exit_codes(cfg70, capsys):
    code, out, _ = _cli(["--model", cfg70, "--gpus", "8"], capsys)
    assert code == 0 and "Winner:" in out and "Why not:" in out and "Pareto frontier" in out
    assert "TP1 PP1 (any DP) (bf16 weights, bf16 KV): doesn't fit" in out
    code, out, _ = _cli(["--model", cfg70, "--gpus", "8", "--json", "--tpot", "20ms"], capsys)
    doc = json.loads(out)
    assert code == 0 and doc["targets"]["tpot_s"] == pytest.approx(0.02)
    assert all(c["tpot_s"] <= 0.02 for c in doc["candidates"])
    # impossible target: the closest candidates are still shown, then exit 1
    code, out, err = _cli(["--model", cfg70, "--gpus", "8", "--tpot", "1ms", "--json"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["candidates"] and not doc["meets_targets"] and "meets the targets" in err
    code, out, err = _cli(["--model", cfg70, "--gpus", "8", "--tpot", "1ms"], capsys)
    assert code == 1 and "closest candidates" in out
    # vLLM V1 profiles 1024 sequences' logits on an H100 (4.9 GiB for a 128k vocabulary), which
    # leaves 70B bf16 at TP2 (65.7 GiB of weights per GPU) no KV room: 4 GPUs are the next that fit
    code, out, err = _cli(["--model", cfg70, "--gpus", "1"], capsys)
    assert code == 1 and out == "" and "would fit on 4 GPUs" in err
    for bad in (["--tpot", "fast"], ["--objective", "cost"], ["--nodes", "3"], ["--weight-dtype", "fp7"],
                ["--gpu", "h1000"], ["--batch", "2", "--concurrency", "4"], ["--topology", "torus"]):
        code, out, err = _cli(["--model", cfg70, "--gpus", "8"] + bad, capsys)
        assert code == 2 and out == "" and err.count("\n") == 1, bad


def test_cli_usage_errors_exit_2(cfg70):
    for bad in (["--objective", "speed"], ["--gpus", "0"], ["--top", "x"]):
        assert main(["recommend", "--model", cfg70, "--gpus", "8"] + bad if "--gpus" not in bad
                    else ["recommend", "--model", cfg70] + bad) == 2


def test_pcie_topology_preset_for_socket_spanning_flag(h100):
    """Placement: on pcie-2socket a TP=4 group stays inside a socket, TP=8 spans both."""
    from sizer.plan.search import placement_flags

    topo = get_topology("pcie-2socket", h100, 8)
    assert placement_flags(topo, Split(tp=4, dp=2)) == ()
    assert placement_flags(topo, Split(tp=8)) == ("tp_spans_sockets",)
    assert placement_flags(get_topology("nvswitch", h100, 16, nodes=2), Split(tp=16)) == ("tp_spans_nodes",)


def test_tp_across_nodes_only_when_nothing_else_fits(h100):
    """61 layers (a prime, as DeepSeek-V3 has): with --even-pp PP=2 is out and a 70B-class dense
    model fits two single-GPU nodes only as TP=2 across them: searched, flagged and noted. By
    default the engines' uneven stages (31 + 30 layers) keep TP inside a node, and TP2 across the
    nodes is still costed and explained in a why-not line (issue #15.3)."""
    prime = model_from_config(dict(LLAMA_70B, num_hidden_layers=61), "dense-61-layers")
    rec = recommend(prime, h100, 2, nodes=2, uneven_pp=False)
    assert [c.label for c in rec.candidates] == ["TP2 PP1 DP1"]
    assert rec.winner.flags == ("tp_spans_nodes",) and "spanning nodes" in rec.notes[1]
    assert rec.notes[0] == ("1 split dropped because dense-61-layers does not divide into it "
                            "(PP2: 61 layers do not divide)")
    uneven = recommend(prime, h100, 2, nodes=2)
    assert [c.label for c in uneven.candidates] == ["TP1 PP2 DP1"] and not uneven.winner.flags
    line = next(x for x in uneven.why_not if x.startswith("TP2 PP1 DP1"))
    # the line either says how far it trails or, where the model ranks it ahead (PP2's two
    # micro-batches each pay their own forward and tick at the prompt-carrying one's clock),
    # that TP across nodes is ranked only when nothing inside a node fits
    assert "its TP group spans 2 nodes of 1 GPUs" in line
    assert "fewer tok/s per GPU" in line or "TP across nodes is ranked only when nothing inside a node fits" in line


def test_weight_dtype_list_searches_each_precision(l70, h100):
    rec = recommend(l70, h100, 8, weight_dtypes="bf16,fp8", top=100)
    assert {c.weight_dtype for c in rec.candidates} == {"bf16", "fp8"}
    assert rec.winner.weight_dtype == "fp8"  # half the bytes per decode step, twice the KV room
    fp8 = [c for c in rec.candidates if c.weight_dtype == "fp8"]
    assert all(c.memory["precision"]["weights"] == "fp8" for c in fp8)


# --- the finer batch search (issue: the power-of-two grid missed the best batch by 9-14%) ------

def test_batch_grid_is_quarter_octave_and_refinement_fills_the_neighbourhood():
    """1..8, then round(2^(k/4)): neighbours at most 19% apart (2^(1/4) = 1.189, rounded),
    ending at the limit; refinement covers every integer between the best point's neighbours."""
    from sizer.plan.search import batch_grid, refine_batches

    g = batch_grid(256).astype(int).tolist()
    assert g[:12] == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 13, 16] and g[-4:] == [152, 181, 215, 256]
    assert all(b / a <= 1.25 for a, b in zip(g[8:], g[9:]))
    assert batch_grid(46).astype(int).tolist()[-2:] == [45, 46] and batch_grid(1).tolist() == [1.0]
    grid = batch_grid(256)
    i = g.index(64)
    assert refine_batches(grid, i).astype(int).tolist() == [b for b in range(55, 76) if b != 64]
    assert refine_batches(grid, len(g) - 1).size == 0 and refine_batches(grid, 0).size == 0


def _true_best(model, gpu, c, tpot_s, topo):
    """Brute force: every integer batch 1..max_batch of c's split, the best that meets tpot_s."""
    pts = evaluate(model, gpu, c.split, np.arange(1, c.max_batch + 1), Workload(1024, 256, 256, 8192),
                   weight_dtype=c.memory["precision"]["weights"] if c.weight_dtype != "bf16+fp4" else None,
                   topology=topo)
    ok = pts.tpot_s <= tpot_s
    j = int(np.argmax(np.where(ok, pts.output_tok_s_per_gpu, -1)))
    return int(pts.batch[j]), float(pts.output_tok_s_per_gpu[j])


@pytest.mark.parametrize("name,dtypes,tpot", [("llama-3.1-70b", None, 0.030),
                                              ("mixtral-8x22b", "fp8,int4", 0.025)])
def test_a_tpot_target_gets_the_largest_batch_that_meets_it(h100, name, dtypes, tpot):
    """With a TPOT target every candidate's batch is the brute-force best over all integer
    batches of its split (throughput grows with the batch until the target binds), so the
    winner is not left 9-14% short as on a power-of-two grid (batch 64 where 96 meets it)."""
    from sizer.model.catalog import get_model

    model = get_model(name)
    rec = recommend(model, h100, 8, tpot_s=tpot, weight_dtypes=dtypes, top=6)
    topo = default_topology(h100, 8)
    for c in rec.candidates:
        b, tok = _true_best(model, h100, c, tpot, topo)
        assert c.batch == b and c.output_tok_s_per_gpu == pytest.approx(tok, rel=1e-9)
        assert c.tpot_s <= tpot and (c.cap == "tpot" or c.batch == c.max_batch)
    w = rec.winner  # the next batch misses: estimate() agrees on both sides of the boundary
    for n, ok in ((w.batch, True), (w.batch + 1, False)):
        est = estimate(model, h100, w.split, isl=1024, osl=256, concurrency=n * w.split.dp, topology=topo,
                       weight_dtype=None if dtypes is None else w.weight_dtype)
        assert (est.tpot_s <= tpot) is ok


# --- divisibility, infeasible requests, --allow-idle ---------------------------------------

def test_seven_gpus_name_the_only_divisible_split_and_the_counts_that_work(l70, h100):
    """64 heads and 80 layers are both prime to 7: TP7 and PP7 are dropped, TP1 PP1 DP7 is the
    only split, and it cannot hold 141 GB of bf16 weights; 8 GPUs (TP8) or 6 of the 7 with
    --allow-idle (TP2 DP3: 70.6 GB of weights per GPU) would."""
    from sizer.plan.recommend import NothingFitsError

    with pytest.raises(NothingFitsError) as err:
        recommend(l70, h100, 7, uneven_pp=False)
    msg = str(err.value)
    assert ("with 7 GPUs the only split llama-3.1-70b divides into, TP1 PP1 DP7 (TP7: 64 attention "
            "heads do not divide; PP7: 80 layers do not divide), needs 135.2 GiB") in msg
    assert "leanest" not in msg
    assert "it would fit on 8 GPUs (TP8 PP1 DP1)" in msg
    assert "on 6 of the 7 GPUs with --allow-idle (TP2 PP1 DP3)" in msg
    assert "it fits with uneven pipeline stages (drop --even-pp, e.g. TP1 PP7 DP1)" in msg
    doc = err.value.recommendation.to_json()
    assert doc["candidates"] == [] and doc["error"] == msg
    assert doc["suggestion"] == {"uneven_pp": True, "uneven_pp_split": "TP1 PP7 DP1",
                                 "weight_dtype": "fp8", "weight_dtype_split": "TP1 PP1 DP7", "gpus": 8,
                                 "gpus_split": "TP8 PP1 DP1", "nodes": 1, "allow_idle_gpus": 6,
                                 "allow_idle_split": "TP2 PP1 DP3"}
    assert {(r["tp"], r["pp"]) for r in doc["rejected"] if r["kind"] == "divisibility"} == {(7, 1), (1, 7)}
    fp8 = recommend(l70, h100, 7, weight_dtypes="fp8", uneven_pp=False)
    assert fp8.notes[0] == ("2 splits dropped because llama-3.1-70b does not divide into them "
                            "(TP7: 64 attention heads do not divide; PP7: 80 layers do not divide)")


def test_allow_idle_searches_every_gpu_count_up_to_16(l70, h100):
    """With idle GPUs allowed a box of up to 16 GPUs is searched at every count (6 of 7 GPUs as
    TP2 DP3); above 16, the divisors and the powers of two."""
    from sizer.plan.search import gpu_counts

    assert gpu_counts(7, True) == [7, 6, 5, 4, 3, 2, 1] and gpu_counts(7, False) == [7]
    assert gpu_counts(24, True) == [24, 16, 12, 8, 6, 4, 3, 2, 1]
    rec = recommend(l70, h100, 7, allow_idle=True, top=100)
    used = {c.label: c.gpus_used for c in rec.candidates}
    assert used["TP2 PP1 DP3"] == 6 and used["TP1 PP5 DP1"] == 5 and set(used.values()) == {2, 3, 4, 5, 6, 7}
    assert used["TP1 PP7 DP1"] == 7  # 80 layers over 7 stages (12 x 3 + 11 x 4), vLLM's partition
    assert all(c["gpus_used"] == c["tp"] * c["pp"] * c["dp"] for c in rec.to_json()["candidates"])
    assert any("per-GPU numbers compare splits of different sizes" in n for n in rec.notes)
    assert rec.winner_reason.startswith(
        f"{rec.winner.label} on {rec.winner.gpus_used} of the 7 GPUs with bf16 weights and bf16 KV")


def test_cli_allow_idle_has_a_gpus_column(cfg70, capsys):
    code, out, _ = _cli(["--model", cfg70, "--gpus", "7", "--allow-idle"], capsys)
    head = next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    assert code == 0 and head.split()[:3] == ["#", "split", "GPUs"]
    rows = [line.split() for line in out.splitlines() if re.match(r"\s*\d+\s+TP\d+ PP\d+ DP\d+", line)]
    assert rows and any(r[4] != "7" for r in rows)  # some splits leave GPUs idle
    for r in rows:  # the GPUs column is TP x PP x DP
        tp, pp, dp = (int(x[2:]) for x in r[1:4])
        assert int(r[4]) == tp * pp * dp
    assert "note: --allow-idle: splits use different numbers of the 7 GPUs" in out
    code, out, _ = _cli(["--model", cfg70, "--gpus", "8"], capsys)
    head = next(line for line in out.splitlines() if line.lstrip().startswith("#"))
    assert head.split()[:3] == ["#", "split", "weights"]  # every split uses all GPUs: no column


def test_cli_json_when_nothing_fits_is_one_document(cfg70, capsys):
    """--json prints exactly one document even when nothing fits, then exits 1 with the
    message on stderr. Under vLLM's rules (the default) fp8 70B weights (70.6 GB) leave no KV
    room in 0.9 x 79.2 GiB of one H100, so the precision that fits one GPU is int4; with raw
    capacity (--engine none) fp8 fits."""
    code, out, err = _cli(["--model", cfg70, "--gpus", "1", "--json"], capsys)
    doc = json.loads(out)
    assert code == 1 and doc["candidates"] == [] and doc["error"] in err
    assert doc["suggestion"]["gpus"] == 4 and doc["suggestion"]["weight_dtype"] == "int4"
    code, out, _ = _cli(["--model", cfg70, "--gpus", "1", "--json", "--engine", "none"], capsys)
    assert json.loads(out)["suggestion"]["weight_dtype"] == "fp8"
    assert any(r["kind"] == "memory" for r in doc["rejected"])
    # vLLM V1 profiles 1024 sequences' logits on an H100 (4.9 GiB for a 128k vocabulary), which
    # leaves 70B bf16 at TP2 (65.7 GiB of weights per GPU) no KV room: 4 GPUs are the next that fit
    code, out, err = _cli(["--model", cfg70, "--gpus", "1"], capsys)
    assert code == 1 and out == "" and "would fit on 4 GPUs" in err


def test_cli_warns_when_the_profile_was_measured_on_another_device(cfg70, capsys, tmp_path):
    """As estimate and step do: a profile's constants replace the catalog's."""
    path = tmp_path / "a100.json"
    path.write_text(json.dumps({"sizer_profile_version": 1, "env": {"gpu_id": "a100-sxm"}}))
    code, out, err = _cli(["--model", cfg70, "--gpus", "8", "--profile", str(path), "--json"], capsys)
    assert code == 0 and json.loads(out)["candidates"]
    assert f"profile {path} was measured on a100-sxm, not h100-sxm" in err


# --- the report says only what is true ----------------------------------------------------

def _note(rec):
    from sizer.cli.recommend import render

    return next(line for line in render(rec).splitlines() if line.startswith("(No latency targets"))


def test_fills_memory_only_when_the_batch_is_at_the_memory_limit(l70, h100, rec8):
    """The latency winner runs one sequence with most of the GPU free; on 2 GPUs the throughput
    winner's 46 sequences are all the KV cache holds; on 8 its 1024 are the max_num_seqs cap
    (vLLM serve's default on an H100, vllm/engine/arg_utils.py)."""
    lat = recommend(l70, h100, 8, objective="latency")
    assert lat.winner.batch == 1 and lat.winner.headroom_bytes > 50 * 2**30
    assert "fills memory" not in _note(lat) and "runs batch 1 per replica with" in _note(lat)
    two = recommend(l70, h100, 2)
    assert two.winner.batch == two.winner.max_batch and two.winner.batch_limit == "memory"
    assert "the winner fills memory (batch 46 per replica)" in _note(two)
    assert rec8.winner.batch == 1024 and "the max_num_seqs cap" in _note(rec8)
    assert "fills memory" not in _note(rec8)


def test_comm_share_is_the_same_number_in_the_table_and_the_sentences(l70, h100):
    """One quantity (the largest collective's share of the decode step), one rounding."""
    from sizer.cli.recommend import render

    rec = recommend(l70, h100, 8, tpot_s=0.030)
    text = render(rec)
    rows = {line[4:22].strip(): line for line in text.splitlines() if re.match(r"^\s*\d+\s+TP", line)}
    for c in rec.candidates:
        pct = f"{c.comm_op_share:.0%}"
        assert f"{pct} all-reduce" in rows[c.label]
    w = rec.winner
    assert f"all-reduce is {w.comm_op_share:.0%} of the decode step" in rec.winner_reason
    assert rec.to_json()["candidates"][0]["comm_op_share"] == w.comm_op_share


def _all_text(rec) -> list[str]:
    return list(rec.why_not) + [rec.winner_reason]


@pytest.fixture(scope="module")
def explained(h100):
    from sizer.model.catalog import get_model

    l70 = get_model("llama-3.1-70b")
    return {"mixtral_tpot": recommend(get_model("mixtral-8x22b"), h100, 8, weight_dtypes="fp8,int4",
                                      tpot_s=0.025, top=50),
            "70b_ttft": recommend(l70, h100, 8, ttft_s=1.0, top=50),
            "70b_latency": recommend(l70, h100, 8, objective="latency", top=50),
            "gpt_oss": recommend(get_model("gpt-oss-120b"), h100, 8, tpot_s=0.050, top=50)}


def test_every_cited_comparison_points_the_right_way(explained):
    """A cause says why a loser loses: its TPOT higher than what it is compared with, its
    sequences per GPU fewer; never a lower TPOT or a larger load cited as the reason."""
    checked = 0
    for key, rec in explained.items():
        for line in _all_text(rec):
            for cause in re.split(r"; |, because ", line)[1:]:
                for a, b in re.findall(r"TPOT ([\d.]+) ms vs ([\d.]+) ms", cause):
                    assert float(a) > float(b), (key, line)
                    checked += 1
                for a, b in re.findall(r"([\d.]+) (?:sequences )?per GPU vs ([\d.]+)", cause):
                    assert float(a) < float(b), (key, line)
                    checked += 1
    assert checked >= 20


def test_a_dimension_is_blamed_only_when_changing_it_alone_helps(explained):
    """Like with like: TP2 PP2 DP2 is slower than TP2 PP1 DP4 at the same batch by what its
    pipeline pays (each micro-batch its own forward), and trails TP8 at batch 1 by its TP width
    too; TP4 PP1 DP2 only by its TP width. EP1 is said plainly, never as 'holds 1/1 of the
    experts'."""
    lat = {line.split(" (")[0]: line for line in explained["70b_latency"].why_not}
    assert "each of 2 micro-batches pays its own forward overhead" in lat["TP2 PP2 DP2"]
    assert "layers split 2 ways, not 8" in lat["TP2 PP2 DP2"]
    assert "pipeline" not in lat["TP4 PP1 DP2"]
    assert re.search(r"layers split 4 ways, not 8: TPOT [\d.]+ ms vs [\d.]+ ms as TP8 PP1 DP1 at batch 1",
                     lat["TP4 PP1 DP2"])
    for rec in explained.values():
        for line in _all_text(rec):
            assert "1/1" not in line and "1 ways" not in line
            m = re.search(r"crosses \d+ pipeline stages per step: TPOT ([\d.]+) ms vs ([\d.]+) ms as (TP\d+ PP\d+ DP\d+)", line)
            if m:
                assert float(m.group(1)) > 1.05 * float(m.group(2))
    mix = explained["mixtral_tpot"]  # int4 reaches the TPOT target at a smaller batch than fp8
    int4 = next(x for x in mix.why_not if x.startswith(f"{mix.winner.label} (int4 weights, bf16 KV)"))
    assert "TPOT target caps it" in int4 and re.search(r"int4 weights, not fp8: TPOT [\d.]+ ms vs [\d.]+ ms in fp8", int4)
    oss = {line.split(" (")[0]: line for line in explained["gpt_oss"].why_not}
    assert re.search(r"experts not spread \(EP1; the winner spreads them over \d GPUs\)", oss["TP1 PP1 DP8"])


def test_no_cause_is_invented_for_a_tie(l70):
    """On 8 H200s in fp8, TP1 PP1 DP8 trails TP1 PP2 DP4 by under 1%: no cause given, and the
    runner-up is offered for its lower TPOT."""
    rec = recommend(l70, get_gpu("h200"), 8, weight_dtypes="fp8", kv_dtype="fp8")
    line = next(x for x in rec.why_not if x.startswith("TP1 PP1 DP8"))
    assert re.fullmatch(r"TP1 PP1 DP8 \(fp8[^)]*\): 0\.\d% fewer tok/s per GPU", line)
    assert re.search(r"Runner-up TP1 PP1 DP8 \(fp8[^)]*\) is practically tied", rec.winner_reason)


def test_nothing_fits_also_says_which_splits_were_dropped(h100):
    """DeepSeek-V3/R1 has 61 layers (its config.json): no PP divides it on 8 GPUs, and in fp8
    (671B x 1 byte) no 8-GPU split holds it."""
    from sizer.model.catalog import get_model
    from sizer.plan.recommend import NothingFitsError

    with pytest.raises(NothingFitsError) as err:
        recommend(get_model("deepseek-r1"), h100, 8, uneven_pp=False)
    assert str(err.value).endswith("Also: 6 splits dropped because deepseek-v3 does not divide into "
                                   "them (PP2, PP4, PP8: 61 layers do not divide).")
    assert err.value.recommendation.notes == (
        "6 splits dropped because deepseek-v3 does not divide into them (PP2, PP4, PP8: 61 layers do not divide)",)


# --- issue #15: what a new user hit ---------------------------------------------------------

@pytest.fixture(scope="module")
def r1_16(h100):
    from sizer.model.catalog import get_model

    return recommend(get_model("deepseek-r1"), h100, 16, nodes=2, top=100)


def test_uneven_pipeline_stages_are_searched_by_default(r1_16, capsys):
    """DeepSeek-R1's 61 layers: on 2x8 H100 TP8 PP2 (31 + 30 layers, as vLLM splits them) is a
    candidate again; on 6 H200 the answer is a 3-stage pipeline (21/20/20 layers) instead of exit
    1 'does not fit'. --even-pp restores equal stages, and then says what would fit."""
    assert "TP8 PP2 DP1" in {c.label for c in r1_16.candidates}
    assert r1_16.workload["uneven_pp"] is True
    code, out, err = _cli(["--model", "deepseek-r1", "--gpus", "6", "--gpu", "h200"], capsys)
    assert code == 0 and re.search(r"^ 1  TP\d PP3 DP\d", out, re.M)
    code, out, err = _cli(["--model", "deepseek-r1", "--gpus", "6", "--gpu", "h200", "--even-pp"], capsys)
    assert code == 1 and out == ""
    assert "it fits with uneven pipeline stages (drop --even-pp, e.g. TP2 PP3 DP1" in err
    code, out, err = _cli(["--model", "deepseek-r1", "--gpus", "6", "--gpu", "h200", "--uneven-pp", "--json"], capsys)
    assert code == 0 and json.loads(out)["candidates"][0]["pp"] == 3


def test_every_rejected_family_gets_a_why_not_line_in_the_text(r1_16, capsys):
    """TP16 over both nodes (a documented SGLang recipe for DeepSeek) is costed and explained in
    the text, not only listed in --json rejected; so are the splits that do not fit and, on 6
    GPUs, the TP sizes the 128 heads do not divide."""
    from sizer.cli.recommend import MAX_WHY_NOT, render

    shown = [line[4:] for line in render(r1_16).splitlines() if line.startswith("  - ")]
    assert len(shown) <= MAX_WHY_NOT
    tp16 = next(line for line in shown if line.startswith("TP16 "))
    assert "its TP group spans 2 nodes of 8 GPUs" in tp16 and "fewer tok/s per GPU" in tp16
    assert any("doesn't fit" in line for line in shown)
    kinds = {r["kind"] for r in r1_16.to_json()["rejected"]}
    assert {"placement", "memory"} <= kinds
    placed = [r for r in r1_16.to_json()["rejected"] if r["kind"] == "placement" and r["tp"] == 16]
    assert placed and all("output_tok_s_per_gpu" in r for r in placed if r["tp"] * r["pp"] <= 16)
    code, out, _ = _cli(["--model", "deepseek-r1", "--gpus", "6", "--gpu", "h200"], capsys)
    assert "  - TP3, TP6 (any PP, DP): 128 attention heads do not divide by 3, 6" in out


def test_every_candidate_and_why_not_line_names_weight_and_kv_dtype(r1_16, capsys):
    """A DeepSeek checkpoint is fp8 weights with a bf16 KV cache: say both, everywhere a
    precision applies (table columns, winner, runner-up, every costed or memory line, Pareto)."""
    assert r1_16.winner_reason.startswith(f"{r1_16.winner.label} with fp8 weights and bf16 KV gives")
    for line in r1_16.why_not:
        if "does not run" in line or "do not divide" in line:
            continue  # a layout or divisibility reason holds in every precision
        assert "(fp8 weights, bf16 KV)" in line, line
    code, out, _ = _cli(["--model", "70b", "--gpus", "8"], capsys)
    pareto_head = next(line for line in out.splitlines() if "tok/s/user" in line)
    assert pareto_head.split()[-3:] == ["weights", "KV", "batch"]


def test_one_line_says_what_fp8_weights_and_kv_would_give(l70, h100):
    """Llama-3.1-70B is bf16 and the answer stays bf16, but an H100 has FP8 tensor cores: one
    line gives the fp8 weights+KV winner and its gain, the same numbers `--weight-dtype fp8
    --kv-dtype fp8` gives. No such line on an A100 (no FP8), nor when a precision was asked for."""
    rec = recommend(l70, h100, 8)
    fp8 = recommend(l70, h100, 8, weight_dtypes="fp8", kv_dtype="fp8")
    hint = rec.precision_hint
    assert rec.winner.weight_dtype == "bf16" and hint["weight_dtype"] == hint["kv_dtype"] == "fp8"
    assert hint["label"] == fp8.winner.label
    assert hint["output_tok_s_per_gpu"] == pytest.approx(fp8.winner.output_tok_s_per_gpu)
    gain = fp8.winner.output_tok_s_per_gpu / rec.winner.output_tok_s_per_gpu - 1
    assert hint["text"] == (f"fp8 weights+KV: {fp8.winner.label} at batch {fp8.winner.batch} per replica, "
                            f"{gain:+.0%} tok/s per GPU ({fp8.winner.output_tok_s_per_gpu:,.0f} vs "
                            f"{rec.winner.output_tok_s_per_gpu:,.0f}); pass --weight-dtype fp8 --kv-dtype fp8")
    assert gain > 0.5  # half the weight bytes per step and twice the KV room
    assert fp8.precision_hint is None and recommend(l70, h100, 8, weight_dtypes="bf16").precision_hint is None
    from sizer.hardware.gpus import get_gpu

    assert recommend(l70, get_gpu("a100-80g-sxm"), 8).precision_hint is None
    from sizer.cli.recommend import render

    assert f"Precision: {hint['text']}" in render(rec)


def test_why_not_compares_at_equal_sequences_per_gpu_and_says_so(l70, h100):
    """The issue's line 'TP2 PP1 DP4 ... TPOT 115 ms vs 63.6 ms as TP2 PP2 DP2 at batch 256' set a
    2-GPU replica against a 4-GPU one at the same batch (128 vs 64 sequences per GPU). Now a
    sibling is costed at the same sequences per GPU, and where none holds that load the two
    candidates are compared directly at their equal load."""
    rec = recommend(l70, h100, 8, weight_dtypes="fp8", kv_dtype="fp8", top=50)
    line = next(x for x in rec.why_not if x.startswith("TP2 PP1 DP4"))
    assert "as TP2 PP2 DP2 at batch 256" not in line
    same = [x for x in rec.why_not + (rec.winner_reason,) if "at the same" in x]
    assert same and all(re.search(r"at the same [\d.]+ sequences per GPU its decode step is slower: "
                                  r"TPOT [\d.]+ ms vs [\d.]+ ms", x) for x in same)
    mix = recommend(model_from_config(dict(QWEN3_MOE), "qwen3-moe"), h100, 8, tpot_s=0.025, top=50)
    sibling_lines = [x for x in mix.why_not + (mix.winner_reason,) if re.search(r" as TP\d+ PP\d+ DP\d+", x)]
    assert len(sibling_lines) >= 5
    for x in sibling_lines:
        assert re.search(r" as TP\d+ PP\d+ DP\d+(?: EP\d+)? both at [\d.]+ sequences per GPU", x), x


def test_concurrency_throughput_sums_the_replicas_as_estimate_does(h100):
    """Trial 1 item 5 in the recommender: one request over 8 replicas is one request's tokens/s.
    Before, TP1 DP8 at --concurrency 1 counted 8 busy replicas and won with 8x the throughput;
    every candidate's tok/s/GPU now equals estimate()'s for the same split and concurrency."""
    from sizer.model.catalog import get_model

    m8 = get_model("8b")
    rec = recommend(m8, h100, 8, concurrency=1, top=20)
    assert rec.winner.split.dp == 1
    for c in rec.candidates:
        est = estimate(m8, h100, c.split, isl=1024, osl=256, concurrency=1, weight_dtype=c.weight_dtype)
        assert c.output_tok_s_per_gpu == pytest.approx(est.output_tok_s_per_gpu, rel=1e-9), c.split


def test_a_precision_alternative_that_changes_nothing_is_not_advised():
    """Trial 3: DeepSeek-R1 on 16 H200 at a 50 ms TPOT printed "Precision: fp8 KV: ... +0% tok/s
    per GPU (695 vs 695)"; an alternative within half a percent of the winner is no advice."""
    from sizer.plan.alternatives import combine_hints

    assert combine_hints([{"gain": 0.001, "text": "fp8 KV: +0%"}]) is None
    kept = combine_hints([{"gain": 0.001, "text": "a"}, {"gain": 0.3, "text": "b"}, {"gain": None, "text": "c"}])
    assert kept["text"] == "b. Also c" and len(kept["alternatives"]) == 2
