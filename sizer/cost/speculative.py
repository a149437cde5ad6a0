"""Speculative decoding: a cheap draft proposes k tokens, the target verifies them in one step.

Per decode step (chain drafting, as vLLM's and SGLang's EAGLE/MTP with top-k 1 run it):
- the draft runs k forwards of the running batch (the first also re-reads the k + 1 positions
  the last verify accepted), each one step of the draft model;
- the target runs one verify step with k + 1 query tokens per sequence (sizer/cost/step.py
  `query_tokens`): its GEMMs and LM head see batch x (k + 1) rows, attention reads each
  sequence's KV once for all of them;
- with a per-token acceptance rate a (each drafted token accepted with probability a once its
  predecessors were), the expected tokens a sequence gains per step is
      E = (1 - a^(k+1)) / (1 - a)         (= k + 1 at a = 1)
  (Leviathan, Kalman, Matias, "Fast Inference from Transformers via Speculative Decoding",
  ICML 2023, eq. 1). At a = 0, E = 1: no gain, and the step still pays the draft and the larger
  verify batch.
TPOT = (verify step + draft steps) / E.

Methods and their defaults (each a parameter a user overrides):
- "mtp": the multi-token-prediction module the checkpoint ships (its config's
  `num_nextn_predict_layers`, ModelSpec.mtp_layers; DeepSeek-V3/R1 ship one), one extra
  transformer block of the target (MoE where the target is) sharing its embedding and LM head;
  k = 1, a = 0.85: "the acceptance rate of the second token prediction ranges between 85% and
  90%" (DeepSeek-V3 Technical Report, section 5.4.3, which gives 1.8x decode TPS). Only a
  checkpoint with MTP layers can (vLLM's Multi-Token Prediction page: "your base model must
  already have pre-trained MTP heads in the checkpoint", docs/features/speculative_decoding/
  mtp.md; TensorRT-LLM: "MTP is currently only supported by Deepseek", docs/source/features/
  speculative-decoding.md, commit 04c8822c); without them it is exit 2.
- "eagle": an EAGLE-3 draft head, one dense decoder layer at the target's width with the
  target's LM head; k = 3 (vLLM's documented example, num_speculative_tokens 3), a = 0.75, so
  E = 2.73, inside the 2.7-3.5 mean acceptance lengths published for EAGLE-3 heads on MT-Bench /
  GSM8K / HumanEval (AQ-MedAI/Qwen3.5-397B-A17B-eagle3 model card: 3.03-3.53). The head is a
  separate checkpoint trained for one target: EAGLE3_HEADS lists the published heads of sizer's
  presets; any other target needs its own (the estimate holds for any; --emit names a
  placeholder where sizer knows no head).
- "draft": a separate small model (--draft-model, e.g. Llama-3.2-1B for Llama-3.1-70B) on the
  same GPUs and TP; k = 4, a = 0.6 (E = 2.31), the middle of the acceptance rates Leviathan et
  al. measure for small drafts (their Table 3: 0.5-0.75 for T5-small/base drafts of T5-XXL).
"""

import dataclasses
from dataclasses import dataclass

from sizer.errors import InputError

METHODS = {  # method -> (default k, default acceptance, what the draft is)
    "mtp": (1, 0.85, "one extra transformer block of the target (DeepSeek-V3 MTP)"),
    "eagle": (3, 0.75, "an EAGLE-3 head: one dense decoder layer at the target's width"),
    "draft": (4, 0.6, "a separate draft model"),
}
MAX_SPEC_TOKENS = 16  # engines draft at most a handful; vLLM and SGLang examples use 1-8

# Published EAGLE-3 heads, by the target's Hugging Face repo: TensorRT-LLM
# docs/source/features/speculative-decoding.md (commit 04c8822c), "EAGLE 3": Llama 3 variants from
# the EAGLE-3 authors (huggingface.co/yuhuili; the docs' example pairs this one with
# meta-llama/Llama-3.1-8B-Instruct), Llama 4 Maverick from NVIDIA's repository.
EAGLE3_HEADS = {
    "meta-llama/Llama-3.1-8B-Instruct": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B",
    "meta-llama/Llama-4-Maverick-17B-128E-Instruct": "nvidia/Llama-4-Maverick-17B-128E-Eagle3",
}
EAGLE3_WHERE = ("EAGLE-3 heads are trained for one target each; published ones: "
                "huggingface.co/collections/RedHatAI/speculator-models, "
                "huggingface.co/collections/nvidia/speculative-decoding-modules, huggingface.co/yuhuili")


