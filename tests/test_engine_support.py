"""Which split layouts each engine runs (sizer/cost/engine_support.py, issue #15.3), from the
engines' own documents: vLLM's `--enable-expert-parallel` gives EP = TP x DP (docs.vllm.ai,
expert_parallel_deployment); SGLang's `--ep-size` divides `--tp-size` (parallel_state.py,
moe_tp_size = tp_size // ep_size); TensorRT-LLM's moe_tensor_parallel_size x
moe_expert_parallel_size = tensor_parallel_size (features/parallel-strategy.md)."""

import pytest

from sizer.cost.engine_support import check_layout, expert_layouts, runs_expert_layout, supported_layouts
from sizer.errors import InputError
from sizer.model.catalog import get_model
from sizer.model.split import Split


def test_vllm_runs_ep_equal_to_tp_times_dp_and_never_ep_inside_tp():
    """The docs' example: DeepSeek-V3 with --tensor-parallel-size 1 --data-parallel-size 8
    --enable-expert-parallel is EP8. EP2 inside TP4 (each expert also tensor-sharded) is not a
    vLLM layout; EP1 (no --enable-expert-parallel) and EP = TP per replica are."""
    assert check_layout("vllm", Split(tp=1, dp=8, ep=8)) is None
    assert check_layout("vllm", Split(tp=8, ep=8)) is None
    assert check_layout("vllm", Split(tp=2, dp=4, ep=2)) is None  # 4 replicas of TP2 EP2
    assert check_layout("vllm", Split(tp=2, dp=4, ep=4)) is None  # 2 deployments of TP2 DP2
    why = check_layout("vllm", Split(tp=4, dp=2, ep=2))
    assert why.startswith("vllm does not run EP2 over TP4 x DP2") and "here EP1, EP4, EP8" in why
    assert "expert_parallel_deployment" in why
    assert expert_layouts("vllm", 4, 2) == [1, 4, 8]


def test_sglang_runs_ep_dividing_tp_or_tp_times_dp_attention():
    """--tp 8 --ep 4 gives moe_tp_size 2 (EP inside TP); --tp 8 --dp 4 --enable-dp-attention
    --ep 8 is TP2 attention x DP4 with EP8. EP3 over TP2 x DP3 is neither."""
    assert check_layout("sglang", Split(tp=8, ep=4)) is None
    assert check_layout("sglang", Split(tp=2, dp=4, ep=8)) is None
    assert not runs_expert_layout("sglang", 2, 3, 3)
    assert expert_layouts("sglang", 4, 2) == [1, 2, 4, 8]


def test_trtllm_runs_moe_tp_times_moe_ep_equal_to_tp_and_attention_dp_only_at_tp1():
    """The docs' hybrid: tensor_parallel_size 8 = moe_tensor_parallel_size 4 x
    moe_expert_parallel_size 2; enable_attention_dp replicates attention (TP1)."""
    assert check_layout("trtllm", Split(tp=8, ep=2)) is None
    assert check_layout("trtllm", Split(tp=1, dp=8, ep=8)) is None
    assert "trtllm does not run EP8 over TP2 x DP4" in check_layout("trtllm", Split(tp=2, dp=4, ep=8))


def test_no_engine_and_dense_models_run_every_split():
    odd = Split(tp=2, dp=3, ep=3)
    assert check_layout(None, odd) is None and check_layout("none", odd) is None
    assert check_layout("vllm", Split(tp=4, dp=2, ep=2), get_model("70b")) is None  # dense: no experts
    assert supported_layouts(None) == "" and "uneven pipeline stages" in supported_layouts("sglang")
    with pytest.raises(InputError, match="unknown engine"):
        check_layout("tgi", odd)


def test_recommend_offers_only_layouts_the_engine_runs_and_says_which_it_runs(h100):
    """Qwen3-30B-A3B (128 experts) on 8 H100: without an engine every EP dividing TP x DP is
    searched; under vLLM no EP between 1 and TP is offered, the note names vLLM's layouts and its
    docs, each skipped family gets a why-not line, and --json lists them as kind 'engine'."""
    from sizer.plan.recommend import recommend

    model = get_model("qwen3-30b-a3b")
    raw = recommend(model, h100, 8, top=100)
    assert any(1 < c.split.ep < c.split.tp for c in raw.candidates)
    rec = recommend(model, h100, 8, engine="vllm", top=100)
    assert rec.candidates and all(check_layout("vllm", c.split, model) is None for c in rec.candidates)
    assert not any(1 < c.split.ep < c.split.tp for c in rec.candidates)
    note = next(n for n in rec.notes if "not offered" in n)
    assert "EP = TP x DP" in note and "docs.vllm.ai" in note
    engine = [r for r in rec.to_json()["rejected"] if r["kind"] == "engine"]
    assert {(r["tp"], r["ep"]) for r in engine} == {(4, 2), (8, 2), (8, 4)}
    assert any("vllm does not run EP2 over TP4 x DP2 (it runs EP1, EP4, EP8 there)" in line
               for line in rec.why_not)
