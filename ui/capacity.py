"""The Recommend view's second question (issue #13 item 3): how many GPUs, of which types, serve a
request rate within percentile targets; a bar chart of GPUs needed per type with their cost,
the verdict, the winner's candidates and why-not lines, and the engine command to run it (with
a copy button).

Every number is what `sizer recommend --rate ... --json` prints for the same flags: the view
builds that command line, parses it with the CLI's own parser and runs the CLI's compute and
document functions (sizer/cli/capacity.py), so the caption's command reproduces the view.
"""

import hashlib
import os
import shlex
import tempfile

import streamlit as st

from sizer import charts
from sizer.errors import InfeasibleError, InputError
from sizer.hardware.gpus import all_gpus

from . import core

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
EMIT_ENGINES = ("vllm", "sglang", "trtllm")


def _path(kind: str, name: str, text: str) -> str:
    """An uploaded file written where the CLI can read it (its content names it)."""
    digest = hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), "sizer-ui", kind, digest)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, os.path.basename(name) or "config.json")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return path


def command(inp: core.Inputs, rate: float, percentile: float, ttft_ms: float, tpot_ms: float, gpus: tuple,
            prices: tuple, nodes: int, requests: int | None) -> list[str]:
    """The `sizer recommend --rate` argv for these inputs (without --json)."""
    ref = inp.model
    model = ref[1] if ref[0] != "upload" else _path("models", ref[1], ref[2])
    argv = ["recommend", "--model", model, "--gpu", ",".join(gpus), "--rate", f"{rate:g}",
            "--percentile", f"{percentile:g}", "--isl", str(inp.isl), "--osl", str(inp.osl), "--nodes", str(nodes)]
    argv += [f for k, v in (("ttft", ttft_ms), ("tpot", tpot_ms)) if v for f in (f"--{k}-slo", f"{v:g}ms")]
    if prices:
        argv += ["--gpu-hour-price", ",".join(f"{p:g}" for p in prices)]
    if inp.weight_dtype:
        argv += ["--weight-dtype", inp.weight_dtype]
    if inp.kv_dtype != "auto":
        argv += ["--kv-dtype", inp.kv_dtype]
    argv += ["--emit", inp.engine] if inp.engine in EMIT_ENGINES else ["--engine", inp.engine or "none"]
    if requests:
        argv += ["--requests", str(requests)]
    if inp.topology:
        argv += ["--topology", inp.topology]
    if inp.profile:
        argv += ["--profile", _path("profiles", inp.profile[0], inp.profile[1])]
    return argv


@st.cache_data(max_entries=32, show_spinner="Simulating the candidates ...")
def capacity_doc(argv: tuple) -> dict:
    """What `sizer <argv> --json` prints (less search_time_s), or {"error": ...} for bad input;
    when no type serves the rate, the document with its "error" (the CLI exits 1)."""
    from sizer.cli import capacity
    from sizer.cli.common import resolve_emit, show_emit
    from sizer.cli.main import build_parser

    try:
        args = build_parser().parse_args(list(argv) + ["--json"])
    except SystemExit:
        return {"error": f"sizer {' '.join(argv)}: bad flags"}
    try:
        resolve_emit(args)
        out = capacity.compute(args)
        doc = capacity.document(args, out)
    except (InputError, InfeasibleError) as exc:
        return {"error": str(exc)}
    show_emit(out.launch, doc)
    doc.pop("search_time_s", None)
    if out.error is not None:
        doc["cli_error"] = str(out.error)
    return core.plain(doc)


