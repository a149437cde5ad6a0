"""The one harness every probe shares: sweep, warm-up, timing, cross-rank averaging, data check, rows.

Modelled on NVIDIA/nccl-tests `src/common.cu`: each collective supplies four small pieces (its
byte count, data init, expected values, the call) and this module owns the rest. Conventions:

* `size_bytes` means what nccl-tests' `size` column means (see `SIZE_MEANING`).
* time is the mean per-iteration time of `iters` back-to-back iterations after `warmup` ones,
  then the **mean across the ranks** of the group (nccl-tests' default `-a 1`).
* algbw = size / time; busbw = algbw * factor, with the factors of nccl-tests
  doc/PERFORMANCE.md: all_reduce 2(n-1)/n; all_gather, reduce_scatter, all_to_all (n-1)/n;
  broadcast, send_recv 1.
* `wrong` counts elements that differ from the known expected values, summed over the group
  (nccl-tests' `#wrong`), checked on a separate, freshly initialised run.
"""

import sys
import time

import torch
import torch.distributed as dist

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")

SIZE_MEANING = {
    "all_reduce": "the per-rank buffer",
    "broadcast": "the per-rank buffer",
    "all_gather": "the whole gathered output",
    "reduce_scatter": "the whole (per-rank) input",
    "all_to_all": "each rank's send buffer",
    "send_recv": "the bytes each rank sends",
}

DTYPE_NAMES = {torch.float32: "float", torch.float16: "half", torch.bfloat16: "bfloat16",
               torch.int32: "int32", torch.uint8: "uint8"}


def busbw_factor(op: str, n: int) -> float:
    """Bus-bandwidth factor of nccl-tests doc/PERFORMANCE.md for `op` on `n` ranks."""
    if op == "all_reduce":
        return 2.0 * (n - 1) / n
    if op in ("all_gather", "reduce_scatter", "all_to_all", "alltoall"):
        return (n - 1) / n
    if op in ("broadcast", "reduce", "send_recv", "sendrecv"):
        return 1.0
    raise ValueError(f"no busbw factor for {op!r}")


def sweep_sizes(min_bytes: int, max_bytes: int, factor: int = 2) -> list[int]:
    """Geometric sweep min_bytes, min_bytes*factor, ... <= max_bytes (nccl-tests -b -e -f)."""
    sizes, s = [], max(1, int(min_bytes))
    while s <= max_bytes:
        sizes.append(s)
        s *= factor
    if sizes and sizes[-1] != max_bytes and max_bytes > sizes[-1]:
        sizes.append(int(max_bytes))
    return sizes


def time_iters(ctx, call, warmup: int, iters: int, group=None, barrier: bool = False) -> float:
    """Mean seconds per call over `iters` back-to-back calls after `warmup` ones.

    As nccl-tests' timing loop (src/common.cu: warm-up, complete, barrier, start the timer, the
    iterations, stop): the device finishes the warm-up, `barrier` lines the ranks of `group` up
    right before the start event, and the end event is recorded right after the last call --
    the timer then waits on that event alone (probes/device.py EventTimer)."""
    for _ in range(warmup):
        call()
    ctx.sync()
    if barrier:
        ctx.barrier(group)
    timer = ctx.timer()
    timer.start()
    for _ in range(iters):
        call()
    return timer.stop() / iters


def group_mean(ctx, value: float, group=None) -> float:
    """Mean of a float over the ranks of `group` (all_reduce SUM / size)."""
    n = dist.get_world_size(group)
    t = torch.tensor([float(value)], dtype=torch.float64 if ctx.device.type == "cpu"
                     else torch.float32, device=ctx.device)
    dist.all_reduce(t, group=group)
    return float(t.item()) / n


def group_sum(ctx, value: int, group=None) -> int:
    t = torch.tensor([int(value)], dtype=torch.int64, device=ctx.device)
    dist.all_reduce(t, group=group)
    return int(t.item())


def row(op, size_bytes, count, dtype, ranks, in_place, time_s, wrong, **extra) -> dict:
    """One nccl-tests result row (time in us, bandwidths in GB/s = 1e9 bytes/s)."""
    algbw = size_bytes / time_s / 1e9 if time_s > 0 else 0.0
    out = {"op": op, "size_bytes": int(size_bytes), "count": int(count), "dtype": dtype,
           "ranks": int(ranks), "in_place": bool(in_place), "time_us": time_s * 1e6,
           "algbw_GBps": algbw, "busbw_GBps": algbw * busbw_factor(op, ranks),
           "wrong": int(wrong)}
    out.update(extra)
    return out


class Progress:
    """Progress of one phase on stderr, drawn only where `enabled` (rank 0): a redrawn bar on a
    terminal; elsewhere (a log file, a pipe, torchrun's prefixed output) one line when the phase
    ends, so logs hold one line per phase instead of thousands of carriage returns."""

    def __init__(self, label: str, total: int, enabled: bool = True, width: int = 30,
                 stream=None):
        self.label, self.total, self.enabled, self.width = label, max(1, total), enabled, width
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.n, self.t0, self._last = 0, time.monotonic(), 0.0
        self._draw(force=True)

    def step(self, k: int = 1, note: str = "") -> None:
        self.n = min(self.total, self.n + k)
        self._draw(note=note)

    def _draw(self, note: str = "", force: bool = False) -> None:
        if not self.enabled or not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1 and self.n < self.total:
            return
        self._last = now
        fill = int(self.width * self.n / self.total)
        bar = "#" * fill + "-" * (self.width - fill)
        self.stream.write(f"\r{self.label:<10} [{bar}] {self.n}/{self.total} "
                          f"{now - self.t0:5.1f}s {note[:30]:<30}")
        self.stream.flush()

    def close(self) -> None:
        if not self.enabled:
            return
        if self.tty:
            self.n = self.total
            self._draw(force=True)
            self.stream.write("\n")
        else:
            self.stream.write(f"{self.label}: {self.n}/{self.total} steps in "
                              f"{time.monotonic() - self.t0:.1f} s\n")
        self.stream.flush()


def log(ctx, message: str) -> None:
    """A line on stderr from rank 0 only."""
    if ctx.rank == 0:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def time_adaptive(ctx, call, target_s: float = 0.05, max_iters: int = 200,
                  repeats: int = 3) -> float:
    """Seconds per call: the median of `repeats` loops of back-to-back iterations, each loop
    sized to fill ~target_s / repeats (one warm-up call and one probe call size the loop).
    The median keeps a shared machine's hiccups out of compute numbers."""
    call()
    ctx.sync()
    t1 = time_iters(ctx, call, 0, 1)
    iters = int(min(max_iters, max(2, target_s / repeats / max(t1, 1e-7))))
    times = sorted(time_iters(ctx, call, 0, iters) for _ in range(max(1, repeats)))
    return times[len(times) // 2]
