"""Input traps of trial 1 item 14: a latency target without a unit, simulate --concurrency
without --rate, and a Hugging Face repo id sizer has no preset for."""

import pytest

from sizer.cli.main import main
from sizer.errors import InputError
from sizer.model.catalog import get_model


@pytest.mark.parametrize("flag, text, warned", [
    ("--tpot", "50", True), ("--tpot", "1e3", True), ("--tpot", "1", True),
    ("--tpot", "0.05", False), ("--tpot", "50ms", False), ("--tpot", "2s", False),
    ("--ttft", "50", True), ("--ttft", "10", True), ("--ttft", "2", False), ("--ttft", "50s", False)])
def test_bare_latency_target_in_implausible_seconds_warns(capsys, flag, text, warned):
    """A bare number is seconds (README); --tpot >= 1 or --ttft >= 10 without a unit almost surely
    meant milliseconds: one warning on stderr, the answer as given (exit 0 or 1, never 2)."""
    code = main(["recommend", "--model", "8b", "--gpus", "1", flag, text])
    err = capsys.readouterr().err
    assert code in (0, 1)
    assert (f"warning: {flag} {text} is read as" in err) is warned, err
    if warned:
        assert f"write {text}ms if you meant milliseconds" in err


def test_simulate_concurrency_without_rate_is_a_closed_loop(capsys):
    """vLLM's benchmark sends at --request-rate inf (its default) with --max-concurrency N: the
    same here, said on stderr; before, this was exit 2 '--rate is required'."""
    code = main(["simulate", "--model", "8b", "--concurrency", "4", "--requests", "8"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "--concurrency 4 without --rate" in err and "--rate inf" in err
    assert "inf (all at t=0), concurrency 4" in out.splitlines()[0]
    assert main(["simulate", "--model", "8b", "--requests", "8"]) == 2
    assert "--rate is required" in capsys.readouterr().err
    # a closed loop never ends on its own clock: --duration cannot bound it, say what can
    assert main(["simulate", "--model", "8b", "--concurrency", "4", "--duration", "30"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "give --requests N" in err and err.count("\n") == 1


def test_unknown_repo_id_names_closest_presets_and_how_to_pass_a_config():
    with pytest.raises(InputError) as err:
        get_model("meta-llama/Llama-3.1-405B-Instruct-FP8")
    msg = str(err.value)
    assert "is not a preset" in msg and "config file not found" not in msg
    # a quantized release of a preset's model: the preset with that weight dtype
    assert "closest: --model Llama-3.1-405B-Instruct --weight-dtype fp8" in msg
    assert "huggingface-cli download meta-llama/Llama-3.1-405B-Instruct-FP8 config.json" in msg
    # NVIDIA's ModelOpt FP4 releases are NVFP4 (W4A4) with FP8 KV, not sizer's fp4 (MXFP4 weights)
    with pytest.raises(InputError) as err:
        get_model("nvidia/DeepSeek-R1-FP4")
    msg = str(err.value)
    assert "--model DeepSeek-R1 --weight-dtype nvfp4 --kv-dtype fp8 if its hf_quant_config.json" in msg
    assert "download nvidia/DeepSeek-R1-FP4 config.json hf_quant_config.json" in msg
    with pytest.raises(InputError, match="--weight-dtype int4"):
        get_model("hugging-quants/Llama-3.1-8B-Instruct-AWQ-INT4")
    assert get_model("meta-llama/Llama-3.1-70B").name == "llama-3.1-70b"  # an alias still resolves


def test_unknown_repo_id_is_one_line_exit_2(capsys):
    assert main(["memory", "--model", "Qwen/Qwen3-8B"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "closest presets: qwen3" in err[0]


def test_a_usage_error_is_the_one_line_even_after_a_flag_warning(capsys):
    """A bare --tpot 50 warns while the flags are parsed; when another flag is then refused, the
    refusal alone is the one stderr line of exit 2 (the warning is about a run that never ran)."""
    assert main(["recommend", "--model", "70b", "--gpus", "8", "--tpot", "50", "--isl", "0"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "argument --isl" in err
    assert main(["recommend", "--model", "70b", "--gpus", "8", "--tpot", "50", "--json"]) in (0, 1)
    assert "--tpot 50 is read as 50 seconds" in capsys.readouterr().err  # held, then written


def test_nodes_that_split_a_tp_group_say_so(capsys):
    """Trial 3: `estimate --tp 4 --nodes 2` ran TP4 as 2 + 2 GPUs over the inter-node link
    (TPOT 24.2 vs 17.8 ms on one node) without a word; TP16 over two nodes of 8 cannot be helped
    and gets no warning."""
    assert main(["estimate", "--model", "70b", "--tp", "4", "--nodes", "2", "--batch", "1"]) == 0
    err = capsys.readouterr().err
    assert "every TP4 group spans nodes" in err and "--nodes 1 keeps each TP group inside a node" in err
    assert main(["estimate", "--model", "405b", "--tp", "16", "--nodes", "2", "--batch", "1"]) == 0
    assert "spans nodes" not in capsys.readouterr().err
