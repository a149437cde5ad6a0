"""Why-not lines for the splits that never made the ranking, one line per family.

Why a module of its own: sizer/plan/whynot.py compares ranked candidates with the winner; these
are the splits that were never ranked, and a user who asks "why not TP16 over both nodes?"
deserves the answer in the text, not only in `--json` `rejected`. Four families:
- memory: no room for the weights and one sequence (or the given batch): one line per TP x PP
  and precision, DP changing nothing in memory, the EP sizes tried named together;
- placement: a TP group wider than a node (`--tp 16 --nnodes 2` over two 8-GPU nodes is SGLang's
  documented multi-node launch, docs.sglang.io/references/multi_node_deployment/multi_node, which
  points DeepSeek-V3/R1 users to the same). The recommender ranks these only when nothing inside a
  node fits, but costs them anyway, so the line says what they would give against the winner;
- engine: expert layouts the chosen engine does not run (sizer/cost/engine_support.py);
- divisibility: TP or PP sizes the model's heads or layers do not divide (sizer/model/split.py).
"""

import dataclasses

from .search import FEWER, FEWER_RANKS, divisibility_groups, objective_key
from .whynot import _versus, cause, dtypes


def memory_lines(results) -> list[str]:
    """'TP1 PP1 EP1/2/4/8 (any DP) (fp8 weights, bf16 KV): doesn't fit: ...' for every TP x PP and
    precision that holds no sequence, the closest to fitting first (its leanest EP quoted)."""
    groups: dict = {}
    for r in results:
        rej = r["rejected"]
        if rej is None or rej["kind"] != "memory":
            continue
        s = r["split"]
        groups.setdefault((s.tp, s.pp, rej["weight_dtype"], rej["kv_dtype"]), []).append((s.ep, rej))
    rows = []
    for (tp, pp, wd, kd), found in groups.items():
        eps = sorted({e for e, _ in found})
        ep, lean = min(found, key=lambda x: x[1]["needs_bytes"])
        label = f"TP{tp} PP{pp}" + ("" if eps == [1] else " EP" + "/".join(map(str, eps))) + " (any DP)"
        at = f" (the leanest, EP{ep})" if len(eps) > 1 else ""
        rows.append((lean["needs_bytes"], f"{label} ({wd} weights, {kd} KV): {lean['reason']}{at}"))
    return [line for _, line in sorted(rows, key=lambda r: r[0])]


def placement_lines(across, winner, objective, targets, index, gpus_per_node: int) -> list[str]:
    """One line per TP size wider than a node: its best costed split against the winner."""
    best: dict = {}
    for c in across:
        key = objective_key(objective, c.output_tok_s_per_gpu, c.tpot_s, c.ttft_s, c.split.gpus)
        if c.split.tp not in best or key < best[c.split.tp][0]:
            best[c.split.tp] = (key, c)
    out = []
    for tp in sorted(best):
        c = best[tp][1]
        where = f"its TP group spans {-(-tp // gpus_per_node)} nodes of {gpus_per_node} GPUs"
        plain = dataclasses.replace(c, flags=())  # the placement is said once, here
        if objective_key(objective, c.output_tok_s_per_gpu, c.tpot_s, c.ttft_s) < \
                objective_key(objective, winner.output_tok_s_per_gpu, winner.tpot_s, winner.ttft_s):
            out.append(f"{c.label} ({dtypes(c)}): {where}; the model puts it ahead of the winner "
                       f"({c.output_tok_s_per_gpu:,.0f} vs {winner.output_tok_s_per_gpu:,.0f} tok/s "
                       "per GPU, TPOT " f"{c.tpot_s * 1e3:.1f} vs {winner.tpot_s * 1e3:.1f} ms), but TP "
                       "across nodes is ranked only when nothing inside a node fits")
            continue
        why = cause(plain, winner, objective, targets, index)
        out.append(f"{c.label} ({dtypes(c)}): {where}; {_versus(c, winner, objective)}"
                   + (f"; {why}" if why else ""))
    return out


def engine_lines(unsupported, engine: str) -> list[str]:
    """'TP4 PP1 DP2 EP2 and 2 more with EP2 over TP4: vllm does not run EP2 over TP4 x DP2 (it
    runs EP1, EP4, EP8 there)': one line per TP x EP the engine does not run."""
    from sizer.cost.engine_support import expert_layouts

    groups: dict = {}
    for split, _ in unsupported:
        groups.setdefault((split.tp, split.ep), []).append(split)
    out = []
    for (tp, ep), splits in sorted(groups.items()):
        s = splits[0]
        more = f" and {len(splits) - 1} more with EP{ep} over TP{tp}" if len(splits) > 1 else ""
        ok = ", ".join(f"EP{e}" for e in expert_layouts(engine, s.tp, s.dp))
        out.append(f"{s.label()}{more}: {engine} does not run EP{ep} over TP{s.tp} x DP{s.dp} "
                   f"(it runs {ok} there)")
    return out


def divisibility_lines(model, dropped) -> list[str]:
    """'TP3, TP6 (any PP, DP): 128 attention heads do not divide by them' for the splits the
    model does not divide into (check_split's rules), one line per thing that does not divide."""
    groups = divisibility_groups(model, dropped)
    out = []
    for what, tags in groups.items():
        tags = sorted(tags, key=lambda t: int(t[2:]))
        other = "any PP, DP" if tags[0].startswith("TP") else "any TP, DP"
        hint = " (--even-pp asks for equal stages)" if tags[0].startswith("PP") else ""
        if what.endswith((FEWER, FEWER_RANKS)):  # a stage without a layer, a rank without a head
            out.append(f"{', '.join(tags)} ({other}): {what} ({', '.join(t[2:] for t in tags)})")
            continue
        out.append(f"{', '.join(tags)} ({other}): {what} do not divide by "
                   f"{', '.join(t[2:] for t in tags)}{hint}")
    return sorted(out, key=lambda line: (not line.startswith("TP"), line))
