"""Engine launch commands (issue #13 item 2): the emitted vLLM / SGLang / TensorRT-LLM commands
parse with each engine's documented flags and carry the split's numbers.

The three parsers below pin each engine's flag vocabulary from its documentation; an emitted flag
outside it (a typo, a renamed flag, a short alias) makes argparse exit and the test fail."""

import argparse
import json
import shlex

import pytest

from sizer.cli.main import main
from sizer.cost.engines import memory_plan
from sizer.errors import InputError
from sizer.hardware.gpus import get_gpu
from sizer.model.catalog import get_model
from sizer.model.split import Split
from sizer.plan.emit import engine_command, model_argument


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, allow_abbrev=False, add_help=False)
    p.error = lambda message: pytest.fail(f"{prog}: {message}")  # unknown flag -> test failure
    return p


def vllm_parser() -> argparse.ArgumentParser:
    """`vllm serve MODEL` flags: docs.vllm.ai/en/latest/configuration/engine_args (vllm/engine/
    arg_utils.py ParallelConfig/CacheConfig/SchedulerConfig groups); multi-node flags from
    docs/serving/parallelism_scaling.md and data_parallel_deployment.md (vLLM main, 2025-26);
    --kv-cache-dtype choices from vllm/config/cache.py CacheDType (commit 002f10e0, first six)."""
    p = _parser("vllm serve")
    p.add_argument("model")
    for flag in ("--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size",
                 "--data-parallel-size-local", "--data-parallel-start-rank",
                 "--data-parallel-rpc-port", "--max-num-seqs", "--max-num-batched-tokens",
                 "--max-model-len", "--nnodes", "--node-rank", "--master-port", "--port"):
        p.add_argument(flag, type=int)
    p.add_argument("--data-parallel-address")
    p.add_argument("--master-addr")
    p.add_argument("--enable-expert-parallel", action="store_true")
    p.add_argument("--headless", action="store_true")
    p.add_argument("--gpu-memory-utilization", type=float)
    p.add_argument("--kv-cache-dtype", choices=("auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"))
    p.add_argument("--dtype", choices=("auto", "half", "float16", "bfloat16", "float", "float32"))
    p.add_argument("--quantization", choices=("fp8", "awq", "gptq", "bitsandbytes", "mxfp4", "modelopt"))
    p.add_argument("--speculative-config", type=json.loads)  # docs/features/spec_decode/*.md
    return p


def sglang_parser() -> argparse.ArgumentParser:
    """`python3 -m sglang.launch_server` flags: SGLang docs/advanced_features/server_arguments.md
    (commit 004813e1): Model and tokenizer, Quantization and data type, Memory and scheduling,
    Runtime options, Data parallelism, Multi-node distributed serving, MoE, --enable-dp-attention."""
    p = _parser("sglang.launch_server")
    p.add_argument("--model-path", required=True)
    for flag in ("--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size",
                 "--expert-parallel-size", "--max-running-requests", "--chunked-prefill-size",
                 "--context-length", "--nnodes", "--node-rank", "--port"):
        p.add_argument(flag, type=int)
    p.add_argument("--enable-dp-attention", action="store_true")
    p.add_argument("--mem-fraction-static", type=float)
    p.add_argument("--kv-cache-dtype", choices=("auto", "fp8_e5m2", "fp8_e4m3", "bf16", "bfloat16", "fp4_e2m1"))
    p.add_argument("--dtype", choices=("auto", "half", "float16", "bfloat16", "float", "float32"))
    p.add_argument("--quantization", choices=("fp8", "awq", "gptq", "modelopt_fp8", "w8a8_fp8", "mxfp4"))
    p.add_argument("--dist-init-addr")
    # docs/advanced_features/speculative_decoding.md (commit fc6d4653)
    p.add_argument("--speculative-algorithm", choices=("EAGLE", "EAGLE3", "STANDALONE", "NGRAM"))
    p.add_argument("--speculative-draft-model-path")
    for flag in ("--speculative-num-steps", "--speculative-eagle-topk", "--speculative-num-draft-tokens"):
        p.add_argument(flag, type=int)
    return p


