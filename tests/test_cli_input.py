"""Every flag of every `sizer` command: bad values are one line on stderr and exit 2, and no flag
is silently ignored or guessed (issue #16 items 5, 6, 7, 9). The flag lists come from the parsers
themselves, so a command or flag added later is covered (and must use the shared parsers)."""

import argparse
import json

import pytest

from sizer.cli import common
from sizer.cli.main import build_parser, main
from sizer.output import NonFiniteOutputError, emit_json


def _subparsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, sub.choices


BAD = {  # the shared flag types (sizer/cli/common.py) and values each must refuse
    common.positive_int: ["0", "-1", "2.7", "1e3", "nan", "inf", "", "x", str(10**30), str(common.MAX_COUNT + 1)],
    common.gpu_count: ["0", "-1", "2.7", "nan", "", str(common.MAX_GPUS + 1)],
    common.size: ["0", "0.3", "-16MiB", "1e400", "nan", "inf", "", "16XB", "1e30"],
    common.duration: ["0", "-5ms", "inf", "nan", "", "1e400", "soon"],
    common.tpot_target: ["0", "-5ms", "inf", "nan", "", "1e400", "soon"],
    common.ttft_target: ["0", "-5ms", "inf", "nan", "", "1e400", "soon"],
    common.fraction: ["0", "1.5", "-0.1", "nan", "inf", ""],
    common.price: ["0", "-2", "inf", "nan", "", "1e400"],
    common.price_list: ["0", "2,-2", "2,inf", "nan", "", "2,", ",2", "2,x"],
    common.request_rate: ["0", "-2", "inf", "nan", "", "1e400", "1e10", "10rps"],
    common.nonempty: ["", "  "],
    common.non_negative_int: ["-1", "2.7", "nan", "", "x", str(common.MAX_GPUS + 1)],
}
RANGED = ["nan", "inf", "", "x", "1e400", "-1e9", "1e9"]  # bounded_float(low, high) types


def _bad_values(kind):
    return RANGED if getattr(kind, "__name__", "").startswith("number in [") else BAD.get(kind)


def _typed_flags():
    out = []
    for cmd, p in _subparsers()[1].items():
        for action in p._actions:
            if action.type is not None and action.option_strings:
                out.append((cmd, action.option_strings[0], action.type))
    return out


def test_every_parser_refuses_abbreviations():
    parser, subs = _subparsers()
    assert parser.allow_abbrev is False and all(p.allow_abbrev is False for p in subs.values())


def test_recommend_tp_is_not_read_as_tpot(capsys):
    assert main(["recommend", "--model", "8b", "--gpus", "8", "--tp", "4"]) == 2
    assert "unrecognized arguments: --tp 4" in capsys.readouterr().err


def test_every_typed_flag_uses_a_shared_parser():
    """No bare int/float: they accept nan, inf, 0 and 2.7 (truncated) silently."""
    odd = [(c, f, getattr(t, "__name__", t)) for c, f, t in _typed_flags() if _bad_values(t) is None]
    assert not odd, odd


@pytest.mark.parametrize("cmd, flag, kind", _typed_flags())
def test_bad_values_of_every_flag_are_one_line_exit_2(capsys, cmd, flag, kind):
    for value in _bad_values(kind):
        assert main([cmd, flag, value]) == 2, (cmd, flag, value)
        err = capsys.readouterr().err
        assert f"argument {flag}: " in err and len(err.strip().splitlines()) == 1, err


