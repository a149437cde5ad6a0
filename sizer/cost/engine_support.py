"""Which split layouts each serving engine can run, with the engines' own documents cited.

Why a module of its own: sizer's Split is every TP x PP x DP with EP formed inside TP x DP
(sizer/model/split.py), and the engines run only part of that space. A recommendation an engine
cannot launch is no recommendation, so the recommender passes every split of its search through
check_layout(), and capacity planning can refuse to emit a launch line for the same reason.

How a sizer split maps onto engine launches. DP replicas can always run as independent
deployments behind a load balancer, so TP t x PP p x DP d with EP e is runnable when d / k
deployments of TP t x DP k each (k dividing d) are: the expert-parallel group is then the
TP x k ranks of a stage of one deployment. The rules per engine (e > 1 only matters for MoE):

- vLLM: `--enable-expert-parallel` makes EP_SIZE = TP_SIZE x DP_SIZE of a deployment
  (docs.vllm.ai/en/latest/serving/expert_parallel_deployment, "EP size is automatically
  calculated"); without it the experts are tensor-sharded, over TP (sizer's EP1; with
  `--data-parallel-size` k they form a TP group of k x TP instead, docs.vllm.ai/en/v0.12.0/
  serving/data_parallel_deployment, a layout sizer does not model). Runs: e = 1, or e = t x k.
  Never 1 < e < t: vLLM has no expert-tensor-parallel grid.
- SGLang: `--tp-size` T counts every GPU of a stage; `--enable-dp-attention --dp-size k` runs
  attention as k groups of T / k; `--ep-size` e divides T and the experts of an EP rank are
  tensor-sharded moe_tp = T / e ways (python/sglang/srt/distributed/parallel_state.py,
  initialize_model_parallel: moe_tp_size = tp_size // ep_size;
  docs.sglang.io/advanced_features/expert_parallelism). sizer's grid
  (experts sharded TP / EP ways when EP < TP) is that without DP attention (T = t, e divides t);
  with DP attention it is e = T = t x k (moe_tp 1). Runs: e divides t, or e = t x k.
- TensorRT-LLM: moe_expert_parallel_size x moe_tensor_parallel_size = tensor_parallel_size
  (docs/source/features/parallel-strategy.md; tensorrt_llm/mapping.py), and `enable_attention_dp`
  replicates the attention weights on every rank (attention TP 1). Runs: e divides t, or t = 1
  and e = k.

Uneven pipeline stages: all three split layers a PP size does not divide (vLLM get_pp_indices,
`VLLM_PP_LAYER_PARTITION`; SGLang its port, `SGLANG_PP_LAYER_PARTITION`; TensorRT-LLM
Mapping.pp_layers, torch.tensor_split), so PP is not restricted here; sizer costs vLLM's
partition (sizer/model/split.py, stage_layers).
"""

from dataclasses import dataclass

from sizer.errors import InputError


@dataclass(frozen=True)
class EngineLayouts:
    engine: str
    expert_rule: str  # which EP layouts, in the engine's own flags
    source: str


LAYOUTS = {
    "vllm": EngineLayouts(
        "vllm", "EP1 (experts tensor-sharded over TP) or EP = TP x k for deployments of DP k "
        "(--enable-expert-parallel: EP = TP x DP)",
        "docs.vllm.ai/en/latest/serving/expert_parallel_deployment"),
    "sglang": EngineLayouts(
        "sglang", "EP dividing TP (--ep-size, experts sharded TP / EP ways) or EP = TP x k with "
        "--enable-dp-attention --dp-size k",
        "python/sglang/srt/distributed/parallel_state.py, initialize_model_parallel"),
    "trtllm": EngineLayouts(
        "trtllm", "EP dividing TP (moe_expert_parallel_size x moe_tensor_parallel_size = "
        "tensor_parallel_size) or, with TP1, EP = k over enable_attention_dp ranks",
        "TensorRT-LLM docs/source/features/parallel-strategy.md"),
}


def engine_name(engine) -> str | None:
    """'vllm' for an EngineRules, a name or an alias; None for no engine (raw capacity)."""
    if engine is None:
        return None
    name = getattr(engine, "name", engine)
    if name is None or str(name).lower() == "none":
        return None
    key = str(name).lower().replace("-", "").replace("_", "")
    key = {"tensorrtllm": "trtllm", "trt": "trtllm"}.get(key, key)
    if key not in LAYOUTS:
        raise InputError(f"unknown engine {name!r} (known: {', '.join(LAYOUTS)}, none)")
    return key


def runs_expert_layout(engine, tp: int, dp: int, ep: int) -> bool:
    """Whether `engine` runs EP `ep` over a stage of TP `tp` x DP `dp` ranks (module docstring)."""
    name = engine_name(engine)
    if name is None or ep == 1:
        return True
    across = ep % tp == 0 and dp % (ep // tp) == 0  # EP = TP x k, k dividing DP
    if name == "vllm":
        return across
    if name == "sglang":
        return across or tp % ep == 0
    return tp % ep == 0 or (tp == 1 and dp % ep == 0)  # trtllm


def expert_layouts(engine, tp: int, dp: int, num_experts: int | None = None) -> list[int]:
    """The EP sizes `engine` runs over TP x DP ranks (dividing the expert count when given)."""
    n = tp * dp
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]  # O(sqrt n): n reaches 1e6
    every = sorted(set(small) | {n // d for d in small})
    return [e for e in every if (num_experts is None or num_experts % e == 0)
            and runs_expert_layout(engine, tp, dp, e)]


def check_layout(engine, split, model=None) -> str | None:
    """None when `engine` can run `split`; otherwise one line saying why not and which EP sizes
    it runs there, citing the engine's documents. No engine (None, 'none') runs every split: it is
    sizer's raw capacity. A dense model (model given, not MoE) has no expert layout to check."""
    name = engine_name(engine)
    if name is None or split.ep == 1 or (model is not None and not getattr(model, "is_moe", False)):
        return None
    if runs_expert_layout(name, split.tp, split.dp, split.ep):
        return None
    rule = LAYOUTS[name]
    ok = expert_layouts(name, split.tp, split.dp, getattr(model, "num_experts", None) if model else None)
    alt = ", ".join(f"EP{e}" for e in ok)
    return (f"{name} does not run EP{split.ep} over TP{split.tp} x DP{split.dp}: it runs "
            f"{rule.expert_rule}" + (f", here {alt}" if alt else "") + f" ({rule.source})")


def supported_layouts(engine) -> str:
    """One line: which expert layouts `engine` runs and where that is documented ('' for none)."""
    name = engine_name(engine)
    if name is None:
        return ""
    rule = LAYOUTS[name]
    return f"{name} runs {rule.expert_rule}; uneven pipeline stages are allowed ({rule.source})"
