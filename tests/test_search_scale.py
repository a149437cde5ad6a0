"""The recommender at large GPU counts: the work per split must not grow with the number of
replicas or of pipeline stages that are alike (issue #16: `recommend` took 8 s for 8B over
65,536 GPUs and 39 s for DeepSeek-V3 over 16,384; benchmarks/recommend_speed.py times it).
These tests count work and check the shortcuts give exactly the long way's answer."""

import pytest

from comm_gpus import GPUS
from sizer.cost import step
from sizer.hardware.placement import gpu_order, layout, local_order
from sizer.hardware.topology import get_topology
from sizer.model.catalog import get_model
from sizer.model.split import Split
from sizer.plan.search import group_links


def _listed_order(topo):
    """The rank order the long way: every GPU of every node, each node sorted as placement sorts."""
    per = topo.gpus_per_node
    loc = sorted(range(per), key=lambda i: (topo.socket_of[i], min(topo.fast_island(i)), i))
    return [node * per + i for node in range(topo.nodes) for i in loc]


@pytest.mark.parametrize("name, gpu, n, nodes", [
    ("pcie-2socket", "l40s", 16, 2), ("nvlink-pairs", "h100-nvl", 8, 2), ("nvswitch", "h100-sxm", 32, 4),
])
def test_computed_rank_positions_equal_the_listed_order(name, gpu, n, nodes):
    topo = get_topology(name, GPUS[gpu], n, nodes)
    listed = _listed_order(topo)
    assert list(gpu_order(topo)) == listed
    lay = layout(topo, 2, 2, n // 4)
    assert [lay.gpu(r) for r in range(n)] == listed
    assert lay.stage_ranks(1) == tuple(listed[(d * 2 + 1) * 2 + t] for d in range(n // 4) for t in range(2))
    assert lay.dp_group == tuple(listed[d * 4] for d in range(n // 4))


def test_a_million_rank_layout_lists_only_the_first_replica():
    topo = get_topology("nvswitch", GPUS["h100-sxm"], 1_000_000, 125_000)
    lay = layout(topo, 8, 2, 62_500)
    assert lay.stage_groups == (tuple(range(8)), tuple(range(8, 16)))
    assert len(lay.local) == 8 and lay.gpu(999_999) == 999_999
    assert lay.ep_group(16, stage=1) == tuple(range(8, 16)) + tuple(range(24, 32))
    assert local_order(topo) == tuple(range(8))


def test_alike_pipeline_stages_are_costed_once(monkeypatch):
    """DeepSeek-V3's 61 layers over PP32 (one stage per 8-GPU node): 32 stages of four kinds
    (the first with the embedding and dense layers, a dense + MoE one, the plain MoE ones, the
    last with the LM head), and every stage's time still listed."""
    model, calls = get_model("deepseek-v3"), []
    real = step._stage_ops

    def counted(*args, **kwargs):
        calls.append(args[5])
        return real(*args, **kwargs)

    monkeypatch.setattr(step, "_stage_ops", counted)
    split = Split(tp=8, pp=32)
    topo = get_topology("nvswitch", GPUS["h100-sxm"], 256, 32)
    kw = dict(phase="decode", batch=4, context_len=1024, topology=topo)
    r = step.step_time(model, GPUS["h100-sxm"], split, **kw)
    assert len(calls) <= 5 and len(r.stage_times_s) == 32
    # the long way: every stage its own signature, so every stage is costed
    monkeypatch.setattr(step._Comm, "signature", lambda self, stage: stage)
    calls.clear()
    every = step.step_time(model, GPUS["h100-sxm"], split, **kw)
    assert len(calls) == 32
    assert [float(t) for t in every.stage_times_s] == [float(t) for t in r.stage_times_s]
    assert float(every.time_s) == float(r.time_s)


def _pairwise_links(topo, ranks):
    return ", ".join(sorted({"+".join(lk.name for lk in topo.path(a, b)) for a in ranks for b in ranks if a != b}))


@pytest.mark.parametrize("name, gpu, n, nodes, split, op", [
    ("nvswitch", "h100-sxm", 256, 32, Split(tp=1, dp=256, ep=256), "ep"),
    ("pcie-2socket", "l40s", 16, 2, Split(tp=2, dp=8, ep=16), "ep"),
    ("pcie-2socket", "l40s", 16, 2, Split(tp=8, dp=2), "tp"),
    ("nvlink-pairs", "h100-nvl", 8, 2, Split(tp=4, pp=2), "tp"),
])
def test_grouped_link_names_equal_the_pairwise_ones(name, gpu, n, nodes, split, op, monkeypatch):
    topo = get_topology(name, GPUS[gpu], n, nodes)
    lay = layout(topo, split.tp, split.pp, split.dp)
    ranks = lay.ep_group(split.ep) if op == "ep" else lay.tp_group
    want = _pairwise_links(topo, ranks)
    seen = []
    real = type(topo).path
    monkeypatch.setattr(type(topo), "path", lambda self, a, b: seen.append(1) or real(self, a, b))
    assert group_links(topo, split, op) == want
    assert len(seen) <= topo.gpus_per_node ** 2 + 1  # not one per pair of the group
