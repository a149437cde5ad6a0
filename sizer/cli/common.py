"""Flags shared by the model-level commands (memory, step, estimate, recommend), and turning
them into the core's objects. Every parse error becomes one line and exit code 2."""

import argparse
import re

from sizer.cost.engines import DEFAULT_ENGINE, get_engine, memory_plan
from sizer.errors import InputError
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.hardware.links import inter_node_names
from sizer.hardware.topo_smi import read_topology_file
from sizer.hardware.topology import (PRESETS, RACK_PRESETS, Topology, default_topology, get_topology,
                                     nodes_for_domain, replicate, split_nodes)
from sizer.model.precision import WEIGHT_DTYPE_HELP
from sizer.model.split import Split
from sizer.output import warn
from sizer.units import parse_bytes, parse_count, parse_fraction, parse_number, parse_positive, parse_seconds


MAX_GPUS = 1_000_000  # GPUs, nodes and every parallel size: a bound, not a fact; no single
# deployment comes near a million GPUs, and the per-GPU-pair work stays bounded (issue #16)
MAX_COUNT = 1_000_000_000  # tokens, sequences, requests: far beyond any context window or batch


def _flag(parse, name: str):
    """An argparse type from a sizer.units parser: its InputError becomes argparse's one-line
    'argument --flag: ...' error (exit 2)."""
    def convert(text):
        try:
            return parse(text)
        except InputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
    convert.__name__ = name
    return convert


def _non_empty(text: str) -> str:
    if not str(text).strip():
        raise InputError(f"expected a value, got {text!r}")
    return str(text).strip()


positive_int = _flag(lambda t: parse_count(t, MAX_COUNT), "count")
gpu_count = _flag(lambda t: parse_count(t, MAX_GPUS), "GPU count")
fraction = _flag(lambda t: parse_fraction(t), "fraction")
size = _flag(parse_bytes, "size")
duration = _flag(parse_seconds, "duration")


def _latency_target(flag: str, bare_limit_s: float):
    """A latency target: a duration (bare numbers are seconds), with a warning on stderr when a
    bare number reads as an implausible number of seconds (`--tpot 50` is 50 s per token, not
    50 ms; trial 1 item 14). The unit silences it: `--tpot 2s` is as meant."""
    def parse(text):
        value, t = parse_seconds(text), str(text).strip()
        if re.fullmatch(r"[0-9.eE+-]+", t) and value >= bare_limit_s:
            warn(f"{flag} {t} is read as {value:g} seconds (a bare number is seconds); "
                 f"write {t}ms if you meant milliseconds, or {t}s to keep it")
        return value
    return _flag(parse, "duration")


# a TPOT of 1 s or more is 1 token per second or slower, a TTFT of 10 s or more is a wait no
# interactive target sets: bare numbers that large are almost surely milliseconds without the unit
tpot_target = _latency_target("--tpot", 1.0)
ttft_target = _latency_target("--ttft", 10.0)
price = _flag(lambda t: parse_positive(t, "price"), "price")
price_list = _flag(lambda t: [parse_positive(part, "price") for part in str(t).split(",")], "price list")
request_rate = _flag(lambda t: parse_positive(t, "requests per second", MAX_COUNT), "request rate")
non_negative_int = _flag(lambda t: parse_count(t, MAX_GPUS, minimum=0), "non-negative count")
nonempty = _flag(_non_empty, "value")  # names and paths: '' is not "not given"


