"""The sidebar: every input of the what-if, gathered into one hashable `Inputs`."""

import streamlit as st

from sizer.cost.engines import ENGINES
from sizer.hardware.gpus import all_gpus
from sizer.hardware.links import inter_node_names
from sizer.model.catalog import preset_names
from sizer.model.precision import WEIGHT_DTYPE_HELP
from sizer.hardware.topology import PRESETS

from .core import Inputs

SOURCES = ("Preset", "Upload config.json", "Path to config.json")
POWERS = (1, 2, 4, 8, 16, 32, 64)
WEIGHT_DTYPES = ("checkpoint", "bf16", "fp16", "fp8", "int8", "int4", "fp4", "nvfp4")
KV_DTYPES = ("auto", "bf16", "fp16", "fp8", "int8")
LOADS = ("max throughput", "batch", "concurrency")


def _model_ref(sb):
    presets = preset_names()
    source = sb.radio("Model from", SOURCES, index=0 if presets else 2, key="model_source",
                      horizontal=False)
    if source == "Preset":
        if not presets:
            sb.warning("No model presets are installed; upload a config.json or give a path.")
            return None
        default = "llama-3.1-8b" if "llama-3.1-8b" in presets else presets[0]
        return ("preset", sb.selectbox("Model preset", presets, index=presets.index(default), key="model"))
    if source == "Upload config.json":
        up = sb.file_uploader("Hugging Face config.json", type=["json"], key="model_upload")
        if up is None:
            return None
        return ("upload", up.name, up.getvalue().decode("utf-8", errors="replace"))
    path = sb.text_input("Path to a config.json (or its folder)", key="model_path").strip()
    return ("path", path) if path else None


def sidebar() -> Inputs | None:
    """Draw the sidebar; None until a model is chosen."""
    sb = st.sidebar
    sb.header("Deployment")
    model = _model_ref(sb)
    gpus = all_gpus()
    ids = list(gpus)
    gpu = sb.selectbox("GPU", ids, index=ids.index("h100-sxm") if "h100-sxm" in ids else 0,
                       format_func=lambda g: f"{g} ({gpus[g].name})", key="gpu")
    c1, c2 = sb.columns(2)
    n = int(c1.number_input("GPUs", min_value=1, max_value=1024, value=8, step=1, key="gpus",
                            help="a node's worth by default; DP = GPUs / (TP x PP) replicas"))
    nodes = int(c2.number_input("Nodes", min_value=1, max_value=128, value=1, step=1, key="nodes"))
    c1, c2, c3 = sb.columns(3)
    tp = c1.selectbox("TP", POWERS, key="tp")
    pp = c2.selectbox("PP", POWERS, key="pp")
    ep = c3.selectbox("EP", POWERS, key="ep", help="expert parallel (MoE): formed inside TP x DP, adds no GPUs")
    if n % (tp * pp) == 0:
        sb.caption(f"DP = GPUs / (TP x PP) = {n // (tp * pp)}")
    topo = sb.selectbox("Topology", ("default",) + PRESETS, key="topology",
                        help="node preset; default: the GPU's usual node")
    inter = sb.selectbox("Inter-node link", ("default",) + tuple(inter_node_names()), key="inter_node")
    sb.subheader("Precision and engine")
    c1, c2 = sb.columns(2)
    wd = c1.selectbox("Weights", WEIGHT_DTYPES, key="weight_dtype",
                      help="linear-layer weights; checkpoint = the config's own format. "
                           + WEIGHT_DTYPE_HELP)
    kv = c2.selectbox("KV cache", KV_DTYPES, key="kv_dtype")
    engine = sb.selectbox("Engine memory rules", tuple(ENGINES) + ("none",), key="engine")
    sb.subheader("Workload")
    c1, c2 = sb.columns(2)
    isl = int(c1.number_input("ISL (input tokens)", min_value=1, max_value=10**7, value=1024, key="isl"))
    osl = int(c2.number_input("OSL (output tokens)", min_value=1, max_value=10**7, value=256, key="osl"))
    load = sb.radio("Load", LOADS, key="load", horizontal=True,
                    help="max throughput: the largest batch whose KV fits (capped at max_num_seqs)")
    batch = concurrency = None
    if load == "batch":
        batch = int(sb.number_input("Batch per replica", min_value=1, max_value=65536, value=32, key="batch"))
    elif load == "concurrency":
        concurrency = int(sb.number_input("Concurrent requests", min_value=1, max_value=10**6, value=64,
                                          key="concurrency"))
    c1, c2 = sb.columns(2)
    ttft = c1.number_input("TTFT target (ms)", min_value=0.0, value=0.0, step=50.0, key="ttft_ms",
                           help="0 = no target")
    tpot = c2.number_input("TPOT target (ms)", min_value=0.0, value=0.0, step=5.0, key="tpot_ms",
                           help="0 = no target")
    sb.subheader("Hardware profile")
    up = sb.file_uploader("Profile JSON from `python -m probes.calibrate`", type=["json"], key="profile")
    profile = (up.name, up.getvalue().decode("utf-8", errors="replace")) if up is not None else None
    if model is None:
        return None
    return Inputs(model=model, gpu=gpu, gpus=n, tp=tp, pp=pp, ep=ep, nodes=nodes,
                  topology=None if topo == "default" else topo,
                  inter_node=None if inter == "default" else inter,
                  weight_dtype=None if wd == "checkpoint" else wd, kv_dtype=kv,
                  engine=None if engine == "none" else engine, isl=isl, osl=osl, batch=batch,
                  concurrency=concurrency, ttft_s=ttft / 1e3 if ttft else None,
                  tpot_s=tpot / 1e3 if tpot else None, profile=profile)


def cli_command(inp: Inputs, command: str, batch: int | None = None) -> str:
    """The `sizer` command line that prints the same numbers."""
    ref = inp.model
    model = ref[1] if ref[0] != "upload" else ref[1]
    parts = ["sizer", command, "--model", model, "--gpu", inp.gpu]
    if command == "recommend":
        parts += ["--gpus", str(inp.gpus)]
    else:
        split = dict(tp=inp.tp, pp=inp.pp, dp=inp.dp, ep=inp.ep)
        parts += [f"--{k} {v}" for k, v in split.items() if v != 1]
    if inp.weight_dtype:
        parts += ["--weight-dtype", inp.weight_dtype]
    if inp.kv_dtype != "auto":
        parts += ["--kv-dtype", inp.kv_dtype]
    if inp.engine:
        parts += ["--engine", inp.engine]
    if command == "memory":
        parts += ["--batch", str(batch), "--context", str(inp.isl + inp.osl)]
    else:
        parts += ["--isl", str(inp.isl), "--osl", str(inp.osl)]
        if command == "recommend":
            parts += [f"--{k} {v * 1e3:g}ms" for k, v in (("ttft", inp.ttft_s), ("tpot", inp.tpot_s)) if v]
        if inp.batch:
            parts += ["--batch", str(inp.batch)]
        if inp.concurrency:
            parts += ["--concurrency", str(inp.concurrency)]
        if inp.nodes > 1:
            parts += ["--nodes", str(inp.nodes)]
        if inp.topology:
            parts += ["--topology", inp.topology]
        if inp.inter_node:
            parts += ["--inter-node", inp.inter_node]
        if inp.profile:
            parts += ["--profile", inp.profile[0]]
    return " ".join(parts + ["--json"])
