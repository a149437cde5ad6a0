"""The Calibration view: the time model's constants and curves, and what a hardware profile
(`python -m probes.calibrate`) changes in them.

Before any upload it shows the defaults the predictions use (sizer/hardware/constants.py: the
GPU catalog's datasheet numbers times fitted efficiencies) and, for each constant, which probe
would replace it; with a profile, the measurements against the default and the calibrated
curves, constant by constant.
"""

import numpy as np
import streamlit as st

from sizer import charts
from sizer.hardware.constants import device_for
from sizer.hardware.gpus import get_gpu

from . import core

# constant -> the probe of `python -m probes.calibrate` whose fit replaces it
MEASURED_BY = {"hbm_bytes_per_s": "device-to-device copy sweep (membw)",
               "matmul_half_rows": "GEMM sweep over the shapes sizer uses",
               "attention_flops_per_s": "causal prefill attention",
               "matmul_flops_per_s": "GEMM sweep, largest shapes",
               "kernel_launch_s": "empty-kernel launches, eager and in a CUDA graph"}
GEMM_ROWS = np.geomspace(1, 16384, 40)


def calibration(inp, chart, json_download) -> None:
    gpu = get_gpu(inp.gpu)
    if inp.profile is None:
        _defaults(inp, gpu, chart)
        return
    try:
        profile = core.load_profile(inp.profile)
    except core.InputError as exc:
        st.error(str(exc))
        return
    st.caption(f"Profile {profile.path}: device {profile.env.get('device', '?')}, "
               f"backend {profile.env.get('backend', '?')}, {len(profile.collectives)} collective fit(s)")
    default, measured = device_for(gpu), device_for(gpu, profile)
    st.dataframe(_constants(default, measured), hide_index=True, key="constants")
    raw = profile.raw or {}
    for k, fit in enumerate(profile.collectives):
        rows = [r for r in raw.get("collectives", []) if r.get("op") == fit.op and r.get("ranks") == fit.ranks
                and r.get("nodes", 1) == fit.nodes and r.get("time_us")]
        curves = []
        try:
            sub = core.Inputs(model=inp.model, gpu=inp.gpu, gpus=fit.ranks, nodes=fit.nodes,
                              topology=inp.topology, inter_node=inp.inter_node)
            topo = core.topology(sub, fit.ranks)
            ranks = core.gpu_order(topo)[:fit.ranks]
            curves.append(core.curve(f"model, {gpu.id} defaults", fit.op, ranks, topo, None))
            curves.append(core.curve("model with this profile", fit.op, ranks, topo, profile))
        except core.InputError as exc:
            st.caption(f"{fit.op} x{fit.ranks}: no model curve ({exc})")
        err = fit.fit_error_pct
        title = f"{fit.op}, {fit.ranks} ranks, {fit.nodes} node(s)" + (
            f" (fit error median {err.get('median', 0):.1f}%)" if err else "")
        chart(charts.calibration_collectives(rows, curves, title), f"calib-{fit.op}-{fit.ranks}-{fit.nodes}-{k}")
    gemm = [r for r in raw.get("gemm", []) if r.get("flops_per_s")]
    for dtype in sorted({r["dtype"] for r in gemm}):
        pts = [{"x": r["M"], "y": r["flops_per_s"] / 1e12} for r in gemm if r["dtype"] == dtype]
        m = np.geomspace(max(min(p["x"] for p in pts), 1), max(p["x"] for p in pts), 40)
        curves = [_gemm_curve(label, dev, dtype, m) for label, dev in
                  (("model, defaults", default), ("model with this profile", measured))]
        chart(charts.calibration_rates(pts, curves, f"GEMM {dtype}: achieved TFLOP/s vs rows M",
                                       "rows M (tokens)", "TFLOP/s"), f"calib-gemm-{dtype}")
    copies = [r for r in raw.get("membw", []) if r.get("bytes_per_s")]
    if copies:
        pts = [{"x": r["size_bytes"], "y": r["bytes_per_s"] / 1e9} for r in copies]
        xs = [min(p["x"] for p in pts), max(p["x"] for p in pts)]
        curves = [{"label": label, "x": xs, "y": [dev.hbm_bytes_per_s / 1e9] * 2}
                  for label, dev in (("model, defaults", default), ("model with this profile", measured))]
        chart(charts.calibration_rates(pts, curves, "Memory bandwidth (device copy)", "bytes copied", "GB/s"),
              "calib-membw")
    json_download({"provenance": measured.provenance, "profile": profile.provenance()}, "provenance",
                  "Download provenance (JSON)")


