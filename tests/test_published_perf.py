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


def test_all_records_median_and_bias_within_the_issue_bounds():
    """Issue #14 'Done means': median |error| <= 8% and signed median within +-3% over the
    published rows (6.8% and -2.3% at the refit)."""
    errs = [(tv.predict(r)[0] / r["value"] - 1) * 100 for r in RECORDS]
    assert statistics.median(abs(e) for e in errs) <= 8.0
    assert abs(statistics.median(errs)) <= 3.0


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
