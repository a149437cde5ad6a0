"""From raw probe rows to the constants of a sizer hardware profile (schema: sizer/hardware/profile.py).

Every fit is a least-squares line in *relative* error (times span six decades, so each point
weighs by 1/t), with non-negative coefficients (scipy nnls), one outlier-rejection pass (a point
off by more than 3x the median error and 50% is left out of the fit, never out of the error
report), and a reported fit error: median and max of |model - measured| / measured in %.

* Collectives (per op, group size, nodes): t(size) = min_s(latency_s + size * f / busbw_s),
  f the nccl-tests busbw factor, in one or two segments (small- and large-message regimes).
  Two segments are kept when they cut the squared error to below 70% of one segment's
  (and one segment does not already fit to rounding).
* GEMM: t(M) = 2 M N K / F_eff(M), F_eff(M) = F * M / (M + matmul_half_rows), i.e. the line
  t = (2NK/F) * M + (2NK * half_rows / F) -- the form sizer/cost/step.py uses.
* Memory bandwidth: t = a + bytes / hbm_bytes_per_s over the copies whose working set streams
  from HBM (rows marked fit=False by probes/compute.py -- cache-resident sizes -- stay raw).
* Attention: t = a + flops / attention_flops_per_s over causal prefill lengths.
* Launch: median per-kernel time, eager and CUDA graph.
A rate line whose slope is ~0 (noise made larger work no slower; fitted rate > 4x the best
measured) falls back to the best measured rate, and says so in `method`.
"""

import numpy as np
from scipy.optimize import nnls

from .harness import busbw_factor  # tests check it agrees with sizer.cost.collectives'

MIN_BUSBW = 1e-3  # bytes/s floor so a flat (latency-only) segment still loads
MAX_BUSBW = 1e15  # a segment with zero slope gets this (never the cheapest at large sizes)
DEGENERATE = 4.0  # a fitted rate above 4x the best measured one is noise, not an asymptote


def _errors_pct(pred, t) -> dict:
    e = np.abs(np.asarray(pred) - np.asarray(t)) / np.asarray(t) * 100.0
    return {"median": float(np.median(e)), "max": float(np.max(e))}


def fit_line(x, t, reject: bool = True) -> tuple[float, float, np.ndarray]:
    """(a, b, kept mask) minimising sum(((a + b x) - t) / t)^2 with a, b >= 0."""
    x, t = np.asarray(x, float), np.asarray(t, float)
    keep = np.ones(len(t), bool)
    for _ in range(2 if reject else 1):
        A = np.column_stack([1.0 / t[keep], x[keep] / t[keep]])
        (a, b), _ = nnls(A, np.ones(keep.sum()))
        rel = np.abs(a + b * x - t) / t
        bad = rel > max(3 * np.median(rel), 0.5)
        if not reject or not bad.any() or (~bad).sum() < 3:
            break
        keep = ~bad
    return float(a), float(b), keep


def _flat(b, x, t) -> bool:
    """A slope implying a rate above DEGENERATE x the best measured one is noise."""
    return b <= 0 or 1.0 / b > DEGENERATE * float(np.max(np.asarray(x) / np.asarray(t)))


def _seg(a, b):
    return (a, MAX_BUSBW if b <= 0 else max(MIN_BUSBW, 1.0 / b))


def _seg_time(segs, x):
    return np.min([lat + x / bw for lat, bw in segs], axis=0)


def fit_segments(x, t, max_segments: int = 2, min_points: int = 3) -> dict:
    """Fit t = min_s(latency_s + x / bw_s) to points (x = size * busbw factor, t seconds).

    Returns {"segments": [(latency_s, bw), ...], "fit_error_pct": {median, max}, ...}."""
    order = np.argsort(x)
    x, t = np.asarray(x, float)[order], np.asarray(t, float)[order]
    a, b, keep = fit_line(x, t)
    if _flat(b, x, t):  # noise: never extrapolate to free bandwidth; use the best measured
        b = 1.0 / float(np.max(x / t))
        a = max(0.0, float(np.median(t - b * x)))
    best = [_seg(a, b)]
    sse = lambda segs: float(np.sum(((_seg_time(segs, x) - t) / t)[keep] ** 2))  # noqa: E731
    best_sse = sse(best)
    if max_segments >= 2 and len(x) >= 2 * min_points:
        cand = None
        for k in range(min_points, len(x) - min_points + 1):
            a1, b1, _ = fit_line(x[:k], t[:k], reject=False)
            a2, b2, _ = fit_line(x[k:], t[k:], reject=False)
            if _flat(b2, x[k:], t[k:]):  # a flat large-message segment claims free bandwidth
                continue
            segs = [_seg(a1, b1), _seg(a2, b2)]
            winner = np.argmin([lat + x / bw for lat, bw in segs], axis=0)
            if winner[0] != 0 or winner[-1] != 1:  # small-message segment must win small
                continue  # sizes and the large-message one large sizes (else not 2 regimes)
            s = sse(segs)
            if cand is None or s < cand[0]:
                cand = (s, segs, float(x[k]))
        if cand and cand[0] < 0.7 * best_sse and best_sse > 1e-10 * len(x):
            best, best_sse = cand[1], cand[0]
    return {"segments": best, "fit_error_pct": _errors_pct(_seg_time(best, x), t),
            "n_points": int(len(x)), "n_outliers": int((~keep).sum())}


