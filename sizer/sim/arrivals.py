"""What arrives: request lengths, arrival times and replayed traces.

A `Traffic` describes the offered load; `generate(traffic)` turns it into three arrays (arrival
times, prompt and output lengths) with a seeded numpy generator, so one seed gives one workload.

Arrival processes follow vLLM's benchmark client (vllm/benchmarks/serve.py, `get_request`):
Poisson at `rate_rps` (exponential gaps), a gamma process with `burstiness` (shape; 1 is
Poisson, below 1 burstier), `constant` spacing, or `rate_rps = inf`: every request at t = 0
("infinite QPS"). Gaps are drawn at unit rate and divided by the rate, so for one seed the
arrival times scale exactly with 1 / rate (the rate search relies on it). The first request
arrives at t = 0. A client `concurrency` limit (vLLM `--max-concurrency`, AIPerf concurrency)
is applied by the event loop, which releases a request only when fewer are outstanding.

Traces (sizer.sim.traces) give per-request lengths and, optionally, arrival times.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from sizer.errors import InputError

MAX_REQUESTS = 10_000_000  # a simulation past this size is refused (issue #12, "Bad input")
ARRIVALS = ("poisson", "gamma", "constant")


@dataclass(frozen=True)
class Lengths:
    """A token-length distribution: fixed, uniform[lo, hi], normal(mean, std) or lognormal with
    the given mean and standard deviation (of the length itself, not of its log). Samples are
    rounded to integers and clipped to at least 1 token."""

    kind: str = "fixed"
    a: float = 1024
    b: float = 0.0

    def __post_init__(self):
        a, b = self.a, self.b
        if not all(math.isfinite(x) for x in (a, b)):
            raise InputError(f"{self.describe()}: parameters must be finite numbers")
        ok = {"fixed": a >= 1, "uniform": 1 <= a <= b, "normal": a >= 1 and b >= 0,
              "lognormal": a >= 1 and b >= 0}
        if self.kind not in ok:
            raise InputError(f"unknown length distribution {self.kind!r}; choose fixed, uniform, normal or lognormal")
        if not ok[self.kind]:
            need = {"fixed": "a length >= 1", "uniform": "1 <= LO <= HI", "normal": "MEAN >= 1 and STD >= 0",
                    "lognormal": "MEAN >= 1 and STD >= 0"}[self.kind]
            raise InputError(f"impossible length distribution {self.describe()}: needs {need}")

    def describe(self) -> str:
        if self.kind == "fixed":
            return f"{self.a:g}"
        return f"{self.kind}:{self.a:g},{self.b:g}"

    @property
    def mean(self) -> float:
        return {"fixed": self.a, "uniform": (self.a + self.b) / 2}.get(self.kind, self.a)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        if self.kind == "fixed":
            x = np.full(n, float(self.a))
        elif self.kind == "uniform":
            return rng.integers(int(math.ceil(self.a)), int(math.floor(self.b)) + 1, size=n).astype(np.int64)
        elif self.kind == "normal":
            x = rng.normal(self.a, self.b, size=n)
        else:
            s2 = math.log1p((self.b / self.a) ** 2)
            x = rng.lognormal(math.log(self.a) - s2 / 2, math.sqrt(s2), size=n)
        return np.maximum(np.rint(x), 1).astype(np.int64)


def parse_lengths(text: str, flag: str = "--isl-dist") -> Lengths:
    """'uniform:128,1024', 'normal:1024,256', 'lognormal:1024,512' or a plain length."""
    s = str(text).strip().lower()
    kind, _, params = s.partition(":")
    if not params:
        try:
            return Lengths("fixed", float(kind))
        except ValueError:
            raise InputError(f"{flag} {text!r}: expected KIND:A,B (uniform:LO,HI, normal:MEAN,STD, "
                             "lognormal:MEAN,STD) or a length") from None
    try:
        values = [float(v) for v in params.split(",")]
    except ValueError:
        raise InputError(f"{flag} {text!r}: parameters must be numbers") from None
    if len(values) != 2:
        raise InputError(f"{flag} {text!r}: {kind} takes two parameters, got {len(values)}")
    return Lengths(kind, *values)


@dataclass(frozen=True)
class Trace:
    """Rows of a request trace (sizer.sim.traces.read_trace): lengths, and arrival times in
    seconds from the first request when the file had them."""

    path: str
    isl: np.ndarray
    osl: np.ndarray
    arrival_s: np.ndarray | None = None

    def __hash__(self):
        return hash((self.path, len(self.isl)))


@dataclass(frozen=True)
class Traffic:
    """The offered load. `requests` or `duration_s` bounds it (with neither, 1000 requests, or
    every row of a trace). `warmup` requests (by arrival order) are left out of the metrics."""

    rate_rps: float = math.inf
    requests: int | None = None
    duration_s: float | None = None
    isl: Lengths = field(default_factory=lambda: Lengths("fixed", 1024))
    osl: Lengths = field(default_factory=lambda: Lengths("fixed", 256))
    arrival: str = "poisson"
    burstiness: float = 1.0
    trace: Trace | None = None
    concurrency: int | None = None
    warmup: int = 0
    seed: int = 0

    def __post_init__(self):
        r = self.rate_rps
        if not isinstance(r, (int, float)) or isinstance(r, bool) or math.isnan(r) or r <= 0:
            raise InputError(f"--rate must be a positive number or inf, got {r!r}")
        if self.requests is not None and (not isinstance(self.requests, int) or self.requests < 1):
            raise InputError(f"--requests must be a positive integer, got {self.requests!r}")
        if self.duration_s is not None and not (self.duration_s > 0 and math.isfinite(self.duration_s)):
            raise InputError(f"--duration must be positive, got {self.duration_s!r}")
        if self.requests is not None and self.duration_s is not None:
            raise InputError("give --requests or --duration, not both")
        if self.duration_s is not None and math.isinf(r):
            raise InputError("--duration needs a finite --rate (at --rate inf every request arrives at t=0)")
        if self.arrival not in ARRIVALS:
            raise InputError(f"--arrival must be one of {', '.join(ARRIVALS)}, got {self.arrival!r}")
        if not (self.burstiness > 0 and math.isfinite(self.burstiness)):
            raise InputError(f"--burstiness must be positive, got {self.burstiness!r}")
        if self.concurrency is not None and (not isinstance(self.concurrency, int) or self.concurrency < 1):
            raise InputError(f"--concurrency must be a positive integer, got {self.concurrency!r}")
        if self.warmup < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")
        n = self.expected_requests()
        if n > MAX_REQUESTS:
            raise InputError(f"{n:,.0f} requests exceed the simulator's limit of {MAX_REQUESTS:,}")
        if self.warmup >= n:
            raise InputError(f"--warmup {self.warmup} leaves no request to measure (of {n:,.0f})")

    def expected_requests(self) -> float:
        if self.requests is not None:
            return self.requests
        if self.duration_s is not None:
            return self.rate_rps * self.duration_s
        return len(self.trace.isl) if self.trace is not None else 1000

    def at_rate(self, rate_rps: float) -> "Traffic":
        """The same traffic (seed, lengths, count) at another rate."""
        from dataclasses import replace

        return replace(self, rate_rps=float(rate_rps))

    def trace_rate_rps(self) -> float | None:
        """The mean rate of a timestamped trace's rows in use ((n - 1) / their time span), or
        None without timestamps."""
        tr = self.trace
        if tr is None or tr.arrival_s is None:
            return None
        t = np.asarray(tr.arrival_s[:self.requests or len(tr.isl)], dtype=float)
        span = float(t[-1] - t[0]) if len(t) > 1 else 0.0
        return (len(t) - 1) / span if span > 0 else math.inf

    def describe(self) -> str:
        rate = "inf" if math.isinf(self.rate_rps) else f"{self.rate_rps:g} req/s"
        own = self.trace_rate_rps()
        if own is not None and not math.isinf(own):
            if math.isinf(self.rate_rps):
                rate = f"{own:.3g} req/s (trace timestamps)"
            else:
                rate = f"{self.rate_rps:g} req/s (trace timestamps rescaled from {own:.3g} req/s)"
        elif math.isinf(self.rate_rps):
            rate = "inf (all at t=0)"
        else:
            rate = f"{rate} ({self.arrival})"
        if self.trace is not None:
            lengths = f"trace {self.trace.path}"
        else:
            lengths = f"isl {self.isl.describe()}, osl {self.osl.describe()}"
        conc = f", concurrency {self.concurrency}" if self.concurrency else ""
        return f"{rate}{conc}, {lengths}"


@dataclass(frozen=True)
class Workload:
    """The generated requests, in arrival order."""

    arrival_s: np.ndarray
    isl: np.ndarray
    osl: np.ndarray

    def __len__(self) -> int:
        return len(self.arrival_s)


def _gaps(traffic: Traffic, rng: np.random.Generator, n: int) -> np.ndarray:
    """n unit-mean inter-arrival gaps."""
    if traffic.arrival == "constant":
        return np.ones(n)
    if traffic.arrival == "gamma" or traffic.burstiness != 1.0:
        b = traffic.burstiness
        return rng.gamma(b, 1.0 / b, size=n)
    return rng.exponential(1.0, size=n)


def generate(traffic: Traffic) -> Workload:
    """The requests of `traffic` (module docstring), reproducible from traffic.seed."""
    rng = np.random.default_rng(traffic.seed)
    tr = traffic.trace
    if tr is not None and tr.arrival_s is not None:
        n = min(traffic.requests or len(tr.isl), len(tr.isl))
        if traffic.requests and traffic.requests > len(tr.isl):
            raise InputError(f"--requests {traffic.requests} exceeds the {len(tr.isl)} rows of {tr.path}")
        t = np.asarray(tr.arrival_s[:n], dtype=float)
        t = t - t[0]
        if math.isfinite(traffic.rate_rps) and n > 1 and t[-1] > 0:
            t = t * ((n - 1) / t[-1]) / traffic.rate_rps  # rescaled to the asked mean rate
        if traffic.duration_s is not None:
            keep = t < traffic.duration_s
            t, n = t[keep], int(keep.sum())
        return Workload(t, tr.isl[:n].copy(), tr.osl[:n].copy())
    if traffic.duration_s is not None:
        n_guess = int(traffic.rate_rps * traffic.duration_s * 1.2 + 50)
        unit = np.concatenate([[0.0], np.cumsum(_gaps(traffic, rng, n_guess))])
        while unit[-1] / traffic.rate_rps < traffic.duration_s:
            more = np.cumsum(_gaps(traffic, rng, n_guess)) + unit[-1]
            unit = np.concatenate([unit, more])
        t = unit / traffic.rate_rps
        t = t[t < traffic.duration_s]
        n = len(t)
    else:
        n = traffic.requests or (len(tr.isl) if tr is not None else 1000)
        if math.isinf(traffic.rate_rps):
            t = np.zeros(n)
        else:
            t = np.concatenate([[0.0], np.cumsum(_gaps(traffic, rng, n - 1))]) / traffic.rate_rps
    if tr is not None:  # lengths from the trace, in order, cycling when more are asked
        idx = np.arange(n) % len(tr.isl)
        return Workload(t, tr.isl[idx].copy(), tr.osl[idx].copy())
    lrng = np.random.default_rng([traffic.seed, 1])  # lengths do not depend on the rate
    return Workload(t, traffic.isl.sample(lrng, n), traffic.osl.sample(lrng, n))
