"""The one door to the accelerator: every torch.cuda call the probes make goes through here.

A probe never calls torch.cuda itself. It asks its rank's device layer (`ctx.dev`) to select the
device, time work with events, synchronise, capture and replay a CUDA graph, or describe the
device. The GPU path then stays small enough to read against the PyTorch documentation, and the
CPU tests substitute a recording fake for `torch.cuda` (tests/fake_cuda.py) to check the order
of the calls: set_device before init_process_group, the end event recorded right after the last
timed call and before anything waits, a side-stream warm-up before a graph capture.

`CudaDevice(index, cuda=module)` takes the module it calls (torch.cuda by default); `CpuDevice`
is the same interface for gloo CPU ranks (no events, no graphs, perf_counter timing).
"""

import time

import torch


class GraphUnsupported(RuntimeError):
    """This device cannot capture CUDA graphs (CPU ranks)."""


class CpuTimer:
    """start()/stop() -> elapsed wall seconds (perf_counter); CPU work is synchronous."""

    def __init__(self):
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def stop(self) -> float:
        return time.perf_counter() - self._t0


class EventTimer:
    """start()/stop() -> device seconds between two CUDA events.

    stop() records the end event first -- right after the last timed call is queued -- and then
    waits on that event alone, so the interval holds the device work in between and not the
    host's wake-up from a full device synchronise (torch.cuda.Event: elapsed_time is the time
    between two recorded events, in milliseconds; synchronize waits for this event only)."""

    def __init__(self, cuda):
        self._start = cuda.Event(enable_timing=True)
        self._end = cuda.Event(enable_timing=True)

    def start(self) -> None:
        self._start.record()

    def stop(self) -> float:
        self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1e3


class CpuDevice:
    """The device layer of a CPU (gloo) rank."""

    type = "cpu"
    index = None
    supports_graphs = False

    def __init__(self):
        self.torch_device = torch.device("cpu")

    def set_device(self) -> None:
        """Nothing to select on a CPU rank."""

    def synchronize(self) -> None:
        """CPU work is done when the call returns."""

    def timer(self) -> CpuTimer:
        return CpuTimer()

    def capture(self, fn, n: int, warmup: int = 3):
        raise GraphUnsupported("CUDA graphs need a CUDA device")

    def capability(self):
        return None

    def l2_bytes(self):
        """None: CPU caches are not filtered out of the CPU copy sweep (a CPU profile describes
        CPU ranks, caches included)."""
        return None

    def properties(self) -> dict:
        return {"name": "cpu"}

    def nccl_version(self):
        return None


class CudaDevice:
    """The device layer of one CUDA rank: GPU `index` of this process's visible devices."""

    type = "cuda"
    supports_graphs = True

    def __init__(self, index: int, cuda=None):
        self.index = int(index)
        self.cuda = cuda if cuda is not None else torch.cuda
        self.torch_device = torch.device("cuda", self.index)

    def set_device(self) -> None:
        """torch.cuda.set_device before init_process_group: NCCL's communicator, the object
        collectives (gather_object uses the current device) and every default-device
        allocation then land on this rank's GPU."""
        self.cuda.set_device(self.index)

    def synchronize(self) -> None:
        self.cuda.synchronize(self.index)

    def timer(self) -> EventTimer:
        return EventTimer(self.cuda)

    def capture(self, fn, n: int, warmup: int = 3):
        """A CUDA graph of `n` back-to-back calls of `fn`; returns its replay (which keeps the
        graph alive). As the torch.cuda.graph documentation requires, `fn` first runs `warmup`
        times on a side stream (lazy initialisation -- cuBLAS handles, NCCL's first-call setup --
        must not happen inside a capture). NCCL collectives may be captured with NCCL >= 2.9.6
        (ProcessGroupNCCL.cpp, errorIfCapturingNonCapturableNCCL). capture_error_mode=
        "thread_local" (torch >= 2.1) lets other threads -- NCCL's watchdog querying the events
        of work queued before the capture -- keep making CUDA calls while this one captures."""
        cuda = self.cuda
        side = cuda.Stream()
        side.wait_stream(cuda.current_stream())
        with cuda.stream(side):
            for _ in range(warmup):
                fn()
        cuda.current_stream().wait_stream(side)
        graph = cuda.CUDAGraph()
        with cuda.graph(graph, capture_error_mode="thread_local"):
            for _ in range(n):
                fn()
        return graph.replay

    def capability(self) -> tuple:
        return tuple(self.cuda.get_device_capability(self.index))

    def _props(self):
        return self.cuda.get_device_properties(self.index)

    def l2_bytes(self):
        """The L2 size in bytes from the device properties (cudaDeviceProp::l2CacheSize, exposed
        as L2_cache_size), or None where this torch does not expose it."""
        size = getattr(self._props(), "L2_cache_size", None)
        return int(size) if size else None

    def properties(self) -> dict:
        p = self._props()
        out = {"name": p.name, "memory_bytes": int(p.total_memory),
               "capability": f"{p.major}.{p.minor}",
               "multiprocessors": int(p.multi_processor_count), "l2_bytes": self.l2_bytes()}
        uuid = getattr(p, "uuid", None)
        if uuid is not None:
            out["uuid"] = str(uuid)
        return out

    def nccl_version(self):
        """'2.28.3' from torch.cuda.nccl.version() (a tuple on current torch), or None."""
        try:
            v = self.cuda.nccl.version()
        except Exception:  # noqa: BLE001 -- a build without NCCL
            return None
        return ".".join(map(str, v)) if isinstance(v, tuple) else str(v)


def visible_gpus(cuda=None) -> int:
    """CUDA devices this process can see (0 without CUDA)."""
    cuda = cuda if cuda is not None else torch.cuda
    try:
        return int(cuda.device_count()) if cuda.is_available() else 0
    except RuntimeError:  # a broken driver reads as no GPU; the launch plan then says so
        return 0


def for_rank(backend: str, device_index, cuda=None):
    """The device layer a rank of `backend` uses: CUDA device `device_index` for NCCL."""
    if backend == "nccl":
        return CudaDevice(device_index, cuda)
    return CpuDevice()
