"""--emit never prints a command whose model length the engine refuses (trial 2 item 2).

vLLM rejects a max_model_len above the config's derived maximum unless
VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (vllm/config/model.py _get_and_verify_max_len); SGLang rejects a
longer context_length unless SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1. So isl + osl past the
model's max_position_embeddings with --emit is bad input: exit 2, one line on stderr, nothing on
stdout. Without --emit it stays a warning and an answer."""

import pytest

from sizer.cli.main import main

LONG = ["--model", "70b", "--tp", "8", "--isl", "200000", "--osl", "10"]  # Llama-3.1-70B: 131072


@pytest.mark.parametrize("engine,env", [("vllm", "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"),
                                        ("sglang", "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1")])
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_estimate_emit_past_the_maximum_is_bad_input(capsys, engine, env, json_flag):
    assert main(["estimate", *LONG, "--emit", engine, *json_flag]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "200010 tokens" in lines[0] and "maximum of 131072" in lines[0]
    assert env in lines[0]


def test_without_emit_it_is_an_answer_with_a_warning(capsys):
    assert main(["estimate", *LONG]) == 0
    assert "exceeds llama-3.1-70b's maximum context of 131072" in capsys.readouterr().err


def test_the_maximum_itself_is_emitted(capsys):
    assert main(["estimate", "--model", "70b", "--tp", "8", "--isl", "131000", "--osl", "72", "--emit", "vllm"]) == 0
    assert "--max-model-len 131072" in capsys.readouterr().out


def test_recommend_refuses_it_before_searching(capsys):
    assert main(["recommend", "--model", "70b", "--gpus", "8", "--isl", "200000", "--osl", "10",
                 "--emit", "vllm"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.strip().splitlines()) == 1 and "--emit vllm" in err