def trtllm_parser() -> argparse.ArgumentParser:
    """`trtllm-serve MODEL` options: TensorRT-LLM tensorrt_llm/commands/serve.py (commit 00209af1):
    --tp_size/--pp_size/--ep_size are the aliases of --tensor_parallel_size/
    --pipeline_parallel_size/--moe_expert_parallel_size, --kv_cache_free_gpu_memory_fraction of
    --free_gpu_memory_fraction, --extra_llm_api_options of --config."""
    p = _parser("trtllm-serve")
    p.add_argument("model")
    p.add_argument("--backend", choices=("pytorch", "tensorrt", "_autodeploy"))
    for flag in ("--tp_size", "--pp_size", "--ep_size", "--max_batch_size", "--max_num_tokens",
                 "--max_seq_len", "--port"):
        p.add_argument(flag, type=int)
    p.add_argument("--kv_cache_free_gpu_memory_fraction", type=float)
    p.add_argument("--extra_llm_api_options")
    return p


def srun_parser() -> argparse.ArgumentParser:
    """The srun line of trtllm-serve.rst "Multi-node Serving with Slurm" (commit 0434755f)."""
    p = _parser("srun")
    for flag in ("--nodes", "--ntasks", "--ntasks-per-node", "--relative"):
        p.add_argument(flag, type=int)
    p.add_argument("--mpi", choices=("pmix",))
    p.add_argument("launcher", choices=("trtllm-llmapi-launch",))
    return p


def parse(engine: str, argv) -> tuple[argparse.Namespace, argparse.Namespace | None]:
    """(engine flags, srun flags or None) of one emitted argv."""
    argv = list(argv)
    launcher = None
    if argv[0] == "srun":
        cut = argv.index("trtllm-llmapi-launch") + 1
        launcher = srun_parser().parse_args(argv[1:cut])
        argv = argv[cut:]
    if engine == "vllm":
        assert argv[:2] == ["vllm", "serve"]
        return vllm_parser().parse_args(argv[2:]), launcher
    if engine == "sglang":
        assert argv[:3] == ["python3", "-m", "sglang.launch_server"]
        return sglang_parser().parse_args(argv[3:]), launcher
    assert argv[0] == "trtllm-serve"
    return trtllm_parser().parse_args(argv[1:]), launcher


def launch(engine, name, split, *, per_node=None, weight_dtype=None, kv_dtype="auto", seqs=48,
           tokens=4096, length=3072, fraction=None):
    model = get_model(name)
    plan = memory_plan(model, get_gpu("h100-sxm"), split, weight_dtype=weight_dtype,
                       kv_dtype=kv_dtype, engine=engine, context=length)
    return engine_command(engine, model, split, model_arg=name, precision=plan.precision,
                          max_num_seqs=seqs, max_num_batched_tokens=tokens, max_model_len=length,
                          memory_fraction=fraction, gpus_per_node=per_node)


def test_vllm_single_node_carries_the_split():
    """Llama-3.1-70B TP4 x DP2: one `vllm serve` with --data-parallel-size 2 (vLLM DP is replicas
    behind one endpoint; --max-num-seqs is per DP rank, data_parallel_deployment.md)."""
    out = launch("vllm", "70b", Split(tp=4, dp=2), fraction=0.85)
    assert len(out.commands) == 1 and out.commands[0].env == ()
    a, _ = parse("vllm", out.commands[0].argv)
    assert a.model == "meta-llama/Llama-3.1-70B-Instruct"  # the preset's hf_repo
    assert (a.tensor_parallel_size, a.pipeline_parallel_size, a.data_parallel_size) == (4, 1, 2)
    assert (a.max_num_seqs, a.max_num_batched_tokens, a.max_model_len) == (48, 4096, 3072)
    assert a.gpu_memory_utilization == 0.85 and a.kv_cache_dtype == "auto"
    assert not a.enable_expert_parallel and a.quantization is None and a.dtype is None


