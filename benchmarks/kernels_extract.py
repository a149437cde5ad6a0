"""Write the compact extract of vidur's per-kernel H100/A100/A40 timings that the kernel fit and
its tests read (data/kernels/vidur_<sku>.csv), from the raw profiles.

Source: github:microsoft/vidur, data/profiling/compute/<sku>/<org>/<model>/mlp.csv at commit
7d47513363ec447a741ac5e47241580b47724fbf (2024-11-19), copied verbatim into
../shared/reference/vidur_compute/ (see its README; or clone vidur at that commit and pass its
data/profiling/compute folder with --raw). Each row there is one tensor-parallel shard of one
layer on one GPU, fp16, kernel time from the torch profiler (no host launch overhead).

The extract keeps only the median columns (milliseconds per call, as vidur writes them), the
shape columns, and token counts on a roughly geometric grid (vidur sweeps 1..4096 in steps of
8-32 tokens, and to 32768 for Meta-Llama-3). Where vidur has two rows for one (TP, tokens) (it
does at 2048 and 4096) the first is kept.

Usage: python benchmarks/kernels_extract.py [--raw DIR] [--out DIR]
Prints one line per file, then one JSON line (files, rows, bytes).
"""

import argparse
import csv
import glob
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RAW = os.path.join(HERE, "..", "..", "shared", "reference", "vidur_compute")
OUT = os.path.join(HERE, "..", "data", "kernels")
VIDUR_COMMIT = "7d47513363ec447a741ac5e47241580b47724fbf"
OPS = ("emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj",
       "post_attention_layernorm", "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
SHAPE = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp")
TOKENS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 640, 768, 1024,
          1280, 1536, 2048, 2560, 3072, 4096, 8192, 16384, 32768)
HEADER = ("model", "tp", "tokens") + SHAPE + tuple(f"{op}_ms" for op in OPS)


def raw_files(raw_dir):
    """(sku, model id, path) for every vidur mlp.csv below raw_dir, in either layout: the shared
    copy's flat `<sku>__<org>_<model>__mlp.csv` or vidur's own `<sku>/<org>/<model>/mlp.csv`."""
    out = []
    for path in sorted(glob.glob(os.path.join(raw_dir, "*__*__mlp.csv"))):
        sku, model, _ = os.path.basename(path).split("__")
        org, _, name = model.partition("_")
        out.append((sku, f"{org}/{name}", path))
    for path in sorted(glob.glob(os.path.join(raw_dir, "*", "*", "*", "mlp.csv"))):
        sku, org, name = path.split(os.sep)[-4:-1]
        out.append((sku, f"{org}/{name}", path))
    return out


def extract(path, model):
    seen, rows = set(), []
    with open(path, newline="") as f:
        for rec in csv.DictReader(f):
            tp, tokens = int(rec["num_tensor_parallel_workers"]), int(rec["num_tokens"])
            if tokens not in TOKENS or (tp, tokens) in seen:
                continue
            seen.add((tp, tokens))
            rows.append([model, tp, tokens] + [rec[k] for k in SHAPE]
                        + [rec.get(f"time_stats.{op}.median", "") for op in OPS])
    return sorted(rows, key=lambda r: (r[1], r[2]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", default=RAW)
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    files = raw_files(args.raw)
    if not files:
        raise SystemExit(f"no vidur mlp.csv files under {args.raw}")
    by_sku = {}
    for sku, model, path in files:
        rows = extract(path, model)
        by_sku.setdefault(sku, []).extend(rows)
        print(f"{sku:6s} {model:45s} {len(rows):5d} rows")
    os.makedirs(args.out, exist_ok=True)
    total_rows = total_bytes = 0
    for sku, rows in sorted(by_sku.items()):
        out = os.path.join(args.out, f"vidur_{sku}.csv")
        with open(out, "w", newline="") as f:
            f.write(f"# github:microsoft/vidur data/profiling/compute/{sku}/*/*/mlp.csv @ {VIDUR_COMMIT}: "
                    "median ms per call (empty: op absent), one TP shard of one layer, fp16 "
                    "(benchmarks/kernels_extract.py)\n")
            w = csv.writer(f, lineterminator="\n")
            w.writerow(HEADER)
            w.writerows(rows)
        total_rows += len(rows)
        total_bytes += os.path.getsize(out)
    print(json.dumps({"files": len(by_sku), "models": len(files), "rows": total_rows, "bytes": total_bytes,
                      "vidur_commit": VIDUR_COMMIT}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
