"""Engine launch commands: the argv that starts vLLM, SGLang or TensorRT-LLM with a sizer split.

Why: the user who chose a split must still type the engine's command by hand, where flag names
and meanings differ per engine and a wrong one costs an OOM at start-up. sizer knows every number
that command needs, so it writes it. engine_command() is pure (strings in, argvs out); the CLI
(sizer/cli/common.py) prints or attaches it, for estimate, recommend and simulate alike.

A sizer split is TP x PP x DP with EP formed inside a stage's TP x DP ranks (sizer/model/split.py).
An engine server ("deployment") runs TP t x PP p x DP k of it, and the split needs d / k of them
behind a load balancer (the layout rules and their sources: sizer/cost/engine_support.py):
- vLLM: one `vllm serve` per deployment; `--data-parallel-size k` holds k replicas behind one
  endpoint. MoE layers form a group of DP x TP ranks: tensor-parallel by default, expert-parallel
  with `--enable-expert-parallel` (EP = TP x DP) (vLLM docs/serving/data_parallel_deployment.md,
  commit 01e4fce0). So sizer's EP = t x k is one deployment of DP k with EP on, and a MoE model at
  EP1 runs d independent deployments (vLLM's DP would shard its experts over DP x TP instead).
- SGLang: `--data-parallel-size` replicas of a TP group; EP dividing TP is `--expert-parallel-size`
  (experts sharded TP / EP ways); EP = t x k is `--enable-dp-attention` with TP = DP-attention
  ranks = t x k. Under DP attention `--chunked-prefill-size` and `--max-running-requests` are the
  deployment's totals, divided by the DP size per rank (python/sglang/srt/server_args.py,
  _handle_data_parallelism; model_runner max_running_requests // dp_size).
- TensorRT-LLM: trtllm-serve has no replica DP; EP dividing TP is `--ep_size` (moe TP x moe EP =
  TP); TP1 with EP = k is `enable_attention_dp` over `--tp_size k` ranks (docs/source/features/
  parallel-strategy.md, commit 65b31db1). Options without a flag go in the
  `--extra_llm_api_options` YAML.

Placement over nodes of `gpus_per_node` GPUs: deployments that fit a node are packed into it
(several per node get their own CUDA_VISIBLE_DEVICES and port); a deployment larger than a node
spans whole nodes in the engine's documented multi-node form:
- vLLM, DP inside the deployment: `--data-parallel-size-local`, `--data-parallel-address`,
  `--data-parallel-rpc-port`, and `--headless --data-parallel-start-rank` on the other nodes
  (data_parallel_deployment.md); one DP rank over several nodes: `--nnodes --node-rank
  --master-addr` (+ `--headless`) (docs/serving/parallelism_scaling.md "Running vLLM with
  MultiProcessing"; vllm/config/parallel.py nnodes/node_rank/master_addr, commit 00193b82).
- SGLang: `--nnodes --node-rank --dist-init-addr` on every node (server_arguments.md, commit
  004813e1, "Multi-node distributed serving").
- TensorRT-LLM: one `srun ... trtllm-llmapi-launch trtllm-serve` over the nodes (docs/source/
  commands/trtllm-serve/trtllm-serve.rst, "Multi-node Serving with Slurm", commit 0434755f).
Addresses appear as placeholders (NODE0_IP) for the user to replace.

Flag vocabularies (long names only; tests/test_emit.py pins them):
- vLLM `vllm serve`: docs.vllm.ai/en/latest/configuration/engine_args (vllm/engine/arg_utils.py).
- SGLang `python3 -m sglang.launch_server`: docs.sglang.io advanced_features/server_arguments.
- TensorRT-LLM `trtllm-serve`: tensorrt_llm/commands/serve.py (commit 00209af1). Its `--tp_size`,
  `--pp_size`, `--ep_size`, `--kv_cache_free_gpu_memory_fraction` and `--extra_llm_api_options`
  are the long names every release since 0.18 accepts (newer ones add --tensor_parallel_size,
  --free_gpu_memory_fraction and --config as aliases).
"""

