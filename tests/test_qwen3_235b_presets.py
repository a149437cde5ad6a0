"""Qwen3-235B-A22B: the original release and the Instruct-2507 one are two presets (trial 2 item 11).

The original Qwen/Qwen3-235B-A22B config.json has max_position_embeddings 40960 and rope_theta
1000000 (32,768 tokens natively plus 8,192 of output; 131,072 with YaRN, its model card); the
July 2025 Instruct-2507 release has 262144 and 5000000 and is otherwise the same architecture
(R00874-R00888). `--model Qwen/Qwen3-235B-A22B` once reported 262,144 tokens."""

import json
from pathlib import Path

import pytest

from sizer.cli.main import main
from sizer.model.catalog import get_model, resolve_preset, serving_repo

MODELS = Path(__file__).resolve().parents[1] / "data" / "models"
ORIGINAL = ["qwen3-235b-a22b", "qwen3-235b", "qwen3:235b", "Qwen/Qwen3-235B-A22B", "qwen/qwen3-235b-a22b"]
INSTRUCT_2507 = ["qwen3-235b-a22b-instruct-2507", "qwen3-235b-instruct-2507", "Qwen/Qwen3-235B-A22B-Instruct-2507"]


@pytest.mark.parametrize("name", ORIGINAL)
def test_the_original_names_get_the_original_context(name):
    assert resolve_preset(name) == "qwen3-235b-a22b"
    assert get_model(name).max_position_embeddings == 40960
    assert serving_repo(name) == "Qwen/Qwen3-235B-A22B"


@pytest.mark.parametrize("name", INSTRUCT_2507)
def test_the_2507_names_get_its_262k_context(name):
    assert resolve_preset(name) == "qwen3-235b-a22b-instruct-2507"
    assert get_model(name).max_position_embeddings == 262144
    assert serving_repo(name) == "Qwen/Qwen3-235B-A22B-Instruct-2507"


def test_the_two_configs_differ_only_in_context_and_rope_base():
    a = json.loads((MODELS / "qwen3-235b-a22b.json").read_text())
    b = json.loads((MODELS / "qwen3-235b-a22b-instruct-2507.json").read_text())
    assert {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)} == {"max_position_embeddings", "rope_theta"}
    assert (a["rope_theta"], b["rope_theta"]) == (1000000.0, 5000000)


def test_memory_and_models_report_each_release_its_own_maximum(capsys):
    """memory plans the model's maximum when no --context is given (capped at 131,072,
    sizer/cost/engines.py DEFAULT_CONTEXT_CAP); `sizer models` lists each maximum."""
    assert main(["memory", "--model", "Qwen/Qwen3-235B-A22B", "--tp", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["context"] == 40960
    assert main(["memory", "--model", "Qwen/Qwen3-235B-A22B-Instruct-2507", "--tp", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["context"] == 131072
    assert main(["models", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = {r["id"]: r["max_context"] for r in (doc if isinstance(doc, list) else doc["models"])}
    assert rows["qwen3-235b-a22b"] == 40960 and rows["qwen3-235b-a22b-instruct-2507"] == 262144