def test_sglang_and_trtllm_run_replicas_as_deployments():
    """DP2 of TP4 on one 8-GPU node: two servers on disjoint GPUs and ports, each with the
    replica's numbers; the engine's default memory fraction when none is given."""
    for engine, default in (("sglang", 0.88), ("trtllm", 0.9)):
        out = launch(engine, "70b", Split(tp=4, dp=2))
        assert [dict(c.env)["CUDA_VISIBLE_DEVICES"] for c in out.commands] == ["0,1,2,3", "4,5,6,7"]
        parsed = [parse(engine, c.argv)[0] for c in out.commands]
        assert len({a.port for a in parsed}) == 2
        for a in parsed:
            if engine == "sglang":
                assert (a.tensor_parallel_size, a.pipeline_parallel_size, a.data_parallel_size) == (4, 1, 1)
                assert (a.max_running_requests, a.chunked_prefill_size, a.context_length) == (48, 4096, 3072)
                assert a.mem_fraction_static == default and a.kv_cache_dtype == "auto"
            else:
                assert (a.tp_size, a.pp_size, a.backend) == (4, 1, "pytorch")
                assert (a.max_batch_size, a.max_num_tokens, a.max_seq_len) == (48, 4096, 3072)
                assert a.kv_cache_free_gpu_memory_fraction == default and a.ep_size is None


def test_every_gpu_is_used_once():
    """The deployments together hold TP x PP x DP GPUs, each GPU of a node once."""
    for engine in ("vllm", "sglang", "trtllm"):
        out = launch(engine, "8b", Split(tp=2, dp=4))
        seen = []
        for c in out.commands:
            env = dict(c.env)
            seen += env["CUDA_VISIBLE_DEVICES"].split(",") if env else [str(i) for i in range(8)]
        assert sorted(seen, key=int) == [str(i) for i in range(8)], engine


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_multi_node_tp8_pp2(engine):
    """Llama-3.1-70B TP8 x PP2 over two 8-GPU nodes, in each engine's documented multi-node form."""
    out = launch(engine, "70b", Split(tp=8, pp=2), per_node=8)
    parsed = [parse(engine, c.argv) for c in out.commands]
    if engine == "trtllm":  # one srun over both nodes
        (a, srun), = parsed
        assert (srun.nodes, srun.ntasks, srun.ntasks_per_node) == (2, 16, 8)
        assert (a.tp_size, a.pp_size) == (8, 2)
        return
    assert [c.node for c in out.commands] == [0, 1]
    for rank, (a, _) in enumerate(parsed):
        assert (a.tensor_parallel_size, a.pipeline_parallel_size) == (8, 2)
        assert (a.nnodes, a.node_rank) == (2, rank)
        if engine == "vllm":
            assert a.master_addr == "NODE0_IP" and a.headless == (rank == 1)
        else:
            assert a.dist_init_addr.startswith("NODE0_IP:")
    assert dict(out.placeholders) == {"NODE0_IP": "the IP address of node 0"}


def test_moe_expert_parallel_over_dp_across_nodes():
    """DeepSeek-V3 TP8 x DP2 with EP16 on two nodes. vLLM: EP = TP x DP with
    --enable-expert-parallel, one DP rank per node (--data-parallel-size-local 1, the second node
    --headless --data-parallel-start-rank 1). SGLang: DP attention over TP = 16 ranks, EP 16,
    --max-running-requests and --chunked-prefill-size as totals over the 2 attention-DP ranks."""
    split = Split(tp=8, dp=2, ep=16)
    out = launch("vllm", "deepseek-v3", split, per_node=8)
    (a0, _), (a1, _) = [parse("vllm", c.argv) for c in out.commands]
    for a in (a0, a1):
        assert a.enable_expert_parallel and a.tensor_parallel_size * a.data_parallel_size == 16
        assert (a.data_parallel_size_local, a.data_parallel_address) == (1, "NODE0_IP")
    assert not a0.headless and a0.data_parallel_start_rank is None
    assert a1.headless and a1.data_parallel_start_rank == 1
    out = launch("sglang", "deepseek-v3", split, per_node=8)
    (s0, _), (s1, _) = [parse("sglang", c.argv) for c in out.commands]
    assert s0.enable_dp_attention and (s0.tensor_parallel_size, s0.data_parallel_size) == (16, 2)
    assert (s0.expert_parallel_size, s0.max_running_requests, s0.chunked_prefill_size) == (16, 96, 8192)
    assert (s0.node_rank, s1.node_rank, s1.nnodes) == (0, 1, 2)


