"""Start the ranks of a probe: one process per local GPU (or N CPU ranks), or the ranks torchrun gave.

Every probe is a function `fn(ctx, *args)` that runs on each rank with a `RankContext` and
returns a picklable result. `run_ranks` either

* runs it on this process only, when torchrun (or any env:// launcher) set RANK / WORLD_SIZE /
  LOCAL_RANK -- it then returns `[result]` and gathering is the caller's business; or
* spawns `world_size` processes itself (spawn context, `file://` rendezvous in a temp dir) and
  returns every rank's result in rank order.

A rank that raises, or a run that outlives `timeout_s`, stops every rank (SIGTERM, then SIGKILL)
and raises `RankFailure` naming the rank and the error, with the results that did arrive. No
process is left behind: every child is joined or killed before `run_ranks` returns or raises.
"""

import os
import queue as queue_mod
import tempfile
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


class LaunchError(RuntimeError):
    """The run cannot start as asked (no GPUs for NCCL, bad world size): exit 2."""

    exit_code = 2


class RankFailure(RuntimeError):
    """A rank raised or the run timed out; `partial_results[r]` is None for ranks with no result."""

    exit_code = 1

    def __init__(self, message: str, partial_results: list):
        super().__init__(message)
        self.message = message
        self.partial_results = partial_results


class Timer:
    """start()/stop() -> elapsed seconds. CUDA events on a GPU (stop() synchronises on the end
    event, so the time is device time of the work queued in between); perf_counter on CPU."""

    def __init__(self, device: "torch.device"):
        self.cuda = device.type == "cuda"
        self._t0 = 0.0
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)

    def start(self) -> None:
        if self.cuda:
            self._start.record()
        else:
            self._t0 = time.perf_counter()

    def stop(self) -> float:
        if self.cuda:
            self._end.record()
            self._end.synchronize()
            return self._start.elapsed_time(self._end) / 1e3
        return time.perf_counter() - self._t0


@dataclass
class RankContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: "torch.device"
    nodes: int

    def timer(self) -> Timer:
        return Timer(self.device)

    def sync(self) -> None:
        """Wait for queued device work (no-op on CPU)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def under_torchrun() -> bool:
    return all(k in os.environ for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"))


def default_backend(world_size: int | None = None) -> str:
    """nccl when CUDA has at least `world_size` GPUs (and at least one), else gloo."""
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n >= max(1, world_size or 1) and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def resolve(world_size: int | None, backend: str | None) -> tuple[int, str]:
    """The (world_size, backend) a local launch will use, or LaunchError saying why not."""
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if backend not in (None, "gloo", "nccl"):
        raise LaunchError(f"unknown backend {backend!r} (use nccl or gloo)")
    if world_size is None:
        if n_gpu == 0:
            if backend != "gloo":
                raise LaunchError("no GPUs found; use --backend gloo --world-size N")
            world_size = 2
        else:
            world_size = n_gpu
    if world_size < 1:
        raise LaunchError(f"--world-size must be >= 1, got {world_size}")
    backend = backend or default_backend(world_size)
    if backend == "nccl":
        if n_gpu == 0:
            raise LaunchError("no GPUs found; use --backend gloo --world-size N")
        if world_size > n_gpu:
            raise LaunchError(f"nccl needs one GPU per rank: {world_size} ranks, {n_gpu} GPUs "
                              "(NCCL refuses two ranks on one GPU)")
    return world_size, backend


def _make_context(rank, world_size, local_rank, backend, nodes) -> RankContext:
    if backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    return RankContext(rank, world_size, local_rank, backend, device, nodes)


def _first_line(exc: BaseException) -> str:
    """'ValueError: boom (at file.py:12 in fn)' -- the error and where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    text = traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0]
    return text + where


