"""The human summary of a calibration: each fit, its error, and achieved vs datasheet.

Datasheet numbers come from sizer's GPU catalog (sizer/hardware/gpus.py, cited there) when the device is
in it; CPU runs and unknown GPUs show '-' (unknown hardware yields no guess).
"""


def _datasheet(gpu_id):
    if not gpu_id:
        return None
    try:
        from sizer.hardware.gpus import get_gpu

        return get_gpu(gpu_id)
    except Exception:  # noqa: BLE001 -- no catalog, no comparison
        return None


def _table(title, header, rows) -> str:
    if not rows:
        return ""
    cells = [header] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.rjust(w) if i else c.ljust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([title, line(header), line(["-" * w for w in widths])]
                     + [line(r) for r in cells[1:]]) + "\n\n"


def _pct(x):
    return "-" if x is None else f"{x:.1f}"


def summary(profile: dict) -> str:
    env, comp, raw = profile["env"], profile["compute"], profile["raw"]
    gpu = _datasheet(env.get("gpu_id"))
    out = [f"profile: {env['device']} x{env['world_size']} ({env['backend']}, "
           f"{env['nodes']} node(s)), torch {env['torch']}"
           + (f", NCCL {env['nccl']}" if env.get("nccl") else "") + f"; {env['status']}\n"]
    for note in env.get("notes", []):
        out.append(f"note: {note}\n")
    out.append("\n")
    rows = []
    for c in profile["collectives"]:
        segs = "; ".join(f"{s['latency_s'] * 1e6:.1f} us + {s['busbw_bytes_per_s'] / 1e9:.3g} GB/s"
                         for s in c["segments"])
        rows.append([c["op"], c["ranks"], c["nodes"], segs, f"{c['max_busbw_GBps']:.3g}",
                     _pct(c["fit_error_pct"]["median"]), _pct(c["fit_error_pct"]["max"]),
                     c["n_points"], c["wrong"]])
    out.append(_table("collectives (time = min over segments of latency + size*factor/busbw)",
                      ["op", "ranks", "nodes", "segments", "best busbw GB/s", "err med %",
                       "err max %", "points", "wrong"], rows))
    p2p = raw.get("p2p_matrix") or []
    if p2p:
        out.append(_table("p2p pairs (unidirectional bandwidth, 8-byte latency)",
                          ["pair", "GB/s", "latency us"],
                          [[f"{r['src']}->{r['dst']}", f"{r['bw_GBps']:.3g}",
                            f"{r['latency_us']:.1f}"] for r in p2p]))
    err = comp.get("fit_error_pct", {})
    rows = []
    if "hbm_bytes_per_s" in comp:
        sheet = gpu.hbm_bytes_per_s if gpu else None
        rows.append(["hbm_bytes_per_s", f"{comp['hbm_bytes_per_s'] / 1e9:.1f} GB/s",
                     f"{sheet / 1e9:.0f} GB/s" if sheet else "-",
                     _pct(100 * comp["hbm_bytes_per_s"] / sheet if sheet else None),
                     _pct(err.get("hbm_bytes_per_s")), _pct(err.get("hbm_bytes_per_s:max"))])
    for key in ("matmul_flops_per_s", "attention_flops_per_s"):
        for dtype, value in (comp.get(key) or {}).items():
            sheet = None
            if gpu:
                try:
                    sheet = gpu.peak(dtype)
                except Exception:  # noqa: BLE001
                    sheet = None
            rows.append([f"{key}[{dtype}]", f"{value / 1e12:.3g} TFLOP/s",
                         f"{sheet / 1e12:.0f} TFLOP/s" if sheet else "-",
                         _pct(100 * value / sheet if sheet else None),
                         _pct(err.get(f"{key}:{dtype}")), _pct(err.get(f"{key}:{dtype}:max"))])
    if "matmul_half_rows" in comp:
        rows.append(["matmul_half_rows", f"{comp['matmul_half_rows']:.1f} rows", "-", "-", "", ""])
    for mode, value in (comp.get("kernel_launch_s") or {}).items():
        rows.append([f"kernel_launch_s[{mode}]", f"{value * 1e6:.2f} us", "-", "-", "", ""])
    out.append(_table("compute", ["constant", "fitted", "datasheet", "% of sheet", "err med %",
                                  "err max %"], rows))
    fwd = raw.get("sharded_forward") or []
    out.append(_table("sharded forward, one rank's share (model = the fitted constants above)",
                      ["layer", "tp", "ep", "phase", "tokens", "measured ms", "model ms",
                       "model err %"],
                      [[r["model"], r["tp"], r["ep"], r["phase"], r["tokens"],
                        f"{r['time_s'] * 1e3:.3f}",
                        "-" if r["predicted_s"] is None else f"{r['predicted_s'] * 1e3:.3f}",
                        _pct(r["error_pct"])] for r in fwd]))
    return "".join(out)
