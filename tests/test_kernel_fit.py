"""The time model's kernel constants against vidur's per-kernel GPU timings (issue #14 item 1):
fitted on some models, checked on held-out ones (benchmarks/kernel_fit.py, data/kernel_fit.json,
data/kernels/ extracted from github:microsoft/vidur @ 7d47513)."""

import os
import sys

import numpy as np
import pytest

from sizer.cost import ops
from sizer.hardware.constants import device_for
from sizer.hardware.gpus import all_gpus, get_gpu
from sizer.hardware.kernels import kernel_fit_for, measured_skus
from sizer.model.resources import read_json

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "benchmarks"))
import kernel_fit as kf  # noqa: E402

FIT = read_json("kernel_fit.json")


@pytest.fixture(scope="module")
def reports():
    out = {}
    for sku in ("h100", "a100"):
        recs = kf.op_rows(kf.load(sku))
        out[sku] = kf.evaluate(sku, FIT["gpus"][sku], recs)
    return out


def test_the_extract_cites_vidur_and_names_the_held_out_models():
    assert "7d47513363ec447a741ac5e47241580b47724fbf" in FIT["source"]
    for sku in ("h100", "a100", "a40"):
        rec = FIT["gpus"][sku]
        assert "codellama/CodeLlama-34b-Instruct-hf" in rec["holdout_models"]
        assert not set(rec["holdout_models"]) & set(rec["fit_models"])
        with open(os.path.join(kf.DATA, f"vidur_{sku}.csv")) as f:
            assert "7d47513363ec447a741ac5e47241580b47724fbf" in f.readline()
    assert "meta-llama/Meta-Llama-3-8B" in FIT["gpus"]["a100"]["holdout_models"]


@pytest.mark.parametrize("sku", ["h100", "a100"])
@pytest.mark.parametrize("group", ["gemm", "norm", "rotary", "activation", "add"])
def test_held_out_error_per_op_and_tp_within_the_issue_bounds(reports, sku, group):
    """Issue #14 'Done means': held-out median <= 10%, p90 <= 25% for GEMMs and elementwise ops,
    per TP degree (errors within vidur's 1 us timer resolution count as none)."""
    per_tp = reports[sku]["per_group"][group]["per_tp"]
    assert set(per_tp) >= {1, 8}
    for tp, s in per_tp.items():
        assert s["median_abs_pct"] <= 10.0 and s["p90_abs_pct"] <= 25.0, (sku, group, tp, s)


@pytest.mark.parametrize("sku", ["h100", "a100"])
def test_the_tp1_vs_tp8_bias_is_gone(reports, sku):
    """The signed median whole-layer error at TP1 and at TP8 differ by < 10 points held out;
    with the previous end-to-end constants (HBM 0.60, 2.5 us floors) on H100 they differed by
    17.5 (TP1 +15.4% too slow, TP8 -2.1% too fast)."""
    lb = reports[sku]["layer_signed_median_pct"]
    assert abs(lb["fitted"][1] - lb["fitted"][8]) < 10.0
    assert all(abs(v) < 5.0 for v in lb["fitted"].values())
    if sku == "h100":
        assert lb["previous"][1] - lb["previous"][8] > 10.0


def test_the_shipped_constants_are_what_the_fit_produces():
    rec, _ = kf.fit("h100")
    shipped = FIT["gpus"]["h100"]["gemm"]
    for key in ("floor_s", "hbm_efficiency", "matmul_efficiency", "overlap"):
        assert rec["gemm"][key] == pytest.approx(shipped[key], rel=1e-3)


def test_the_gate_up_example_of_the_issue():
    """Llama-2-70B TP8, one token: gate+up (117 MB of weights) measured 43.5 us on an H100
    (vidur); the previous model said 58 us, the fitted one is within 10%."""
    dev = device_for(get_gpu("h100-sxm"))
    n, k = 2 * 28672 // 8, 8192
    t = ops.gemm("up", dev, 1, n, k, 2, 2, "bf16", 0.0).time_s
    assert float(t) == pytest.approx(43.5e-6, rel=0.10)


def test_norm_kernels_run_in_waves_of_rows():
    """vLLM's RMSNorm runs one thread block per token, two per SM: on an H100 (132 SMs) up to
    264 rows cost one wave and 265-528 two (vidur, 8192 hidden: 6 us up to 256 tokens, 11 us
    at 320)."""
    dev = device_for(get_gpu("h100-sxm"))
    assert dev.elementwise["norm"].rows_per_wave == 264
    row = 2 * 8192 * 2
    one, two = (float(ops.elementwise_time(dev, "norm", r, row)) for r in (200, 300))
    assert two - one == pytest.approx(row / dev.elementwise["norm"].row_bytes_per_s, rel=1e-9)


def test_every_catalog_gpu_names_a_measured_part_and_says_how():
    for gpu in all_gpus().values():
        assert gpu.kernel_fit in measured_skus()
        fit = kernel_fit_for(gpu)
        own = FIT["gpus"][gpu.kernel_fit]["catalog_gpu"] == gpu.id
        assert fit.scaled is not own
        assert gpu.sources["kernel_fit"].startswith("measured" if own else "scaled")


def test_scaled_gpus_take_the_measured_efficiencies_times_their_datasheet():
    h100, h200 = kernel_fit_for(get_gpu("h100-sxm")), kernel_fit_for(get_gpu("h200"))
    assert h200.hbm_bytes_per_s / h100.hbm_bytes_per_s == pytest.approx(4.8 / 3.35)
    assert h200.gemm_floor_s == h100.gemm_floor_s and h200.matmul_efficiency == h100.matmul_efficiency
    assert np.isclose(h200.elementwise["add"].bytes_per_s / h100.elementwise["add"].bytes_per_s, 4.8 / 3.35)


def test_step_prices_norms_and_residual_adds_as_the_fit_measured_them():
    """A decoder layer's two RMSNorms and two residual adds, as step_time prices them, against
    vidur's H100 timings of the held-out CodeLlama-34B (input + post-attention RMSNorm, twice
    the add; data/kernels/vidur_h100.csv): median |error| under 10% from 1 to 4096 tokens. The
    fused add + norm used to be one norm-kind kernel of 4 x hidden bytes, a row size the fit
    never saw: +60% at one token (23 us a layer against 14)."""
    import csv
    import statistics

    from sizer.cost.step import step_time
    from sizer.hardware.gpus import get_gpu
    from sizer.model.config import model_from_config

    cfg = dict(model_type="llama", hidden_size=8192, num_hidden_layers=48, num_attention_heads=64,
               num_key_value_heads=8, intermediate_size=22016, vocab_size=32000, torch_dtype="float16",
               max_position_embeddings=16384)
    m, h100 = model_from_config(cfg, "codellama-34b"), get_gpu("h100-sxm")
    path = os.path.join(os.path.dirname(__file__), "..", "data", "kernels", "vidur_h100.csv")
    with open(path) as fh:
        rows = [r for r in csv.DictReader(line for line in fh if not line.startswith("#"))
                if r["model"].startswith("codellama/") and r["tp"] == "1"]
    errs = []
    for r in rows:
        measured = (float(r["input_layernorm_ms"]) + float(r["post_attention_layernorm_ms"])
                    + 2 * float(r["add_ms"])) * 1e-3
        step = step_time(m, h100, phase="decode", batch=int(r["tokens"]), context_len=16, cuda_graphs=True)
        ours = sum(float(o.time_s) for o in step.ops if o.name in ("norms", "residual_adds")) / m.num_layers
        errs.append(ours / measured - 1)
    assert len(errs) >= 10
    assert statistics.median(abs(e) for e in errs) < 0.10
