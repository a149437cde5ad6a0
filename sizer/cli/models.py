"""`sizer models`: the model presets with their shapes and parameter counts."""

from sizer.output import emit_json
from sizer.model.catalog import _index, get_model, preset_names


def register(sub) -> None:
    p = sub.add_parser("models", help="list model presets")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    rows = []
    for pid in preset_names():
        m = get_model(pid)
        rows.append({
            "id": pid, "aliases": _index()[pid].get("aliases", []), "hf_repo": _index()[pid].get("hf_repo"),
            "repos": _index()[pid].get("repos", {}),
            "params_total": m.params_total(), "params_active": m.params_active(),
            "layers": m.num_layers, "hidden_size": m.hidden_size, "heads": m.num_heads,
            "kv_heads": m.num_kv_heads, "head_dim": m.head_dim, "experts": m.num_experts,
            "experts_per_token": m.experts_per_token, "mla": m.is_mla, "dtype": m.dtype,
            "quantization": m.quantization, "max_context": m.max_position_embeddings,
            "attention": [{"kind": a.kind, "window": a.window, "rope": a.rope, "layers": n}
                          for a, n in m.attention_groups()],
        })
    if args.json:
        emit_json(rows)
        return 0
    print(f"{'id':<18}{'total':>9}{'active':>9}{'layers':>7}{'hidden':>7}{'heads':>6}{'kv':>4}"
          f"{'experts':>9}  {'attention':<10}{'aliases'}")
    for r in rows:
        exp = f"{r['experts_per_token']}/{r['experts']}" if r["experts"] else "-"
        attn = "MLA" if r["mla"] else ("MHA" if r["kv_heads"] == r["heads"] else "GQA" if r["kv_heads"] > 1 else "MQA")
        print(f"{r['id']:<18}{r['params_total'] / 1e9:>8.2f}B{r['params_active'] / 1e9:>8.2f}B"
              f"{r['layers']:>7}{r['hidden_size']:>7}{r['heads']:>6}{r['kv_heads']:>4}{exp:>9}  "
              f"{attn:<10}{', '.join(r['aliases'][:4])}")
    return 0
