"""Generated config.json files, valid and corrupted, and the contract every command keeps on
them (issue #16, "Make it stay fixed"): exit code 0/1 for a valid config, 2 for a corrupted one,
no traceback, --json stdout exactly one JSON document of finite numbers. Shared by
tests/test_config_properties.py (a few dozen examples per run) and benchmarks/fuzz_configs.py
(thousands)."""

import contextlib
import io
import json
import math
import os
import tempfile

from hypothesis import strategies as st

from sizer.cli.main import main

HEADS = (1, 2, 4, 8, 16, 32)


@st.composite
def valid_configs(draw):
    """A small decoder config in one of the dialects sizer reads (dense or MoE; full, sliding
    window by layer_types or pattern, Gemma 2, Llama 4 chunked)."""
    heads = draw(st.sampled_from(HEADS))
    kv = draw(st.sampled_from([k for k in HEADS if heads % k == 0]))
    layers = draw(st.integers(1, 48))
    cfg = {"model_type": "llama", "hidden_size": 64 * draw(st.integers(1, 64)),
           "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
           "head_dim": draw(st.sampled_from((32, 64, 128))), "vocab_size": draw(st.integers(100, 200_000)),
           "intermediate_size": 64 * draw(st.integers(1, 256)),
           "max_position_embeddings": draw(st.sampled_from((2048, 8192, 131072))),
           "tie_word_embeddings": draw(st.booleans()),
           "torch_dtype": draw(st.sampled_from(("bfloat16", "float16", "float32")))}
    if draw(st.booleans()):
        experts = draw(st.sampled_from((4, 8, 16)))
        cfg.update(num_local_experts=experts, num_experts_per_tok=draw(st.integers(1, experts)),
                   moe_intermediate_size=64 * draw(st.integers(1, 64)))
    kind = draw(st.sampled_from(("full", "layer_types", "pattern", "gemma2", "chunked")))
    window = draw(st.sampled_from((16, 128, 4096)))
    if kind == "layer_types":
        cfg.update(layer_types=draw(st.lists(st.sampled_from(("sliding_attention", "full_attention")),
                                             min_size=layers, max_size=layers)), sliding_window=window)
    elif kind == "pattern":
        cfg.update(model_type="gemma3_text", sliding_window=window, sliding_window_pattern=draw(st.integers(1, 8)))
    elif kind == "gemma2":
        cfg.update(model_type="gemma2", sliding_window=window)
    elif kind == "chunked":
        cfg.update(attention_chunk_size=window, no_rope_layer_interval=draw(st.integers(1, 6)))
    return cfg


# Fields every config's reading touches, and values none of them may hold.
READ_ALWAYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
               "head_dim", "vocab_size", "intermediate_size", "max_position_embeddings")
BAD_NUMBERS = (float("nan"), float("inf"), float("-inf"), -1, 0, -128, 2.5, 1e12, 10**7, "64", [], {}, True, None)


@st.composite
def corrupted_configs(draw):
    """A valid config with one field broken (a bad number or type, a wrong-typed object or
    list, a layer count past the bound), or not an object at all."""
    cfg = draw(valid_configs())
    how = draw(st.sampled_from(("number", "bool", "object", "list", "layer_types", "top")))
    if how == "number":
        field = draw(st.sampled_from(READ_ALWAYS))
        bad = draw(st.sampled_from([b for b in BAD_NUMBERS if b is not None]))
        if bad == 10**7 and field in ("vocab_size", "intermediate_size", "max_position_embeddings"):
            bad = 1e12  # 10 million is within these fields' bounds
        cfg[field] = bad
    elif how == "bool":
        cfg["tie_word_embeddings"] = draw(st.sampled_from(("true", 1, 0.0, [], {})))
    elif how == "object":
        cfg["quantization_config"] = draw(st.sampled_from(("fp8", 8, ["fp8"], True)))
    elif how == "list":
        cfg["mlp_only_layers"] = draw(st.sampled_from((5, "0", {"0": 1}, 1.5)))
    elif how == "layer_types":
        cfg["layer_types"] = draw(st.sampled_from((["full_attention"] * (cfg["num_hidden_layers"] + 1),
                                                   "full_attention", [1] * cfg["num_hidden_layers"],
                                                   ["warp_attention"] * cfg["num_hidden_layers"])))
    else:
        return draw(st.sampled_from(([cfg], "config", 42, None)))
    return cfg


COMMANDS = (["memory"], ["memory", "--engine", "sglang"], ["memory", "--engine", "trtllm"],
            ["memory", "--engine", "none", "--batch", "4"], ["estimate", "--isl", "256", "--osl", "64"],
            ["step", "--context", "512"], ["step", "--phase", "prefill", "--seq", "256"])


def _finite(value) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def run_case(cfg, argv) -> tuple[int, str, str]:
    """Write `cfg` to a config.json, run `sizer <argv> --model it --json` in-process; returns
    (exit code, stdout, stderr). An exception escaping main() is a breach and propagates."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "config.json")
        with open(path, "w") as fh:
            fh.write(json.dumps(cfg))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([*argv, "--model", path, "--json"])
        return code, out.getvalue(), err.getvalue()


def check_contract(code, out, err, corrupted: bool) -> None:
    """The contract: 2 for a corrupted config (one line on stderr), 0 or 1 otherwise; stdout
    empty or exactly one JSON document of finite numbers; never a traceback."""
    assert "Traceback" not in err
    if corrupted:
        assert code == 2 and out == "", (code, out[:200], err)
        assert len(err.strip().splitlines()) == 1, err
        return
    assert code in (0, 1), (code, err)
    if code == 0:
        doc = json.loads(out, parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        assert isinstance(doc, dict) and _finite(doc)
