"""A recording stand-in for `torch.cuda`, for the CPU tests of the probes' GPU path.

probes/device.py takes the module it calls; handing it `FakeCuda(log)` makes every call an
entry of `log` -- ("set_device", 1), ("record", "e0"), ("event_sync", "e1"), ("capture_begin", "thread_local")
-- so a test can assert the order of calls the real GPU path would make. Nothing here runs on
a GPU: tensors stay on the CPU, events report a fixed elapsed time.
"""

from contextlib import contextmanager
from types import SimpleNamespace

H100_PROPS = dict(name="NVIDIA H100 80GB HBM3", total_memory=85520809984, major=9, minor=0,
                  multi_processor_count=132, L2_cache_size=50 * 2**20,
                  uuid="GPU-00000000-0000-0000-0000-000000000000")


class FakeEvent:
    def __init__(self, cuda, name):
        self.cuda, self.name = cuda, name

    def record(self, stream=None):
        self.cuda.log.append(("record", self.name))

    def synchronize(self):
        self.cuda.log.append(("event_sync", self.name))

    def elapsed_time(self, other):
        self.cuda.log.append(("elapsed", self.name, other.name))
        return self.cuda.elapsed_ms


class FakeStream:
    def __init__(self, cuda, name):
        self.cuda, self.name = cuda, name

    def wait_stream(self, other):
        self.cuda.log.append(("wait_stream", self.name, other.name))


class FakeGraph:
    def __init__(self, cuda):
        self.cuda = cuda

    def replay(self):
        self.cuda.log.append(("replay",))


class FakeCuda:
    """The parts of torch.cuda that probes/device.py calls."""

    def __init__(self, log=None, gpus=8, elapsed_ms=2.0, props=None, capability=(9, 0)):
        self.log = log if log is not None else []
        self.gpus, self.elapsed_ms, self._events = gpus, elapsed_ms, 0
        self.props = SimpleNamespace(**(props or H100_PROPS))
        self.capability = capability
        self.nccl = SimpleNamespace(version=lambda: (2, 28, 3))

    def is_available(self):
        return self.gpus > 0

    def device_count(self):
        return self.gpus

    def set_device(self, index):
        self.log.append(("set_device", index))

    def synchronize(self, index=None):
        self.log.append(("synchronize", index))

    def Event(self, enable_timing=False):  # noqa: N802 -- torch.cuda's name
        self._events += 1
        return FakeEvent(self, f"e{self._events - 1}")

    def Stream(self):  # noqa: N802
        return FakeStream(self, "side")

    def current_stream(self):
        return FakeStream(self, "current")

    @contextmanager
    def stream(self, s):
        self.log.append(("stream_enter", s.name))
        yield
        self.log.append(("stream_exit", s.name))

    def CUDAGraph(self):  # noqa: N802
        return FakeGraph(self)

    @contextmanager
    def graph(self, g, capture_error_mode="global"):
        self.log.append(("capture_begin", capture_error_mode))
        yield
        self.log.append(("capture_end",))

    def get_device_properties(self, index):
        return self.props

    def get_device_capability(self, index):
        return self.capability