def add_model_args(p, split: bool = True, engine_memory: bool = True) -> None:
    """--model, --gpu, the split, precisions, --engine, --cuda-graphs, --json and, with
    `engine_memory`, the engines' memory flags (add_engine_memory_args): a command that sizes no
    KV cache (step) does not offer them, since they could not change its answer."""
    p.add_argument("--model", required=True, type=nonempty,
                   help="preset id/alias (see `sizer models`) or a config.json path")
    p.add_argument("--gpu", default="h100-sxm", type=nonempty, help="GPU id (see `sizer gpus`; default h100-sxm)")
    if split:
        for flag, what in (("tp", "tensor"), ("pp", "pipeline"), ("dp", "data"), ("ep", "expert")):
            p.add_argument(f"--{flag}", type=gpu_count, default=1, help=f"{what}-parallel size (default 1)")
        p.add_argument("--gpus", type=gpu_count, help="total GPUs; must equal TP x PP x DP when given")
        add_pp_partition_args(p)
        p.add_argument("--redundant-experts", type=non_negative_int, default=0, metavar="R",
                       help="EPLB replicas of hot experts: EP must then divide experts + R "
                            "(DeepSeek: 256 + 32 over EP144)")
    p.add_argument("--weight-dtype", type=nonempty, help=f"linear-layer weights: {WEIGHT_DTYPE_HELP} "
                   "(default: the checkpoint's own)")
    p.add_argument("--kv-dtype", default="auto", type=nonempty,
                   help="KV cache: auto (model dtype), bf16, fp16, fp8, int8")
    p.add_argument("--engine", default=DEFAULT_ENGINE, type=nonempty,
                   help=f"engine memory rules: vllm, sglang, trtllm, or none for raw capacity "
                        f"(default {DEFAULT_ENGINE})")
    if engine_memory:
        add_engine_memory_args(p)
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=None,
                   help="engine replays CUDA graphs (memory for graphs; decode launch floor)")
    p.add_argument("--json", action="store_true", help="print one JSON document on stdout")


def add_engine_memory_args(p) -> None:
    """The engines' memory flags (checked by engine_fraction)."""
    p.add_argument("--gpu-memory-utilization", type=fraction, help="vLLM budget fraction (default 0.9)")
    p.add_argument("--mem-fraction-static", type=fraction, help="SGLang static fraction (default 0.88)")
    p.add_argument("--kv-cache-free-gpu-mem-fraction", type=fraction,
                   help="TensorRT-LLM fraction of free memory for KV (default 0.9)")
    add_scheduler_args(p)


class _OneCap(argparse.Action):
    """One engine cap under two names: both may be given, but not with different values."""

    def __call__(self, parser, namespace, values, option_string=None):
        seen, old = getattr(namespace, f"_{self.dest}_flag", None), getattr(namespace, self.dest, None)
        if seen and seen != option_string and old is not None and old != values:
            parser.error(f"{seen} {old} and {option_string} {values} name the same engine cap; give one")
        setattr(namespace, self.dest, values)
        setattr(namespace, f"_{self.dest}_flag", option_string)


def add_scheduler_args(p) -> None:
    """The engine's scheduler caps under the engines' own names, with the older sizer names as
    aliases, one meaning in every command: the token budget per forward (which also sizes the
    activation-profiling forward) and the sequences a replica runs at once (which also sizes the
    profiling forward's sampler in `sizer memory`, and without an engine everywhere); defaults:
    sizer.cost.engines.scheduler_limits."""
    for flag, alias, dest, help_text in (
            ("--max-num-seqs", "--max-batch", "max_num_seqs",
             "most sequences a replica runs at once (vLLM max_num_seqs, SGLang max_running_requests, "
             "TensorRT-LLM max_batch_size; default: the engine's)"),
            ("--max-num-batched-tokens", "--max-num-tokens", "max_num_batched_tokens",
             "most tokens per forward: the chunked-prefill budget (vLLM max_num_batched_tokens, SGLang "
             "chunked_prefill_size, TensorRT-LLM max_num_tokens; default: the engine's)")):
        p.add_argument(flag, dest=dest, type=positive_int, metavar="N", action=_OneCap, help=help_text)
        p.add_argument(alias, dest=dest, type=positive_int, metavar="N", action=_OneCap, help=f"the same as {flag}")


