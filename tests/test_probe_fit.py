"""probes/fit.py on synthetic data with known constants, and on published nccl-tests curves.

No torch ranks here: the fits are pure numpy/scipy, so these are exact-recovery checks.
"""

import math
import os

import numpy as np
import pytest

pytest.importorskip("torch")

from probes import fit  # noqa: E402
from probes.harness import busbw_factor, row, sweep_sizes  # noqa: E402
from reference_data import by_id, records  # noqa: E402


def test_busbw_factors_are_nccl_tests_performance_md():
    """nccl-tests doc/PERFORMANCE.md: all_reduce 2(n-1)/n, all_gather / reduce_scatter /
    alltoall (n-1)/n, sendrecv and broadcast 1."""
    assert busbw_factor("all_reduce", 8) == 1.75
    assert busbw_factor("all_reduce", 2) == 1.0
    assert busbw_factor("all_gather", 8) == 0.875
    assert busbw_factor("reduce_scatter", 4) == 0.75
    assert busbw_factor("all_to_all", 2) == 0.5
    assert busbw_factor("send_recv", 16) == 1.0


def test_busbw_factor_agrees_with_sizer_collectives():
    """Once sizer/cost/collectives.py defines busbw_factor, probes and sizer must agree."""
    from sizer.cost import collectives as coll
    for op in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv"):
        for n in (2, 4, 8, 16):
            try:
                theirs = coll.busbw_factor(op, n)
            except Exception:  # noqa: BLE001 -- op spelled differently there
                continue
            assert theirs == pytest.approx(busbw_factor(op, n)), (op, n)


