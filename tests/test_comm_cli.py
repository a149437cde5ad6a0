"""`sizer comm`: output keys and exit codes (issue #3)."""

import json
import os

import pytest

from sizer.cli.main import main

DATA = os.path.join(os.path.dirname(__file__), "data", "topo")


def run(capsys, *argv):
    code = main(["comm", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_keys(capsys):
    code, out, _ = run(capsys, "--op", "all_reduce", "--bytes", "16MiB", "--gpus", "8",
                       "--gpu", "h100-sxm", "--json")
    doc = json.loads(out)
    assert code == 0
    assert {"time_s", "algbw_GBps", "busbw_GBps", "algorithm"} <= set(doc)
    assert doc["busbw_GBps"] == pytest.approx(doc["algbw_GBps"] * 1.75)
    assert doc["algbw_GBps"] == pytest.approx(16 * 2**20 / doc["time_s"] / 1e9)


def test_sweep_json_lists_one_object_per_size(capsys):
    code, out, _ = run(capsys, "--op", "all_gather", "--sweep", "--gpus", "16", "--nodes", "2",
                       "--gpu", "h100-sxm", "--json")
    doc = json.loads(out)
    assert code == 0 and len(doc["algorithm"]) == 24
    assert doc["algorithm"][0]["bytes"] == 1024 and doc["algorithm"][-1]["bytes"] == 8 * 2**30
    assert {"time_s", "algbw_GBps", "busbw_GBps", "algorithm"} <= set(doc["algorithm"][0])


def test_text_output_and_topology_file(capsys):
    code, out, _ = run(capsys, "--op", "send_recv", "--bytes", "1GB", "--gpus", "4",
                       "--gpu", "a100-80g-pcie", "--topology-file",
                       os.path.join(DATA, "a100_pcie_4gpu_nvlink_pairs.txt"))
    assert code == 0 and "busbw" in out and "algorithm  NCCL p2p" in out


@pytest.mark.parametrize("argv,needle", [
    (["--op", "all_reduse", "--bytes", "1MB", "--gpus", "8"], "all_reduse"),
    (["--op", "all_reduce", "--bytes", "1MB", "--gpus", "8", "--topology", "ring9"], "ring9"),
    (["--op", "all_reduce", "--bytes", "1MB", "--gpus", "16"], "per node"),
    (["--op", "all_reduce", "--bytes", "1MB", "--gpus", "8", "--nodes", "3"], "divide"),
    (["--op", "all_reduce", "--bytes", "12 parsecs", "--gpus", "8"], "parse"),
    (["--op", "all_reduce", "--bytes", "1MB", "--gpus", "8", "--topology-file", __file__], "header"),
    (["--op", "all_reduce", "--bytes", "1MB", "--gpus", "8", "--topology-file", "/no/such"],
     "not found"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1


def cpu_profile(tmp_path, ranks=2, max_bytes=2**20, gpu_id=None):
    """What `python -m probes.calibrate --backend gloo --world-size 2 --quick` writes, trimmed:
    env of a CPU run, one all_reduce fit, raw nccl-tests rows 8 B .. 1 MiB (x4 per step)."""
    sizes = [8 * 4**k for k in range(10) if 8 * 4**k <= max_bytes] + [max_bytes]
    rows = [{"op": "all_reduce", "size_bytes": s, "ranks": ranks, "nodes": 1,
             "time_us": 300.0 + s / 1e3, "wrong": 0} for s in sizes]
    doc = {"sizer_profile_version": 1,
           "env": {"backend": "gloo", "device": "cpu", "gpu_id": gpu_id, "world_size": ranks},
           "collectives": [{"op": "all_reduce", "ranks": ranks, "nodes": 1,
                            "segments": [{"latency_s": 3.0e-4, "busbw_bytes_per_s": 1e9}]}],
           "raw": {"collectives": rows}}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_profile_from_another_device_is_warned(capsys, tmp_path):
    """A CPU (gloo) profile used for --gpu h100-sxm: its fit replaces the H100's model, so stderr
    says where it was measured (cli_common.check_profile_device); an h100-sxm profile is quiet."""
    argv = ("--op", "all_reduce", "--bytes", "16KiB", "--gpus", "2", "--nccl-only")
    code, out, err = run(capsys, *argv, "--profile", cpu_profile(tmp_path))
    assert code == 0 and "measured on cpu, not h100-sxm" in err
    code, out, err = run(capsys, *argv, "--profile", cpu_profile(tmp_path, gpu_id="h100-sxm"))
    assert code == 0 and err == ""


def test_sizes_beyond_the_profiles_range_are_extrapolated(capsys, tmp_path):
    """Raw rows reach 1 MiB: the sweep says "measured" up to 1 MiB (11 sizes from 1 KiB) and
    "measured (extrapolated)" for the 13 sizes 2 MiB .. 8 GiB, noted once on stderr."""
    prof = cpu_profile(tmp_path)
    code, out, err = run(capsys, "--op", "all_reduce", "--gpus", "2", "--sweep", "--profile", prof,
                         "--nccl-only")  # NCCL's curve: the custom all-reduce keeps its own (#15.7)
    lines = [ln for ln in out.splitlines() if ln.rstrip().endswith(("measured", "(extrapolated)"))]
    assert code == 0 and len(lines) == 24
    assert [ln.endswith("measured (extrapolated)") for ln in lines] == [False] * 11 + [True] * 13
    assert lines[10].split()[:2] == ["1.00", "MiB"]
    assert err.count("up to 1.00 MiB") == 1
    code, out, _ = run(capsys, "--op", "all_reduce", "--gpus", "2", "--sweep", "--profile", prof,
                       "--json", "--nccl-only")
    doc = json.loads(out)
    assert doc["profile_max_bytes"] == 2**20 and isinstance(doc["profile_max_bytes"], int)
    assert [r["algorithm"] for r in doc["algorithm"]] == ["measured"] * 11 + [
        "measured (extrapolated)"] * 13


def test_missing_profile_fit_is_said_once(capsys, tmp_path):
    """A 2-rank profile asked about 8 ranks: the catalog model answers, and stderr says so."""
    prof = cpu_profile(tmp_path, gpu_id="h100-sxm")
    code, out, err = run(capsys, "--op", "all_reduce", "--bytes", "1MiB", "--gpus", "8",
                         "--profile", prof)
    assert code == 0 and "algorithm  measured" not in out
    assert "profile has no all_reduce fit for 8 ranks; using the default model" in err
    assert "2 ranks on 1 node" in err and len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "--op", "all_reduce", "--bytes", "1MiB", "--gpus", "2",
                         "--profile", prof, "--nccl-only")  # custom all-reduce keeps its curve (#15.7)
    assert code == 0 and "algorithm  measured" in out and err == ""


def test_custom_allreduce_is_labelled_and_footnoted(capsys):
    """8 x H100 all_reduce: up to 8 MiB the engines' custom all-reduce (vLLM's
    custom_all_reduce max_size default 8 MiB), NCCL above; a one-line footnote explains the
    busbw step and names --nccl-only, which prints NCCL's algorithms only and no footnote."""
    code, out, _ = run(capsys, "--op", "all_reduce", "--gpus", "8", "--sweep")
    table = out.splitlines()[2:26]
    custom = [ln for ln in table if "custom" in ln]
    assert code == 0 and len(custom) == 14  # 1 KiB .. 8 MiB
    assert all(ln.endswith(("custom one-shot (vLLM)", "custom two-shot (vLLM)")) for ln in custom)
    assert all(" NCCL " in ln for ln in table[14:])
    notes = [ln for ln in out.splitlines()[26:] if "--nccl-only" in ln]
    assert len(notes) == 1 and "8 MiB" in notes[0]
    code, out, _ = run(capsys, "--op", "all_reduce", "--gpus", "8", "--sweep", "--nccl-only")
    assert code == 0 and "custom" not in out and "--nccl-only" not in out


@pytest.mark.parametrize("argv", [["--bytes", "-16MiB"], ["--bytes=-16MiB"], ["--bytes", "-16"],
                                  ["--bytes=-0.5GB"], ["--bytes", "0"]])
def test_negative_size_says_positive(capsys, argv):
    code, out, err = run(capsys, "--op", "all_reduce", "--gpus", "8", *argv)
    assert code == 2 and out == "" and "size must be positive" in err
    assert len(err.strip().splitlines()) == 1


def test_negative_garbage_is_a_parse_error(capsys):
    code, _, err = run(capsys, "--op", "all_reduce", "--gpus", "8", "--bytes", "-12 parsecs")
    assert code == 2 and "cannot parse size '-12 parsecs'" in err


def test_a_gloo_profile_is_not_said_to_have_timed_nccl(capsys, tmp_path):
    """Trial 1 item 8: the custom-all-reduce warning named NCCL for a profile whose env says gloo
    (CPU ranks); it names the backend the profile records."""
    prof = cpu_profile(tmp_path, gpu_id="h100-sxm")
    code, _, err = run(capsys, "--op", "all_reduce", "--bytes", "64KiB", "--gpus", "2", "--profile", prof)
    assert code == 0 and "timed gloo (CPU ranks), not the engines' custom all-reduce" in err
    assert "timed NCCL" not in err