import shlex
from dataclasses import dataclass

from sizer.cost.engine_support import check_layout
from sizer.cost.engines import ENGINES, get_engine
from sizer.cost.memory import resolve_precision
from sizer.errors import InputError
from sizer.model.catalog import preset_repos, resolve_preset, serving_repo
from .emit_spec import SpecOptions, speculative_options

SOURCES = {
    "vllm": "https://docs.vllm.ai/en/latest/configuration/engine_args/",
    "sglang": "https://docs.sglang.io/advanced_features/server_arguments.html",
    "trtllm": "https://nvidia.github.io/TensorRT-LLM/commands/trtllm-serve/trtllm-serve.html",
}
PORTS = {"vllm": 8000, "sglang": 30000, "trtllm": 8000}  # each engine's default HTTP port
VLLM_DP_RPC_PORT = 13345  # the port of vLLM's multi-node DP example (data_parallel_deployment.md)
SGLANG_INIT_PORT = 50000  # the port of SGLang's multi-node example (server_arguments.md)
YAML_NAME = "extra_llm_api_options.yaml"

# sizer KV dtype -> each engine's --kv-cache-dtype value (None: the engine has no such cache)
# vLLM vllm/config/cache.py CacheDType (commit 002f10e0): auto, float16, bfloat16, fp8, ...;
# SGLang server_arguments.md: auto, fp8_e5m2, fp8_e4m3, bf16, bfloat16, fp4_e2m1;
# TensorRT-LLM llm_args.py KvCacheConfig.dtype: "auto" or e.g. "fp8" (PyTorch backend).
KV_VALUES = {
    "vllm": {"fp8": "fp8", "bf16": "bfloat16", "fp16": "float16"},
    "sglang": {"fp8": "fp8_e4m3", "bf16": "bf16"},
    "trtllm": {"fp8": "fp8"},
}
DTYPE_VALUES = {"bf16": "bfloat16", "fp16": "float16"}  # --dtype (vLLM, SGLang), LlmArgs.dtype

# GPU vendors each engine runs on. TensorRT-LLM: "supports the full spectrum of NVIDIA GPU
# architectures" and nothing else (nvidia.github.io/TensorRT-LLM/supported-hardware.html);
# vLLM and SGLang also run on AMD ROCm (vLLM docs/getting_started/installation/gpu.md "ROCm";
# SGLang docs/platforms/amd_gpu.md).
VENDORS = {"vllm": ("NVIDIA", "AMD"), "sglang": ("NVIDIA", "AMD"), "trtllm": ("NVIDIA",)}


@dataclass(frozen=True)
class Command:
    """One process to start: on node `node` (0-based), with `env` set."""

    node: int
    argv: tuple
    env: tuple = ()  # (name, value) pairs

    def to_json(self) -> dict:
        return {"node": self.node, "argv": list(self.argv), "env": dict(self.env)}

    def shell(self) -> str:
        return " ".join([f"{k}={shlex.quote(v)}" for k, v in self.env] + [shlex.join(self.argv)])


