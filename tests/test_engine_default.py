"""vLLM's memory rules are the default of every command (issue #15 item 1): the answer equals
`--engine vllm`, every header and every --json document names the engine, `--engine none` is
the raw capacity of before, and vLLM's memory flags work without --engine while another
engine's flag stays an error. The context default is capped with a note (issue #15 item 4)."""

import json

import pytest

from sizer.cli.main import main


def run(capsys, *argv):
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def doc(capsys, *argv):
    code, out, _ = run(capsys, *argv, "--json")
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize("cmd", [
    ["memory", "--model", "8b", "--context", "8192"],
    ["estimate", "--model", "8b", "--isl", "512", "--osl", "128"],
    ["step", "--model", "8b", "--context", "1024"],
])
def test_default_is_vllm_and_says_so(capsys, cmd):
    default, explicit = doc(capsys, *cmd), doc(capsys, *cmd, "--engine", "vllm")
    assert default == explicit and default["engine"] == "vllm"
    assert doc(capsys, *cmd, "--engine", "none")["engine"] == "none"
    code, out, _ = run(capsys, *cmd)
    assert code == 0 and "engine vllm" in out.splitlines()[0]


def test_memory_default_keeps_vllms_reserve(capsys):
    """Llama-3.1-8B on one H100: vLLM's 0.9 x 79.22 GiB budget leaves 53.3 GiB of KV (R03100:
    53.29 GiB, a V0 engine running 256 sequences); raw capacity would give the free memory of
    the whole GPU. At V1's H100 default of 1024 sequences the profiled sampler takes 3.7 GiB
    more (sizer.cost.engines.profile_forward)."""
    vllm = doc(capsys, "memory", "--model", "8b", "--context", "8192", "--max-num-seqs", "256")
    v1 = doc(capsys, "memory", "--model", "8b", "--context", "8192")
    assert (vllm["per_gpu"]["kv_cache_bytes"] - v1["per_gpu"]["kv_cache_bytes"]) / 2**30 == pytest.approx(3.67, abs=0.05)
    raw = doc(capsys, "memory", "--model", "8b", "--context", "8192", "--engine", "none", "--batch", "400")
    assert vllm["per_gpu"]["kv_cache_bytes"] / 2**30 == pytest.approx(53.3, abs=0.1)
    assert raw["max_sequences"] > vllm["max_sequences"]


def test_recommend_default_is_vllm(capsys):
    """The issue's case: Qwen3-235B in fp8 on 4 H100s. Raw capacity picks TP2 DP2 EP4 with 0.1
    GiB free (1,184 tok/s/GPU); vLLM's rules pick TP4 (873) - and that is now the default."""
    argv = ["recommend", "--model", "qwen3-235b-a22b", "--gpus", "4", "--weight-dtype", "fp8", "--top", "1"]
    default = doc(capsys, *argv)
    raw = doc(capsys, *argv, "--engine", "none")
    assert default["engine"] == "vllm" and raw["engine"] == "none"
    assert default["candidates"][0]["label"] == "TP4 PP1 DP1"
    assert raw["candidates"][0]["label"] == "TP2 PP1 DP2 EP4"
    code, out, _ = run(capsys, *argv)
    assert "engine vllm" in out.splitlines()[1]


def test_vllm_flags_need_no_engine_other_engines_flags_do(capsys):
    assert doc(capsys, "memory", "--model", "8b", "--gpu-memory-utilization", "0.5")["engine"] == "vllm"
    for argv, needle in ((["--mem-fraction-static", "0.8"], "needs --engine sglang, not --engine vllm (the default)"),
                         (["--gpu-memory-utilization", "0.8", "--engine", "none"], "needs --engine vllm, not --engine none"),
                         (["--engine", "ollama"], "unknown engine 'ollama'")):
        code, out, err = run(capsys, "memory", "--model", "8b", *argv)
        assert code == 2 and out == "" and needle in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "step", "--model", "8b", "--context", "64", "--engine", "ollama")
    assert code == 2 and "unknown engine" in err


def test_context_defaults_to_a_stated_cap(capsys):
    """Llama-4-Scout's 10,485,760 positions would need 1,920 GiB of KV: without --context the
    plan uses 131,072 tokens and says so."""
    d = doc(capsys, "memory", "--model", "llama-4-scout", "--tp", "8")
    assert d["context"] == 131_072 and any("10,485,760" in n for n in d["notes"])
    assert d["per_gpu"]["fits"]
    assert doc(capsys, "memory", "--model", "8b")["context"] == 131_072 and not doc(capsys, "memory", "--model", "8b")["notes"]
