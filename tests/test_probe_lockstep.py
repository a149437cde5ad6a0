"""Every rank of a 16-rank, 2-node world issues the same collectives per group: the hang NCCL
would give otherwise, found on a CPU.

Each of the 16 ranks runs the collective sweep and the P2P matrix in this process, one after the
other, against PyTorch's fake process group (torch.testing._internal.distributed.fake_pg: the
calls return at once), with probes/strict.py recording every call and checking its tensors as
NCCL would (on the rank's device, contiguous, an NCCL dtype). The device layer is the recording
fake of torch.cuda, so the small-message CUDA-graph branch runs too. The recorded logs must
(1) hold the same collective sequence for every member of every group and (2) complete when
replayed with NCCL's blocking semantics (probes.strict.lockstep). Seeded faults -- a rank that
times a different number of iterations, a swapped pair of calls -- must be caught.
"""

import pytest

torch = pytest.importorskip("torch")
fake_pg = pytest.importorskip("torch.testing._internal.distributed.fake_pg")

import torch.distributed as dist  # noqa: E402

from fake_cuda import FakeCuda  # noqa: E402
from probes import coll, strict  # noqa: E402
from probes.device import CudaDevice  # noqa: E402
from probes.launch import RankContext  # noqa: E402

WORLD, NODES = 16, 2


SEEN = {}


def _rank_events(rank, body, world=WORLD):
    dist.init_process_group("fake", store=fake_pg.FakeStore(), rank=rank, world_size=world)
    rec = strict.install("cpu")
    cuda_log = []
    try:
        dev = CudaDevice(rank % 8, FakeCuda(cuda_log))
        ctx = RankContext(rank, world, rank % 8, "nccl", torch.device("cpu"), NODES, dev)
        SEEN[rank] = (body(ctx), cuda_log)
    finally:
        strict.uninstall(rec)
        dist.destroy_process_group()
    return rec.events


def _sweep(ctx):
    rows = coll.sweep_collectives(ctx, 256, quick=True, factor=4)
    coll.p2p_matrix(ctx, 64, iters=2)
    return rows


@pytest.fixture(scope="module")
def logs():
    return {r: _rank_events(r, _sweep) for r in range(WORLD)}


def test_groups_are_the_world_the_prefixes_and_one_rank_per_node(logs):
    groups = {tuple(e[1]) for e in logs[0] if e[0] == "coll"}
    assert groups == {tuple(range(16)), (0, 1), (0, 1, 2, 3), tuple(range(8)), (0, 8)}
    assert any(e[0] == "coll" and e[1] == [0, 8] for e in logs[8])
    assert not any(e[0] == "coll" and e[1] == [0, 8] for e in logs[3])
    # every rank creates every group, in the same order (new_group's contract)
    creations = {r: [e for e in ev if e[0] == "coll" and e[2] == "new_group"]
                 for r, ev in logs.items()}
    assert all(c == creations[0] for c in creations.values()) and len(creations[0]) == 5


def test_every_member_of_every_group_issues_the_same_sequence(logs):
    assert strict.same_sequences(logs) == []


def test_the_whole_run_completes_under_nccl_blocking_semantics(logs):
    assert strict.lockstep(logs) == []
    pairs = {(r, op[1]) for r, ev in logs.items() for e in ev if e[0] == "p2p"
             for op in e[1] if op[0] == "send"}
    assert {(i, j) for i in range(16) for j in range(i + 1, 16)} <= pairs  # all 120 pairs


def test_small_messages_are_captured_in_a_graph(logs):
    """On the (fake) GPU every sweep point <= 1 MiB of a graph-capable op is timed by replaying
    a captured graph (the row says so); send_recv stays eager."""
    rows, cuda_log = SEEN[0]
    modes = {(r["op"], r["timing"]) for r in rows}
    assert {m for op, m in modes if op in coll.GRAPH_OPS} == {"cuda_graph"}
    assert {m for op, m in modes if op == "send_recv"} == {"eager"}
    graphs = sum(1 for r in rows if r["timing"] == "cuda_graph")
    assert cuda_log.count(("capture_begin", "thread_local")) == graphs > 0
    assert cuda_log.count(("replay",)) == 4 * graphs  # one warm-up and three timed replays


def test_a_rank_that_times_other_iterations_is_caught(monkeypatch):
    """Rank 3 running 6 timed iterations instead of 5: the logs disagree on group (0..3)."""
    real = coll.iters_for

    def skewed(size, quick, gpu, _rank=[None]):  # noqa: B006
        w, n = real(size, quick, gpu)
        return (w, n + 1) if dist.get_rank() == 3 else (w, n)

    monkeypatch.setattr(coll, "iters_for", skewed)
    logs = {r: _rank_events(r, lambda ctx: coll.sweep_collectives(ctx, 64, True, factor=4), 4)
            for r in range(4)}
    logs = {r: [e for e in ev if e[0] == "coll" and len(e[1]) <= 4] for r, ev in logs.items()}
    problems = strict.same_sequences(logs)
    assert problems and "rank 3" in problems[0]
    assert strict.lockstep(logs)


def test_swapped_calls_hang_in_lockstep():
    """Rank 1 issuing a sub-group all_reduce before the world barrier rank 0 waits in."""
    logs = {0: [["coll", [0, 1, 2], "barrier"], ["coll", [0, 1], "all_reduce", "float", 4]],
            1: [["coll", [0, 1], "all_reduce", "float", 4], ["coll", [0, 1, 2], "barrier"]],
            2: [["coll", [0, 1, 2], "barrier"]]}
    assert strict.same_sequences(logs) == []  # each group alone looks fine
    assert strict.lockstep(logs)[0].startswith("hang: rank 0 waits in")
    logs[1] = [logs[1][1], ["p2p", [["send", 0, 8]]], logs[1][0]]  # a send nobody receives
    assert "hang" in strict.lockstep(logs)[0]
    logs[0].insert(1, ["p2p", [["recv", 1, 8]]])
    assert strict.lockstep(logs) == []


@pytest.mark.parametrize("bad, message", [
    (lambda: torch.ones(4, 2).t(), "not dense and contiguous"),
    (lambda: torch.ones(4, dtype=torch.complex64), "has no NCCL type"),
    (lambda: torch.ones(4, device="meta"), "tensor on meta"),
])
def test_strict_refuses_what_nccl_refuses(bad, message):
    dist.init_process_group("fake", store=fake_pg.FakeStore(), rank=0, world_size=2)
    rec = strict.install("cpu")
    try:
        with pytest.raises(strict.StrictError, match=message):
            dist.all_reduce(bad())
        dist.all_reduce(torch.ones(4))  # a good tensor passes
    finally:
        strict.uninstall(rec)
        dist.destroy_process_group()
