"""`python -m probes.calibrate` end to end on CPU ranks (gloo), and the rank launcher's failure path.

These run real processes: a --quick calibration at 2 and 4 ranks, and run_ranks with a rank
that raises. They check identities (busbw = algbw x factor, zero wrong values, what nccl-tests'
size column means) and that sizer accepts the profile -- never how fast anything was.
"""

import json
import multiprocessing
import os
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from probes.harness import busbw_factor  # noqa: E402
from probes.launch import RankFailure, run_ranks  # noqa: E402
from sizer.hardware.profile import load_profile  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")


def _calibrate(*args, timeout=240, env=None):
    return subprocess.run([sys.executable, "-m", "probes.calibrate", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})))


@pytest.fixture(scope="module", params=[2, 4], ids=["2ranks", "4ranks"])
def quick_run(request, tmp_path_factory):
    """2 ranks under PyTorch's collective checker (TORCH_DISTRIBUTED_DEBUG=DETAIL; at 4 ranks it
    misreads the P2P matrix, pytorch/pytorch#148976), 4 ranks under probes/strict.py with every
    rank's calls recorded for the lockstep replay."""
    n = request.param
    out = tmp_path_factory.mktemp(f"cal{n}") / "profile.json"
    trace = tmp_path_factory.mktemp(f"trace{n}")
    env = ({"TORCH_DISTRIBUTED_DEBUG": "DETAIL"} if n == 2 else
           {"PROBES_STRICT": "1", "PROBES_TRACE_DIR": str(trace)})
    proc = _calibrate("--backend", "gloo", "--world-size", str(n), "--quick", "--out", str(out),
                      env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return n, out, proc, json.loads(out.read_text()), trace


def test_quick_run_has_zero_wrong_values(quick_run):
    """nccl-tests' #wrong: every element of every checked collective equals its known value."""
    n, _, proc, doc, _ = quick_run
    rows = doc["raw"]["collectives"]
    assert rows and all(r["wrong"] == 0 for r in rows)
    assert doc["raw"]["wrong_total"] == 0
    last = json.loads(proc.stdout.strip().splitlines()[-1])  # one JSON line last on stdout
    assert last["wrong"] == 0 and last["status"] == "complete"


def test_rows_have_nccl_tests_fields_and_busbw_factor(quick_run):
    """busbw = algbw x factor of nccl-tests doc/PERFORMANCE.md for every row, algbw = size/time."""
    n, _, _, doc, _ = quick_run
    fields = {"op", "size_bytes", "count", "dtype", "ranks", "in_place", "time_us",
              "algbw_GBps", "busbw_GBps", "wrong"}
    for r in doc["raw"]["collectives"]:
        assert fields <= set(r)
        assert r["algbw_GBps"] == pytest.approx(r["size_bytes"] / (r["time_us"] * 1e3), rel=1e-9)
        assert r["busbw_GBps"] == pytest.approx(r["algbw_GBps"] * busbw_factor(r["op"], r["ranks"]),
                                                rel=1e-12)
    assert {r["ranks"] for r in doc["raw"]["collectives"]} == ({2} if n == 2 else {2, 4})


def test_size_column_means_what_nccl_tests_means(quick_run):
    """size: all_reduce the per-rank buffer (= count x 4 B), all_gather the gathered output and
    reduce_scatter the whole input (= count x ranks x 4 B, count being the per-rank chunk),
    send_recv the bytes each rank sends; all_reduce is in place (torch's all_reduce is)."""
    _, _, _, doc, _ = quick_run
    for r in doc["raw"]["collectives"]:
        per_rank_chunk = r["op"] in ("all_gather", "reduce_scatter", "all_to_all")
        assert r["size_bytes"] == r["count"] * 4 * (r["ranks"] if per_rank_chunk else 1)
        assert r["in_place"] == (r["op"] == "all_reduce")
        assert r["dtype"] == "float"


def test_profile_loads_in_sizer_with_fits(quick_run):
    """The file is a version-1 profile sizer accepts, with a fit per op and group size, compute
    constants, provenance 'measured', and the env of a gloo CPU run."""
    n, out, _, doc, _ = quick_run
    prof = load_profile(str(out))
    for op in OPS:
        for ranks in {2, n}:
            c = prof.collective(op, ranks, 1)
            assert c is not None, (op, ranks)
            assert all(lat >= 0 and bw > 0 for lat, bw in c.segments)
            assert {"median", "max"} <= set(c.fit_error_pct)
    assert prof.compute_value("hbm_bytes_per_s") > 0
    assert prof.compute_value("matmul_flops_per_s", "fp32") > 0
    assert prof.compute_value("attention_flops_per_s", "fp32") > 0
    assert prof.compute_value("matmul_half_rows") is not None
    assert prof.compute["kernel_launch_s"]["eager"] > 0
    assert prof.provenance()[f"collective:all_reduce:{n}x1"] == "measured"
    assert prof.env["backend"] == "gloo" and prof.env["device"] == "cpu"
    assert prof.env["world_size"] == n and prof.env["collectives_measured"] is True
    assert prof.env["phases"] == ["env", "coll", "p2p", "compute", "forward"]


def test_p2p_matrix_covers_every_pair(quick_run):
    n, _, _, doc, _ = quick_run
    pairs = {(r["src"], r["dst"]) for r in doc["raw"]["p2p_matrix"]}
    assert pairs == {(i, j) for i in range(n) for j in range(i + 1, n)}
    assert all(r["bw_GBps"] > 0 and r["latency_us"] > 0 for r in doc["raw"]["p2p_matrix"])


def test_sharded_forward_rows_carry_model_prediction(quick_run):
    """Each TP / EP shard was timed and put back through the fitted time model."""
    _, _, _, doc, _ = quick_run
    fwd = doc["raw"]["sharded_forward"]
    assert {(r["model"], r["tp"], r["ep"]) for r in fwd} >= {("dense", 1, 1), ("dense", 2, 1),
                                                            ("moe", 1, 2)}
    assert all(r["predicted_s"] > 0 and r["time_s"] > 0 for r in fwd)


def test_single_rank_profile_says_collectives_not_measured(tmp_path):
    """One rank: compute only; the profile says collectives were not measured."""
    out = tmp_path / "one.json"
    proc = _calibrate("--backend", "gloo", "--world-size", "1", "--quick", "--phases",
                      "coll,compute", "--out", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    prof = load_profile(str(out))
    assert prof.collectives == () and prof.env["collectives_measured"] is False
    assert any("collectives not measured" in note for note in prof.env["notes"])
    assert prof.compute_value("hbm_bytes_per_s") > 0


def test_no_gpu_without_gloo_exits_2(capsys, monkeypatch):
    from probes import calibrate, launch

    monkeypatch.setattr(launch.devmod, "visible_gpus", lambda: 0)
    assert calibrate.main(["--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["calibrate: error: no GPUs found; use --backend gloo --world-size N"]


def test_every_rank_issues_the_same_collectives_and_nccl_could_run_them(quick_run):
    """2 ranks: PyTorch's checker (DETAIL) compared every collective's fingerprint across the
    ranks and found nothing. 4 ranks, under probes/strict.py: no tensor NCCL would refuse (else
    the run fails), every group's members issued the same collective sequence, and the recorded
    calls of all ranks complete when replayed with NCCL's blocking semantics."""
    from probes import strict

    n, _, proc, _, trace = quick_run
    if n == 2:
        assert "Detected mismatch" not in proc.stderr and not list(trace.iterdir())
        return
    logs = strict.load_logs(str(trace))
    assert sorted(logs) == [0, 1, 2, 3]
    assert strict.same_sequences(logs) == [] and strict.lockstep(logs) == []


def test_rows_say_how_they_were_timed_and_what_the_fit_used(quick_run):
    """Each collective row records its timing mode (eager on CPU; CUDA-graph replay for small
    messages on GPUs); each copy row whether the HBM fit used it (all of them on CPU ranks)."""
    _, _, _, doc, _ = quick_run
    assert {r["timing"] for r in doc["raw"]["collectives"]} == {"eager"}
    assert doc["env"]["collective_timing"] == ["eager"]
    assert doc["raw"]["membw"] and all(r["fit"] is True for r in doc["raw"]["membw"])
    assert "comm_env" in doc["env"] and "gpu_clocks" in doc["env"] and "launcher" in doc["env"]


# --- run_ranks: failure and timeout stop every rank ----------------------------------------


def _fail_on_rank1(ctx):
    """Rank 1 raises; the others would wait (in a barrier, then asleep) for ever."""
    if ctx.rank == 1:
        raise ValueError("injected failure")
    torch.distributed.barrier()
    time.sleep(600)


def _sleep(ctx, seconds):
    time.sleep(seconds)


def _echo(ctx, x):
    t = torch.tensor([ctx.rank + 1.0])
    torch.distributed.all_reduce(t)
    return ctx.rank, ctx.world_size, x, t.item()


def test_run_ranks_returns_results_in_rank_order():
    """all_reduce of rank+1 over 3 ranks is 6 on each; results come back by rank."""
    assert run_ranks(_echo, ("x",), world_size=3, backend="gloo") == [
        (0, 3, "x", 6.0), (1, 3, "x", 6.0), (2, 3, "x", 6.0)]


def test_injected_failure_on_rank1_stops_all_ranks():
    """The failure (not the 120 s timeout) ends the run: the message names rank 1 and its error,
    and no child process is left behind."""
    with pytest.raises(RankFailure) as info:
        run_ranks(_fail_on_rank1, world_size=3, backend="gloo", timeout_s=120)
    msg = str(info.value)
    assert msg.startswith("rank 1 failed: ValueError: injected failure")
    assert "timed out" not in msg
    assert info.value.partial_results[1] is None
    assert multiprocessing.active_children() == []


def test_hang_is_stopped_by_timeout():
    with pytest.raises(RankFailure) as info:
        run_ranks(_sleep, (600,), world_size=2, backend="gloo", timeout_s=3)
    assert "timed out after 3 s" in str(info.value)
    assert multiprocessing.active_children() == []


def test_profile_changes_sizer_comm_prediction(quick_run, capsys):
    """`sizer comm --profile` uses the measured fit for (op, ranks, nodes): the answer moves
    from the catalog model to min_s(latency + size*factor/busbw) of the profile's segments."""
    from sizer.cli.main import main
    from sizer.hardware.profile import load_profile as load

    n, out, _, _, _ = quick_run
    args = ["comm", "--op", "all_reduce", "--bytes", "1MiB", "--gpus", str(n), "--json",
            "--nccl-only"]  # a gloo/NCCL profile does not replace vLLM's custom all-reduce (#15.7)
    assert main(args) == 0
    default = json.loads(capsys.readouterr().out)
    assert main(args + ["--profile", str(out)]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["algorithm"] == "measured" and default["algorithm"] != "measured"
    segs = load(str(out)).collective("all_reduce", n, 1).segments
    f = busbw_factor("all_reduce", n)
    assert measured["time_s"] == pytest.approx(min(lat + 2**20 * f / bw for lat, bw in segs))
    assert measured["time_s"] != pytest.approx(default["time_s"], rel=0.01)


def test_interrupt_writes_partial_profile(tmp_path):
    """Ctrl-C (SIGINT to the process group) mid-run: exit 130, and the profile file still holds
    what was measured, loads in sizer, and says 'partial: interrupted'."""
    import signal

    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "probes.calibrate", "--backend", "gloo", "--world-size", "2",
         "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # wait until the ranks run
        if any("spawn_main" in _cmdline(pid) for pid in _children(proc.pid)):
            time.sleep(1.0)
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the interrupt arrived")
    assert proc.returncode == 130, err[-2000:]
    prof = load_profile(str(out))
    assert prof.env["status"] == "partial: interrupted"


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except OSError:
        return []


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode()
    except OSError:
        return ""