def test_trtllm_attention_dp_and_moe_ep():
    """TensorRT-LLM: EP dividing TP is --ep_size (always given for a MoE model, EP1 too); TP1 with
    EP = DP is enable_attention_dp in the extra-options YAML over --tp_size = EP ranks."""
    a, _ = parse("trtllm", launch("trtllm", "mixtral-8x7b", Split(tp=4, dp=2)).commands[0].argv)
    assert (a.tp_size, a.ep_size) == (4, 1)
    out = launch("trtllm", "mixtral-8x7b", Split(tp=2, dp=4, ep=2))
    assert len(out.commands) == 4 and parse("trtllm", out.commands[0].argv)[0].ep_size == 2
    out = launch("trtllm", "mixtral-8x7b", Split(tp=1, dp=8, ep=8))
    (a, _), = [parse("trtllm", c.argv) for c in out.commands]
    assert (a.tp_size, a.ep_size, a.extra_llm_api_options) == (8, 8, "extra_llm_api_options.yaml")
    assert "enable_attention_dp: true" in dict(out.files)["extra_llm_api_options.yaml"]


def test_precision_flags():
    """fp8 weights from a bf16 checkpoint: vLLM and SGLang quantize at load (`--quantization
    fp8`); fp8 KV: vLLM `fp8`, SGLang `fp8_e4m3`, TensorRT-LLM kv_cache_config.dtype in YAML; a
    checkpoint's own format (gpt-oss MXFP4 experts) needs no flag."""
    a, _ = parse("vllm", launch("vllm", "70b", Split(tp=2), weight_dtype="fp8", kv_dtype="fp8").commands[0].argv)
    assert (a.quantization, a.kv_cache_dtype) == ("fp8", "fp8")
    a, _ = parse("sglang", launch("sglang", "70b", Split(tp=2), weight_dtype="fp8", kv_dtype="fp8").commands[0].argv)
    assert (a.quantization, a.kv_cache_dtype) == ("fp8", "fp8_e4m3")
    out = launch("trtllm", "70b", Split(tp=2), kv_dtype="fp8")
    assert parse("trtllm", out.commands[0].argv)[0].extra_llm_api_options
    assert "kv_cache_config:\n  dtype: fp8" in dict(out.files)["extra_llm_api_options.yaml"]
    a, _ = parse("vllm", launch("vllm", "gpt-oss-120b", Split(tp=2)).commands[0].argv)
    assert (a.model, a.quantization, a.kv_cache_dtype) == ("openai/gpt-oss-120b", None, "auto")
    a, _ = parse("vllm", launch("vllm", "8b", Split(), weight_dtype="fp16").commands[0].argv)
    assert (a.dtype, a.kv_cache_dtype) == ("float16", "auto")  # KV auto is the run's fp16


@pytest.mark.parametrize("engine,name,split,kw,words", [
    ("trtllm", "70b", Split(tp=2), {"weight_dtype": "fp8"}, "fp8 weights"),
    ("vllm", "70b", Split(tp=2), {"weight_dtype": "int4"}, "int4 weights"),
    ("sglang", "70b", Split(tp=2), {"kv_dtype": "int8"}, "no int8 KV"),
    ("trtllm", "mixtral-8x7b", Split(tp=2, dp=4, ep=8), {}, "EP8"),
    ("vllm", "mixtral-8x7b", Split(tp=4, dp=2, ep=2), {}, "EP2"),
])
def test_what_an_engine_cannot_run_is_input_error(engine, name, split, kw, words):
    with pytest.raises(InputError, match=words):
        launch(engine, name, split, **kw)


def test_model_argument():
    """A preset name serves the Hugging Face repo it means; a repo-style alias is kept as typed; a
    config.json's folder is the model directory; another JSON file is kept with a note."""
    assert model_argument("llama-3.1-8b") == ("meta-llama/Llama-3.1-8B",
                                              (model_argument("llama-3.1-8b")[1][0],))
    assert model_argument("meta-llama/Llama-3.1-70B") == ("meta-llama/Llama-3.1-70B", ())
    assert model_argument("/models/llama/config.json") == ("/models/llama", ())
    arg, notes = model_argument("tiny.json")
    assert arg == "tiny.json" and "bare config" in notes[0]


