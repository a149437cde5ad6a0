"""Trial 1 item 15, the cosmetic findings: each message says what is true."""

from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.plan.recommend import recommend


def test_pp_beyond_the_layers_is_not_called_a_divisibility_failure():
    """Uneven stages are the default (vLLM's get_pp_indices), so PP64 over Llama-3.1-8B's 32
    layers fails because a stage would hold no layer, not because 64 does not divide 32."""
    rec = recommend(get_model("8b"), get_gpu("h100-sxm"), 64, nodes=8)
    pp = [line for line in rec.why_not if line.startswith("PP64")]
    assert pp == ["PP64 (any TP, DP): 32 layers are fewer than the stages (64)"]
    assert "PP64: 32 layers are fewer than the stages" in " ".join(rec.notes)
    assert all("layers do not divide" not in note for note in rec.notes)



def test_tp_beyond_the_heads_is_not_called_a_divisibility_failure():
    """TP64 over Llama-3.1-8B's 32 heads fails because a rank would hold no head, not because 64
    does not divide 32 (the same wording rule as PP beyond the layers)."""
    import pytest

    from sizer.errors import InputError
    from sizer.model.split import Split, check_split

    rec = recommend(get_model("8b"), get_gpu("h100-sxm"), 64, nodes=8)
    tp = [line for line in rec.why_not if line.startswith("TP64")]
    assert tp == ["TP64 (any PP, DP): 32 attention heads are fewer than the TP ranks (64)"]
    assert "TP64: 32 attention heads are fewer than the TP ranks" in " ".join(rec.notes)
    with pytest.raises(InputError, match="TP=64 exceeds its 32 attention heads"):
        check_split(get_model("8b"), Split(tp=64))

def test_spare_memory_is_not_called_free_under_an_engine_and_pp_bytes_are_per_stage():
    """Under vLLM the 7.9 GiB a candidate leaves is the (1 - 0.9) x 79.22 GiB outside the budget,
    not free memory; without an engine it is free. TP1 PP8's weight line gives each stage's
    per-GPU bytes (Llama-3.1-70B bf16: 8 stages of ~17.9 GiB) and their sum in sequence, where it
    said '143.2 GiB of weights per GPU'."""
    from sizer.cli.recommend import render

    l70, h100 = get_model("70b"), get_gpu("h100-sxm")
    rec = recommend(l70, h100, 8, engine="vllm")
    text = render(rec)
    assert "spare/GPU" in text and "free/GPU" not in text and "GiB free per GPU" not in text
    assert "7.9 GiB per GPU outside the engine's memory budget" in rec.winner_reason
    assert "free/GPU" in render(recommend(l70, h100, 8, engine="none"))
    pp8 = next(line for line in rec.why_not if line.startswith("TP1 PP8 DP1"))
    assert "8 stages x 17.9 GiB per GPU in sequence (143.2 GiB)" in pp8
    assert "GiB of weights per GPU along" not in pp8


def test_an_nvswitch_board_of_two_numa_nodes_is_not_called_one_socket():
    """tests/data/topo/h100_sxm_8gpu_nv18_8nic.txt shows NUMA affinity 0 and 1, every GPU pair
    NV18: no GPU path crosses the CPU link, which is what the description now says (it said
    '1 socket(s)/node'); the RTX 4090 box's SYS pairs keep '2 socket(s)/node'."""
    import os

    from sizer.hardware.topo_smi import read_topology_file

    here = os.path.join(os.path.dirname(__file__), "data", "topo")
    h100 = read_topology_file(os.path.join(here, "h100_sxm_8gpu_nv18_8nic.txt"), get_gpu("h100-sxm"))
    assert "no GPU path over the CPU link" in h100.describe() and "1 socket" not in h100.describe()
    rtx = read_topology_file(os.path.join(here, "rtx4090_8gpu_phb_node_sys.txt"), get_gpu("rtx-4090"))
    assert "2 socket(s)/node (GPU paths cross the CPU link)" in rtx.describe()


def test_memory_rejections_count_windowed_kv_as_the_engine_keeps_it():
    """recommend's 'doesn't fit: one sequence ... needs X GiB' charged every layer the whole
    context (kv_bytes_per_token x context); Gemma-3-27B's sliding layers keep 1,024 tokens
    (sizer.cost.memory.kv_bytes_per_sequence), so at 101,000 tokens its need is the fixed parts
    plus that per-sequence KV, well under the every-layer-full figure."""
    from sizer.cost.engines import memory_plan
    from sizer.cost.memory import kv_bytes_per_sequence, resolve_precision
    from sizer.model.split import Split
    from sizer.plan.search import reject_memory

    g3, l4, tp1 = get_model("gemma-3-27b"), get_gpu("l4"), Split()
    plan = memory_plan(g3, l4, tp1, batch=1, context=101_000, engine="vllm")
    row = reject_memory(tp1, None, plan, "one sequence")
    seq = kv_bytes_per_sequence(g3, tp1, resolve_precision(g3), 101_000)
    assert plan.kv_bytes_per_sequence == seq
    assert row["needs_bytes"] == plan.budget_fixed_bytes + seq
    assert seq < 0.25 * plan.kv_bytes_per_token * 101_000  # 10 full layers of 62 hold every token
