"""A parallel split of one deployment: TP x PP x DP GPUs, with EP formed inside TP x DP.

Convention of the serving engines (vLLM `--enable-expert-parallel`, SGLang `--ep-size`): EP adds
no GPUs. The expert-parallel group of a pipeline stage is made of its TP x DP ranks, so EP must
divide TP x DP; each EP rank holds num_experts / EP whole experts. When EP < TP, each expert is
also tensor-sharded TP / EP ways (Megatron-Core's expert-tensor-parallel grid).
PP need not divide the layers: the stages are split as the engines split them (stage_layers);
`--even-pp` (uneven_pp=False) asks for equal stages only. Which of these layouts a given engine
can run is sizer/cost/engine_support.py's question.

Redundant experts (EPLB, DeepSeek-V3 section 3.4; SGLang --ep-num-redundant-experts): R extra
copies of hot experts, so the E + R expert slots must divide by EP instead of E (DeepSeek's
decode: 256 + 32 = 288 slots over EP144, two per GPU; prefill EP32, nine per GPU).
"""

from dataclasses import dataclass, field

from sizer.errors import InputError


@dataclass(frozen=True)
class Split:
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    # PP may leave stages unequal (stage_layers: vLLM's partition, the engines' default). False
    # (--even-pp) asks for equal stages only. Not part of a split's identity: the same layout.
    uneven_pp: bool = field(default=True, compare=False)
    redundant_experts: int = 0  # EPLB replicas of hot experts (slots = experts + this)

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def expert_tp(self) -> int:
        """Tensor-parallel ways inside one expert: TP / EP when EP < TP, else 1."""
        return self.tp // self.ep if self.ep < self.tp and self.tp % self.ep == 0 else 1

    def to_json(self) -> dict:
        doc = {"tp": self.tp, "pp": self.pp, "dp": self.dp, "ep": self.ep, "label": self.label()}
        if self.redundant_experts:
            doc["redundant_experts"] = self.redundant_experts
        return doc

    def label(self) -> str:
        s = f"TP{self.tp} PP{self.pp} DP{self.dp}"
        s += f" EP{self.ep}" if self.ep > 1 else ""
        return s + (f" (+{self.redundant_experts} redundant experts)" if self.redundant_experts else "")


def check_split(model, split: Split, gpus: int | None = None) -> Split:
    """Raise InputError (one line) when the split does not divide the model or the GPU count."""
    for name, value in (("tp", split.tp), ("pp", split.pp), ("dp", split.dp), ("ep", split.ep)):
        if not isinstance(value, int) or value < 1:
            raise InputError(f"--{name} must be a positive integer, got {value!r}")
    if gpus is not None and gpus != split.gpus:
        raise InputError(f"--gpus {gpus} differs from TP x PP x DP = {split.tp} x {split.pp} x "
                         f"{split.dp} = {split.gpus}")
    if split.tp > model.num_heads:
        raise InputError(f"{model.name}: TP={split.tp} exceeds its {model.num_heads} attention heads "
                         "(a TP rank needs at least one head)")
    if model.num_heads % split.tp:
        raise InputError(f"{model.name}: {model.num_heads} attention heads do not divide by TP={split.tp}")
    kv = model.num_kv_heads
    if not model.is_mla and kv % split.tp and split.tp % kv:
        raise InputError(f"{model.name}: {kv} KV heads and TP={split.tp}: one must divide the other")
    if split.pp > model.num_layers:
        raise InputError(f"{model.name}: PP={split.pp} exceeds its {model.num_layers} layers")
    if model.num_layers % split.pp and not split.uneven_pp:
        raise InputError(f"{model.name}: {model.num_layers} layers do not divide by PP={split.pp} "
                         "(--even-pp asks for equal stages; without it the stages get "
                         f"{'/'.join(str(len(r)) for r in stage_layers(model, split.pp))} layers, as vLLM splits them)")
    r = split.redundant_experts
    if not isinstance(r, int) or r < 0:
        raise InputError(f"--redundant-experts must be a non-negative integer, got {r!r}")
    if r and split.ep < 2:
        raise InputError(f"--redundant-experts {r} needs expert parallelism (EP > 1)")
    if r and r > model.num_experts:
        raise InputError(f"--redundant-experts {r} is more than {model.name}'s "
                         f"{model.num_experts} experts")
    if split.ep > 1:
        if not model.is_moe:
            raise InputError(f"{model.name} is dense: EP={split.ep} needs a mixture-of-experts model")
        slots = model.num_experts + split.redundant_experts
        extra = f" + {split.redundant_experts} redundant" if split.redundant_experts else ""
        if split.ep > slots:
            raise InputError(f"{model.name}: EP={split.ep} is more than its {model.num_experts}"
                             f"{extra} experts (--redundant-experts adds expert slots)")
        if slots % split.ep:
            raise InputError(f"{model.name}: {model.num_experts}{extra} experts do not divide by "
                             f"EP={split.ep}" + ("" if extra else " (--redundant-experts R makes "
                                                 "E + R slots, as EPLB does)"))
        if (split.tp * split.dp) % split.ep:
            raise InputError(f"EP={split.ep} must divide TP x DP = {split.tp * split.dp} "
                             "(expert-parallel groups are formed from a stage's TP x DP ranks)")
    return split


def stage_layers(model, pp: int) -> list[range]:
    """Layer indices of each pipeline stage. Equal counts when PP divides the layers; otherwise
    vLLM's partition (vllm/distributed/utils.py, get_pp_indices, v0.8+): every stage gets
    L // PP and the L % PP extra layers go one each to the stages before the last, from the
    second-to-last backwards (the last stage already holds the LM head). SGLang ports the same
    function (python/sglang/srt/distributed/utils.py, SGLANG_PP_LAYER_PARTITION to override);
    TensorRT-LLM gives the extras to the first stages (tensorrt_llm/mapping.py, pp_layers:
    torch.tensor_split). Either way the slowest stage holds ceil(L / PP) layers and the last
    stage none of the extras."""
    counts = [model.num_layers // pp] * pp
    for i in range(2, model.num_layers % pp + 2):
        counts[-i] += 1
    starts = [sum(counts[:s]) for s in range(pp)]
    return [range(starts[s], starts[s] + counts[s]) for s in range(pp)]
