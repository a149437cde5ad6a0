"""`python -m probes.validate`: every parallel strategy reproduces its single-device reference.

End to end on CPU ranks (gloo) at world sizes 2 and 4, with a synthetic hardware profile (so the
tests do not spend a calibration run): every strategy the world hosts matches the reference,
the JSON document is complete and finite, and a wrongly sharded weight is caught (exit 1).
In one process: the Megatron identities the sharding relies on (the column-parallel shards of
Q/K/V and gate/up times the row-parallel shards of O/down sum to the unsharded layer) and the
planner's skip reasons. Nothing here asserts how fast anything ran.
"""

import json
import math
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from probes import block as par  # noqa: E402
from probes import stack  # noqa: E402
from probes import validate as val  # noqa: E402
from sizer.hardware.profile import profile_from_dict  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROW_KEYS = {"strategy", "world_size", "matches_reference", "max_abs_err", "measured_s",
            "predicted_s", "error_pct", "collectives", "tp", "pp", "dp", "ep", "microbatches"}
COLL_KEYS = {"op", "label", "bytes", "measured_s", "predicted_s", "error_pct", "calls", "ranks"}
DIMS = par.Dims(hidden=64, layers=4, heads=8, kv_heads=2, head_dim=8, inter=128, experts=4,
                top_k=2, moe_inter=64, moe_layers=(1, 3))


def _profile_doc() -> dict:
    """A version-1 profile (sizer/hardware/profile.py schema) with round-number CPU constants and a
    one-segment fit per collective at 2 and 4 ranks."""
    fits = [{"op": op, "ranks": n, "nodes": 1,
             "segments": [{"latency_s": 2e-4, "busbw_bytes_per_s": 1e9}]}
            for op in ("all_reduce", "all_to_all", "send_recv", "all_gather") for n in (2, 4)]
    return {"sizer_profile_version": 1, "env": {"backend": "gloo", "device": "cpu", "gpu_id": None},
            "collectives": fits,
            "compute": {"hbm_bytes_per_s": 2e10, "matmul_flops_per_s": {"fp32": 5e10},
                        "matmul_half_rows": 8.0, "kernel_launch_s": {"eager": 5e-6}}}


@pytest.fixture(scope="module")
def profile_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("validate") / "profile.json"
    path.write_text(json.dumps(_profile_doc()))
    return str(path)