def eagle_head(repo: str | None) -> str | None:
    """The published EAGLE-3 head of the target `repo` (None: sizer knows none)."""
    return EAGLE3_HEADS.get(repo) if repo else None


@dataclass(frozen=True)
class Speculative:
    method: str
    num_tokens: int  # k drafted tokens per step
    acceptance: float  # per drafted token
    draft: object  # ModelSpec the draft steps are priced with

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens per sequence per step: (1 - a^(k+1)) / (1 - a) (module docstring)."""
        a, k = self.acceptance, self.num_tokens
        return float(k + 1) if a >= 1.0 else (1.0 - a ** (k + 1)) / (1.0 - a)

    def to_json(self) -> dict:
        return {"method": self.method, "num_speculative_tokens": self.num_tokens,
                "acceptance": self.acceptance, "tokens_per_step": self.tokens_per_step,
                "draft": self.draft.name, "draft_is": METHODS[self.method][2]}


def speculative_config(model, method, num_tokens=None, acceptance=None, draft_model=None):
    """A validated Speculative for `model` (None when method is None); InputError (exit 2) on
    an unknown method, k outside 1..16, an acceptance outside [0, 1], or a draft model given to
    a method that has its own draft (or missing for 'draft')."""
    if method is None:
        if num_tokens is not None or acceptance is not None or draft_model is not None:
            raise InputError("--num-speculative-tokens / --acceptance / --draft-model need "
                             "--speculative mtp|eagle|draft")
        return None
    key = str(method).strip().lower()
    if key not in METHODS:
        raise InputError(f"unknown speculative method {method!r} (known: {', '.join(METHODS)})")
    k0, a0, _ = METHODS[key]
    k = k0 if num_tokens is None else num_tokens
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_SPEC_TOKENS:
        raise InputError(f"--num-speculative-tokens must be an integer in 1..{MAX_SPEC_TOKENS}, got {k!r}")
    a = a0 if acceptance is None else acceptance
    try:
        a = float(a)
    except (TypeError, ValueError):
        raise InputError(f"--acceptance must be a number in [0, 1], got {acceptance!r}") from None
    if not 0.0 <= a <= 1.0:
        raise InputError(f"--acceptance must be in [0, 1] (per drafted token), got {acceptance!r}")
    if key == "draft":
        if draft_model is None:
            raise InputError("--speculative draft needs --draft-model (a preset or config.json)")
        draft = draft_model
        if draft.vocab_size != model.vocab_size:
            raise InputError(f"draft model {draft.name} has a vocabulary of {draft.vocab_size}, "
                             f"{model.name} of {model.vocab_size}: drafts must share the tokenizer")
    else:
        if draft_model is not None:
            raise InputError(f"--draft-model is for --speculative draft; {key} drafts with "
                             f"{METHODS[key][2]}")
        if key == "mtp" and getattr(model, "mtp_layers", 0) < 1:
            raise InputError(f"--speculative mtp needs the checkpoint's own multi-token-prediction "
                             f"layers, and {model.name} has none (its config's "
                             "num_nextn_predict_layers / mtp_num_hidden_layers is 0 or absent; "
                             "DeepSeek-V3/R1 ship one): use --speculative eagle (a trained EAGLE-3 "
                             "head) or draft (--draft-model)")
        draft = draft_layer(model, key)
    return Speculative(key, k, a, draft)


def draft_layer(model, method: str):
    """The target reduced to the one block an MTP module or an EAGLE head runs (plus the shared
    LM head, which step_time prices on the last stage)."""
    if method == "mtp":
        return dataclasses.replace(model, name=f"{model.name} MTP block", num_layers=1,
                                   moe_layers=(0,) if model.is_moe else (), layer_attention=())
    inter = model.intermediate_size or model.moe_intermediate_size * max(model.experts_per_token, 1)
    return dataclasses.replace(model, name=f"{model.name} EAGLE head", num_layers=1,
                               moe_layers=(), layer_attention=(), intermediate_size=inter)
