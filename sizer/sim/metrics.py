"""What a simulation measured, with the benchmark clients' definitions.

Definitions of vLLM's benchmark client (vllm/benchmarks/serve.py, `calculate_metrics`):
- TTFT: from the request being sent (its arrival, or its release under a client concurrency
  limit) to its first output token, queueing included;
- TPOT per request: (e2e - TTFT) / (output tokens - 1), for requests with more than one token;
- ITL: every gap between consecutive output tokens of a request, pooled over requests;
- E2E: from sending to the last token; queue: from sending to the first forward it is in;
- throughput: completed requests, output tokens and prompt + output tokens over the benchmark
  duration (first request sent to last request finished);
- goodput (vLLM `--goodput`): requests that meet every SLO given (TTFT, TPOT; TPOT counts as 0
  for one-token outputs) per second of duration, and their fraction.
Percentiles are numpy's default (linear interpolation between order statistics), computed on
weighted samples where a fused decode stretch contributes one gap value for many requests.
"""

import numpy as np

PCTS = (50, 90, 99)


def weighted_percentiles(values: np.ndarray, counts: np.ndarray, qs) -> list[float]:
    """np.percentile(np.repeat(values, counts), q) for each q, without the repeated array."""
    order = np.argsort(values, kind="stable")
    v, cum = values[order], np.cumsum(counts[order])
    n = int(cum[-1])
    out = []
    for q in qs:
        pos = q / 100.0 * (n - 1)
        lo, hi = int(np.floor(pos)), int(np.ceil(pos))
        vlo = v[np.searchsorted(cum, lo, side="right")]
        vhi = v[np.searchsorted(cum, hi, side="right")]
        out.append(float(vlo + (vhi - vlo) * (pos - lo)))
    return out


def block(values, counts=None, percentiles=PCTS) -> dict:
    """{mean, p50, p90, p99, max} (zeros for an empty sample)."""
    v = np.asarray(values, dtype=float)
    keys = ["mean"] + [f"p{p:g}" for p in percentiles] + ["max"]
    if not len(v):
        return dict.fromkeys(keys, 0.0)
    if counts is None or np.all(counts == 1):
        pct = np.percentile(v, percentiles).tolist()
        out = {"mean": float(v.mean())}
    else:
        c = np.asarray(counts, dtype=np.int64)
        pct = weighted_percentiles(v, c, percentiles)
        out = {"mean": float((v * c).sum() / c.sum())}
    out.update({f"p{p:g}": float(x) for p, x in zip(percentiles, pct)})
    out["max"] = float(v.max())
    return out


def itl_samples(st):
    """(values, counts) of every inter-token gap of the measured requests."""
    if not st.itl:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    vals = np.concatenate([g for g, _ in st.itl])
    counts = np.concatenate([np.full(len(g), m, dtype=np.int64) for g, m in st.itl])
    return vals, counts


def per_request(st, first_measured: int = 0) -> dict:
    """Arrays over the measured requests (arrival order): ttft, tpot (NaN for 1 token), e2e,
    queue."""
    sl = slice(first_measured, None)
    ttft = st.first_t[sl] - st.release_t[sl]
    e2e = st.finish_t[sl] - st.release_t[sl]
    queue = st.start_t[sl] - st.release_t[sl]
    osl = st.osl[sl]
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(osl > 1, (e2e - ttft) / np.maximum(osl - 1, 1), np.nan)
    return {"ttft": ttft, "tpot": tpot, "e2e": e2e, "queue": queue}


def littles_law(st) -> dict:
    """L = (1/T) x integral of the number of requests in system over [first arrival, last
    finish], against lambda x W with lambda = N / T and W the mean time in system."""
    t0, t1 = float(np.min(st.release_t)), float(np.max(st.finish_t))
    span = max(t1 - t0, 1e-300)
    times = np.concatenate([st.release_t, st.finish_t])
    steps = np.concatenate([np.ones(st.n), -np.ones(st.n)])
    order = np.lexsort((-steps, times))  # arrivals before departures at equal times
    t, d = times[order], steps[order]
    in_system = np.cumsum(d)
    area = float(np.sum(in_system[:-1] * np.diff(t)))
    mean_in_system = area / span
    w = float(np.mean(st.finish_t - st.release_t))
    lam = st.n / span
    return {"mean_in_system": mean_in_system, "throughput_rps": lam, "mean_time_in_system_s": w,
            "relative_error": abs(mean_in_system - lam * w) / max(lam * w, 1e-300)}


def in_system_at_arrivals(st) -> np.ndarray:
    """Requests in the system just after each one arrives (arrival order)."""
    finished_before = np.searchsorted(np.sort(st.finish_t), st.release_t, side="right")
    return np.arange(1, st.n + 1) - finished_before


def verdict(st, rate_rps: float, concurrency) -> str:
    """'stable', or 'saturated' when the number in system still grows over the last tenth of
    the arrivals (against the middle fifth): the queue the engine cannot drain."""
    if concurrency:
        return "closed loop"
    if not np.isfinite(rate_rps) or np.ptp(st.release_t) == 0:
        return "saturated"
    n = in_system_at_arrivals(st)
    k = len(n)
    if k < 20:
        return "stable"
    mid = float(n[int(0.4 * k):int(0.6 * k)].mean())
    end = float(n[int(0.9 * k):].mean())
    return "saturated" if end > 1.25 * mid + 2 else "stable"


def replica_stats(reps) -> dict:
    """Batch (sequences per forward) and KV use (share of blocks) averaged over forwards."""
    w, b, kv = [], [], []
    for rep in reps:
        if not rep.samples:
            continue
        s = np.asarray(rep.samples, dtype=float)
        w.append(s[:, 1])
        b.append(s[:, 2])
        kv.append(s[:, 3] / max(rep.total_blocks, 1))
    if not w:
        zero = {"mean": 0.0, "max": 0.0}
        return {"batch": dict(zero), "kv_utilization": dict(zero), "forwards": 0}
    w, b, kv = np.concatenate(w), np.concatenate(b), np.concatenate(kv)
    return {"batch": {"mean": float((w * b).sum() / w.sum()), "max": float(b.max())},
            "kv_utilization": {"mean": float((w * kv).sum() / w.sum()), "max": float(kv.max())},
            "forwards": int(w.sum())}


def timeline(reps, end_s: float, points: int = 400) -> dict:
    """Waiting and running requests (summed over replicas) and KV use (mean over replicas)
    sampled on a regular time grid, for charts."""
    t = np.linspace(0.0, max(end_s, 1e-9), points)
    waiting, running, kv = np.zeros(points), np.zeros(points), np.zeros(points)
    for rep in reps:
        if not rep.samples:
            continue
        s = np.asarray(rep.samples, dtype=float)
        i = np.searchsorted(s[:, 0], t, side="right") - 1
        have = i >= 0
        waiting[have] += s[i[have], 4]
        running[have] += s[i[have], 5]
        kv[have] += s[i[have], 3] / max(rep.total_blocks, 1)
    return {"time_s": t.tolist(), "waiting": waiting.tolist(), "running": running.tolist(),
            "kv_utilization": (kv / max(len(reps), 1)).tolist()}
