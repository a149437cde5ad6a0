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


SHORT_LIFETIMES = 3  # arrivals must span this many times in system of the first requests
FIRST_REQUESTS = 10  # whose time in system (a nearly empty engine) sets that scale
MIN_ARRIVALS = 50
BATCHES = 10  # batch means over the second half of the arrivals
ALPHA = 0.005  # one-sided level of the trend test
MIN_PILE_UP = 0.05  # share of the window's arrivals the trend leaves in the system
CLEAR_PILE_UP = 0.25  # ... beyond which no burst explains it (an engine at 4/3 of its capacity)
WINDOW_LIFETIMES = 10  # service times the window must span to read a smaller rise as growth


def kendall_s_critical(n: int, alpha: float) -> int:
    """Smallest S with P(S >= s) <= alpha for the Mann-Kendall statistic of n values in random
    order (no ties): S = n(n - 1)/2 - 2 x inversions, inversions counted exactly by the
    Mahonian recursion (Kendall, Rank Correlation Methods, ch. 4). n = 10, alpha = 0.005: 29."""
    counts = np.ones(1)
    for m in range(2, n + 1):
        nxt = np.zeros(len(counts) + m - 1)
        for j in range(m):
            nxt[j:j + len(counts)] += counts
        counts = nxt
    tail = np.cumsum(counts / counts.sum())  # P(inversions <= i)
    top = n * (n - 1) // 2
    ok = np.flatnonzero(tail <= alpha)
    return top - 2 * int(ok[-1]) if len(ok) else top + 2  # + 2: no ordering is that unlikely


S_CRIT = kendall_s_critical(BATCHES, ALPHA)


def stability(st, service_s: float | None = None) -> dict:
    """Does the number of requests in the system grow through the run, beyond its noise?

    Requests in the system just after each arrival (in_system_at_arrivals), over the second
    half of the arrivals. The series is strongly autocorrelated, so its trend is tested on
    batch means (the batch-means method of simulation output analysis, Law, Simulation
    Modeling and Analysis, 5th ed., section 9.5.3): BATCHES consecutive batches, their
    Mann-Kendall statistic S (concordant minus discordant pairs; significant at S >= S_CRIT, the
    one-sided ALPHA critical value) and the rise of their Theil-Sen line (median of the pairwise
    slopes) over the window, as a share of the window's arrivals (an engine serving a fraction f
    of what arrives leaves about 1 - f of them: half at twice its capacity; a stable engine's
    count is flat, however noisy). With S significant:
    - a rise above CLEAR_PILE_UP of the arrivals is saturated however short the run;
    - a rise above MIN_PILE_UP is saturated when the window spans at least WINDOW_LIFETIMES
      lone-request service times, else too short to tell (a burst of arrivals near the end of
      a short stable run rises as much: 8B at half its capacity, 300 requests, seed 2, +22%);
    - less is stable.
    Too short to tell as well: fewer than MIN_ARRIVALS arrivals, or arrivals spanning less than
    SHORT_LIFETIMES service times: the engine is still filling. `service_s` is a lone request's
    time in the engine (Deployment.service_time); without it, the median time in system of the
    first FIRST_REQUESTS requests."""
    t = st.release_t
    k = len(t)
    span = float(np.ptp(t)) if k else 0.0
    head = slice(0, min(FIRST_REQUESTS, k))
    life = float(service_s) if service_s else (float(np.median(st.finish_t[head] - t[head])) if k else 0.0)
    out = {"arrivals": k, "arrival_span_s": span, "service_s": life, "window_arrivals": 0,
           "mann_kendall_s": 0, "s_critical": S_CRIT, "pile_up": 0.0}
    if span == 0:
        return {**out, "reason": "all at once"}
    if k < MIN_ARRIVALS or span < SHORT_LIFETIMES * life:
        return {**out, "reason": "too short"}
    n = in_system_at_arrivals(st)[k // 2:]
    m = len(n) // BATCHES
    means = n[:m * BATCHES].reshape(BATCHES, m).mean(axis=1)
    i, j = np.triu_indices(BATCHES, 1)
    diff = means[j] - means[i]
    s_stat = int(np.sign(diff).sum())
    pile = float(np.median(diff / (j - i))) / m  # per arrival: the share of them that stays
    window = float(t[-1] - t[k // 2])
    out.update(window_arrivals=len(n), window_span_s=window, mann_kendall_s=s_stat, pile_up=pile,
               start_in_system=float(means[0]), end_in_system=float(means[-1]))
    if s_stat < S_CRIT or pile <= MIN_PILE_UP:
        reason = "flat"
    elif pile > CLEAR_PILE_UP or window >= WINDOW_LIFETIMES * life:
        reason = "grows"
    else:
        reason = "too short"
    return {**out, "reason": reason}


def verdict(st, rate_rps: float, concurrency, stab: dict | None = None) -> str:
    """'closed loop' under a client concurrency; 'saturated' when every request arrives at
    once (the queue only drains) or the number in system grows (stability); 'too short' when
    the run cannot tell; else 'stable'. `rate_rps` is not read: a replayed trace has its own
    timestamps."""
    if concurrency:
        return "closed loop"
    stab = stab or stability(st)
    return {"all at once": "saturated", "too short": "too short", "grows": "saturated"}.get(stab["reason"], "stable")


def advice(verdict_: str, stab: dict) -> str | None:
    """The warning a verdict deserves, saying what to do."""
    if verdict_ == "saturated" and stab.get("reason") == "grows":
        return (f"saturated: over the second half of the arrivals the requests in the system grew from "
                f"{stab['start_in_system']:.0f} to {stab['end_in_system']:.0f} ({stab['pile_up']:.0%} of those "
                "arrivals left waiting or running); the engine does not keep up: "
                "lower --rate or add replicas (--dp); the latencies grow with the run's length")
    if verdict_ == "too short":
        if stab.get("window_arrivals"):
            why = (f"the requests in the system rose from {stab['start_in_system']:.0f} to "
                   f"{stab['end_in_system']:.0f} over the last {stab['window_span_s']:.3g} s of arrivals, "
                   f"too short a time (under {WINDOW_LIFETIMES}x the {stab['service_s']:.3g} s a request spends in "
                   "the engine) to tell growth from a burst")
        elif stab["arrivals"] < MIN_ARRIVALS:
            why = f"{stab['arrivals']} arrivals (fewer than {MIN_ARRIVALS})"
        else:
            why = (f"arrivals span {stab['arrival_span_s']:.3g} s, under {SHORT_LIFETIMES}x the "
                   f"{stab['service_s']:.3g} s a request spends in the engine")
        return (f"too short to tell whether the engine keeps up: {why}; the latencies are those of a filling "
                "engine: run longer (--requests or --duration)")
    return None


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
