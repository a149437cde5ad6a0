"""Start the ranks of a probe: one process per local GPU (or N CPU ranks), or the ranks torchrun gave.

Every probe is a function `fn(ctx, *args)` that runs on each rank with a `RankContext` and
returns a picklable result. Where the ranks go is decided by probes/placement.py; `run_ranks`
then either

* runs `fn` on this process only, under torchrun (any env:// launcher) -- it returns `[result]`
  and gathering is the caller's business; or
* spawns the ranks itself (spawn context, `file://` rendezvous in a temp dir) and returns every
  rank's result in rank order.

Every rank selects its device before `init_process_group` and passes `device_id=` on NCCL: the
communicator is then created eagerly, and P2P ops reuse it instead of creating one 2-rank
communicator per pair (ProcessGroupNCCL::pointToPoint, "In eagerInit mode, reuse the parent
comm", pytorch/pytorch PR #132900, in torch >= 2.5). The process group's timeout is longer than
the run's (placement.process_group_timeout_s): the run's deadline is this module's business.

Failure. Spawned: a rank that raises, or a run that outlives `timeout_s`, stops every rank
(SIGTERM, then SIGKILL) and raises `RankFailure` naming the rank and the error, with the results
that did arrive; SIGTERM to the parent raises `Terminated`. No child is left behind. Under
torchrun a failing rank must not return normally (its peers would wait in NCCL until the
watchdog fires): on an error, on the deadline, or on SIGTERM/SIGINT (the agent's way to stop
the survivors), `on_exit(message, code)` runs once -- the caller saves what it has -- and the
process leaves with os._exit. destroy_process_group runs on the way out of a successful run.
"""

import os
import queue as queue_mod
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from . import device as devmod
from . import strict
from .placement import Launch, LaunchError, decide, process_group_timeout_s  # noqa: F401

# The P2P matrix runs one pair at a time: eager-init P2P serialisation is what it wants.
SERIALIZATION_WARNING = "TORCH_NCCL_SHOW_EAGER_INIT_P2P_SERIALIZATION_WARNING"


class RankFailure(RuntimeError):
    """A rank raised or the run timed out; `partial_results[r]` is None for ranks with no result."""

    exit_code = 1

    def __init__(self, message: str, partial_results: list):
        super().__init__(message)
        self.message = message
        self.partial_results = partial_results


class Terminated(BaseException):
    """SIGTERM reached the process that spawned the ranks."""


@dataclass
class RankContext:
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: "torch.device"
    nodes: int
    dev: object = None  # probes.device.CpuDevice | CudaDevice

    def __post_init__(self):
        if self.dev is None:
            self.dev = devmod.for_rank(self.backend, self.device.index)

    def timer(self):
        return self.dev.timer()

    def sync(self) -> None:
        """Wait for queued device work (no-op on CPU)."""
        self.dev.synchronize()

    def barrier(self, group=None) -> None:
        """Every rank of `group` here. On NCCL the barrier runs on the device bound by
        init_process_group(device_id=...) and returns once it completed."""
        dist.barrier(group=group)


def plan(world_size=None, backend=None, environ=None, gpus=None) -> Launch:
    """placement.decide for this process (LaunchError when it cannot start)."""
    return decide(os.environ if environ is None else environ,
                  devmod.visible_gpus() if gpus is None else gpus, world_size, backend,
                  nccl_ok=dist.is_nccl_available(), cpu_count=os.cpu_count() or 1)


def init_rank(launch: Launch, rank: int, local_rank: int, init_method: str, timeout_s: float,
              cuda=None) -> RankContext:
    """Select the device, then join the process group (with `device_id` on NCCL)."""
    dev = devmod.for_rank(launch.backend, launch.device_for(local_rank), cuda)
    dev.set_device()
    kwargs = {"device_id": dev.torch_device} if launch.backend == "nccl" else {}
    os.environ.setdefault(SERIALIZATION_WARNING, "false")
    dist.init_process_group(launch.backend, init_method=init_method, rank=rank,
                            world_size=launch.world_size,
                            timeout=timedelta(seconds=process_group_timeout_s(timeout_s)),
                            **kwargs)
    return RankContext(rank, launch.world_size, local_rank, launch.backend, dev.torch_device,
                       launch.nodes, dev)


def _traced(fn, ctx, args):
    """fn(ctx, *args), under probes/strict.py's NCCL rules when PROBES_STRICT is set."""
    rec = strict.from_environment(ctx.device)
    try:
        out = fn(ctx, *args)
    finally:
        if rec is not None:
            strict.uninstall(rec)
    if rec is not None and os.environ.get("PROBES_TRACE_DIR"):
        rec.dump(os.environ["PROBES_TRACE_DIR"], ctx.rank)
    return out


def _first_line(exc: BaseException) -> str:
    """'ValueError: boom (at file.py:12 in fn)' -- the error and where it was raised."""
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" (at {os.path.basename(tb[-1].filename)}:{tb[-1].lineno} in {tb[-1].name})" if tb else ""
    text = traceback.format_exception_only(type(exc), exc)[-1].strip().splitlines()[0]
    return text + where


def _worker(rank, launch, init_method, timeout_s, fn, args, results, threads):
    """One spawned rank: rendezvous, run fn, post ('ok'|'err', rank, payload) on the queue."""
    if threads:
        torch.set_num_threads(threads)
    try:
        ctx = init_rank(launch, rank, rank, init_method, timeout_s)
        out = _traced(fn, ctx, args)
    except BaseException as exc:  # noqa: BLE001 -- every failure must reach the parent
        results.put(("err", rank, _first_line(exc) + "\n" + traceback.format_exc()))
        results.close()
        results.join_thread()
        os._exit(1)  # never return normally: the group may hold pending work
    results.put(("ok", rank, out))
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


