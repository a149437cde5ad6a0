"""The probes' GPU path, checked on CPU through a recording fake of torch.cuda (tests/fake_cuda.py).

Every torch.cuda call goes through probes/device.py, so these tests see the calls a GPU run
would make and their order: the end event recorded right after the last timed call (not after
a full synchronise), set_device before init_process_group with device_id=, a side-stream
warm-up before a graph capture. Also the cache-size rules of the compute probes (L2 of an H100:
50 MiB), the fp8 GEMM path (torch._scaled_mm runs on CPU in torch 2.13), and one progress line
per phase where stderr is not a terminal. Nothing here times anything.
"""

import io
import pathlib
import re
from datetime import timedelta

import pytest

torch = pytest.importorskip("torch")

from fake_cuda import FakeCuda  # noqa: E402
from probes import compute, forward, harness, launch  # noqa: E402
from probes.device import CpuDevice, CudaDevice  # noqa: E402
from probes.placement import Launch, process_group_timeout_s  # noqa: E402

PROBES = pathlib.Path(__file__).resolve().parents[1] / "probes"
L2_H100 = 50 * 2**20  # H100 SXM: 50 MB L2 (NVIDIA H100 Tensor Core GPU Architecture whitepaper)


def _gpu_ctx(log, **kw):
    dev = CudaDevice(0, FakeCuda(log, **kw))
    return launch.RankContext(0, 1, 0, "nccl", torch.device("cpu"), 1, dev)


def test_every_torch_cuda_call_goes_through_the_device_layer():
    """No probe module but probes/device.py names torch.cuda: the GPU path has one door."""
    offenders = [f"{p.name}:{i}" for p in sorted(PROBES.glob("*.py")) if p.name != "device.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1)
                 if re.search(r"torch\.cuda\b", line.split("#")[0])]
    assert offenders == []


def test_end_event_is_recorded_right_after_the_last_call():
    """time_iters: warm-up, synchronise, barrier, start event, the timed calls, END EVENT, then
    a wait on that event only (nccl-tests' timer brackets the loop; a full synchronise before
    the end event adds the host's wake-up to every interval)."""
    log = []
    ctx = _gpu_ctx(log)
    ctx.barrier = lambda group=None: log.append(("barrier", group))
    t = harness.time_iters(ctx, lambda: log.append(("call",)), 2, 3, group="g", barrier=True)
    assert log == [("call",), ("call",), ("synchronize", 0), ("barrier", "g"), ("record", "e0"),
                   ("call",), ("call",), ("call",), ("record", "e1"), ("event_sync", "e1"),
                   ("elapsed", "e0", "e1")]
    assert t == pytest.approx(2.0e-3 / 3)  # the fake events report 2 ms


def test_graph_capture_warms_up_on_a_side_stream_first():
    """torch.cuda.graph's documented recipe: warm up on a side stream (lazy init must not be
    captured), join the streams, capture n calls, and replay what was captured."""
    log = []
    dev = CudaDevice(0, FakeCuda(log))
    replay = dev.capture(lambda: log.append(("call",)), 2, warmup=1)
    assert log == [("wait_stream", "side", "current"), ("stream_enter", "side"), ("call",),
                   ("stream_exit", "side"), ("wait_stream", "current", "side"),
                   ("capture_begin", "thread_local"), ("call",), ("call",), ("capture_end",)]
    replay()
    assert log[-1] == ("replay",)


def test_set_device_comes_before_init_process_group_with_device_id(monkeypatch):
    """init_rank selects LOCAL_RANK % GPUs, then joins with device_id= (eager NCCL init: P2P
    then reuses the group's communicator, torch >= 2.5) and a process-group timeout longer than
    the run's deadline."""
    log = []
    monkeypatch.setattr(launch.dist, "init_process_group",
                        lambda backend, **kw: log.append(("init", backend, kw)))
    plan = Launch("torchrun", "nccl", 16, 8, 2, gpus=1, rank=13, local_rank=5, device_index=0)
    ctx = launch.init_rank(plan, 13, 5, "env://", 60.0, cuda=FakeCuda(log, gpus=1))
    assert [e[0] for e in log] == ["set_device", "init"]
    assert log[0] == ("set_device", 0)  # one GPU visible per process: device 0, not 5
    kw = log[1][2]
    assert kw["device_id"] == torch.device("cuda", 0)
    assert (kw["rank"], kw["world_size"]) == (13, 16)
    assert kw["timeout"] == timedelta(seconds=process_group_timeout_s(60.0)) > timedelta(seconds=60)
    assert (ctx.rank, ctx.local_rank, ctx.nodes, ctx.device) == (13, 5, 2, torch.device("cuda", 0))


