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
    """recommend's 'doesn't fit: ... needs X GiB of the B budget' must name a need above the
    budget it names, for every rejected split: charging every layer the whole context
    (kv_bytes_per_token x context) overstated Gemma-3's need (its sliding layers keep 1,024
    tokens), and charging only the steady window understated it under vLLM (the sequence in
    prefill holds its whole chunk in every group: 'needs 67.8 GiB of the 71.30 GiB budget')."""
    from sizer.cost.engines import memory_plan
    from sizer.model.split import Split
    from sizer.plan.search import reject_memory

    seen = 0
    for name, gpu, context in (("gemma-3-27b", "h100-sxm", 70_000), ("gemma-3-27b", "l4", 101_000),
                               ("gpt-oss-120b", "h100-sxm", 131_000), ("70b", "h100-sxm", 131_072)):
        for engine in ("vllm", "sglang", "trtllm", "none"):
            for split in (Split(), Split(tp=2)):
                plan = memory_plan(get_model(name), get_gpu(gpu), split, batch=1, context=context,
                                   engine=None if engine == "none" else engine)
                if plan.fits:
                    continue
                seen += 1
                row = reject_memory(split, None, plan, "one sequence")
                assert row["needs_bytes"] > row["budget_bytes"], (name, gpu, engine, split, row["reason"])
    assert seen >= 8
    g3 = memory_plan(get_model("gemma-3-27b"), get_gpu("h100-sxm"), Split(), batch=1, context=70_000,
                     engine="vllm")
    assert g3.max_sequences == 0 and g3.kv_bytes_per_sequence < g3.kv_bytes_first_sequence
    assert g3.kv_bytes_per_sequence < 0.25 * g3.kv_bytes_per_token * 70_000  # 10 of 62 layers full
