"""Speculative decoding in an engine's launch command: each engine's own form of the plan's
method, draft and k drafted tokens per step (sizer/cost/speculative.py), chain drafting as the
estimate prices it (one draft token per step, top-k 1).

- vLLM: one `--speculative-config` JSON: {"method": "mtp", "num_speculative_tokens": k} for the
  checkpoint's own MTP layers (docs/features/speculative_decoding/mtp.md); {"method": "eagle3",
  "model": HEAD, ...} for an EAGLE-3 head (docs/features/spec_decode/eagle.md, commit 0b896b16);
  {"method": "draft_model", "model": DRAFT, ...} for a draft model (docs/features/spec_decode/
  draft_model.md, commit 0b896b16). The draft runs at the target's TP, as sizer prices it.
- SGLang: `--speculative-algorithm` EAGLE for DeepSeek MTP ("SGLang implements DeepSeek V3
  Multi-Token Prediction (MTP) based on EAGLE speculative decoding", docs/basic_usage/
  deepseek.md, commit 0a9fc02a: `--speculative-num-steps 1 --speculative-eagle-topk 1
  --speculative-num-draft-tokens 2`), EAGLE3 for an EAGLE-3 head, STANDALONE for a draft model,
  the last two with `--speculative-draft-model-path` (docs/advanced_features/
  speculative_decoding.md, commit fc6d4653). A chain of k steps at top-k 1 verifies k + 1
  tokens: num-steps k, eagle-topk 1, num-draft-tokens k + 1.
- TensorRT-LLM: a `speculative_config` block in the extra options YAML with `decoding_type` MTP
  (`num_nextn_predict_layers`, which "must match max_draft_len"; "MTP is currently only
  supported by Deepseek"), Eagle3 or DraftTarget (`max_draft_len`, `speculative_model_dir`;
  the draft/target quick start runs with the overlap scheduler off) (docs/source/features/
  speculative-decoding.md, commit 04c8822c).
"""

import json
from dataclasses import dataclass

from sizer.cost.speculative import EAGLE3_WHERE, eagle_head
from sizer.errors import InputError

HEAD_HOLDER = "EAGLE3_HEAD"
TRTLLM_MTP_ARCHS = ("deepseek_v3", "deepseek_v32")  # TensorRT-LLM's MTP: DeepSeek only


@dataclass(frozen=True)
class SpecOptions:
    """What speculative decoding adds to one engine's launch."""

    flags: tuple = ()  # argv tail (vLLM, SGLang)
    yaml: tuple = ()  # extra options YAML lines (TensorRT-LLM)
    placeholders: tuple = ()  # (name, what to put there)
    notes: tuple = ()


def draft_source(spec, target_repo: str, draft_repo: str | None) -> tuple[str, tuple, tuple]:
    """(what the engine loads as the draft, placeholders, notes): the draft model's repo, the
    published EAGLE-3 head of the target, or a placeholder where sizer knows none."""
    if spec.method == "draft":
        return draft_repo, (), ()
    head = eagle_head(target_repo)
    if head is not None:
        return head, (), (f"EAGLE-3 head {head}: the published head of {target_repo}",)
    return HEAD_HOLDER, ((HEAD_HOLDER, f"the repo or directory of an EAGLE-3 head trained for "
                                       f"{target_repo}"),), (f"sizer knows no EAGLE-3 head for "
                                                             f"{target_repo}: {EAGLE3_WHERE}",)


def speculative_options(engine: str, spec, model, target_repo: str,
                        draft_repo: str | None = None) -> SpecOptions:
    """The speculative options of `engine` (module docstring) for `spec` (a Speculative, None:
    nothing); InputError where the engine cannot run the method for this model."""
    if spec is None:
        return SpecOptions()
    k, method = spec.num_tokens, spec.method
    if method == "draft" and not draft_repo:
        raise InputError(f"--emit {engine}: --speculative draft needs the draft's --draft-model")
    source, holders, notes = (None, (), ()) if method == "mtp" else \
        draft_source(spec, target_repo, draft_repo)
    if engine == "vllm":
        conf = {"method": {"mtp": "mtp", "eagle": "eagle3", "draft": "draft_model"}[method]}
        if source is not None:
            conf["model"] = source
        conf["num_speculative_tokens"] = k
        return SpecOptions(("--speculative-config", json.dumps(conf)), (), holders, notes)
    if engine == "sglang":
        algo = {"mtp": "EAGLE", "eagle": "EAGLE3", "draft": "STANDALONE"}[method]
        flags = ["--speculative-algorithm", algo]
        flags += ["--speculative-draft-model-path", source] if source is not None else []
        flags += ["--speculative-num-steps", str(k), "--speculative-eagle-topk", "1",
                  "--speculative-num-draft-tokens", str(k + 1)]
        return SpecOptions(tuple(flags), (), holders, notes)
    if method == "mtp":
        if model.arch not in TRTLLM_MTP_ARCHS:
            raise InputError(f"--emit trtllm: TensorRT-LLM runs MTP for DeepSeek models only "
                             f"({model.name} is {model.arch or 'another architecture'}): emit "
                             "vllm or sglang")
        yaml = ("speculative_config:", "  decoding_type: MTP", f"  max_draft_len: {k}",
                f"  num_nextn_predict_layers: {k}")
    else:
        kind = "Eagle3" if method == "eagle" else "DraftTarget"
        yaml = ("speculative_config:", f"  decoding_type: {kind}", f"  max_draft_len: {k}",
                f"  speculative_model_dir: {source}")
        yaml += ("disable_overlap_scheduler: true",) if method == "draft" else ()
    return SpecOptions((), yaml, holders, notes)
