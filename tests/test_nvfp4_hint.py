"""NVFP4 is findable (trial 1 item 9): --weight-dtype's help and the UI list it and say how it
differs from fp4 (MXFP4, weight-only), and recommend's precision line weighs nvfp4 weights with
an fp8 KV cache on NVIDIA GPUs with FP4 tensor cores (an `fp4` peak in data/gpus.json)."""

import pytest

from sizer.cli.main import build_parser
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.precision import WEIGHT_DTYPES
from sizer.plan.alternatives import nvfp4_alternative
from sizer.plan.recommend import recommend


def test_help_lists_every_weight_format_and_tells_fp4_from_nvfp4(capsys):
    for cmd in ("estimate", "recommend", "memory"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for dtype in ("fp8", "int4", "fp4 (MXFP4, weight-only", "nvfp4 (NVFP4 W4A4"):
            assert dtype in text, (cmd, dtype)


def test_ui_offers_every_weight_format():
    pytest.importorskip("streamlit")
    from ui.sidebar import WEIGHT_DTYPES as UI

    assert set(WEIGHT_DTYPES) - {"fp32"} <= set(UI) and "nvfp4" in UI


def test_nvfp4_only_on_nvidia_fp4_tensor_cores():
    bf16 = {"weights": "bf16", "experts": "bf16", "kv_cache": "bf16"}
    assert nvfp4_alternative(get_gpu("b200"), bf16) == ("nvfp4", "fp8")
    assert nvfp4_alternative(get_gpu("h100-sxm"), bf16) is None  # no FP4 peak
    assert nvfp4_alternative(get_gpu("mi355x"), bf16) is None  # AMD's FP4 is MXFP4
    mxfp4 = {"weights": "bf16", "experts": "fp4", "kv_cache": "bf16"}  # gpt-oss
    assert nvfp4_alternative(get_gpu("b200"), mxfp4) is None


def test_b200_precision_line_names_nvfp4_with_the_numbers_it_gives():
    """Llama-3.1-70B bf16 on 8x B200: the line leads with the larger gain of nvfp4 weights + fp8
    KV and fp8 weights+KV, each the winner `--weight-dtype X --kv-dtype fp8` gives."""
    l70, b200 = get_model("70b"), get_gpu("b200")
    rec = recommend(l70, b200, 8)
    hint = rec.precision_hint
    by = {h["weight_dtype"]: h for h in hint["alternatives"]}
    assert set(by) == {"fp8", "nvfp4"}
    for wd in ("fp8", "nvfp4"):
        direct = recommend(l70, b200, 8, weight_dtypes=wd, kv_dtype="fp8").winner
        assert by[wd]["output_tok_s_per_gpu"] == pytest.approx(direct.output_tok_s_per_gpu)
        assert by[wd]["label"] == direct.label
    first = max(hint["alternatives"], key=lambda h: h["gain"])
    assert hint["text"].startswith(first["text"]) and ". Also " in hint["text"]
    assert by["nvfp4"]["text"].startswith("nvfp4 weights + fp8 KV: ")
    assert by["nvfp4"]["text"].endswith("pass --weight-dtype nvfp4 --kv-dtype fp8")