def test_no_command_is_one_line_and_help_only_on_request(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sizer: error: give a command: models, gpus") and err.count("\n") == 1
    assert main(["--help"]) == 0
    assert "usage: sizer" in capsys.readouterr().out


@pytest.mark.parametrize("argv, needle", [
    (["step", "--model", "8b", "--context", "64", "--engine", "ollama"], "unknown engine 'ollama'"),
    (["step", "--model", "8b", "--context", "64", "--gpu-memory-utilization", "0.5"], "unrecognized"),
    (["step", "--model", "8b", "--context", "64", "--max-num-seqs", "8"], "unrecognized"),
    (["memory", "--model", "8b", "--engine", "ollama"], "unknown engine 'ollama'"),
    (["estimate", "--model", "8b", "--engine", "ollama"], "unknown engine 'ollama'"),
    (["recommend", "--model", "8b", "--gpus", "1", "--engine", "ollama"], "unknown engine 'ollama'"),
    (["memory", "--model", "8b", "--engine", "sglang", "--gpu-memory-utilization", "0.5"], "vllm's flag"),
    (["step", "--model", "8b", "--context", "64", "--kv-cache-free-gpu-mem-fraction", "0.5"], "unrecognized"),
    (["step", "--model", "8b", "--context", "64", "--max-num-batched-tokens", "512"], "unrecognized"),
    (["comm", "--op", "all_reduce", "--gpus", "2", "--sweep", "--bytes", "4"], "not both"),
    (["step", "--model", "8b", "--context", "64", "--nodes", "2"], "--nodes 2 does not divide"),
    (["estimate", "--model", "8b", "--tp", "2", "--inter-node", "ndr"], "needs --nodes 2 or more"),
    (["step", "--model", "8b", "--context", "64", "--topology", "nvswitch", "--gpu", "l40s"], "no NVLink"),
    (["recommend", "--model", "8b", "--gpus", "2", "--ttft", ""], "argument --ttft"),
    (["estimate", "--model", "8b", "--topology-file", ""], "argument --topology-file"),
    (["estimate", "--model", "8b", "--profile", ""], "argument --profile"),
])
def test_flags_a_command_would_ignore_or_guess_are_errors(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err


def test_estimate_reads_the_engines_cap_names_too(capsys):
    """--max-num-seqs (vLLM's name, from the engine flags) caps sequences like --max-batch; it
    was accepted and ignored. Two different values for one cap are an error."""
    base = ["estimate", "--model", "8b", "--json"]  # default: the largest concurrency up to the cap
    docs = []
    for extra in ([], ["--max-batch", "4"], ["--max-num-seqs", "4"]):
        assert main(base + extra) == 0
        docs.append(json.loads(capsys.readouterr().out))
    assert docs[1] == docs[2] and docs[1]["batch"] == 4 != docs[0]["batch"]
    assert main(base + ["--max-batch", "4", "--max-num-seqs", "8"]) == 2
    assert "name the same engine cap" in capsys.readouterr().err


def test_the_largest_prefill_prints_a_bounded_document(capsys):
    """isl 1e9 (the bound) in 256-token chunks over PP2 is 3.9e6 micro-batches per sequence:
    their Gantt cells once took minutes and gigabytes to print; the JSON now lists cells only up
    to sizer.cost.pipeline.MAX_JSON_CELLS and counts the rest."""
    argv = ["estimate", "--model", "8b", "--pp", "2", "--batch", "8", "--max-num-tokens", "256",
            "--isl", str(common.MAX_COUNT), "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    prefill = json.loads(out)["pipeline"]["prefill"]
    assert len(out) < 100_000 and prefill["schedule"] == []
    assert prefill["schedule_cells_omitted"] == prefill["microbatches"] * prefill["stages"] > 4096


def test_a_non_finite_number_is_never_printed_as_json(capsys, monkeypatch):
    with pytest.raises(NonFiniteOutputError, match=r"\$\.a\[1\]\.b"):
        emit_json({"a": [1.0, {"b": float("nan")}]})
    assert capsys.readouterr().out == ""
    import sizer.cli.gpus as gpus_cli

    monkeypatch.setattr(gpus_cli, "gpu_record", lambda g: {"id": g.id, "tflops": float("inf")})
    assert main(["gpus", "h100-sxm", "--json"]) == 1
    out, err = capsys.readouterr()
    assert "non-finite number at $[0].tflops" in err and err.count("\n") == 1
    # exit 1 under --json: the one document is the error object, not the broken answer
    assert json.loads(out) == {"command": "gpus", "exit_code": 1, "infeasible": False,
                               "error": err.strip().removeprefix("sizer: error: ")}


def test_valid_json_still_prints(capsys):
    assert main(["gpus", "h100-sxm", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["id"] == "h100-sxm"
