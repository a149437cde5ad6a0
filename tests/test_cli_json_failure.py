"""--json on exit 1 (trial 1 item 11): every command prints exactly one JSON document, also when
there is no feasible answer, naming the reason; on exit 2 (bad input) stdout stays empty and the
one stderr line is the answer (README "Exit codes")."""

import json

import pytest

from sizer.cli.main import main


def _run(capsys, argv):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv", [
    ["estimate", "--model", "405b", "--tp", "2"],
    ["simulate", "--model", "405b", "--tp", "2", "--rate", "1", "--requests", "5"],
])
def test_infeasible_prints_an_error_document(capsys, argv):
    """Llama-3.1-405B bf16 needs ~378 GiB of weights: 2x H100 cannot hold them (exit 1). The
    document is the error object, its reason the stderr line."""
    code, out, err = _run(capsys, argv + ["--json"])
    assert code == 1
    doc = json.loads(out)
    assert doc["command"] == argv[0] and doc["exit_code"] == 1 and doc["infeasible"] is True
    assert "does not fit" in doc["error"] and doc["error"] in err


def test_recommend_keeps_its_own_document(capsys):
    """recommend prints its own exit-1 document (rejected splits, what would fit) and no second."""
    code, out, _ = _run(capsys, ["recommend", "--model", "405b", "--gpus", "2", "--json"])
    assert code == 1
    doc = json.loads(out)  # one document: json.loads refuses trailing data
    assert doc["candidates"] == [] and "does not fit" in doc["error"]


def test_a_commands_own_exit_1_document_gets_the_reason(capsys):
    """recommend's targets-not-met document (its closest candidates) carries the stderr reason
    as `error`, as every exit-1 document does: a consumer reads one key."""
    code, out, err = _run(capsys, ["recommend", "--model", "8b", "--gpus", "1", "--tpot", "1ms", "--json"])
    assert code == 1
    doc = json.loads(out)
    assert doc["meets_targets"] is False and doc["candidates"]
    assert doc["error"].startswith("no split of llama-3.1-8b on 1x h100-sxm meets the targets")
    assert doc["error"] in err


def test_text_mode_prints_nothing_on_stdout(capsys):
    code, out, err = _run(capsys, ["estimate", "--model", "405b", "--tp", "2"])
    assert code == 1 and out == "" and "does not fit" in err


@pytest.mark.parametrize("argv", [
    ["estimate", "--model", "8b", "--tp", "3", "--json"],
    ["estimate", "--model", "no-such-model", "--json"],
    ["estimate", "--model", "8b", "--isl", "0", "--json"],
])
def test_bad_input_keeps_stdout_empty(capsys, argv):
    code, out, err = _run(capsys, argv)
    assert code == 2 and out == ""
    assert len([ln for ln in err.splitlines() if not ln.startswith("sizer: warning:")]) == 1