def _defaults(inp, gpu, chart) -> None:
    """No profile yet: the constants and curves in use, and what a profile would replace."""
    default = device_for(gpu)
    st.info(f"No profile uploaded: every prediction uses the {gpu.id} defaults below (datasheet "
            "numbers times fitted efficiencies, sizer/hardware/constants.py). A profile from "
            "`python -m probes.calibrate` on your machine replaces each constant it measured and "
            "each collective curve it fitted; upload one in the sidebar to see the measurements "
            "against these curves.")
    rows = _constants(default, None)
    for row in rows:
        row["a profile replaces it with"] = MEASURED_BY[row["constant"].split("[")[0]]
    st.dataframe(rows, hide_index=True, key="constants")
    n = min(inp.tp if inp.tp > 1 else max(inp.gpus, 2), gpu.gpus_per_node or 8)  # one node
    try:
        sub = core.Inputs(model=inp.model, gpu=inp.gpu, gpus=n, topology=inp.topology,
                          inter_node=inp.inter_node)
        topo = core.topology(sub, n)
        curve = core.curve(f"model, {gpu.id} defaults", "all_reduce", core.gpu_order(topo)[:n], topo, None)
        chart(charts.calibration_collectives([], [curve], f"all_reduce over {n} GPUs ({topo.name}): "
                                             "the default curve a measured fit would replace"),
              "calib-default-all_reduce")
    except core.InputError as exc:
        st.caption(f"all_reduce x{n}: no model curve ({exc})")
    curves = [_gemm_curve(f"model, {dtype}", default, dtype, GEMM_ROWS) for dtype in default.matmul_flops_per_s
              if dtype in ("bf16", "fp8", "int8")]
    chart(charts.calibration_rates([], curves, "GEMM: the default achieved TFLOP/s vs rows M",
                                   "rows M (tokens)", "TFLOP/s"), "calib-default-gemm")


def _gemm_curve(label, dev, dtype, m) -> dict:
    """Achieved GEMM rate against rows M: rate x M / (M + half_rows) (sizer/cost/ops.py)."""
    return {"label": label, "x": list(map(float, m)),
            "y": (dev.matmul_rate(dtype) * m / (m + dev.matmul_half_rows) / 1e12).tolist()}


def _constants(default, measured) -> list[dict]:
    """Each time-model constant: default, value in use, and where it came from (measured None:
    no profile, the defaults are in use)."""
    used = measured or default
    rows = [("hbm_bytes_per_s", default.hbm_bytes_per_s, used.hbm_bytes_per_s, "hbm_bytes_per_s"),
            ("matmul_half_rows", default.matmul_half_rows, used.matmul_half_rows, "matmul_half_rows"),
            ("attention_flops_per_s", default.attention_flops_per_s, used.attention_flops_per_s,
             "attention_flops_per_s:bf16")]
    rows += [(f"matmul_flops_per_s[{d}]", default.matmul_flops_per_s[d], used.matmul_flops_per_s.get(d),
              f"matmul_flops_per_s:{d}") for d in default.matmul_flops_per_s]
    rows += [(f"kernel_launch_s[{m}]", default.kernel_launch_s[m], used.kernel_launch_s[m],
              f"kernel_launch_s:{m}") for m in default.kernel_launch_s]
    return [{"constant": name, "default": f"{d:.4g}", "in use": f"{u:.4g}" if u is not None else "",
             "source": used.provenance.get(key, "default") if measured else "default"}
            for name, d, u, key in rows]
