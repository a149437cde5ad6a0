"""`sizer comm`: output keys and exit codes (issue #3)."""

import json
import os

import pytest

from sizer.cli import main

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
    assert code == 0 and "busbw" in out and "algorithm  p2p" in out


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