@dataclass(frozen=True)
class Launch:
    """Everything it takes to start the split: commands, files they read, placeholders."""

    engine: str
    commands: tuple
    files: tuple = ()  # (name, text): written before the commands run
    placeholders: tuple = ()  # (name, what to put there)
    notes: tuple = ()
    source: str = ""

    def argvs(self) -> list[list[str]]:
        return [list(c.argv) for c in self.commands]

    def to_json(self) -> dict:
        return {"engine": self.engine, "commands": [c.to_json() for c in self.commands],
                "files": dict(self.files), "placeholders": dict(self.placeholders),
                "notes": list(self.notes), "source": self.source}

    def render(self) -> str:
        nodes = len({c.node for c in self.commands})
        lines = [f"Launch with {self.engine} ({self.source}):"]
        for name, text in self.files:
            lines += [f"  cat > {name} <<'EOF'"] + [f"  {t}" for t in text.splitlines()] + ["  EOF"]
        last = None
        for c in self.commands:
            if nodes > 1 and c.node != last:
                lines.append(f"  # node {c.node}")
                last = c.node
            lines.append(f"  {c.shell()}")
        for name, what in self.placeholders:
            lines.append(f"  (replace {name} with {what})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass(frozen=True)
class EngineLayout:
    """One engine deployment of the split and how many identical ones it takes."""

    tp: int  # the engine's tensor-parallel size (SGLang/TRT-LLM attention DP: all its ranks)
    pp: int
    dp: int  # data-parallel ranks inside one deployment (attention-DP ranks included)
    ep: int  # expert-parallel size (vLLM: tp x dp when expert_parallel is on)
    expert_parallel: bool
    attention_dp: bool
    replicas: int  # deployments behind a load balancer
    gpus: int  # per deployment
    rank_gpus: int  # GPUs of one DP rank (vLLM places DP ranks on nodes)


def engine_name(engine) -> str:
    """'vllm' | 'sglang' | 'trtllm' for a name or alias; InputError for anything else."""
    try:
        rules = get_engine(engine) if engine is not None else None
    except InputError:
        raise InputError(f"--emit: unknown engine {engine!r}; choose one of "
                         f"{', '.join(ENGINES)}") from None
    if rules is None:
        raise InputError(f"--emit needs an engine: {', '.join(ENGINES)}")
    return rules.name


def layout_problem(engine: str, split, model) -> str | None:
    """Why `engine` cannot run `split` (None when it can): the expert-parallel layouts of
    sizer/cost/engine_support.py, the one table recommend also filters by."""
    return check_layout(engine, split, model)


def _fit(d: int, unit: int, per_node: int) -> int:
    """The most of d replicas of `unit` GPUs one node holds (a divisor of d, at least 1)."""
    return max(k for k in range(1, d + 1) if d % k == 0 and (k == 1 or unit * k <= per_node))


def engine_layout(engine: str, model, split, per_node: int) -> EngineLayout:
    """The deployments of `split` on `engine` (module docstring); InputError when it cannot."""
    problem = layout_problem(engine, split, model)
    if problem:
        raise InputError(f"--emit {engine}: {problem}")
    t, p, d, e = split.tp, split.pp, split.dp, split.ep
    moe = model.is_moe
    k = e // t if moe and e > 1 and e % t == 0 else 1  # DP ranks inside the EP group
    if engine == "vllm":
        if moe and e > 1:
            return EngineLayout(t, p, k, e, True, False, d // k, t * p * k, t * p)
        k = 1 if moe else _fit(d, t * p, per_node)
        return EngineLayout(t, p, k, 1, False, False, d // k, t * p * k, t * p)
    if engine == "sglang":  # replicas run as deployments: SGLang's own --data-parallel-size
        if moe and e > 1 and k > 1:  # without DP attention is left to its router
            return EngineLayout(t * k, p, k, e, True, True, d // k, t * k * p, t * p)
        return EngineLayout(t, p, 1, e, moe and e > 1, False, d, t * p, t * p)
    if moe and e > 1 and t == 1:  # EP over attention-DP ranks (layout_problem: e divides d)
        return EngineLayout(e, p, e, e, True, True, d // e, e * p, p)
    return EngineLayout(t, p, 1, e, moe, False, d, t * p, t * p)  # --ep_size for every MoE


def model_argument(name_or_path: str) -> tuple[str, tuple]:
    """What the engine loads, and notes: the Hugging Face repository the preset name means
    (sizer.model.catalog.serving_repo: a repo id as typed, a release's name as that release, a
    nickname as the chat release), a config.json path's model directory, any other path as
    given."""
    import os

    text = str(name_or_path)
    pid = resolve_preset(text)
    if pid is not None:
        repo = serving_repo(text)
        if repo is None:
            return text, (f"preset {pid} names no Hugging Face repository: replace {text!r} in the "
                          "command with the model's repo id or directory",)
        others = [r for r in preset_repos(pid) if r != repo]
        if "/" in text or not others:
            return repo, ()
        return repo, (f"--model {text} serves {repo}; the same architecture is also "
                      f"{', '.join(others)}: pass one of those as --model to serve it instead",)
    if os.path.basename(text) == "config.json":
        return os.path.dirname(text) or ".", ()
    if text.endswith(".json"):
        return text, (f"{text} is a bare config: the engine loads a model directory or a Hugging "
                      "Face repo id, so replace it in the command",)
    return text, ()


def precision_flags(engine: str, model, precision: dict) -> tuple[str | None, str | None, str]:
    """(--dtype value, --quantization value, KV dtype value) that make `engine` run the planned
    precision (MemoryPlan.precision: weights, experts, kv_cache); InputError when it cannot.
    A checkpoint's own quantization is read by every engine from its config; a 16-bit
    checkpoint is quantized to fp8 at load time by vLLM and SGLang (`--quantization fp8`);
    TensorRT-LLM's PyTorch backend needs a checkpoint already in the format."""
    native = resolve_precision(model)
    w, x, kv = precision["weights"], precision["experts"], precision["kv_cache"]
    dtype = quant = None
    act = model.dtype
    if (w, x) != (native.linear, native.experts):
        ckpt = model.quantization or model.dtype
        sixteen = ("bf16", "fp16")
        if w == x and w in sixteen and not model.quantization:
            dtype, act = DTYPE_VALUES[w], w
        elif w == x == "fp8" and not model.quantization and engine in ("vllm", "sglang"):
            quant = "fp8"
        else:
            raise InputError(f"--emit {engine}: {engine} cannot turn the {ckpt} checkpoint of "
                             f"{model.name} into {w} weights at load time; pass the config.json "
                             f"of a {w} checkpoint instead")
    if kv == (getattr(model, "kv_quantization", "") or act):  # what the engine's auto resolves to
        return dtype, quant, "auto"
    value = KV_VALUES[engine].get(kv)
    if value is None:
        raise InputError(f"--emit {engine}: {engine} has no {kv} KV cache for a {act} model "
                         f"(it offers {', '.join(['auto'] + sorted(KV_VALUES[engine]))})")
    return dtype, quant, value


def _argv(engine: str, model_arg: str, lay: EngineLayout, *, seqs: int, tokens: int, length: int,
          fraction: float, dtype, quant, kv: str, spec: SpecOptions = SpecOptions()) -> tuple[list, tuple]:
    """The base argv of one deployment (no placement flags) and the files it reads; `spec`: the
    speculative decoding options (sizer/plan/emit_spec.py)."""
    n = lambda v: str(int(v))  # noqa: E731
    if engine == "vllm":
        argv = ["vllm", "serve", model_arg, "--tensor-parallel-size", n(lay.tp),
                "--pipeline-parallel-size", n(lay.pp), "--data-parallel-size", n(lay.dp)]
        argv += ["--enable-expert-parallel"] if lay.expert_parallel else []
        argv += ["--max-num-seqs", n(seqs), "--max-num-batched-tokens", n(tokens),
                 "--gpu-memory-utilization", f"{fraction:g}", "--kv-cache-dtype", kv,
                 "--max-model-len", n(length)]
        argv += (["--dtype", dtype] if dtype else []) + (["--quantization", quant] if quant else [])
        return argv + list(spec.flags), ()
    if engine == "sglang":
        per = lay.dp if lay.attention_dp else 1  # totals over the DP-attention ranks
        argv = ["python3", "-m", "sglang.launch_server", "--model-path", model_arg,
                "--tensor-parallel-size", n(lay.tp), "--pipeline-parallel-size", n(lay.pp),
                "--data-parallel-size", n(lay.dp)]
        argv += ["--enable-dp-attention"] if lay.attention_dp else []
        argv += ["--expert-parallel-size", n(lay.ep)] if lay.expert_parallel else []
        argv += ["--max-running-requests", n(seqs * per), "--chunked-prefill-size", n(tokens * per),
                 "--mem-fraction-static", f"{fraction:g}", "--kv-cache-dtype", kv,
                 "--context-length", n(length)]
        argv += (["--dtype", dtype] if dtype else []) + (["--quantization", quant] if quant else [])
        return argv + list(spec.flags), ()
    argv = ["trtllm-serve", model_arg, "--backend", "pytorch", "--tp_size", n(lay.tp),
            "--pp_size", n(lay.pp)]
    argv += ["--ep_size", n(lay.ep)] if lay.expert_parallel else []
    argv += ["--max_batch_size", n(seqs), "--max_num_tokens", n(tokens), "--max_seq_len", n(length),
             "--kv_cache_free_gpu_memory_fraction", f"{fraction:g}"]
    yaml = (["enable_attention_dp: true"] if lay.attention_dp else []) + \
        ([f"dtype: {dtype}"] if dtype else []) + \
        (["kv_cache_config:", f"  dtype: {kv}"] if kv != "auto" else []) + list(spec.yaml)
    if not yaml:
        return argv, ()
    return argv + ["--extra_llm_api_options", YAML_NAME], ((YAML_NAME, "\n".join(yaml) + "\n"),)


def _place(engine: str, lay: EngineLayout, argv: list, per_node: int) -> tuple[list, list]:
    """Commands (node, argv, env) for every deployment, and the placeholders they use."""
    g, cmds, holders = lay.gpus, [], []
    if g <= per_node:
        per = per_node // g  # deployments per node; a remainder of GPUs stays idle (3 GPUs of a node of 8)
        for j in range(lay.replicas):
            node, slot = divmod(j, per)
            if per > 1 and lay.replicas > 1:  # several servers on one node
                devices = ",".join(str(slot * g + i) for i in range(g))
                cmds.append(Command(node, tuple(argv + ["--port", str(PORTS[engine] + slot)]),
                                    (("CUDA_VISIBLE_DEVICES", devices),)))
            else:
                cmds.append(Command(node, tuple(argv)))
        return cmds, holders
    if g % per_node:
        raise InputError(f"--emit {engine}: a deployment of {g} GPUs does not span whole nodes of "
                         f"{per_node} GPUs")
    m = g // per_node
    for j in range(lay.replicas):
        head = j * m
        addr = f"NODE{head}_IP"
        if engine == "trtllm":
            launcher = ["srun", "--nodes", str(m), "--ntasks", str(g), "--ntasks-per-node",
                        str(per_node), "--mpi=pmix"] + (["--relative", str(head)] if head else [])
            cmds.append(Command(head, tuple(launcher + ["trtllm-llmapi-launch"] + argv)))
            continue
        holders.append((addr, f"the IP address of node {head}"))
        for i in range(m):
            cmds.append(Command(head + i, tuple(argv + _node_flags(engine, lay, per_node, m, i, addr))))
    return cmds, holders


def _node_flags(engine: str, lay: EngineLayout, per_node: int, m: int, i: int, addr: str) -> list:
    """The flags that make node i of an m-node deployment join it (module docstring)."""
    if engine == "sglang":
        return ["--dist-init-addr", f"{addr}:{SGLANG_INIT_PORT}", "--nnodes", str(m),
                "--node-rank", str(i)]
    if lay.dp == 1:  # one DP rank over m nodes: vLLM's multiprocessing multi-node form
        return ["--nnodes", str(m), "--node-rank", str(i), "--master-addr", addr] + \
            (["--headless"] if i else [])
    if lay.rank_gpus > per_node or per_node % lay.rank_gpus:
        raise InputError(f"--emit vllm: a DP rank of TP{lay.tp} x PP{lay.pp} = {lay.rank_gpus} GPUs "
                         f"does not fit nodes of {per_node} GPUs, and vLLM's multi-node data "
                         "parallelism places whole DP ranks on nodes (data_parallel_deployment.md)")
    local = per_node // lay.rank_gpus
    flags = ["--data-parallel-size-local", str(local), "--data-parallel-address", addr,
             "--data-parallel-rpc-port", str(VLLM_DP_RPC_PORT)]
    return flags + (["--headless", "--data-parallel-start-rank", str(i * local)] if i else [])


def engine_command(engine, model, split, *, model_arg: str, precision: dict, max_num_seqs: int,
                   max_num_batched_tokens: int, max_model_len: int,
                   memory_fraction: float | None = None, gpus_per_node: int | None = None,
                   gpu=None, speculative=None, draft_arg: str | None = None) -> Launch:
    """The commands that start `engine` serving `split` of `model` as sizer planned it.

    model_arg: the user's --model (preset, repo id or path; see model_argument). precision:
    MemoryPlan.precision of the plan. max_num_seqs: sequences per sizer DP replica (the plan's
    batch); max_num_batched_tokens: the per-forward token budget of one replica; max_model_len:
    the context the plan sized KV for; memory_fraction: the engine's fraction flag (default: its
    EngineRules.fraction, the value the plan used); gpus_per_node: node size (default: one node
    holds the split); gpu: the GPUSpec it runs on (its vendor must be one the engine supports,
    VENDORS); speculative: the plan's Speculative (sizer/cost/speculative.py), launched in the
    engine's own form (sizer/plan/emit_spec.py), with draft_arg the user's --draft-model.
    InputError when the engine cannot run the split, the precision, the GPU or the method."""
    name = engine_name(engine)
    if gpu is not None and gpu.vendor not in VENDORS[name]:
        raise InputError(f"--emit {name}: {name} runs only on {' and '.join(VENDORS[name])} GPUs, "
                         f"and {gpu.id} is {gpu.vendor}: emit vllm or sglang instead")
    for what, v in (("max_num_seqs", max_num_seqs), ("max_num_batched_tokens", max_num_batched_tokens),
                    ("max_model_len", max_model_len)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise InputError(f"--emit {name}: {what} must be a positive integer, got {v!r}")
    per_node = split.gpus if gpus_per_node is None else gpus_per_node
    if not isinstance(per_node, int) or per_node < 1:
        raise InputError(f"--emit {name}: GPUs per node must be a positive integer, got {per_node!r}")
    fraction = ENGINES[name].fraction if memory_fraction is None else float(memory_fraction)
    if not 0 < fraction <= 1:
        raise InputError(f"--emit {name}: memory fraction must be in (0, 1], got {fraction}")
    lay = engine_layout(name, model, split, per_node)
    dtype, quant, kv = precision_flags(name, model, precision)
    arg, notes = model_argument(model_arg)
    draft = model_argument(draft_arg)[0] if draft_arg else None
    spec = speculative_options(name, speculative, model, arg, draft)
    argv, files = _argv(name, arg, lay, seqs=max_num_seqs, tokens=max_num_batched_tokens,
                        length=max_model_len, fraction=fraction, dtype=dtype, quant=quant, kv=kv,
                        spec=spec)
    cmds, holders = _place(name, lay, argv, per_node)
    holders, notes = list(spec.placeholders) + holders, notes + spec.notes
    if any(c.argv[0] == "srun" for c in cmds):
        notes += (f"run srun inside a Slurm allocation of the nodes, adding your container flags "
                  f"(any MPI launcher of {lay.gpus} ranks, {per_node} per node, works the same)",)
    if lay.replicas > 1:
        notes += (f"{lay.replicas} {name} deployments of {lay.gpus} GPUs each: put a load balancer "
                  "in front of their endpoints",)
    return Launch(name, tuple(cmds), files, tuple(holders), notes, SOURCES[name])