def fit_collectives(rows: list[dict]) -> list[dict]:
    """One profile `collectives` entry per (op, ranks, nodes) of nccl-tests rows."""
    groups = {}
    for r in rows:
        if r.get("time_us", 0) > 0 and r.get("size_bytes", 0) > 0:
            groups.setdefault((r["op"], r["ranks"], r.get("nodes", 1)), []).append(r)
    out = []
    for (op, ranks, nodes), rs in sorted(groups.items()):
        if len(rs) < 2:
            continue
        f = busbw_factor(op, ranks)
        x = np.array([r["size_bytes"] * f for r in rs], float)
        t = np.array([r["time_us"] * 1e-6 for r in rs], float)
        fit = fit_segments(x, t)
        out.append({"op": op, "ranks": ranks, "nodes": nodes,
                    "segments": [{"latency_s": lat, "busbw_bytes_per_s": bw}
                                 for lat, bw in fit["segments"]],
                    "fit_error_pct": fit["fit_error_pct"], "n_points": fit["n_points"],
                    "n_outliers": fit["n_outliers"],
                    "max_busbw_GBps": max(r["busbw_GBps"] for r in rs),
                    "min_bytes": min(r["size_bytes"] for r in rs),
                    "max_bytes": max(r["size_bytes"] for r in rs),
                    "wrong": sum(r.get("wrong", 0) for r in rs)})
    return out


def _median_by(rows, key):
    """Median time per key over ranks (GPU profiles measure every GPU)."""
    by = {}
    for r in rows:
        if "time_s" in r:
            by.setdefault(key(r), []).append(r)
    return {k: (v[0], float(np.median([r["time_s"] for r in v]))) for k, v in sorted(by.items())}


def fit_gemm(rows: list[dict]) -> dict:
    """{dtype: {flops_per_s, half_rows, fit_error_pct, n, k}} from a GEMM sweep over M."""
    out = {}
    for dtype in sorted({r["dtype"] for r in rows if "time_s" in r}):
        pts = _median_by([r for r in rows if r["dtype"] == dtype], lambda r: (r["N"], r["K"], r["M"]))
        if len(pts) < 3:
            continue
        n, k = next(iter(pts.values()))[0]["N"], next(iter(pts.values()))[0]["K"]
        m = np.array([key[2] for key in pts], float)
        t = np.array([v[1] for v in pts.values()], float)
        a, b, keep = fit_line(m, t)
        best = float(np.max(2.0 * m * n * k / t))
        if b <= 0 or 2.0 * n * k / b > DEGENERATE * best:  # noise: best measured rate
            flops, half, method = best, 0.0, "best measured (line fit degenerate)"
        else:
            flops, half, method = 2.0 * n * k / b, a / b, "line fit"
        pred = 2.0 * m * n * k / (flops * m / (m + half))
        out[dtype] = {"flops_per_s": flops, "half_rows": half, "N": n, "K": k,
                      "fit_error_pct": _errors_pct(pred, t), "n_points": int(len(m)),
                      "n_outliers": int((~keep).sum()), "method": method,
                      "best_measured_flops_per_s": best}
    return out


def fit_rate(rows: list[dict], work_key: str) -> dict | None:
    """t = a + work / rate over rows carrying `work_key` (bytes or flops): rate, latency, errors."""
    pts = _median_by([r for r in rows if work_key in r], lambda r: r[work_key])
    if len(pts) < 2:
        return None
    w = np.array(list(pts), float)
    t = np.array([v[1] for v in pts.values()], float)
    a, b, keep = fit_line(w, t)
    best = float(np.max(w / t))
    method = "line fit"
    if b <= 0 or 1.0 / b > DEGENERATE * best:  # noise: the best measured rate, no latency
        a, b, method = 0.0, 1.0 / best, "best measured (line fit degenerate)"
    return {"rate": 1.0 / b, "latency_s": a, "fit_error_pct": _errors_pct(a + b * w, t),
            "n_points": int(len(w)), "n_outliers": int((~keep).sum()), "method": method,
            "best_measured": best}