def test_gloo_ranks_pass_no_device_id(monkeypatch):
    log = []
    monkeypatch.setattr(launch.dist, "init_process_group",
                        lambda backend, **kw: log.append((backend, kw)))
    launch.init_rank(Launch("spawn", "gloo", 2, 2, 1, gpus=0), 1, 1, "file:///x", 30.0)
    assert log[0][0] == "gloo" and "device_id" not in log[0][1]


def test_process_group_outlives_the_run_deadline():
    """NCCL's watchdog must not kill a healthy rank that waits inside NCCL before --timeout."""
    for run in (5.0, 60.0, 1800.0):
        assert process_group_timeout_s(run) >= run + 600


def test_device_properties_and_versions_come_from_the_layer():
    dev = CudaDevice(3, FakeCuda())
    props = dev.properties()
    assert props["name"] == "NVIDIA H100 80GB HBM3" and props["l2_bytes"] == L2_H100
    assert props["capability"] == "9.0" and dev.nccl_version() == "2.28.3"
    assert CpuDevice().l2_bytes() is None and not CpuDevice().supports_graphs


# ----- caches: what the HBM and GEMM numbers may and may not see -----------------------------

def test_hbm_fit_uses_only_copies_well_above_l2():
    """On an H100 (50 MiB L2) the 1/4/16 MiB copies stay raw rows; the fit sees copies whose
    read + write working set is >= 4 x L2 (128 MiB copies and up); a quick plan still has
    three of them. CPU ranks filter nothing."""
    dev = CudaDevice(0, FakeCuda())
    cache = compute.cache_bytes(dev)
    assert cache == L2_H100
    for quick in (False, True):
        sizes = compute.plan(True, quick)["copy"]
        fitted = [s for s in sizes if compute.copy_fits_hbm(s, cache)]
        assert {1 << 20, 4 << 20, 16 << 20} <= set(sizes) - set(fitted)
        assert min(fitted) == 128 << 20 and len(fitted) >= 3
    assert compute.copy_fits_hbm(1 << 18, compute.cache_bytes(CpuDevice()))


def test_fit_leaves_cache_resident_copies_out():
    """A 16 MiB copy served from L2 at 10x the HBM rate must not move the HBM constant."""
    from probes import fit

    hbm = 3.0e12
    rows = [{"op": "copy", "bytes": 2 * s, "time_s": 2e-6 + 2 * s / hbm, "fit": True}
            for s in (128 << 20, 256 << 20, 512 << 20)]
    rows.append({"op": "copy", "bytes": 32 << 20, "time_s": (32 << 20) / (10 * hbm), "fit": False})
    comp, detail = fit.fit_compute({"membw": rows})
    assert comp["hbm_bytes_per_s"] == pytest.approx(hbm, rel=1e-6)
    assert detail["membw"]["cache_resident_rows_left_out"] == 1


def test_gemm_weights_do_not_fit_in_l2():
    """GEMM weights are 8192 x 8192 in every GPU plan (128 MiB bf16 > 50 MiB L2), and rotate
    over enough copies to be twice the L2 (fp8's 64 MiB: two copies)."""
    for quick in (False, True):
        assert compute.plan(True, quick)["nk"] == 8192
    assert compute.weight_copies(8192 * 8192 * 2, L2_H100) == 1
    assert compute.weight_copies(8192 * 8192, L2_H100) == 2
    assert compute.weight_copies(4096 * 4096 * 2, L2_H100) == 4
    assert compute.weight_copies(10, None) == 1