# The trial's cases (reports/trial1.md item 3): an alias naming a release emits that release.
NAMED = {"deepseek-r1": "deepseek-ai/DeepSeek-R1", "deepseek-r1-0528": "deepseek-ai/DeepSeek-R1-0528",
         "deepseek-v3-0324": "deepseek-ai/DeepSeek-V3-0324", "deepseek-v3": "deepseek-ai/DeepSeek-V3",
         "llama-3.1-8b-instruct": "meta-llama/Llama-3.1-8B-Instruct", "llama-3.1-8b": "meta-llama/Llama-3.1-8B",
         "mixtral-8x22b-instruct": "mistralai/Mixtral-8x22B-Instruct-v0.1",
         "mixtral-8x22b-v0.1": "mistralai/Mixtral-8x22B-v0.1",
         # nicknames name no release: the chat release, the same rule for every preset
         "8b": "meta-llama/Llama-3.1-8B-Instruct", "70b": "meta-llama/Llama-3.1-70B-Instruct",
         "405b": "meta-llama/Llama-3.1-405B-Instruct", "mixtral": "mistralai/Mixtral-8x7B-Instruct-v0.1",
         "llama3.1:8b": "meta-llama/Llama-3.1-8B-Instruct", "gemma-2-27b-it": "google/gemma-2-27b-it"}


@pytest.mark.parametrize("name,repo", sorted(NAMED.items()))
def test_an_alias_that_names_a_release_emits_that_repo(name, repo):
    out = launch("vllm", name, Split(tp=8), length=1024)
    a, _ = parse("vllm", out.commands[0].argv)
    assert a.model == repo


def _aliases():
    from sizer.model.resources import read_json

    return [(pid, name) for pid, e in read_json("models/index.json").items()
            for name in [pid] + e["aliases"]]


# Qwen3's post-trained (chat) releases carry no -Instruct suffix ("Training Stage: Pretraining &
# Post-training", Qwen/Qwen3-32B and Qwen/Qwen3-30B-A3B model cards; the pretrained ones are -Base)
POST_TRAINED = {"Qwen/Qwen3-32B", "Qwen/Qwen3-30B-A3B"}


@pytest.mark.parametrize("pid,name", _aliases())
def test_every_alias_in_the_index_means_one_repo_of_its_preset(pid, name):
    """Every name of every preset (data/models/index.json) serves a repo that is itself one of
    the preset's repo-style aliases (so it is vouched to have the preset's architecture); a
    repo-style alias serves itself; a name that says instruct/it/R1/base-version serves a repo
    that says so too."""
    from sizer.model.catalog import preset_repos, serving_repo
    from sizer.model.resources import read_json

    e = read_json("models/index.json")[pid]
    repo = serving_repo(name)
    repo_aliases = {a for a in e["aliases"] if "/" in a}
    assert repo in repo_aliases
    if "/" in name:
        assert repo == name
    else:
        assert repo in preset_repos(pid)
    low, r = name.lower(), repo.lower()
    if repo in POST_TRAINED:
        return
    for word, in_repo in (("instruct", "instruct"), ("-it", "-it"), ("r1", "r1"), ("0528", "0528"),
                          ("0324", "0324"), ("2507", "2507"), ("v0.1", "v0.1")):
        if word in low:
            assert in_repo in r, (name, repo)
    if "r1" not in low and pid == "deepseek-v3":
        assert "r1" not in r


def test_render_is_the_argv_shell_quoted():
    out = launch("trtllm", "70b", Split(tp=4, dp=2), kv_dtype="fp8")
    text = out.render()
    assert "cat > extra_llm_api_options.yaml <<'EOF'" in text
    lines = [ln.strip() for ln in text.splitlines() if "trtllm-serve " in ln]
    for line, cmd in zip(lines, out.commands):
        env, argv = line.split(" ", 1)
        assert env == "CUDA_VISIBLE_DEVICES=" + dict(cmd.env)["CUDA_VISIBLE_DEVICES"]
        assert shlex.split(argv) == list(cmd.argv)


