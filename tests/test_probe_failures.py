"""A calibration on a reserved node gets one shot: bad input is refused before any rank starts,
and a failing, hanging, killed or stopped run keeps what it measured -- on both launch paths.

Spawned (python -m probes.calibrate) and under torchrun --standalone, on CPU gloo ranks, with a
fault injected by the hidden --inject-fault KIND@RANK:PHASE flag: a rank that raises, a rank that
hangs past --timeout, rank 0 aborted outright (as NCCL's watchdog ends a process). Partial
results live at <out>.partial.json, printed at start; the README's calibration section describes
exactly these outcomes. Sizes are tiny (--phases coll, 1 KiB) so each run takes seconds.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

from probes import calibrate, smoke  # noqa: E402
from probes import validate as val  # noqa: E402
from sizer.hardware.profile import load_profile  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--backend", "gloo", "--quick", "--phases", "coll,compute", "--max-bytes", "1KiB"]


def _main(fn, argv, capsys):
    """(exit code, stdout, stderr lines) of an in-process main()."""
    try:
        code = fn(argv)
    except SystemExit as exc:
        code = exc.code
    cap = capsys.readouterr()
    return code, cap.out, cap.err.strip().splitlines()


@pytest.fixture
def no_ranks(monkeypatch):
    """Fail the test if a run would start ranks."""
    def refuse(*a, **k):
        raise AssertionError("ranks were started")
    monkeypatch.setattr(calibrate, "run_ranks", refuse)
    import probes.launch
    monkeypatch.setattr(probes.launch, "run_ranks", refuse)


@pytest.mark.parametrize("args, message", [
    (["--timeout", "nan"], "argument --timeout: duration must be a finite number, got 'nan'"),
    (["--timeout", "inf"], "argument --timeout"),
    (["--timeout", "1e400"], "argument --timeout"),
    (["--timeout", "0"], "argument --timeout: duration must be positive"),
    (["--timeout", "-1"], "argument --timeout"),
    (["--world-size", "0"], "argument --world-size: must be a positive integer"),
    (["--world-size", "100000"], "--world-size 100000: at most"),
    (["--out", "{tmp}"], "is a directory; give a file path"),
    (["--out", "{tmp}/missing/p.json"], "/missing does not exist"),
    (["--out", "/proc/probes-profile.json"], "cannot write in /proc"),
    (["--max-bytes", "1e400"], "cannot parse size '1e400'"),
    (["--quic"], "unrecognized arguments: --quic"),  # no abbreviations: --quic is not --quick
    (["--phases", "coll,gpu"], "unknown phase(s) gpu"),
])
def test_calibrate_refuses_bad_input_before_any_rank_starts(args, message, tmp_path, capsys,
                                                            no_ranks):
    """Exit 2 with one line on stderr, no traceback, and no rank started (today nan, 0 and an
    unwritable --out ran for minutes and then lost everything)."""
    argv = ["--backend", "gloo", "--world-size", "2", "--out", str(tmp_path / "p.json")]
    argv += [a.format(tmp=tmp_path) for a in args]
    code, out, err = _main(calibrate.main, argv, capsys)
    assert code == 2 and out == ""
    assert len(err) == 1 and message in err[0], err
    assert not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize("args, message", [
    (["--timeout", "nan"], "argument --timeout"),
    (["--world-size", "100000"], "--world-size 100000: at most"),
    (["--reps", "0"], "argument --reps: must be a positive integer"),
    (["--rep", "2"], "unrecognized arguments: --rep"),
])
def test_validate_refuses_bad_input_before_any_rank_starts(args, message, capsys, no_ranks):
    code, out, err = _main(val.main, ["--backend", "gloo", "--quick", *args], capsys)
    assert code == 2 and out == ""
    assert len(err) == 1 and message in err[0], err


def test_smoke_without_a_gpu_is_one_line_and_exit_2(capsys, monkeypatch):
    monkeypatch.setattr(smoke, "visible_gpus", lambda: 0)
    code, out, err = _main(smoke.main, [], capsys)
    assert code == 2 and out == ""
    assert len(err) == 1 and err[0].startswith("smoke: error: no CUDA device visible")


def test_smoke_checks_run_on_a_cpu_rank(capsys):
    """The same checks on a one-rank gloo group (GPU-only ones say skip): one line each, then
    one JSON line; exit 0."""
    code, out, _ = _main(smoke.main, ["--device", "cpu", "--no-calibrate"], capsys)
    lines = out.strip().splitlines()
    verdict = json.loads(lines[-1])
    assert code == 0 and verdict["smoke"] == "ok", out
    assert set(verdict["checks"]) == {"device", "gloo_group", "all_reduce", "all_gather",
                                      "reduce_scatter", "all_to_all", "send_recv", "graph",
                                      "events", "gemm_bf16", "gemm_fp8", "copy", "calibrate"}
    assert verdict["checks"]["all_reduce"] == "ok" and verdict["checks"]["gemm_fp8"] == "ok"
    assert len(lines) == len(verdict["checks"]) + 1
    assert not torch.distributed.is_initialized()


# ----- failures mid-run --------------------------------------------------------------------

def _calibrate(args, torchrun=False, timeout=120):
    cmd = [sys.executable, "-m", "probes.calibrate", *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "probes.calibrate", *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=env)


def _partial_line(err: str, partial) -> None:
    assert f"calibrate: partial results go to {partial} as they are measured" in err


def test_spawned_rank_failure_writes_what_was_measured(tmp_path):
    out = tmp_path / "p.json"
    proc = _calibrate(TINY + ["--world-size", "2", "--out", str(out),
                              "--inject-fault", "raise@1:compute"])
    assert proc.returncode == 1, proc.stderr[-2000:]
    _partial_line(proc.stderr, tmp_path / "p.partial.json")
    prof = load_profile(str(out))
    assert prof.env["status"].startswith("partial: rank 1 failed: RuntimeError: injected failure")
    assert prof.collective("all_reduce", 2) is not None  # the sweep's checkpoints survived
    assert not (tmp_path / "p.partial.json").exists()
    assert json.loads(proc.stdout.strip().splitlines()[-1])["status"] == prof.env["status"]


def test_torchrun_peer_failure_rank0_writes_on_sigterm(tmp_path):
    """Rank 1 raises and leaves with exit 1 (never returning normally); torchrun's agent stops
    rank 0 with SIGTERM while it waits in a collective; rank 0 writes what it has to --out."""
    out = tmp_path / "p.json"
    proc = _calibrate(TINY + ["--out", str(out), "--inject-fault", "raise@1:compute"],
                      torchrun=True)
    assert proc.returncode != 0
    _partial_line(proc.stderr, tmp_path / "p.partial.json")
    prof = load_profile(str(out))
    assert prof.env["status"].startswith("partial: stopped by SIGTERM")
    assert prof.env["launcher"] == "torchrun" and prof.collective("all_reduce", 2) is not None
    assert "rank 1 failed: RuntimeError: injected failure" in proc.stderr


def test_torchrun_hang_is_stopped_by_the_run_deadline(tmp_path):
    """Rank 1 hangs; --timeout (the run's deadline, not NCCL's) ends it, and rank 0 -- stopped by
    its own deadline, the agent's SIGTERM or the peer's closed connection, whichever comes
    first -- writes its partial profile."""
    out = tmp_path / "p.json"
    t0 = time.monotonic()
    proc = _calibrate(TINY + ["--out", str(out), "--timeout", "5",
                              "--inject-fault", "hang@1:compute"], torchrun=True)
    assert proc.returncode != 0
    assert time.monotonic() - t0 < 90  # a bound on the hang, not a timing claim
    assert "timed out after 5 s" in proc.stderr
    prof = load_profile(str(out))
    assert prof.env["status"].startswith("partial: ")


def test_torchrun_rank0_killed_outright_leaves_the_partial_profile(tmp_path):
    """Rank 0 aborted (no Python clean-up, as TORCH_NCCL_ASYNC_ERROR_HANDLING=3 ends it): no
    --out, but the partial profile at the printed path loads and holds the collectives."""
    out = tmp_path / "p.json"
    proc = _calibrate(TINY + ["--out", str(out), "--inject-fault", "abort@0:compute"],
                      torchrun=True)
    assert proc.returncode != 0 and not out.exists()
    partial = tmp_path / "p.partial.json"
    _partial_line(proc.stderr, partial)
    prof = load_profile(str(partial))
    assert prof.env["status"] == "partial: running (last step: phase coll done)"
    assert prof.collective("reduce_scatter", 2) is not None


def _sleep(ctx, seconds):
    time.sleep(seconds)


def test_sigterm_to_the_spawning_process_stops_every_rank():
    """SIGTERM to the process that spawned the ranks (a batch system's stop) raises Terminated
    there -- calibrate then writes what was measured, status 'partial: stopped by SIGTERM', exit
    143 -- and no rank is left behind."""
    import multiprocessing
    import threading

    from probes.launch import Terminated, run_ranks

    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(Terminated):
        run_ranks(_sleep, (600,), world_size=1, backend="gloo", timeout_s=120)
    timer.join()
    assert multiprocessing.active_children() == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is undone


def _load(path):
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