def test_fp8_gemm_runs_at_decode_m_on_cpu():
    """torch._scaled_mm needs K and N divisible by 16, not M: M = 1 and 3 are measured (today's
    M % 16 rule skipped every decode size); bytes count 1-byte inputs and the bf16 output."""
    ctx = launch.RankContext(0, 1, 0, "gloo", torch.device("cpu"), 1)
    p = {"dtypes": ["fp8"], "m": [1, 3, 16], "nk": 32}
    rows = compute.gemm_sweep(ctx, p)
    assert [r["M"] for r in rows] == [1, 3, 16]
    for r in rows:
        assert "error" not in r, r
        m = r["M"]
        assert r["bytes"] == m * 32 + 32 * 32 + 2 * m * 32
        assert r["use_fast_accum"] is False and r["out_dtype"] == "bf16"
        assert r["flops"] == 2.0 * m * 32 * 32
    assert compute._gemm_call("fp8", 1, 24, 32, CpuDevice()) is None  # N % 16


def test_decode_forward_reads_separate_k_and_v_caches_past_l2():
    """Each layer gets its own K and its own V tensor (today one tensor served as both); in the
    GPU plan the caches of every TP/EP configuration are at least twice an H100's L2."""
    sh = forward.Shard(forward.CPU_DENSE, 2, 1, "fp32", "cpu")
    caches = forward.kv_caches(sh, 2, 2, 16, "cpu")
    ptrs = [t.data_ptr() for kv in caches for t in kv]
    assert len(set(ptrs)) == 4
    p = forward.plan(True, True)
    batch, seq = p["decode"]
    for kind, degrees in (("dense", p["tp"]), ("moe", [1])):
        for tp in degrees:
            kv = forward.kv_cache_bytes(p[kind], tp, p["layers"], batch, seq, 2)
            assert kv >= 2 * L2_H100, (kind, tp, kv)


# ----- progress ----------------------------------------------------------------------------

class _Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_one_line_per_phase_off_a_terminal():
    """stderr to a file or pipe: one line when the phase ends; on a terminal, a redrawn bar."""
    log = io.StringIO()
    prog = harness.Progress("coll", 500, stream=log)
    for _ in range(500):
        prog.step(note="x")
    prog.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and "\r" not in log.getvalue()
    assert lines[0].startswith("coll: 500/500 steps in ")
    tty = _Tty()
    prog = harness.Progress("coll", 3, stream=tty)
    prog.step()
    prog.close()
    assert "\r" in tty.getvalue() and tty.getvalue().endswith("\n")


def test_provenance_records_nccl_environment_clocks_and_driver():
    """The profile's env keeps what changes NCCL's behaviour and speed: NCCL_* / TORCH_NCCL_*
    variables and GPU visibility, the NCCL version (per rank, from the device layer), driver,
    and current vs maximum clocks (nvidia-smi --query-gpu ... csv,noheader,nounits)."""
    from probes import env

    got = env.comm_environment({"NCCL_ALGO": "Ring", "TORCH_NCCL_ASYNC_ERROR_HANDLING": "3",
                                "CUDA_VISIBLE_DEVICES": "0,1", "HOME": "/root", "PATH": "/bin"})
    assert got == {"CUDA_VISIBLE_DEVICES": "0,1", "NCCL_ALGO": "Ring",
                   "TORCH_NCCL_ASYNC_ERROR_HANDLING": "3"}
    text = ("0, GPU-aaa, 570.124.06, 1980, 1980, 2619, 2619, 700.00, Enabled\n"
            "1, GPU-bbb, 570.124.06, 1410, 1980, 2619, 2619, [N/A], Enabled\n")
    clocks = env.gpu_clocks(text)
    assert [c["clocks.sm"] for c in clocks] == [1980.0, 1410.0]  # GPU 1 runs throttled
    assert clocks[0]["driver_version"] == "570.124.06" and clocks[1]["power.limit"] == "[N/A]"
    ctx = launch.RankContext(3, 8, 3, "nccl", torch.device("cuda", 3), 1,
                             CudaDevice(3, FakeCuda()))
    info = env.rank_info(ctx)
    assert info["nccl"] == "2.28.3" and info["l2_bytes"] == L2_H100 and info["cuda_index"] == 3
