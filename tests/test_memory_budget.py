""""Does not fit" names the binding limit (trial 1 item 13): the engine's budget, e.g. vLLM's
gpu_memory_utilization 0.9 x 79.22 GiB = 71.30 GiB on an H100, not the raw 79.22 GiB capacity,
in memory, estimate, recommend and simulate."""

import json

import pytest

from sizer.cli.main import main
from sizer.cost.engines import memory_plan
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.split import Split

GIB = 2**30
VLLM_BUDGET = "71.30 GiB budget (vLLM --gpu-memory-utilization 0.9 x 79.22 GiB)"


@pytest.mark.parametrize("engine, fraction, budget_gib", [
    ("vllm", None, 0.9 * 79.22), ("vllm", 0.8, 0.8 * 79.22), ("sglang", None, 0.88 * 79.22),
    ("trtllm", None, None), ("trtllm", 0.5, None), ("none", None, 79.22)])
def test_budget_is_the_engine_fraction_of_capacity(engine, fraction, budget_gib):
    """vLLM and SGLang bound weights + KV by fraction x capacity (worker/gpu_worker.py,
    model_runner.py); no engine by the whole GPU (79.22 GiB: vLLM's H100 log, memory_facts
    R03107); TensorRT-LLM's KV gets f of what the fixed parts leave, so its budget is
    fixed + f x (capacity - fixed), and the KV it allocates never exceeds budget - fixed."""
    plan = memory_plan(get_model("8b"), get_gpu("h100-sxm"), Split(), engine=engine,
                       fraction=fraction, context=4096)
    if budget_gib is None:
        f, fixed = fraction or 0.9, plan.budget_fixed_bytes
        budget_gib = (fixed + f * (79.22 * GIB - fixed)) / GIB
        assert fixed == pytest.approx(plan.weights_bytes + plan.activation_bytes + plan.overhead_bytes)
        assert plan.kv_cache_bytes <= plan.budget_bytes - fixed + 1
        assert plan.budget_bytes < plan.capacity_bytes
    assert plan.budget_bytes / GIB == pytest.approx(budget_gib, abs=0.006)
    assert plan.to_json()["per_gpu"]["budget_bytes"] == plan.budget_bytes


def test_memory_verdict_names_the_budget(capsys):
    """Llama-3.1-70B bf16 on TP2: 65.71 GiB of weights + activations + overhead = 74.18 GiB fit
    the 79.22 GiB GPU but not vLLM's 71.30 GiB budget; the old line said 'headroom 5.04 GiB'."""
    assert main(["memory", "--model", "70b", "--tp", "2"]) == 0
    verdict = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("verdict:")][0]
    assert "DOES NOT FIT" in verdict and f"of the {VLLM_BUDGET}" in verdict
    assert "alone take 74.18 GiB" in verdict and "headroom" not in verdict


def test_memory_fits_says_the_rest_is_outside_the_budget(capsys):
    """TP4 fits; the 7.92 GiB (0.1 x 79.22) vLLM leaves is not free memory for more KV."""
    assert main(["memory", "--model", "70b", "--tp", "4"]) == 0
    verdict = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("verdict:")][0]
    assert verdict.startswith("verdict: fits") and "7.92 GiB of the GPU is outside the budget" in verdict


def test_estimate_and_simulate_name_the_budget(capsys):
    for argv in (["estimate", "--model", "405b", "--tp", "2"],
                 ["simulate", "--model", "405b", "--tp", "2", "--rate", "1", "--requests", "5"]):
        assert main(argv) == 1
        assert f"take 386.5 GiB per GPU of the {VLLM_BUDGET}" in capsys.readouterr().err
    assert main(["estimate", "--model", "70b", "--tp", "2", "--batch", "4"]) == 0
    assert f"of the 79.22 GiB GPU; {VLLM_BUDGET} (DOES NOT FIT)" in capsys.readouterr().out


def test_recommend_names_the_budget(capsys):
    """The trial's line: TP1 PP2 needs 74.4 GiB per GPU 'of 79.2 GiB'; the limit is 71.30 GiB."""
    assert main(["recommend", "--model", "70b", "--gpus", "2", "--json"]) == 1
    out, err = capsys.readouterr()
    assert f"needs 74.4 GiB per GPU of the {VLLM_BUDGET}" in err
    doc = json.loads(out)
    memory = [r for r in doc["rejected"] if r["kind"] == "memory"]
    assert memory and all(r["budget"] == VLLM_BUDGET for r in memory)


def test_sglang_reserve_is_what_its_budget_leaves_out(capsys):
    """Trial 3: under SGLang 'fits' said 6.65 GiB of the GPU is outside the budget (capacity -
    total), while 0.12 x 79.22 = 9.51 GiB is: activations and CUDA graphs live in that reserve."""
    assert main(["memory", "--model", "70b", "--tp", "4", "--engine", "sglang", "--context", "4096"]) == 0
    verdict = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("verdict:")][0]
    assert "9.51 GiB of the GPU is outside the budget" in verdict