def add_pp_partition_args(p) -> None:
    """How pipeline stages split the layers: as the engines do by default (vLLM's get_pp_indices:
    a PP that does not divide the layers leaves the stages one layer apart), or --even-pp."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--even-pp", action="store_true",
                   help="only PP sizes that divide the layers (equal stages)")
    g.add_argument("--uneven-pp", action="store_true",
                   help="PP need not divide the layers, stages split as vLLM does (the default)")


def uneven_pp_from_args(args) -> bool:
    return not getattr(args, "even_pp", False)


def split_from_args(args) -> Split:
    return Split(tp=args.tp, pp=args.pp, dp=args.dp, ep=args.ep, uneven_pp=uneven_pp_from_args(args),
                 redundant_experts=getattr(args, "redundant_experts", 0) or 0)


def bounded_float(low: float, high: float):
    """An argparse type for a finite number in [low, high] (inf/nan/text: one-line error)."""
    return _flag(lambda t: parse_number(t, low, high, "value"), f"number in [{low:g}, {high:g}]")


FRACTION_FLAGS = {"vllm": "gpu_memory_utilization", "sglang": "mem_fraction_static",
                  "trtllm": "kv_cache_free_gpu_mem_fraction"}


def engine_fraction(args):
    """The memory fraction flag of the chosen engine (vLLM's by default); a flag of another
    engine, or any with --engine none, is an error (it would be silently ignored otherwise)."""
    engine = get_engine(args.engine)
    given = [(e, f) for e, f in FRACTION_FLAGS.items() if getattr(args, f, None) is not None]
    for owner, flag in given:
        if engine is None or owner != engine.name:
            now = "none" if engine is None else engine.name
            now += " (the default)" if now == DEFAULT_ENGINE else ""
            raise InputError(f"--{flag.replace('_', '-')} is {owner}'s flag: it needs --engine {owner}, "
                             f"not --engine {now}")
    return getattr(args, FRACTION_FLAGS[engine.name]) if engine else None


def engine_label(args) -> str:
    """The engine whose rules an answer uses, as every header and JSON document states it."""
    rules = get_engine(getattr(args, "engine", DEFAULT_ENGINE))
    return rules.name if rules else "none"


def plan_from_args(args, model=None, gpu=None, split=None, batch=None, context=None):
    """The MemoryPlan the flags describe (memory)."""
    model = model or get_model(args.model)
    gpu = gpu or get_gpu(args.gpu)
    split = split or split_from_args(args)
    return memory_plan(
        model, gpu, split, weight_dtype=args.weight_dtype, kv_dtype=args.kv_dtype,
        batch=batch or getattr(args, "batch", None) or 1,
        context=context or getattr(args, "context", None), engine=args.engine,
        fraction=engine_fraction(args), max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs,
        cuda_graphs=True if args.cuda_graphs is None else args.cuda_graphs,
        gpus=getattr(args, "gpus", None))


def deployment_from_args(args, tokens: int | None = None, what: str = "context"):
    """(model, gpu, split, topology, profile) for the time commands (step, estimate): checks
    --gpus against the split, warns on a context beyond the model's maximum, reads --profile
    and the topology flags."""
    from sizer.hardware.profile import load_profile

    from sizer.model.split import check_split

    model, gpu = get_model(args.model), get_gpu(args.gpu)
    split = check_split(model, split_from_args(args), getattr(args, "gpus", None))
    if tokens and getattr(args, "emit", None):
        check_emit_context(args.emit, model, tokens)  # before any work: the command would not start
    if tokens and model.max_position_embeddings and tokens > model.max_position_embeddings:
        warn(f"{what} of {tokens} tokens exceeds {model.name}'s maximum context of "
             f"{model.max_position_embeddings}")
    profile = load_profile(args.profile)
    check_profile_device(profile, gpu)
    topo = topology_for_split(args, gpu, split)  # checked on one GPU too: no flag ignored
    return model, gpu, split, topo if split.gpus > 1 else None, profile


def topology_for_split(args, gpu, split: Split) -> Topology:
    """topology_from_args; without --nodes, a split whose DP replicas do not fit one node is
    spread over the fewest nodes that each hold whole replicas, and stderr says so. DP replicas
    exchange nothing (each runs its own engine; with EP inside TP no collective spans them), so
    their placement cannot change a replica's time. With EP across DP ranks (EP > TP) the
    all-to-all spans replicas and the layout matters: then --nodes stays the user's to give."""
    try:
        topo = topology_from_args(args, gpu, split.gpus)
        _warn_tp_across_nodes(args, gpu, split, topo)
        return topo
    except InputError:
        if (getattr(args, "nodes", None) is not None or getattr(args, "nvlink_domain", None) is not None
                or split.dp < 2 or split.ep > split.tp):
            raise
        for k in range(2, split.dp + 1):
            if split.dp % k:
                continue
            try:
                topo = topology_from_args(argparse.Namespace(**{**vars(args), "nodes": k}), gpu, split.gpus)
            except InputError:
                continue
            replica = split.gpus // split.dp
            warn(f"{split.gpus} GPUs do not fit one {gpu.id} node: the {split.dp} DP replicas "
                 f"({replica} GPU{'s' if replica > 1 else ''} each, exchanging nothing) are placed "
                 f"{split.dp // k} per node on {k} nodes of {topo.gpus_per_node}; a replica's time does "
                 "not depend on the packing (pass --nodes to choose it)")
            return topo
        raise


def _warn_tp_across_nodes(args, gpu, split: Split, topo) -> None:
    """--nodes that leaves fewer GPUs per node than TP puts every TP group's all-reduce on the
    inter-node link: say so when one node of this GPU would hold the group (trial 3: `--tp 4
    --nodes 2` ran TP4 as 2 + 2 over InfiniBand, TPOT 24.2 vs 17.8 ms, without a word)."""
    if topo is None or topo.nodes < 2 or getattr(args, "topology_file", None) or topo.gpus_per_node >= split.tp:
        return
    from sizer.hardware.topology import default_topology

    try:
        default_topology(gpu, split.tp)
    except InputError:
        return  # the group cannot fit one node anyway
    warn(f"--nodes {topo.nodes} puts {topo.gpus_per_node} GPUs on each node, so every TP{split.tp} group "
         f"spans nodes and its all-reduce crosses the inter-node link; one {gpu.id} node holds "
         f"{split.tp}: --nodes {max(1, split.gpus // split.tp)} keeps each TP group inside a node")


def check_profile_device(profile, gpu) -> None:
    """Warn when a profile was measured on another device than --gpu (the UI shows the same
    line: sizer.hardware.profile.device_mismatch)."""
    from sizer.hardware.profile import device_mismatch

    message = device_mismatch(profile, gpu)
    if message:
        warn(message)


def add_topology_args(parser) -> None:
    """--topology / --topology-file / --nodes / --inter-node / --profile, shared by commands."""
    g = parser.add_argument_group("topology")
    g.add_argument("--topology", metavar="T", type=nonempty,
                   help=f"node preset: {', '.join(PRESETS)} (default: the GPU's usual node)")
    g.add_argument("--topology-file", metavar="F", type=nonempty,
                   help="text printed by `nvidia-smi topo -m` on the real machine")
    g.add_argument("--nodes", type=gpu_count, metavar="K",
                   help="number of nodes (NVLink domains on nvl72/nvl36x2); it must divide the "
                        "GPU count (default 1, or as many as DP replicas beyond one node need)")
    g.add_argument("--nvlink-domain", type=gpu_count, metavar="N",
                   help="GPUs per NVLink domain (rack-scale GPUs: up to 72 on GB200/GB300 NVL72; "
                        "default: the rack, or all GPUs when fewer); it must divide the GPU count")
    g.add_argument("--inter-node", metavar="L", type=nonempty,
                   help=f"link between nodes: {', '.join(inter_node_names())} "
                        "(default: the catalog's NIC)")
    g.add_argument("--profile", metavar="P", type=nonempty,
                   help="hardware profile JSON from `python -m probes.calibrate`")


def topology_from_args(args, gpu, n_gpus: int) -> Topology:
    """The Topology the CLI flags describe; InputError on contradictions or bad files."""
    nodes = getattr(args, "nodes", 1) or 1
    name = getattr(args, "topology", None)
    path = getattr(args, "topology_file", None)
    inter = getattr(args, "inter_node", None)
    if nodes < 1:
        raise InputError(f"--nodes must be at least 1, got {nodes}")
    if name and path:
        raise InputError("give --topology or --topology-file, not both")
    domain = getattr(args, "nvlink_domain", None)
    if domain is not None:
        rack = (name or gpu.default_topology) in RACK_PRESETS and not path
        if not rack:
            raise InputError(f"--nvlink-domain needs a rack-scale NVLink topology (nvl72, nvl36x2 "
                             f"on gb200/gb300); a {gpu.id} node's NVLink ends at the node: use --nodes")
        nodes = nodes_for_domain(n_gpus, domain, nodes)
    if inter and nodes == 1:
        raise InputError(f"--inter-node {inter} is the link between nodes: it needs --nodes 2 or more")
    if path:
        per_node = split_nodes(n_gpus, nodes)
        return replicate(read_topology_file(path, gpu), gpu, nodes, per_node, inter)
    if name:
        return get_topology(name, gpu, n_gpus, nodes, inter)
    return default_topology(gpu, n_gpus, nodes, inter)


def add_emit_arg(parser) -> None:
    """--emit E: print (or, with --json, attach) the command that starts engine E with the split.
    Register it after --engine: that flag's default moves to `engine_default`, so that
    resolve_emit() can tell an explicit --engine from the default one."""
    parser.add_argument("--emit", metavar="E", type=nonempty,
                        help="also write the command that starts engine E (vllm, sglang, trtllm) "
                             "with this split and its numbers; implies --engine E")
    engine = parser._option_string_actions.get("--engine")  # argparse keeps no "was it given"
    if engine is not None and engine.default is not None:
        parser.set_defaults(engine_default=engine.default)
        engine.default = None


def resolve_emit(args) -> str | None:
    """--emit E implies --engine E, so the plan and the command share memory rules; an explicit
    different --engine is an error. Call first in a command's run(), before any planning: it also
    restores --engine's default when --emit is absent. Returns the engine name or None."""
    from sizer.plan.emit import engine_name

    emit = getattr(args, "emit", None)
    if getattr(args, "engine", None) is None and not emit:
        args.engine = getattr(args, "engine_default", None)
    if not emit:
        return None
    name = engine_name(emit)
    if args.engine is not None:
        rules = get_engine(args.engine)
        if rules is None or rules.name != name:
            raise InputError(f"--emit {name} plans with {name}'s memory rules: drop --engine "
                             f"{args.engine} or make it --engine {name}")
    args.engine = name
    return name


# what each engine says when --max-model-len / --context-length passes the config's maximum,
# and the variable that overrides its refusal
LONG_CONTEXT_OVERRIDE = {
    "vllm": ("vLLM refuses a max_model_len above the derived maximum (vllm/config/model.py "
             "_get_and_verify_max_len)", "VLLM_ALLOW_LONG_MAX_MODEL_LEN=1"),
    "sglang": ("SGLang refuses a context_length above it (python/sglang/srt/configs/model_config.py)",
               "SGLANG_ALLOW_OVERWRITE_LONGER_CONTEXT_LEN=1"),
}


def check_emit_context(engine: str, model, context: int) -> None:
    """--emit with a model length beyond the config's max_position_embeddings is bad input: the
    printed command would not start (vLLM, SGLang) or would run positions the model was not
    trained for, so exit 2 with the reason rather than print it."""
    limit = model.max_position_embeddings
    if not limit or context <= limit:
        return
    why, env = LONG_CONTEXT_OVERRIDE.get(engine, (f"{engine} would serve positions past the model's "
                                                  "trained range", None))
    raise InputError(f"--emit {engine}: {context} tokens of context (isl + osl) exceed {model.name}'s "
                     f"maximum of {limit} (config.json max_position_embeddings); {why}"
                     + (f" unless {env} is set" if env else "")
                     + f". Lower --isl/--osl to at most {limit} tokens together, or drop --emit")


def emit_launch(args, model, split, *, batch: int, context: int, precision: dict,
                max_num_batched_tokens: int, gpus_per_node: int | None = None,
                memory_fraction: float | None = None, gpu: str | None = None, speculative=None):
    """The Launch of --emit for `split` (None without --emit): `batch` sequences per DP
    replica, `context` tokens of model length, the plan's precision (MemoryPlan.precision) and
    per-replica token budget, nodes of `gpus_per_node` GPUs (default: one node), on GPU `gpu`
    (default: --gpu), with the plan's speculative decoding (its draft: --draft-model)."""
    from sizer.plan.emit import engine_command

    if not getattr(args, "emit", None):
        return None
    check_emit_context(args.emit, model, context)
    gpu = gpu or getattr(args, "gpu", None)
    return engine_command(args.engine, model, split, model_arg=args.model, precision=precision,
                          max_num_seqs=int(batch), max_num_batched_tokens=int(max_num_batched_tokens),
                          max_model_len=int(context), memory_fraction=memory_fraction,
                          gpus_per_node=gpus_per_node,
                          gpu=get_gpu(gpu) if gpu and "," not in str(gpu) else None,
                          speculative=speculative, draft_arg=getattr(args, "draft_model", None))


def show_emit(launch, doc: dict | None = None) -> None:
    """With a JSON document: set its top-level `emit` field (Launch.to_json), before emit_json;
    else print the commands, shell-quoted, after the answer. Nothing for launch None."""
    if launch is None:
        return
    if doc is not None:
        doc["emit"] = launch.to_json()
    else:
        print()
        print(launch.render())
