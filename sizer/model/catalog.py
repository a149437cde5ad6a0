"""The model catalog: presets (verbatim or reconstructed `config.json` files in data/models/,
listed with their sources in data/models/index.json) and the user's own configs: a config.json
path, or a model directory as a download leaves it (config.json, model.safetensors.index.json,
hf_quant_config.json).

Reading and validation live in sizer/model/config.py, the shapes and counts in spec.py, each
layer's attention kind in attention.py; this module finds the file, names the model, and says
once (on stderr) what it assumed or left out.
"""

import dataclasses
import json
import os
import re
from functools import lru_cache

from sizer.errors import InputError, closest_names
from sizer.output import warn
from .config import NON_GATED, NOT_DECODERS, model_from_config  # noqa: F401 (re-exported)
from .precision import weight_bytes_per_param
from .resources import read_json
from .spec import ModelSpec  # noqa: F401 (re-exported)

MAX_JSON_BYTES = 64 << 20  # a config.json is kilobytes; a safetensors index a few MB
CHECKPOINT_TOLERANCE = 0.02  # weight bytes vs the index's metadata.total_size


@lru_cache(maxsize=None)
def _index() -> dict:
    try:
        return read_json("models/index.json")
    except FileNotFoundError:
        return {}


def preset_names() -> list[str]:
    return sorted(_index())


def resolve_preset(name: str) -> str | None:
    """Preset id for a name or alias (case-insensitive), or None."""
    key = str(name).strip().lower()
    for pid, entry in _index().items():
        if key == pid or key in (a.lower() for a in entry.get("aliases", ())):
            return pid
    return None


def serving_repo(name: str) -> str | None:
    """The Hugging Face repository a preset name or alias means (None for anything else).

    A preset is an architecture; the repository is the checkpoint the user asked for
    (index.json `repos`, one per name): a repo-style alias is itself; a name that spells a
    release is that release (`llama-3.1-8b` the base, `llama-3.1-8b-instruct` the Instruct,
    `deepseek-r1` DeepSeek-R1); a nickname that names no release (`8b`, `mixtral`, `kimi`,
    Ollama-style tags such as `llama3.1:8b`, which Ollama serves as the instruct model) is the
    chat release an inference server usually serves. tests/test_model_presets.py checks every
    alias."""
    text = str(name).strip()
    pid = resolve_preset(text)
    if pid is None:
        return None
    entry = _index()[pid]
    if "/" in text:
        return next(a for a in entry.get("aliases", ()) if a.lower() == text.lower())
    return entry.get("repos", {}).get(text.lower()) or entry.get("hf_repo")


def preset_repos(pid: str) -> list[str]:
    """Every Hugging Face repository a preset's names mean (its checkpoints of one architecture)."""
    entry = _index()[pid]
    return sorted(set(entry.get("repos", {}).values()) | ({entry["hf_repo"]} if entry.get("hf_repo") else set()))


_SAID: set = set()


def _say(model: ModelSpec, where: str) -> None:
    """Each note once per process (the UI and recommend load the same model many times)."""
    for note in model.notes:
        if (where, note) not in _SAID:
            _SAID.add((where, note))
            warn(f"{model.name}: {note}")