def _validate(*args, timeout=180, env=None):
    return subprocess.run([sys.executable, "-m", "probes.validate", "--backend", "gloo", "--quick",
                           "--json", "--reps", "2", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=dict(os.environ, **(env or {})))


# 2 ranks run under PyTorch's own collective checker; 4 ranks under probes/strict.py (NCCL's
# tensor rules). TORCH_DISTRIBUTED_DEBUG=DETAIL cannot check 4 ranks: gloo counts P2P ops in the
# sequence number the checker compares, so the collective after a pipeline clock that not every
# rank sent in is reported as a mismatch (pytorch/pytorch#148976) -- README, "Calibrating".
CHECKERS = {2: {"TORCH_DISTRIBUTED_DEBUG": "DETAIL"}, 4: {"PROBES_STRICT": "1"}}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@pytest.fixture(scope="module", params=[2, 4], ids=["2ranks", "4ranks"])
def run(request, profile_path, tmp_path_factory):
    n = request.param
    html = tmp_path_factory.mktemp(f"html{n}") / "report.html"
    proc = _validate("--world-size", str(n), "--profile", profile_path, "--html", str(html),
                     env=CHECKERS[n])
    return n, proc, html


def test_every_strategy_matches_its_reference(run):
    """DP, TP, PP, EP (and TP x PP at 4 ranks) reproduce the single-device stack within the fp32
    tolerance (max |err| <= 1e-4 x max |reference|); exit 0."""
    n, proc, _ = run
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(proc.stdout)
    got = {r["strategy"] for r in doc["rows"]}
    assert got == ({"dp", "tp", "pp", "ep", "tp+pp"} if n == 4 else {"dp", "tp", "pp", "ep"})
    for r in doc["rows"]:
        assert r["matches_reference"] is True, r
        assert r["max_abs_err"] <= 1e-4 * 10, r  # |reference| is O(1..10) for this stack
        assert r["world_size"] == n
        assert r["tp"] * r["pp"] * r["dp"] == n


def test_json_is_complete_and_finite(run):
    """One document {"rows", "env", "skipped"}; every row and collective has its keys, and every
    time, error and prediction is a finite number (the synthetic profile predicts everything)."""
    n, proc, _ = run
    doc = json.loads(proc.stdout)
    assert set(doc) == {"rows", "env", "skipped"}
    for r in doc["rows"]:
        assert ROW_KEYS <= set(r)
        for key in ("max_abs_err", "measured_s", "predicted_s", "error_pct"):
            assert _finite(r[key]), (key, r[key])
        assert r["measured_s"] > 0 and r["predicted_s"] > 0
        for c in r["collectives"]:
            assert COLL_KEYS <= set(c)
            assert all(_finite(c[k]) for k in ("bytes", "measured_s", "predicted_s", "error_pct"))
    by = {r["strategy"]: r for r in doc["rows"]}
    assert {c["label"] for c in by["tp"]["collectives"]} == {"tp_all_reduce"}
    assert {"ep_dispatch", "ep_combine"} <= {c["label"] for c in by["ep"]["collectives"]}
    assert {c["label"] for c in by["pp"]["collectives"]} == {"pp_send_recv"}
    assert by["dp"]["collectives"] == []  # DP's forward communicates nothing
    if n == 2:
        assert [s["strategy"] for s in doc["skipped"]] == ["tp+pp"]
        assert "at least 4 ranks" in doc["skipped"][0]["reason"]
    else:
        assert doc["skipped"] == []
    assert doc["env"]["world_size"] == n and doc["env"]["backend"] == "gloo"
    assert any("not predictions for a GPU" in note for note in doc["env"]["notes"])


def test_cpu_rows_say_they_are_not_gpu_predictions(run):
    """The table of a CPU run says its times are CPU timings and why their errors are large."""
    _, proc, _ = run
    text = val.render(json.loads(proc.stdout))
    note = next(line for line in text.splitlines() if line.startswith("note: CPU ranks"))
    assert "not predictions for a GPU" in note and "Expect large errors" in note
    assert "loopback" in note and "share" in note


def test_collective_sizes_follow_the_shapes(run):
    """TP all-reduces the (batch x seq x hidden) fp32 activations, twice per layer (Megatron:
    after attention and after the MLP); a pipeline stage sends one micro-batch's activations."""
    n, proc, _ = run
    doc = json.loads(proc.stdout)
    e = doc["env"]
    act = e["batch"] * e["seq"] * e["config"]["hidden_size"] * 4
    by = {r["strategy"]: r for r in doc["rows"]}
    (ar,) = by["tp"]["collectives"]
    assert ar["bytes"] == act
    assert ar["calls"] == 2 * e["config"]["num_hidden_layers"] * n  # one traced forward (--reps 2)
    (sr,) = by["pp"]["collectives"]
    assert sr["bytes"] == act / by["pp"]["microbatches"]


def test_html_report_has_the_charts(run):
    _, _, html = run
    text = html.read_text()
    assert "plotly" in text.lower() and "Predicted vs measured" in text


def test_wrong_shard_is_caught(profile_path):
    """A gate/up shard taken from the neighbouring rank (TP), a batch shard from the wrong
    replica (DP), stages holding the next stage's layers (PP) and ranks holding the wrong experts
    (EP) all break the output: every row is a mismatch and the exit code is 1."""
    proc = _validate("--world-size", "2", "--profile", profile_path, "--inject-bug", "wrong-shard")
    assert proc.returncode == 1, proc.stderr[-3000:]
    rows = json.loads(proc.stdout)["rows"]
    assert len(rows) == 4
    assert all(r["matches_reference"] is False and r["max_rel_err"] > 1e-2 for r in rows)


@pytest.mark.parametrize("args, message", [
    (["--world-size", "2", "--strategies", "tp,xx"], "unknown strategy xx"),
    (["--world-size", "2", "--hidden", "90"], "does not divide into"),
    (["--world-size", "2", "--model", "nope-model"], "unknown model"),
    (["--world-size", "2", "--profile", "/nonexistent.json"], "profile file not found"),
])
def test_bad_input_exits_2_with_one_line(args, message, capsys):
    assert val.main(["--backend", "gloo", "--quick", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_planner_says_why_a_strategy_is_skipped():
    """World 3: 8 heads, 4 experts, 4 layers and batch 4 divide by none of it."""
    runs, skipped = stack.plan(DIMS, 3, 4, par.STRATEGIES)
    reasons = {s["strategy"]: s["reason"] for s in skipped}
    assert runs == []
    assert "batch 4 does not divide over 3 ranks" in reasons["dp"]
    assert "8 attention heads do not divide by TP=3" in reasons["tp"]
    assert "4 layers do not divide into 3 stages" in reasons["pp"]
    assert "4 experts do not divide over EP=3" in reasons["ep"]
    dense = par.Dims(**{**DIMS.__dict__, "experts": 0, "top_k": 0, "moe_layers": ()})
    _, skipped = stack.plan(dense, 2, 4, ("ep",))
    assert "dense" in skipped[0]["reason"]


def test_megatron_shards_sum_to_the_unsharded_layer():
    """Column-parallel Q/K/V (GQA heads, KV replicated when TP > KV heads) then row-parallel O,
    and column-parallel gate/up then row-parallel down: the partial outputs of the TP ranks sum
    to the unsharded sub-layer (Shoeybi et al. 2019, sec. 3) -- and a wrong shard does not."""
    x = par.inputs(DIMS, 2, 16, torch.float32, "cpu")
    rope = par.rotary(DIMS, 16, x.dtype, x.device)
    w = par.layer_weights(DIMS, 0)
    full_a, full_m = par.attention(x, w, DIMS, rope), par.mlp(x, w)
    for tp in (2, 4, 8):  # 2 KV heads: split (2), replicated (4, 8)
        shards = [par.tp_shard(w, DIMS, tp, r) for r in range(tp)]
        assert torch.allclose(sum(par.attention(x, s, DIMS, rope) for s in shards), full_a, atol=1e-5)
        assert torch.allclose(sum(par.mlp(x, s) for s in shards), full_m, atol=1e-5)
        bad = [par.tp_shard(w, DIMS, tp, r, "wrong-shard") for r in range(tp)]
        assert not torch.allclose(sum(par.mlp(x, s) for s in bad), full_m, atol=1e-2)


def test_moe_shards_sum_and_routing_is_top_k():
    """An MoE layer cut inside each expert (TP) sums to the whole; every token reaches exactly
    top_k distinct experts with softmax weights summing to 1 (Mixtral routing)."""
    x = par.inputs(DIMS, 2, 16, torch.float32, "cpu")
    w = par.layer_weights(DIMS, 1)
    full = par.moe(x, w, DIMS)
    assert torch.allclose(sum(par.moe(x, par.tp_shard(w, DIMS, 2, r), DIMS) for r in range(2)),
                          full, atol=1e-5)
    idx, gate = par.route(x.reshape(-1, DIMS.hidden), w["router"], DIMS.top_k)
    assert idx.shape == (32, 2) and bool((idx[:, 0] != idx[:, 1]).all())
    assert torch.allclose(gate.sum(-1), torch.ones(32))


def test_pipeline_prediction_is_the_gpipe_makespan():
    """PP's prediction is (m + p - 1) clocks of one micro-batch's stage time (GPipe forward,
    sizer/cost/pipeline.py), and TP's is step_time without the embedding and LM head, its
    collectives NCCL's (the stack calls torch.distributed, not a custom all-reduce)."""
    from sizer.model.catalog import model_from_config
    from sizer.cost.step import step_time

    cfg, _ = stack.scaled_config(stack.load_spec("mixtral-8x7b"), 128, 4, "fp32", 32)
    model = model_from_config(cfg)
    pred = val.Predictor(profile_from_dict(_profile_doc()), model, 2, "fp32")
    lay = par.Layout("pp", pp=2, micro=4)
    row = pred.row(lay, 4, 32)
    one = pred.row(par.Layout("pp", pp=2, micro=1), 1, 32)  # 1 micro-batch: 2 clocks
    assert row["predicted_s"] == pytest.approx((4 + 2 - 1) / 2 * one["predicted_s"], rel=1e-12)
    tp = pred.row(par.Layout("tp", tp=2), 4, 32)
    res = step_time(model, pred.device, tp=2, phase="prefill", batch=4, seq_len=32,
                    weight_dtype="fp32", topology=pred.topology, profile=pred.profile,
                    comm_algorithms="nccl")  # the stack's torch.distributed collectives
    extra = sum(float(o.time_s) for o in res.ops if o.name in val.EXCLUDED_OPS)
    assert extra > 0 and tp["predicted_s"] == pytest.approx(float(res.time_s) - extra, rel=1e-9)


def test_scaled_config_keeps_the_preset_shape():
    """Mixtral-8x7B (official config: 32 heads, 8 KV heads, 8 experts, top-2) at hidden 128:
    heads and KV heads halve together until head_dim >= 16 (32/8 -> 8/2, head_dim 16), the GQA
    ratio stays 4, experts and top-k stay, the expert width scales with hidden (14336/32 = 448)."""
    cfg, notes = stack.scaled_config(stack.load_spec("mixtral-8x7b"), 128, 4, "fp32", 32)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]) == (8, 2, 16)
    assert (cfg["num_local_experts"], cfg["num_experts_per_tok"]) == (8, 2)
    assert cfg["moe_intermediate_size"] == 448
    assert "layers 32 -> 4" in notes[0]


def test_without_profile_the_quick_calibration_runs_first(monkeypatch):
    """No --profile: validate runs `python -m probes.calibrate --quick --backend B --world-size N
    --out F` as a child process and predicts from the profile it wrote (the child is stubbed
    here; tests/test_calibrate.py runs the real one)."""
    seen = {}

    def fake_run(cmd, **kw):
        seen["cmd"] = cmd
        with open(cmd[cmd.index("--out") + 1], "w") as fh:
            json.dump(_profile_doc(), fh)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(val.subprocess, "run", fake_run)
    prof = val.calibrate_profile("gloo", 4, 60.0)
    assert seen["cmd"][1:8] == ["-m", "probes.calibrate", "--quick", "--backend", "gloo",
                                "--world-size", "4"]
    assert prof.collective("all_reduce", 4) is not None
    assert prof.compute_value("matmul_flops_per_s", "fp32") == 5e10
    assert not os.path.exists(seen["cmd"][seen["cmd"].index("--out") + 1])  # temp file removed


def _in_process(fn, args=(), **kwargs):
    """run_ranks on a one-rank gloo group in this process (no spawn: the test stays fast)."""
    import tempfile

    from probes.launch import RankContext

    with tempfile.TemporaryDirectory() as tmp:
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/rdzv", rank=0,
                                             world_size=1)
        try:
            return [fn(RankContext(0, 1, 0, "gloo", torch.device("cpu"), 1), *args)]
        finally:
            torch.distributed.destroy_process_group()