def test_cli_estimate_emit_json_and_implied_engine(capsys):
    """--emit sglang plans with SGLang's memory rules and puts the command in `emit`."""
    assert main(["estimate", "--model", "70b", "--tp", "4", "--dp", "2", "--emit", "sglang",
                 "--mem-fraction-static", "0.8", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["memory"]["engine"] == "sglang"
    first = doc["emit"]["commands"][0]
    a, _ = parse("sglang", first["argv"])
    assert (a.tensor_parallel_size, a.max_running_requests, a.mem_fraction_static) == (4, doc["batch"], 0.8)
    assert a.context_length == doc["isl"] + doc["osl"] and first["env"] == {"CUDA_VISIBLE_DEVICES": "0,1,2,3"}


def test_cli_human_output_ends_with_the_command(capsys):
    assert main(["estimate", "--model", "8b", "--emit", "vllm"]) == 0
    lines = capsys.readouterr().out.rstrip().splitlines()
    # the command, then the note naming the other checkpoint of the architecture
    assert lines[-2].strip().startswith("vllm serve meta-llama/Llama-3.1-8B-Instruct ")
    assert lines[-1].strip().startswith("note: --model 8b serves meta-llama/Llama-3.1-8B-Instruct")


def test_cli_recommend_emits_the_winner(capsys):
    assert main(["recommend", "--model", "8b", "--gpus", "2", "--emit", "vllm", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    w = doc["candidates"][0]
    parsed = [parse("vllm", c["argv"])[0] for c in doc["emit"]["commands"]]
    assert sum(a.tensor_parallel_size * a.pipeline_parallel_size * a.data_parallel_size
               for a in parsed) == w["gpus"]
    assert all((a.tensor_parallel_size, a.max_num_seqs) == (w["tp"], w["batch"]) for a in parsed)
    assert doc["workload"]["engine"] == "vllm"


@pytest.mark.parametrize("argv,words", [
    (["estimate", "--model", "8b", "--emit", "tgi"], "unknown engine 'tgi'"),
    (["estimate", "--model", "8b", "--emit", "vllm", "--engine", "sglang"], "--engine"),
    (["estimate", "--model", "mixtral-8x7b", "--tp", "2", "--dp", "4", "--ep", "8", "--emit", "trtllm"], "EP8"),
    (["estimate", "--model", "8b", "--emit", "sglang", "--gpu-memory-utilization", "0.8"], "vllm's flag"),
    (["recommend", "--model", "8b", "--gpus", "2", "--emit", "nope"], "unknown engine"),
])
def test_cli_emit_bad_input_exit_2(capsys, argv, words):
    assert main(argv) == 2
    cap = capsys.readouterr()
    assert cap.out == "" and words in cap.err and len(cap.err.strip().splitlines()) == 1


def test_emit_overrides_a_default_engine_but_not_an_explicit_one():
    """With an --engine default (vllm), --emit sglang plans with SGLang; an explicit --engine vllm
    with --emit sglang is an error; without --emit the default is kept."""
    from sizer.cli.common import add_emit_arg, resolve_emit

    p = argparse.ArgumentParser()
    p.add_argument("--engine", default="vllm")
    add_emit_arg(p)
    args = p.parse_args(["--emit", "sglang"])
    assert resolve_emit(args) == "sglang" and args.engine == "sglang"
    args = p.parse_args([])
    assert resolve_emit(args) is None and args.engine == "vllm"
    with pytest.raises(InputError, match="--engine vllm"):
        resolve_emit(p.parse_args(["--emit", "sglang", "--engine", "vllm"]))


def test_trtllm_is_refused_on_non_nvidia_gpus(capsys):
    """Trial 1 item 4: TensorRT-LLM runs on NVIDIA GPUs only (its supported-hardware page), so
    --emit trtllm on an MI300X is exit 2 with the reason; vLLM and SGLang run on ROCm."""
    model, split = get_model("8b"), Split(tp=1)
    plan = memory_plan(model, get_gpu("mi300x"), split, engine="trtllm", context=2048)
    kw = dict(model_arg="8b", precision=plan.precision, max_num_seqs=8,
              max_num_batched_tokens=2048, max_model_len=2048)
    with pytest.raises(InputError, match="runs only on NVIDIA GPUs, and mi300x is AMD"):
        engine_command("trtllm", model, split, gpu=get_gpu("mi300x"), **kw)
    assert engine_command("trtllm", model, split, gpu=get_gpu("h100-sxm"), **kw).commands
    assert engine_command("vllm", model, split, gpu=get_gpu("mi300x"), **kw).commands
    assert main(["estimate", "--model", "8b", "--gpu", "mi300x", "--emit", "trtllm"]) == 2
    io = capsys.readouterr()
    assert "NVIDIA" in io.err and io.out == "" and "Traceback" not in io.err
    assert main(["estimate", "--model", "8b", "--gpu", "mi300x", "--emit", "sglang"]) == 0


def _spec_launch(engine, name, split, method, draft=None, gpu="h200", **kw):
    from sizer.cost.speculative import speculative_config

    model = get_model(name)
    spec = speculative_config(model, method, draft_model=get_model(draft) if draft else None, **kw)
    plan = memory_plan(model, get_gpu(gpu), split, engine=engine, context=2048)
    return engine_command(engine, model, split, model_arg=name, precision=plan.precision,
                          max_num_seqs=4, max_num_batched_tokens=2048, max_model_len=2048,
                          speculative=spec, draft_arg=draft)


def _yaml(out) -> dict:
    """The extra options YAML as nested dicts (two-space indents, `key: value` lines)."""
    doc, block = {}, None
    for line in dict(out.files)["extra_llm_api_options.yaml"].splitlines():
        key, _, value = line.strip().partition(":")
        if not line.startswith(" "):
            block = doc.setdefault(key, {}) if not value.strip() else None
            if value.strip():
                doc[key] = value.strip()
        else:
            block[key] = value.strip()
    return doc


def test_emit_carries_mtp_in_each_engines_form():
    """Trial 1 item 2: --speculative mtp with --emit dropped speculative decoding. DeepSeek-R1's
    own MTP layer: vLLM {"method": "mtp"} (docs/features/speculative_decoding/mtp.md); SGLang
    EAGLE with 1 step, top-k 1, 2 draft tokens (the exact flags of docs/basic_usage/deepseek.md);
    TensorRT-LLM decoding_type MTP with num_nextn_predict_layers = max_draft_len."""
    tp8 = Split(tp=8)
    a, _ = parse("vllm", _spec_launch("vllm", "deepseek-r1", tp8, "mtp").commands[0].argv)
    assert a.speculative_config == {"method": "mtp", "num_speculative_tokens": 1}
    a, _ = parse("sglang", _spec_launch("sglang", "deepseek-r1", tp8, "mtp").commands[0].argv)
    assert (a.speculative_algorithm, a.speculative_num_steps, a.speculative_eagle_topk,
            a.speculative_num_draft_tokens, a.speculative_draft_model_path) == ("EAGLE", 1, 1, 2, None)
    out = _spec_launch("trtllm", "deepseek-r1", tp8, "mtp", num_tokens=3)
    a, _ = parse("trtllm", out.commands[0].argv)
    assert a.extra_llm_api_options == "extra_llm_api_options.yaml"
    assert _yaml(out)["speculative_config"] == {"decoding_type": "MTP", "max_draft_len": "3",
                                                "num_nextn_predict_layers": "3"}


def test_emit_carries_a_draft_model_and_an_eagle_head():
    """A draft model is the draft preset's repo at the target's TP; an EAGLE-3 head is the
    published one (Llama-3.1-8B-Instruct: yuhuili/EAGLE3-LLaMA3.1-Instruct-8B, TensorRT-LLM's
    speculative-decoding docs) or a placeholder the user fills, with where to find one."""
    tp4 = Split(tp=4)
    a, _ = parse("vllm", _spec_launch("vllm", "70b", tp4, "draft", "8b").commands[0].argv)
    assert a.speculative_config == {"method": "draft_model", "model": "meta-llama/Llama-3.1-8B-Instruct",
                                    "num_speculative_tokens": 4}
    a, _ = parse("sglang", _spec_launch("sglang", "70b", tp4, "draft", "8b").commands[0].argv)
    assert (a.speculative_algorithm, a.speculative_draft_model_path, a.speculative_num_steps,
            a.speculative_num_draft_tokens) == ("STANDALONE", "meta-llama/Llama-3.1-8B-Instruct", 4, 5)
    out = _spec_launch("trtllm", "70b", tp4, "draft", "8b")
    assert _yaml(out)["speculative_config"] == {
        "decoding_type": "DraftTarget", "max_draft_len": "4",
        "speculative_model_dir": "meta-llama/Llama-3.1-8B-Instruct"}
    assert _yaml(out)["disable_overlap_scheduler"] == "true"
    out = _spec_launch("vllm", "8b", Split(tp=1), "eagle")
    a, _ = parse("vllm", out.commands[0].argv)
    assert a.speculative_config == {"method": "eagle3", "model": "yuhuili/EAGLE3-LLaMA3.1-Instruct-8B",
                                    "num_speculative_tokens": 3}
    assert out.placeholders == ()
    out = _spec_launch("sglang", "70b", tp4, "eagle")
    a, _ = parse("sglang", out.commands[0].argv)
    assert (a.speculative_algorithm, a.speculative_draft_model_path) == ("EAGLE3", "EAGLE3_HEAD")
    assert dict(out.placeholders)["EAGLE3_HEAD"].endswith("trained for meta-llama/Llama-3.1-70B-Instruct")
    assert any("knows no EAGLE-3 head" in n for n in out.notes)
    assert _yaml(_spec_launch("trtllm", "70b", tp4, "eagle"))["speculative_config"]["decoding_type"] == "Eagle3"


def test_trtllm_mtp_is_deepseek_only_and_cli_carries_it(capsys):
    """TensorRT-LLM: "MTP is currently only supported by Deepseek": a config with MTP layers of
    another architecture is refused for trtllm and emitted for vLLM."""
    import dataclasses

    from sizer.cost.speculative import speculative_config

    m = dataclasses.replace(get_model("qwen3-32b"), mtp_layers=1)
    spec = speculative_config(m, "mtp")
    plan = memory_plan(m, get_gpu("h200"), Split(tp=2), engine="trtllm", context=2048)
    kw = dict(model_arg="qwen3-32b", precision=plan.precision, max_num_seqs=4,
              max_num_batched_tokens=2048, max_model_len=2048, speculative=spec)
    with pytest.raises(InputError, match="MTP for DeepSeek models only"):
        engine_command("trtllm", m, Split(tp=2), **kw)
    assert engine_command("vllm", m, Split(tp=2), **kw).commands
    argv = ["estimate", "--model", "70b", "--tp", "4", "--concurrency", "1", "--speculative", "draft",
            "--draft-model", "8b", "--emit", "vllm", "--json"]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    a, _ = parse("vllm", doc["emit"]["commands"][0]["argv"])
    assert a.speculative_config["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_a_16_bit_run_dtype_is_the_kv_dtype_of_auto():
    """Trial 1 item 10: `--emit vllm --weight-dtype fp16` on a bf16 checkpoint emitted
    `--kv-cache-dtype bfloat16 --dtype float16`. KV `auto` is the dtype the model runs in (vLLM
    cache_dtype auto uses the model's --dtype), so the plan's KV is fp16 and the command says auto."""
    from sizer.cost.memory import resolve_precision

    m = get_model("8b")
    p = resolve_precision(m, "fp16")
    assert (p.linear, p.base, p.kv) == ("fp16", "fp16", "fp16")
    assert resolve_precision(m, "fp8").kv == "bf16"  # a quantization keeps bf16 activations
    assert resolve_precision(m).kv == "bf16"
    for engine in ("vllm", "sglang"):
        a, _ = parse(engine, launch(engine, "8b", Split(tp=1), weight_dtype="fp16").commands[0].argv)
        assert (a.dtype, a.kv_cache_dtype) == ("float16", "auto")
    out = launch("trtllm", "8b", Split(tp=1), weight_dtype="fp16")
    assert dict(out.files)["extra_llm_api_options.yaml"] == "dtype: float16\n"
