"""Where the ranks run (probes/placement.py): a table of launchers, environments and GPU counts.

decide(environ, gpus, world_size, backend) is pure, so every launcher a user may have is a row:
a plain 8-GPU node, torchrun on 2 nodes x 8, SLURM/Kubernetes giving each process one GPU
(CUDA_VISIBLE_DEVICES per task), a GPU-less machine, half a torchrun environment.
"""

import pytest

from probes.placement import LaunchError, decide, max_cpu_ranks

RDZV = {"MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}


def _torchrun(rank, world, local, local_world, **extra):
    env = {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(local),
           "LOCAL_WORLD_SIZE": str(local_world), **RDZV}
    env.update(extra)
    return env


@pytest.mark.parametrize("env, gpus, flags, want", [
    # torchrun, 2 nodes x 8 GPUs: rank 9 is node 1's local rank 1 on GPU 1
    (_torchrun(9, 16, 1, 8), 8, {}, dict(mode="torchrun", backend="nccl", world_size=16,
                                         nodes=2, rank=9, local_rank=1, device_index=1)),
    (_torchrun(15, 16, 7, 8), 8, {}, dict(nodes=2, device_index=7, local_world_size=8)),
    # one visible GPU per process (SLURM --gpus-per-task=1): NCCL on device 0, not a CPU profile
    (_torchrun(5, 8, 5, 8, CUDA_VISIBLE_DEVICES="5"), 1, {},
     dict(backend="nccl", device_index=0, nodes=1)),
    # two visible GPUs per process (--gpus-per-task=2): local rank 3 -> its device 1
    (_torchrun(3, 8, 3, 8), 2, {}, dict(backend="nccl", device_index=1)),
    # torchrun on a CPU machine: gloo, no device
    (_torchrun(1, 2, 1, 2), 0, {}, dict(backend="gloo", device_index=None)),
    (_torchrun(0, 2, 0, 2), 0, {"backend": "gloo"}, dict(backend="gloo")),
    # LOCAL_WORLD_SIZE missing (a hand-written launcher): one node assumed
    ({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", **RDZV}, 4, {},
     dict(nodes=1, local_world_size=4, device_index=1)),
    # spawned: one rank per GPU, NCCL
    ({}, 8, {}, dict(mode="spawn", backend="nccl", world_size=8, nodes=1)),
    ({}, 8, {"world_size": 4}, dict(backend="nccl", world_size=4)),
    ({}, 8, {"backend": "gloo"}, dict(backend="gloo", world_size=8)),
    # spawned on a CPU machine with gloo: 2 ranks by default
    ({}, 0, {"backend": "gloo"}, dict(backend="gloo", world_size=2)),
    ({}, 0, {"world_size": 4}, dict(backend="gloo", world_size=4)),
    # one GPU: world 1 is NCCL on it
    ({}, 1, {}, dict(backend="nccl", world_size=1)),
])
def test_launch_table(env, gpus, flags, want):
    got = decide(env, gpus, flags.get("world_size"), flags.get("backend"), cpu_count=16)
    for key, value in want.items():
        assert getattr(got, key) == value, (key, got)


def test_spawned_ranks_take_gpus_in_order():
    plan = decide({}, 8, None, None)
    assert [plan.device_for(r) for r in range(8)] == list(range(8))
    assert decide({}, 0, 4, "gloo").device_for(3) is None


def test_more_ranks_than_gpus_says_it_falls_back_to_gloo():
    """--world-size 2 on one GPU: CPU ranks, and a note that says so (never silently)."""
    plan = decide({}, 1, 2, None, cpu_count=4)
    assert plan.backend == "gloo" and plan.world_size == 2
    assert any("falling back to CPU ranks over gloo" in n and "--world-size 1" in n
               for n in plan.notes)
    assert decide({}, 0, 2, "gloo").notes == ()


def test_fewer_gpus_than_local_ranks_under_torchrun_is_noted():
    plan = decide(_torchrun(1, 8, 1, 8), 1, None, None)
    assert plan.backend == "nccl" and any("CUDA_VISIBLE_DEVICES per task" in n for n in plan.notes)


@pytest.mark.parametrize("env, gpus, flags, message", [
    ({}, 0, {}, "no GPUs found; use --backend gloo --world-size N"),
    ({}, 0, {"backend": "nccl"}, "no GPUs found"),
    ({}, 2, {"backend": "nccl", "world_size": 4}, "nccl needs one GPU per rank: 4 ranks, 2 GPUs"),
    ({}, 0, {"backend": "gloo", "world_size": 100000}, "at most 64 CPU ranks here"),
    (_torchrun(0, 2, 0, 2), 0, {"backend": "nccl"}, "sees no CUDA device"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, 8, {},
     "MASTER_ADDR and MASTER_PORT not set"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "h"}, 8, {},
     "MASTER_PORT not set"),
    ({"RANK": "3"}, 8, {}, "RANK set but WORLD_SIZE, LOCAL_RANK not"),
    (_torchrun(0, 2, 0, 2, RANK="x"), 8, {}, "RANK='x' is not an integer"),
    (_torchrun(2, 2, 0, 2), 8, {}, "inconsistent launcher variables"),
    (_torchrun(0, 4, 0, 4), 4, {"world_size": 2}, "--world-size 2, but the launcher started 4"),
    ({}, 8, {"backend": "mpi"}, "unknown backend 'mpi'"),
])
def test_launches_that_cannot_start(env, gpus, flags, message):
    with pytest.raises(LaunchError) as info:
        decide(env, gpus, flags.get("world_size"), flags.get("backend"), cpu_count=16)
    assert message in str(info.value)
    assert info.value.exit_code == 2


def test_cpu_world_is_bounded_by_the_machine():
    assert max_cpu_ranks(2) == 8
    assert decide({}, 0, 8, "gloo", cpu_count=2).world_size == 8
    with pytest.raises(LaunchError):
        decide({}, 0, 9, "gloo", cpu_count=2)


def test_nccl_missing_from_torch():
    assert decide({}, 8, None, None, nccl_ok=False, cpu_count=16).backend == "gloo"
    with pytest.raises(LaunchError, match="without NCCL"):
        decide({}, 8, None, "nccl", nccl_ok=False)