def test_one_rank_skips_every_strategy_and_runs_the_stack(profile_path, capsys, monkeypatch):
    """One GPU (here one CPU rank): every multi-rank strategy is reported as skipped with the
    reason, and what one device can run -- the unsharded stack, checked against the reference
    and set beside its prediction -- runs; exit 0 (it was exit 2, 'no strategy can run')."""
    import probes.launch

    monkeypatch.setattr(probes.launch, "run_ranks", _in_process)
    code = val.main(["--backend", "gloo", "--world-size", "1", "--quick", "--json", "--reps", "1",
                     "--hidden", "64", "--seq", "8", "--layers", "2", "--profile", profile_path])
    doc = json.loads(capsys.readouterr().out)
    assert code == 0
    (row,) = doc["rows"]
    assert row["strategy"] == "single" and row["matches_reference"] is True
    assert (row["tp"], row["pp"], row["dp"], row["ep"]) == (1, 1, 1, 1)
    assert row["predicted_s"] > 0 and row["collectives"] == []
    assert {s["strategy"]: s["reason"] for s in doc["skipped"]} == {
        s: "needs at least 2 ranks, the world has 1" for s in par.STRATEGIES}


def test_routing_near_ties_do_not_break_a_correct_sharded_run():
    """A router with two experts one ulp apart: a sharded run whose GEMMs sum in another order
    (modelled by a 1e-6 relative change of the hidden states, what other cuBLAS kernels do on a
    GPU) flips tokens between them under exact top-k -- a correct forward would be reported as
    a mismatch. Reusing the reference's routing keeps it within the fp32 tolerance."""
    d = par.Dims(hidden=64, layers=1, heads=8, kv_heads=2, head_dim=8, inter=128, experts=4,
                 top_k=1, moe_inter=64, moe_layers=(0,))
    w = par.layer_weights(d, 0)
    w["router"][:, 1] = w["router"][:, 0] * (1 + 1e-7)  # experts 0 and 1 tie to the last bits
    x = par.inputs(d, 4, 16, torch.float32, "cpu")
    routes = []
    ref = par.moe(x, w, d, record=routes)
    nudged = x * (1 + 1e-6 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))
    free = par.moe(nudged, w, d)
    forced = par.moe(nudged, w, d, routes=routes[0])
    scale = float(ref.abs().max())
    assert float((free - ref).abs().max()) / scale > val.TOLERANCE["fp32"]  # the hazard is real
    assert float((forced - ref).abs().max()) / scale <= val.TOLERANCE["fp32"]
    assert routes[0].shape == (4, 16, 1)