def test_reference_busbw_is_algbw_times_factor():
    """R00001 (nccl-tests issue 194, 2x H100 PCIe all_reduce 1 GiB): busbw 115.37 = algbw
    115.37 x 2(2-1)/2; the row builder applies the same factor."""
    r = by_id("nccl_collectives.json")["R00001"]
    assert r["value"] == pytest.approx(r["extra"]["algbw_GBps"] * busbw_factor("all_reduce", 2))
    t = 1073741824 / 115.37e9
    out = row("all_reduce", 1073741824, 268435456, "float", 2, False, t, 0)
    assert out["algbw_GBps"] == pytest.approx(115.37)
    assert out["busbw_GBps"] == pytest.approx(115.37)
    out8 = row("all_gather", 1 << 20, (1 << 18) // 8, "float", 8, False, 1e-4, 0)
    assert out8["busbw_GBps"] == pytest.approx(out8["algbw_GBps"] * 7 / 8)


def test_sweep_sizes_like_nccl_tests_b_e_f():
    """-b 8 -e 1M -f 2 gives 8, 16, ..., 1 MiB (18 sizes)."""
    s = sweep_sizes(8, 1 << 20, 2)
    assert s[0] == 8 and s[-1] == 1 << 20 and len(s) == 18
    assert sweep_sizes(8, 100, 4) == [8, 32, 100]


def test_fit_line_recovers_alpha_beta_exactly():
    """t = 5 us + x / 100 GB/s is recovered to 1e-9."""
    x = np.array([2.0 ** i for i in range(3, 31)])
    t = 5e-6 + x / 100e9
    a, b, keep = fit.fit_line(x, t)
    assert a == pytest.approx(5e-6, rel=1e-9)
    assert 1 / b == pytest.approx(100e9, rel=1e-9)
    assert keep.all()


def test_fit_line_rejects_one_outlier():
    """One point 10x too slow (a hiccup on a shared machine) does not move the fit."""
    x = np.array([2.0 ** i for i in range(10, 24)])
    t = 20e-6 + x / 5e9
    t[4] *= 10
    a, b, keep = fit.fit_line(x, t)
    assert a == pytest.approx(20e-6, rel=1e-6) and 1 / b == pytest.approx(5e9, rel=1e-6)
    assert not keep[4] and keep.sum() == len(x) - 1


def test_two_segment_fit_recovers_both_regimes():
    """A small-message regime (2 us, 20 GB/s) and a large one (30 us, 200 GB/s): time is
    the cheaper of the two; both segments come back and the error is ~0."""
    segs = [(2e-6, 20e9), (30e-6, 200e9)]
    x = np.array([2.0 ** i for i in range(3, 31)])
    t = np.min([lat + x / bw for lat, bw in segs], axis=0)
    out = fit.fit_segments(x, t)
    assert len(out["segments"]) == 2
    for (lat, bw), (lat0, bw0) in zip(sorted(out["segments"]), segs):
        assert lat == pytest.approx(lat0, rel=1e-6)
        assert bw == pytest.approx(bw0, rel=1e-6)
    assert out["fit_error_pct"]["max"] < 1e-6


def test_one_segment_kept_when_one_line_fits():
    x = np.array([2.0 ** i for i in range(3, 25)])
    out = fit.fit_segments(x, 8e-6 + x / 50e9)
    (lat, bw), = out["segments"]
    assert lat == pytest.approx(8e-6, rel=1e-9) and bw == pytest.approx(50e9, rel=1e-9)


def test_fit_collectives_from_nccl_rows_uses_busbw_factor():
    """Rows generated from latency 10 us and busbw 100 GB/s for all_reduce on 8 ranks:
    time = 10 us + size * 1.75 / 100 GB/s; the fit returns busbw (not algbw) = 100 GB/s."""
    rows = []
    for size in sweep_sizes(8, 1 << 30, 2):
        t = 10e-6 + size * 1.75 / 100e9
        rows.append(row("all_reduce", size, size // 4, "float", 8, True, t, 0, nodes=1))
    (c,) = fit.fit_collectives(rows)
    assert (c["op"], c["ranks"], c["nodes"]) == ("all_reduce", 8, 1)
    assert c["segments"][0]["latency_s"] == pytest.approx(10e-6, rel=1e-9)
    assert c["segments"][0]["busbw_bytes_per_s"] == pytest.approx(100e9, rel=1e-9)
    assert c["n_points"] == 28 and c["wrong"] == 0


def test_fit_of_published_8xh100_all_reduce_curve():
    """Azure ND H100 v5 nccl-tests all_reduce (8x H100 SXM, NVSwitch; reference records with
    gpu 'H100 80GB HBM3 (SXM)', 1 KiB..8 GiB): the two-segment fit's large-message busbw is within
    10% of the published 8 GiB busbw 478.87 GB/s (R00081) and the median error is below 25%."""
    recs = [r for r in records("nccl_collectives.json")
            if r["metric"] == "busbw" and r["conditions"].get("num_gpus") == 8
            and "H100 80GB HBM3 (SXM)" in str(r["conditions"].get("gpu"))
            and r["conditions"].get("collective") == "all_reduce"]
    assert len(recs) >= 10
    sizes = np.array([r["conditions"]["message_size_bytes"] for r in recs], float)
    busbw = np.array([r["value"] * 1e9 for r in recs])
    f = busbw_factor("all_reduce", 8)
    t = sizes * f / busbw  # nccl-tests: busbw = size / time * factor
    out = fit.fit_segments(sizes * f, t)
    peak = max(bw for _, bw in out["segments"])
    assert peak == pytest.approx(478.87e9, rel=0.10)
    assert out["fit_error_pct"]["median"] < 25


def test_gemm_fit_recovers_flops_and_half_rows():
    """t(M) = 2MNK / (F * M / (M + h)) with F = 700 TFLOP/s, h = 96 rows (the F_eff form
    sizer/cost/step.py uses) is recovered exactly."""
    F, h, n = 700e12, 96.0, 8192
    rows = [{"op": "gemm", "dtype": "bf16", "M": m, "N": n, "K": n,
             "time_s": 2 * m * n * n / (F * m / (m + h))} for m in (2 ** i for i in range(15))]
    g = fit.fit_gemm(rows)["bf16"]
    assert g["flops_per_s"] == pytest.approx(F, rel=1e-9)
    assert g["half_rows"] == pytest.approx(h, rel=1e-9)
    assert g["fit_error_pct"]["max"] < 1e-6


def test_fit_compute_maps_to_profile_keys():
    """membw, GEMM, attention and launch rows become the profile's compute keys, and the
    medians across ranks are used (two ranks, one 2x slower, median = their mean)."""
    raw = {
        "membw": [{"bytes": b, "time_s": 1e-6 + b / 2e12} for b in (2 ** i for i in range(20, 31))],
        "gemm": [{"dtype": "bf16", "M": m, "N": 4096, "K": 4096,
                  "time_s": 2 * 4096 * 4096 * (m + 64) / 600e12} for m in (1, 8, 64, 512, 4096)],
        "attention": [{"op": "attn_prefill", "dtype": "bf16", "flops": fl, "time_s": 3e-6 + fl / 4e14}
                      for fl in (1e9, 1e10, 1e11, 1e12)],
        "launch": [{"mode": "eager", "time_s": 4e-6, "rank": 0},
                   {"mode": "eager", "time_s": 6e-6, "rank": 1},
                   {"mode": "graph", "time_s": 1e-6, "rank": 0}],
    }
    comp, detail = fit.fit_compute(raw)
    assert comp["hbm_bytes_per_s"] == pytest.approx(2e12, rel=1e-9)
    assert comp["matmul_flops_per_s"]["bf16"] == pytest.approx(600e12, rel=1e-9)
    assert comp["matmul_half_rows"] == pytest.approx(64, rel=1e-9)
    assert comp["attention_flops_per_s"]["bf16"] == pytest.approx(4e14, rel=1e-9)
    assert comp["kernel_launch_s"] == {"eager": pytest.approx(5e-6), "graph": 1e-6}
    assert comp["fit_error_pct"]["hbm_bytes_per_s"] < 1e-6


def test_predict_kernels_is_the_documented_time_model():
    """One GEMM at M = half_rows runs at F/2: t = 2MNK / (F/2) when that exceeds its bytes/hbm,
    else bytes/hbm; a decode attention reads 2 B H_kv S D elem bytes at hbm; an elementwise
    group pays max(bytes/n/hbm, floor) n times."""
    comp = {"hbm_bytes_per_s": 1e12, "matmul_flops_per_s": {"bf16": 1e15},
            "matmul_half_rows": 128, "kernel_launch_s": {"eager": 5e-6}}
    t = fit.predict_kernels([("gemm", 128, 8192, 8192)], comp, "bf16")
    assert t == pytest.approx((2 * 128 * 8192 + 8192 * 8192) * 2 / 1e12)  # memory-bound
    fast = dict(comp, hbm_bytes_per_s=1e13)
    t = fit.predict_kernels([("gemm", 128, 8192, 8192)], fast, "bf16")
    assert t == pytest.approx(2 * 128 * 8192 * 8192 / 0.5e15)  # compute-bound at F/2
    t = fit.predict_kernels([("attn_decode", 8, 32, 8, 4096, 128)], comp, "bf16")
    assert t == pytest.approx(2 * 8 * 8 * 4096 * 128 * 2 / 1e12)
    assert fit.predict_kernels([("elem", 1000, 4)], comp, "bf16") == pytest.approx(4 * 5e-6)
    assert fit.predict_kernels([("gemm", 1, 1, 1)], {}, "bf16") is None


def test_profile_segments_reproduce_measured_busbw():
    """The profile's collective time min_s(latency + size*factor/busbw) (sizer/hardware/profile.py)
    evaluated at a large size gives back the measured busbw within the fit error."""
    from sizer.hardware.profile import profile_from_dict

    rows = [row("reduce_scatter", s, s // 16, "float", 4, False, 15e-6 + s * 0.75 / 40e9, 0)
            for s in sweep_sizes(64, 1 << 28, 4)]
    doc = {"sizer_profile_version": 1, "collectives": fit.fit_collectives(rows)}
    prof = profile_from_dict(doc)
    c = prof.collective("reduce_scatter", 4)
    size = 1 << 28
    t = min(lat + size * 0.75 / bw for lat, bw in c.segments)
    assert size / t * 0.75 == pytest.approx(rows[-1]["busbw_GBps"] * 1e9, rel=1e-6)
    assert math.isclose(c.segments[0][1], 40e9, rel_tol=1e-6)


def test_degenerate_line_falls_back_to_best_measured_rate():
    """Noise that makes bigger work faster (slope 0) still yields a positive rate: the best
    measured work / time, so the profile keeps its keys."""
    out = fit.fit_rate([{"bytes": 1e6, "time_s": 1e-3}, {"bytes": 2e6, "time_s": 5e-4}], "bytes")
    assert out["rate"] == pytest.approx(4e9) and out["method"].startswith("best measured")
    rows = [{"dtype": "fp32", "M": m, "N": 64, "K": 64, "time_s": 1e-3} for m in (1, 2, 4, 8)]
    g = fit.fit_gemm(rows)["fp32"]
    assert g["flops_per_s"] == pytest.approx(2 * 8 * 64 * 64 / 1e-3) and g["half_rows"] == 0.0


def test_flat_collective_curve_never_claims_free_bandwidth():
    """Times that do not grow with size (noise) fit to the best measured bandwidth, so a size
    beyond the sweep still costs size / busbw, not a constant."""
    x = np.array([2.0 ** i for i in range(3, 21)])
    out = fit.fit_segments(x, np.full(len(x), 1e-3))
    (lat, bw), = out["segments"]
    assert bw == pytest.approx(x.max() / 1e-3)
    assert lat + 2 ** 30 / bw > 100 * 1e-3


def test_cuda_device_names_map_to_catalog_ids_or_none():
    """torch.cuda.get_device_name strings (as nvidia-smi prints them) find their catalog GPU;
    a name the catalog lacks gives None, never a neighbour's numbers."""
    from probes.env import gpu_id_for

    assert gpu_id_for("NVIDIA H100 80GB HBM3") == "h100-sxm"
    assert gpu_id_for("NVIDIA A100-SXM4-80GB") == "a100-80g-sxm"
    assert gpu_id_for("NVIDIA H200") == "h200"
    assert gpu_id_for("NVIDIA H100 PCIe") == "h100-pcie"
    assert gpu_id_for("NVIDIA GeForce RTX 4090") == "rtx-4090"
    assert gpu_id_for("NVIDIA A100-PCIE-40GB") is None
    assert gpu_id_for("NVIDIA H800") is None


def test_topology_text_is_kept_and_parsed():
    """A real 8x H100 SXM `nvidia-smi topo -m` (tests/data/topo, SGLang environment report):
    the raw text is stored and sizer.hardware.topo_smi reads 8 GPUs per node from it."""
    from probes.env import topology, topology_from_p2p

    path = os.path.join(os.path.dirname(__file__), "data", "topo", "h100_sxm_8gpu_nv18_8nic.txt")
    text = open(path).read()
    out = topology("h100-sxm", text=text)
    assert out["text"] == text
    assert out["parsed"]["gpus_per_node"] == 8, out.get("parse_error")
    m = topology_from_p2p([{"src": 0, "dst": 1, "bw_GBps": 300.0, "latency_us": 5.0},
                           {"src": 0, "dst": 2, "bw_GBps": 20.0, "latency_us": 12.0},
                           {"src": 1, "dst": 2, "bw_GBps": 21.0, "latency_us": 12.0}], 3)
    assert m["bw_GBps"][1][0] == 300.0 and m["bw_GBps"][0][0] is None
    assert m["pair_class"] == {"0-1": "fast", "0-2": "slow", "1-2": "slow"}