def read_json_file(path: str, what: str = "config file"):
    """Parse a user's JSON file; every failure is one InputError line (missing, a directory,
    not UTF-8, not JSON, nested beyond Python's recursion limit, absurdly large)."""
    try:
        if os.path.getsize(path) > MAX_JSON_BYTES:
            raise InputError(f"{path}: {what} is larger than {MAX_JSON_BYTES >> 20} MiB")
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        raise InputError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise InputError(f"{path}: JSON nested too deeply to be a {what}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None


def get_model(name_or_path: str) -> ModelSpec:
    """A preset by id/alias (`70b`, `llama-3.1-70b`, `deepseek-r1`), a path to a config.json,
    or a model directory."""
    pid = resolve_preset(name_or_path)
    if pid is not None:
        spec = model_from_config(read_json(f"models/{pid}.json"), name=pid, path=f"data/models/{pid}.json")
        official = _index()[pid].get("official", {})
        if official.get("active_counts_embedding"):
            spec = dataclasses.replace(spec, active_counts_embedding=True)
        _say(spec, pid)
        return spec
    text = str(name_or_path)
    if os.path.isdir(text):
        return _from_directory(text)
    if _looks_like_repo_id(text):
        raise InputError(_unknown_repo_message(text))
    if os.sep in text or text.endswith(".json") or os.path.isfile(text):
        cfg = read_json_file(text)
        stem = os.path.splitext(os.path.basename(text))[0]
        if stem == "config":  # .../Llama-3.1-8B/config.json: the folder names the model
            stem = os.path.basename(os.path.dirname(os.path.abspath(text))) or "custom"
        spec = model_from_config(cfg, name=stem, path=text)
        _say(spec, text)
        return spec
    names = preset_names() + [a for e in _index().values() for a in e.get("aliases", ())]
    hint = closest_names(text, names)
    raise InputError(f"unknown model {text!r}" + (f"; did you mean {hint}?" if hint else "")
                     + " (see `sizer models`, or pass a path to a config.json or a model directory)")


def _looks_like_repo_id(text: str) -> bool:
    """'org/name' (a Hugging Face repo id) that is neither a preset alias nor a path here."""
    return (re.fullmatch(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*", text) is not None
            and not text.endswith(".json") and not os.path.exists(text))


def _unknown_repo_message(text: str) -> str:
    """The closest presets to a repo id sizer has no preset for, and how to pass its config."""
    names = preset_names() + [a for e in _index().values() for a in e.get("aliases", ())]
    hint = closest_names(text.split("/", 1)[1], [n for n in names if "/" not in n]) or \
        closest_names(text, names)
    quant = re.fullmatch(r"(.+?)-(fp8|fp4|nvfp4|int4|int8|awq|gptq|mxfp4)(?:-[\w.]+)?", text, re.IGNORECASE)
    base = quant.group(1) if quant else ""
    short = base.split("/", 1)[-1]
    if quant and (resolve_preset(short) or resolve_preset(base)):  # a quantized release of a preset
        fmt = quant.group(2).lower()
        nvidia = text.lower().startswith("nvidia/")  # ModelOpt releases: NVFP4 W4A4, FP8 KV
        wd = {"awq": "int4", "gptq": "int4", "mxfp4": "fp4"}.get(fmt, "nvfp4" if fmt == "fp4" and nvidia else fmt)
        name = short if resolve_preset(short) is not None else base
        kv = (" --kv-dtype fp8 if its hf_quant_config.json says kv_cache_quant_algo FP8"
              if nvidia and wd in ("fp8", "nvfp4") else "")
        hint = f"--model {name} --weight-dtype {wd}{kv} (the same architecture in {wd})"
        files = "config.json hf_quant_config.json" if nvidia else "config.json"
        return (f"{text!r} is not a preset and not a file here; closest: {hint}, or better pass the "
                f"checkpoint's folder (e.g. `huggingface-cli download {text} {files} --local-dir DIR`, "
                "then --model DIR)")
    return (f"{text!r} is not a preset and not a file here" + (f"; closest presets: {hint}" if hint else "")
            + f". sizer reads no Hub: pass the model's config.json or folder (e.g. `huggingface-cli download "
            f"{text} config.json --local-dir DIR`, then --model DIR); see `sizer models`")


def _from_directory(folder: str) -> ModelSpec:
    """A downloaded model folder: config.json, plus hf_quant_config.json (ModelOpt) for the
    weight format when config.json has no quantization_config, plus the safetensors index's
    `metadata.total_size` to cross-check the weight bytes sizer computes."""
    path = os.path.join(folder, "config.json")
    if not os.path.isfile(path):
        raise InputError(f"{folder} is a directory without a config.json")
    cfg = read_json_file(path)
    if not isinstance(cfg, dict):
        raise InputError(f"{path}: a config.json must be a JSON object")
    quant_path = os.path.join(folder, "hf_quant_config.json")
    if os.path.isfile(quant_path) and not cfg.get("quantization_config"):
        q = read_json_file(quant_path, "hf_quant_config.json")
        algo = q.get("quantization", {}).get("quant_algo") if isinstance(q, dict) and isinstance(q.get("quantization"), dict) else None
        if not isinstance(algo, str):
            raise InputError(f"{quant_path}: expected {{\"quantization\": {{\"quant_algo\": ...}}}}")
        kv = q["quantization"].get("kv_cache_quant_algo")
        cfg = {**cfg, "quantization_config": {"quant_method": "modelopt", "quant_algo": algo,
                                              **({"kv_cache_quant_algo": kv} if kv is not None else {})}}
    name = os.path.basename(os.path.abspath(folder)) or "custom"
    spec = model_from_config(cfg, name=name, path=path)
    index_path = os.path.join(folder, "model.safetensors.index.json")
    if os.path.isfile(index_path):
        note = checkpoint_note(spec, read_json_file(index_path, "safetensors index"), index_path)
        if note:
            spec = dataclasses.replace(spec, notes=spec.notes + (note,))
    _say(spec, folder)
    return spec


def checkpoint_bytes(spec: ModelSpec) -> float:
    """Bytes the checkpoint's own formats give sizer's parameter count: quantized linear
    layers (or experts only) at their format, embeddings, norms and routers in the model dtype."""
    base = weight_bytes_per_param(spec.dtype)
    if not spec.quantization:
        return spec.params_total() * base
    q = weight_bytes_per_param(spec.quantization, spec.block_scaled_fp8)
    moe = len(spec.moe_layers)
    experts = moe * spec.num_experts * spec.expert_params()
    if spec.quantized_modules == "experts":
        return experts * q + (spec.params_total() - experts) * base
    linear = (spec.num_layers * spec.attention_params() + experts + moe * spec.shared_expert_params()
              + (spec.num_layers - moe) * spec.mlp_params(spec.intermediate_size))
    return linear * q + (spec.params_total() - linear) * base


def checkpoint_note(spec: ModelSpec, index, path: str) -> str | None:
    """A note when the safetensors index's total_size differs from checkpoint_bytes by more
    than CHECKPOINT_TOLERANCE (a vision tower, an MTP module, or a config sizer misreads)."""
    size = index.get("metadata", {}).get("total_size") if isinstance(index, dict) and isinstance(index.get("metadata"), dict) else None
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not size > 0 or size != size:
        raise InputError(f"{path}: metadata.total_size must be a positive number of bytes, got {size!r}")
    ours = checkpoint_bytes(spec)
    diff = ours / size - 1
    if abs(diff) <= CHECKPOINT_TOLERANCE:
        return None
    return (f"the checkpoint holds {size / 1e9:,.2f} GB of tensors ({os.path.basename(path)} "
            f"metadata.total_size) but sizer's count of {spec.params_total() / 1e9:,.2f}B parameters "
            f"gives {ours / 1e9:,.2f} GB ({diff:+.1%}): the difference is not modelled (a vision "
            "tower, an MTP/draft module, or a field sizer does not read)")