def test_collective_prediction_is_the_profiles_nccl_fit_not_a_custom_all_reduce():
    """Trial 1 item 8: the probe times torch.distributed (NCCL on GPUs), so its prediction is the
    profile's fit: 2e-4 s + 65,536 B x busbw factor 1 (all_reduce over 2 ranks, nccl-tests) /
    1e9 B/s = 265.5 us, labelled "measured fit"; it was vLLM's custom all-reduce curve (under
    10 us) against a 1.4 ms gloo measurement. The stack's step prediction prices NCCL too."""
    from sizer.model.catalog import model_from_config

    cfg, _ = stack.scaled_config(stack.load_spec("mixtral-8x7b"), 128, 4, "fp32", 32)
    pred = val.Predictor(profile_from_dict(_profile_doc()), model_from_config(cfg), 2, "fp32")
    assert pred.collective("all_reduce", 65536, 2) == pytest.approx(2e-4 + 65536 / 1e9, rel=1e-9)
    assert pred.fitted("all_reduce", 2)
    tp = pred.row(par.Layout("tp", tp=2), 4, 32)
    comm = [o["time_s"] for o in tp["predicted_ops"] if o["bound"] == "comm"]
    assert comm and min(comm) >= 2e-4  # every TP all-reduce at least the fit's latency