def fit_compute(raw: dict) -> tuple[dict, dict]:
    """(profile `compute` section, detailed fits for raw['fits']) from the compute probe rows."""
    compute, detail, err = {}, {}, {}
    copies = raw.get("membw", [])
    mem = fit_rate([r for r in copies if r.get("fit", True)], "bytes")
    if mem:
        mem["cache_resident_rows_left_out"] = sum(1 for r in copies if not r.get("fit", True))
        compute["hbm_bytes_per_s"] = mem["rate"]
        err["hbm_bytes_per_s"] = mem["fit_error_pct"]["median"]
        err["hbm_bytes_per_s:max"] = mem["fit_error_pct"]["max"]
        detail["membw"] = mem
    gemm = fit_gemm(raw.get("gemm", []))
    if gemm:
        compute["matmul_flops_per_s"] = {d: g["flops_per_s"] for d, g in gemm.items()}
        primary = next((d for d in ("bf16", "fp16", "fp32", "fp8") if d in gemm), None)
        compute["matmul_half_rows"] = gemm[primary]["half_rows"]
        for d, g in gemm.items():
            err[f"matmul_flops_per_s:{d}"] = g["fit_error_pct"]["median"]
            err[f"matmul_flops_per_s:{d}:max"] = g["fit_error_pct"]["max"]
        detail["gemm"] = gemm
    prefill = [r for r in raw.get("attention", []) if r.get("op") == "attn_prefill"]
    for dtype in sorted({r["dtype"] for r in prefill}):
        att = fit_rate([r for r in prefill if r["dtype"] == dtype], "flops")
        if att:
            compute.setdefault("attention_flops_per_s", {})[dtype] = att["rate"]
            err[f"attention_flops_per_s:{dtype}"] = att["fit_error_pct"]["median"]
            err[f"attention_flops_per_s:{dtype}:max"] = att["fit_error_pct"]["max"]
            detail.setdefault("attention", {})[dtype] = att
    launch = {}
    for mode in ("eager", "graph"):
        ts = [r["time_s"] for r in raw.get("launch", []) if r.get("mode") == mode and "time_s" in r]
        if ts:
            launch[mode] = float(np.median(ts))
    if launch:
        compute["kernel_launch_s"] = launch
    if err:
        compute["fit_error_pct"] = err
    return compute, detail


def predict_kernels(kernels, compute: dict, dtype: str) -> float | None:
    """Time of a kernel list under sizer's model: GEMM max(2MNK / F_eff(M), bytes / hbm);
    attention prefill flops / attention_flops_per_s; decode and elementwise bytes / hbm;
    each kernel at least kernel_launch_s['eager'] (the launch floor)."""
    hbm = compute.get("hbm_bytes_per_s")
    F = (compute.get("matmul_flops_per_s") or {}).get(dtype)
    half = compute.get("matmul_half_rows", 0.0)
    att = (compute.get("attention_flops_per_s") or {}).get(dtype) or F
    floor = (compute.get("kernel_launch_s") or {}).get("eager", 0.0)
    if not (hbm and F):
        return None
    from .compute import ELEM_BYTES, attention_flops

    e, total = ELEM_BYTES.get(dtype, 2), 0.0
    for k in kernels:
        if k[0] == "gemm":
            m, n, kk = k[1], k[2], k[3]
            t = max(2.0 * m * n * kk / (F * m / (m + half)), (m * kk + kk * n + m * n) * e / hbm)
        elif k[0] == "attn_prefill":
            t = attention_flops(k[1], k[2], k[4], k[4], k[5], True) / att
        elif k[0] == "attn_decode":
            t = 2.0 * k[1] * k[3] * k[4] * k[5] * e / hbm
        else:  # ("elem", bytes, kernels): the bytes spread over that many kernels
            n = k[2] if len(k) > 2 else 1
            total += n * max(k[1] / n / hbm, floor)
            continue
        total += max(t, floor)
    return total


def check_forward(rows: list[dict], compute: dict) -> list[dict]:
    """Sharded-forward rows (median over ranks) with the model's prediction and its error."""
    by = _median_by(rows, lambda r: (r["model"], r["tp"], r["ep"], r["phase"]))
    out = []
    for (model, tp, ep, phase), (r, t) in by.items():
        pred = predict_kernels(r["kernels"], compute, r["dtype"])
        row = {k: v for k, v in r.items() if k not in ("kernels", "rank")}
        row.update(time_s=t, n_kernels=len(r["kernels"]), predicted_s=pred,
                   error_pct=None if pred is None else (pred - t) / t * 100.0)
        out.append(row)
    return out
