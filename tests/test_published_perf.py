"""The time model against published serving measurements (data/published_perf.json, each record
citing its table). The kernel constants come from vidur's per-kernel profiles (not these rows);
the engine-level step overhead and KV-read efficiency of sizer/hardware/constants.py were then
refitted on the TensorRT-LLM v0.17/v0.14 rows (benchmarks/time_vs_published.py --fit); the other
rows are a holdout. These tests keep the model honest on both."""

import os
import statistics
import sys

import pytest

from sizer.hardware.gpus import get_gpu
from sizer.model.resources import read_json

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
import time_vs_published as tv  # noqa: E402

RECORDS = read_json("published_perf.json")
FIT = ("trt17", "trt14")
DEEPSEEK = ("ix870-", "tt356-")  # DeepSeek-R1 serving rows added by the review (MoE, reported apart)


def test_records_are_complete_and_resolve():
    ids = [r["id"] for r in RECORDS]
    assert len(ids) == len(set(ids))
    for r in RECORDS:
        assert r["source"] and r["value"] > 0 and r["confidence"] in ("high", "medium", "low")
        tv.load_model(r["model"])
        get_gpu(r["gpu"])
        assert r["mode"] in ("static", "steady", "max_throughput")


def _abs_errors(rows):
    return [abs(tv.predict(r)[0] / r["value"] - 1) * 100 for r in rows]


def test_ampere_hopper_records_median_and_bias_within_the_issue_bounds():
    """Issue #14 'Done means': median |error| <= 8% and signed median within +-3% over the 54
    Ampere/Hopper rows the issue was written against (6.6% and -2.3% at the refit). The 50
    Blackwell FP4 rows added since read low (B200 -6%, GB200 -9%, RTX PRO 6000 -17% signed):
    over all rows 8.4% and -5.9%, pinned here so that it cannot silently get worse."""
    errs = {r["id"]: (tv.predict(r)[0] / r["value"] - 1) * 100 for r in RECORDS}
    ah = [e for rid, e in errs.items() if not rid.startswith(("trt10-",) + DEEPSEEK)]
    assert len(ah) == 54
    assert statistics.median(abs(e) for e in ah) <= 8.0 and abs(statistics.median(ah)) <= 3.0
    every = list(errs.values())
    assert statistics.median(abs(e) for e in every) <= 9.0 and abs(statistics.median(every)) <= 7.0


def test_holdout_records_median_error_below_15pct():
    """Rows not used for the fit (TensorRT-LLM v0.5/v0.6.1, gpt-fast, NVIDIA NIM), low-confidence
    rows excluded: median |error| 11% when the defaults were fitted."""
    rows = [r for r in RECORDS if not r["id"].startswith(FIT) and r["confidence"] != "low"]
    assert len(rows) >= 20
    assert statistics.median(_abs_errors(rows)) < 15.0


def test_high_confidence_records_within_25pct():
    """The sources the benchmark trusts most: every row within 25%, median under 10%."""
    rows = [r for r in RECORDS if r["confidence"] == "high"]
    errs = _abs_errors(rows)
    assert max(errs) < 25.0 and statistics.median(errs) < 10.0


@pytest.mark.parametrize("rid, tol", [
    ("trt17-l31-70b-h200-tp1-128-2048", 0.10),  # 4,166 tok/s, Llama-3.1-70B fp8 on one H200
    ("trt17-l31-405b-h200-tp8-128-2048", 0.10),  # 5,938 tok/s, 405B fp8 on 8x H200
    ("nim18-l33-70b-h100-tp2-5000-500-c1-ttft", 0.10),  # 406.8 ms TTFT, 5000-token prompt
])
def test_pinned_rows(rid, tol):
    rec = next(r for r in RECORDS if r["id"] == rid)
    assert tv.predict(rec)[0] == pytest.approx(rec["value"], rel=tol)


def test_blackwell_fp4_rows_are_not_biased():
    """Issue #18: B200 NVFP4 throughput read ~40% low because NVFP4 GEMMs ran at the bf16
    tensor-core rate; at the datasheet-style 0.76 FP4 efficiency it read ~40% high. TensorRT-LLM
    v1.0 FP4 rows (B200/GB200 Llama-3.3-70B TP1, Llama-3.1-405B TP4): median signed error within
    +-10% per GPU and model, median |error| under 15%."""
    groups = {}
    for r in RECORDS:
        if r["id"].startswith("trt10-") and r["gpu"] in ("b200", "gb200"):
            groups.setdefault((r["gpu"], r["model"]), []).append(tv.predict(r)[0] / r["value"] - 1)
    assert len(groups) == 4 and all(len(v) == 10 for v in groups.values())
    for key, errs in groups.items():
        assert abs(statistics.median(errs)) < 0.10, key
        assert statistics.median([abs(e) for e in errs]) < 0.15, key


def test_nvfp4_gemms_use_fp4_tensor_cores_only_where_they_exist():
    """NVFP4 weights run W4A4 on Blackwell's FP4 tensor cores; Hopper has none and serves them
    at its bf16 rate (weight-only dequantisation), never at a made-up FP4 rate."""
    from sizer.hardware.constants import FP4_MATMUL_EFFICIENCY, device_for
    from sizer.model.precision import compute_dtype

    assert compute_dtype("nvfp4", "bf16") == "fp4" and compute_dtype("fp4", "bf16") == "bf16"
    b200, h100 = device_for(get_gpu("b200")), device_for(get_gpu("h100-sxm"))
    assert b200.matmul_rate("fp4") == 9e15 * FP4_MATMUL_EFFICIENCY
    assert h100.matmul_rate("fp4") == h100.matmul_rate("bf16")


def test_deepseek_r1_serving_rows_are_reported_apart_and_pinned():
    """DeepSeek-R1-0528 FP8 on SGLang (data/published_perf.json, sources there): on 8x H200 at TP8
    sizer reads -3% / -5% at 8 / 16 sequences and -15% / -19% at 32 / 64 (the experts' weights
    stream at 0.92 of datasheet in sizer once every expert is reached; the fused-MoE kernel at
    2-4 rows an expert reaches less), and -41% at TP16 over two H100 nodes (small all-reduces
    across InfiniBand). Pinned so that none gets worse unseen; the MoE rows' median |error|
    (with Mixtral's three) stays under 15%."""
    errs = {r["id"]: tv.predict(r)[0] / r["value"] - 1 for r in RECORDS if r["id"].startswith(DEEPSEEK)}
    assert len(errs) == 5
    for c, lo, hi in ((8, -0.10, 0.10), (16, -0.10, 0.10), (32, -0.20, 0.0), (64, -0.25, 0.0)):
        assert lo < errs[f"ix870-dsr1-h200-tp8-1024-1024-c{c}-tpot"] < hi, c
    assert -0.5 < errs["tt356-dsr1-h100-tp16-2node-128-128-c1-tpot"] < -0.3
    moe = [abs(tv.predict(r)[0] / r["value"] - 1) for r in RECORDS if tv.is_moe(r)]
    assert len(moe) == 8 and statistics.median(moe) < 0.15