def _worker(rank, world_size, backend, init_method, timeout_s, fn, args, results, threads):
    """One spawned rank: rendezvous, run fn, post ('ok'|'err', rank, payload) on the queue."""
    if threads:
        torch.set_num_threads(threads)
    try:
        dist.init_process_group(backend, init_method=init_method, rank=rank,
                                world_size=world_size, timeout=timedelta(seconds=timeout_s))
        ctx = _make_context(rank, world_size, rank, backend, 1)
        out = fn(ctx, *args)
        results.put(("ok", rank, out))
    except BaseException as exc:  # noqa: BLE001 -- every failure must reach the parent
        results.put(("err", rank, _first_line(exc) + "\n" + traceback.format_exc()))
        return
    try:
        dist.destroy_process_group()
    except Exception:  # noqa: BLE001 -- results are already posted
        pass


def _stop_all(procs, grace_s: float = 2.0) -> None:
    """Terminate, then kill, then join every child so none is left as a zombie."""
    for p in procs:
        if p.is_alive():
            p.terminate()
    deadline = time.monotonic() + grace_s
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(5.0)


def _run_torchrun(fn, args, backend, timeout_s) -> list:
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ["LOCAL_RANK"])
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", world))
    backend = backend or default_backend(local_world)
    if not dist.is_initialized():
        dist.init_process_group(backend, init_method="env://",
                                timeout=timedelta(seconds=timeout_s))
    nodes = max(1, world // max(1, local_world))
    ctx = _make_context(rank, world, local_rank, backend, nodes)
    return [fn(ctx, *args)]


def run_ranks(fn, args=(), *, world_size=None, backend=None, timeout_s=300.0) -> list:
    """Run `fn(ctx, *args)` on every rank; the per-rank results in rank order.

    Raises LaunchError when the run cannot start, RankFailure when a rank raises or the run
    exceeds `timeout_s` (all ranks are stopped first)."""
    if under_torchrun():
        return _run_torchrun(fn, args, backend, timeout_s)
    world_size, backend = resolve(world_size, backend)
    # CPU ranks share the cores: one intra-op thread each keeps them from fighting.
    threads = max(1, (os.cpu_count() or 1) // world_size) if backend == "gloo" else 0
    ctx_mp = mp.get_context("spawn")
    results = ctx_mp.Queue()
    out = [None] * world_size
    with tempfile.TemporaryDirectory(prefix="probes-rdzv-") as tmp:
        init_method = "file://" + os.path.join(tmp, "rendezvous")
        procs = [ctx_mp.Process(target=_worker, daemon=True,
                                args=(r, world_size, backend, init_method, timeout_s, fn, args,
                                      results, threads))
                 for r in range(world_size)]
        deadline = time.monotonic() + timeout_s
        failure, failure_detail = None, ""
        try:
            for p in procs:
                p.start()
            done = set()
            while len(done) < world_size:
                left = deadline - time.monotonic()
                if left <= 0:
                    missing = [r for r in range(world_size) if r not in done]
                    failure = (f"timed out after {timeout_s:g} s waiting for rank(s) "
                               f"{', '.join(map(str, missing))}")
                    break
                try:
                    kind, rank, payload = results.get(timeout=min(left, 0.5))
                except queue_mod.Empty:
                    dead = [r for r, p in enumerate(procs)
                            if r not in done and not p.is_alive() and p.exitcode not in (0, None)]
                    if dead:
                        failure = (f"rank {dead[0]} died with exit code "
                                   f"{procs[dead[0]].exitcode} before reporting a result")
                        break
                    continue
                if kind == "err":
                    failure = f"rank {rank} failed: {payload.splitlines()[0]}"
                    failure_detail = payload
                    break
                out[rank] = payload
                done.add(rank)
        except BaseException:
            _stop_all(procs)
            raise
        if failure is not None:
            _stop_all(procs)
            err = RankFailure(failure, out)
            err.detail = failure_detail
            raise err
        for p in procs:
            p.join(max(1.0, min(10.0, deadline - time.monotonic())))
        _stop_all(procs)
    return out