class _ExitOnce:
    """The one way out of a torchrun rank that cannot finish: run `on_exit(message, code)` once
    (whichever of the error, the deadline or a signal comes first), then os._exit(code)."""

    def __init__(self, rank: int, on_exit):
        self.rank, self.on_exit, self.lock = rank, on_exit, threading.Lock()

    def __call__(self, message: str, code: int) -> None:
        if not self.lock.acquire(blocking=False):
            time.sleep(3600)  # another thread is already on its way out
        try:
            sys.stderr.write(f"rank {self.rank}: {message}\n")
            sys.stderr.flush()
            if self.on_exit is not None:
                self.on_exit(message, code)
        finally:
            sys.stderr.flush()
            os._exit(code)


def _watch_signals(leave) -> callable:
    """SIGTERM / SIGINT -> leave(...), even while the main thread waits inside NCCL or gloo (the
    C-level handler writes the signal number to a wake-up pipe that a thread reads; the Python
    handler alone would run only when the main thread returns to Python). Returns the undo."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    old = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGTERM, signal.SIGINT)}
    names = {signal.SIGTERM.value: ("stopped by SIGTERM (the launcher stops every rank when one "
                                    "fails)", 143),
             signal.SIGINT.value: ("interrupted", 130)}

    def loop():
        while True:
            try:
                data = os.read(r, 64)
            except OSError:
                return
            for byte in data:
                if byte in names:
                    leave(*names[byte])

    threading.Thread(target=loop, name="probes-signals", daemon=True).start()

    def undo():
        signal.set_wakeup_fd(old_fd)
        for s, h in old.items():
            signal.signal(s, h)

    return undo


def _run_torchrun(fn, args, launch: Launch, timeout_s: float, on_exit) -> list:
    leave = _ExitOnce(launch.rank, on_exit)
    undo = _watch_signals(leave)
    deadline = threading.Timer(timeout_s, leave, (f"timed out after {timeout_s:g} s", 1))
    deadline.daemon = True
    deadline.start()
    try:
        ctx = init_rank(launch, launch.rank, launch.local_rank, "env://", timeout_s)
        out = _traced(fn, ctx, args)
    except BaseException as exc:  # noqa: BLE001 -- a rank must not return normally
        traceback.print_exc()
        leave(f"rank {launch.rank} failed: {_first_line(exc)}", 1)
    deadline.cancel()
    undo()
    dist.destroy_process_group()
    return [out]


def run_ranks(fn, args=(), *, world_size=None, backend=None, timeout_s=300.0, launch=None,
              on_exit=None) -> list:
    """Run `fn(ctx, *args)` on every rank; the per-rank results in rank order.

    Raises LaunchError when the run cannot start; spawned, RankFailure when a rank raises or
    the run exceeds `timeout_s` (all ranks are stopped first). Under torchrun see the module
    docstring: `on_exit(message, code)` runs before a rank leaves early."""
    launch = launch or plan(world_size, backend)
    if launch.torchrun:
        return _run_torchrun(fn, args, launch, timeout_s, on_exit)
    world = launch.world_size
    # CPU ranks share the cores: one intra-op thread each keeps them from fighting.
    threads = max(1, (os.cpu_count() or 1) // world) if launch.backend == "gloo" else 0
    ctx_mp = mp.get_context("spawn")
    results = ctx_mp.Queue()
    out = [None] * world
    old_term = None
    if threading.current_thread() is threading.main_thread():
        def _term(*_):
            raise Terminated()
        old_term = signal.signal(signal.SIGTERM, _term)
    try:
        with tempfile.TemporaryDirectory(prefix="probes-rdzv-") as tmp:
            init_method = "file://" + os.path.join(tmp, "rendezvous")
            procs = [ctx_mp.Process(target=_worker, daemon=True,
                                    args=(r, launch, init_method, timeout_s, fn, args, results,
                                          threads))
                     for r in range(world)]
            try:
                failure, detail = _collect(procs, results, out, timeout_s)
            except BaseException:
                _stop_all(procs)
                raise
            if failure is not None:
                _stop_all(procs)
                err = RankFailure(failure, out)
                err.detail = detail
                raise err
            for p in procs:
                p.join(10.0)
            _stop_all(procs)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    return out


def _collect(procs, results, out, timeout_s):
    """Start the ranks and gather their results; (failure message or None, traceback text)."""
    world = len(procs)
    deadline = time.monotonic() + timeout_s
    for p in procs:
        p.start()
    done = set()
    while len(done) < world:
        left = deadline - time.monotonic()
        if left <= 0:
            missing = [r for r in range(world) if r not in done]
            return (f"timed out after {timeout_s:g} s waiting for rank(s) "
                    f"{', '.join(map(str, missing))}"), ""
        try:
            kind, rank, payload = results.get(timeout=min(left, 0.5))
        except queue_mod.Empty:
            dead = [r for r, p in enumerate(procs)
                    if r not in done and not p.is_alive() and p.exitcode not in (0, None)]
            if dead:
                return (f"rank {dead[0]} died with exit code {procs[dead[0]].exitcode} before "
                        "reporting a result"), ""
            continue
        if kind == "err":
            return f"rank {rank} failed: {payload.splitlines()[0]}", payload
        out[rank] = payload
        done.add(rank)
    return None, ""