def view(inp: core.Inputs) -> None:
    c = st.columns(5)
    rate = float(c[0].number_input("Request rate (req/s)", min_value=0.01, value=10.0, step=1.0, key="cap_rate"))
    percentile = c[1].selectbox("Percentile", PERCENTILES, index=3, key="cap_percentile", format_func=lambda p: f"P{p:g}")
    ttft = float(c[2].number_input("TTFT target (ms)", min_value=0.0, value=2000.0, step=100.0, key="cap_ttft_ms",
                                   help="at the percentile; 0 = none"))
    tpot = float(c[3].number_input("TPOT target (ms)", min_value=0.0, value=50.0, step=5.0, key="cap_tpot_ms",
                                   help="at the percentile; 0 = none"))
    nodes = int(c[4].number_input("Most nodes", min_value=1, max_value=128, value=8, key="cap_nodes",
                                  help="the search's bound: nodes of each type's usual size"))
    ids = list(all_gpus())
    c1, c2, c3 = st.columns([3, 2, 1])
    gpus = tuple(c1.multiselect("GPU types", ids, default=[inp.gpu], key="cap_gpus"))
    price_text = c2.text_input("GPU-hour prices (USD, one per type, comma-separated)", key="cap_prices",
                               help="for the cost per hour and per million output tokens; empty = none")
    requests = int(c3.number_input("Requests per seed", min_value=0, max_value=20000, value=0, step=100,
                                   key="cap_requests", help="0 = the planner's rule (600, or six request lifetimes)"))
    if not gpus:
        st.info("Choose at least one GPU type.")
        return
    try:
        prices = tuple(float(p) for p in price_text.split(",")) if price_text.strip() else ()
    except ValueError:
        st.error(f"GPU-hour prices {price_text!r}: give numbers separated by commas")
        return
    argv = command(inp, rate, percentile, ttft, tpot, gpus, prices, nodes, requests or None)
    st.caption("Same numbers as `sizer " + " ".join(shlex.quote(a) for a in argv) + " --json`")
    doc = capacity_doc(tuple(argv))
    if "error" in doc and "mode" not in doc:
        st.error(doc["error"])
        return
    if doc.get("cli_error"):
        st.warning(doc["cli_error"])
    rows = doc.get("by_gpu") or [{"gpu": doc["gpu"], "gpus_needed": doc["gpus_needed"], "winner": doc["winner"],
                                  "cost_per_hour": doc.get("cost_per_hour")}]
    m = st.columns(len(rows))
    for col, row in zip(m, rows):
        cost = f"${row['cost_per_hour']:,.2f}/h" if row.get("cost_per_hour") is not None else None
        col.metric(f"GPUs needed: {row['gpu']}", "-" if row["gpus_needed"] is None else f"{row['gpus_needed']}",
                   delta=cost, delta_color="off")
    from .views import chart, json_download

    chart(charts.capacity_by_gpu(doc), "capacity")
    plans = doc.get("plans") or [doc]
    chosen = next((p for p in plans if doc.get("winner") and p.get("winner") == doc["winner"]), plans[0])
    w = chosen.get("winner")
    if w:
        st.success(f"{doc.get('cheapest') or chosen['gpu']}: {w['gpus']} GPUs, {w['label']} "
                   f"({w['weight_dtype']} weights, {w['kv_dtype']} KV), sustains "
                   f"{w['sustainable_rate_rps']:.3g} req/s on seeds {', '.join(map(str, chosen['seeds']))}")
        table = [{"split": c["label"], "GPUs": c["gpus"], "replicas": c["replicas"], "status": c["status"],
                  f"P{doc['percentile']:g} TTFT ms": round(c["simulated"]["worst"][f"ttft_p{doc['percentile']:g}_s"] * 1e3, 1),
                  f"P{doc['percentile']:g} TPOT ms": round(c["simulated"]["worst"][f"tpot_p{doc['percentile']:g}_s"] * 1e3, 2),
                  "sustains req/s": round(c["sustainable_rate_rps"], 2) if c.get("sustainable_rate_rps") else None}
                 for c in chosen.get("candidates", []) if c.get("simulated")]
        st.dataframe(table, hide_index=True, key="cap_table")
    if (chosen.get("precision_hint") or {}).get("text"):  # what fp8 would need (sizer/plan/capacity_fp8.py)
        st.info("Precision: " + chosen["precision_hint"]["text"])
    if doc.get("emit"):
        st.markdown(f"**Launch with {doc['emit']['engine']}** (copy button at the top right)")
        st.code("\n".join(" ".join(shlex.quote(a) for a in c["argv"]) for c in doc["emit"]["commands"]), language="bash")
    why = chosen.get("why_not") or []
    if why:
        st.markdown("**Why not the others**\n" + "\n".join(f"- {line}" for line in why[:12]))
    st.caption(f"{doc.get('simulations', 0)} simulations")
    json_download(doc, "capacity")
    with st.expander("Result JSON (sizer recommend --rate --json)"):
        st.json(doc, expanded=False)
