"""Hypothesis strategies for the files sizer reads besides config.json: hardware profiles
(valid version-1 documents as probes.calibrate writes them, and corruptions of one strict field
or of the text) and `nvidia-smi topo -m` matrices (valid ones and corruptions of relations,
symmetry, shape and size). Each yields a contract.Case that runs a command on the file.
"""

import json

from hypothesis import strategies as st

from contract import Case

# ---------------------------------------------------------------- hardware profiles

OPS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv", "broadcast")
_JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                       st.floats(allow_nan=False, allow_infinity=False, width=32), st.text(max_size=8))
ANY_JSON = st.recursive(_JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=12)


@st.composite
def valid_profile(draw) -> dict:
    """A version-1 profile as probes.calibrate writes it (every field optional but the version)."""
    doc = {"sizer_profile_version": 1}
    if draw(st.booleans()):
        doc["created"] = "2026-11-23T12:00:00Z"
    if draw(st.booleans()):
        env = {"device": draw(st.sampled_from(["NVIDIA H100 80GB HBM3", "cpu"])),
               "gpu_id": draw(st.sampled_from(["h100-sxm", None])), "backend": "nccl"}
        env.update(draw(st.dictionaries(st.sampled_from(["torch", "notes", "hostnames", "topology"]),
                                        ANY_JSON, max_size=2)))
        doc["env"] = env
    fits, seen = [], set()
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(OPS))
        ranks = draw(st.sampled_from([2, 4, 8]))
        nodes = draw(st.sampled_from([n for n in (1, 2) if n <= ranks]))
        if (op, ranks, nodes) in seen:
            continue
        seen.add((op, ranks, nodes))
        segs = [{"latency_s": draw(st.floats(0, 1e-2)),
                 "busbw_bytes_per_s": draw(st.sampled_from([1e-3, 6.4e5, 1e9, 4.5e11, 1e15]))}
                for _ in range(draw(st.integers(1, 2)))]
        fit = {"op": op, "ranks": ranks, "nodes": nodes, "segments": segs}
        if draw(st.booleans()):
            fit.update(min_bytes=8, max_bytes=draw(st.sampled_from([2**20, 2**30])),
                       fit_error_pct={"median": 3.1, "max": 9.0}, n_points=24)
        fits.append(fit)
    if fits or draw(st.booleans()):
        doc["collectives"] = fits
    compute = {}
    if draw(st.booleans()):
        compute["hbm_bytes_per_s"] = draw(st.sampled_from([1e6, 2.0e10, 3.0e12]))
    if draw(st.booleans()):
        compute["matmul_flops_per_s"] = {d: draw(st.sampled_from([1e9, 7e14]))
                                         for d in draw(st.lists(st.sampled_from(["bf16", "fp16", "fp32"]),
                                                                min_size=1, max_size=3, unique=True))}
        compute["matmul_half_rows"] = draw(st.sampled_from([0.0, 64.0, 300.5]))
    if draw(st.booleans()):
        compute["attention_flops_per_s"] = {"bf16": 4e14}
    if draw(st.booleans()):
        compute["kernel_launch_s"] = {"eager": 8e-6, **({"graph": 2.5e-6} if draw(st.booleans()) else {})}
    if compute and draw(st.booleans()):
        compute["fit_error_pct"] = {"hbm_bytes_per_s": 2.0, "hbm_bytes_per_s:max": 5.5}
    if compute or draw(st.booleans()):
        doc["compute"] = compute
    if draw(st.booleans()):
        doc["raw"] = draw(st.dictionaries(st.sampled_from(["collectives", "gemm", "membw", "notes"]),
                                          ANY_JSON, max_size=3))
    return doc


BAD_NUMBER = [(float("nan"), "nan"), (float("inf"), "inf"), (-1.0, "negative"), (0, "zero"),
              ("3e12", "text"), ([], "list"), ({}, "object"), (None, "null"), (True, "bool"),
              (1e-300, "tiny")]
BAD_INT = [(0, "zero"), (-2, "negative"), (2.7, "fraction"), ("8", "text"), (float("nan"), "nan"),
           (True, "bool"), (10**7, "huge"), (None, "null")]


@st.composite
def corrupted_profile(draw) -> tuple:
    """(file bytes, what was corrupted): a valid profile with one strict field broken, or text
    that is not a profile at all."""
    doc = draw(valid_profile())
    where = draw(st.sampled_from(["version", "top", "env", "raw", "collectives", "fit", "segment",
                                  "compute", "compute", "text"]))
    if where == "text":
        text, label = draw(st.sampled_from([
            (b"", "empty file"), (b"{\"sizer_profile_version\": 1, \"compute\": {", "truncated"),
            (b"[" * 100000 + b"]" * 100000, "deep nesting"),
            (b"{\"sizer_profile_version\": 1, \"raw\": " + b"[" * 100000 + b"]" * 100000 + b"}",
             "deep nesting in raw"),
            (b"{\"sizer_profile_version\": 1, \"compute\": {\"hbm_bytes_per_s\": 1" + b"0" * 5000 + b"}}",
             "5000-digit number"),
            (b"\xff\xfe\x00garbage", "binary"),
            (b"{\"sizer_profile_version\": 1, \"compute\": {\"hbm_bytes_per_s\": 1e400}}", "1e400 literal")]))
        return text, f"profile text: {label}"
    if where == "version":
        v, label = draw(st.sampled_from([(2, "2"), ("1", "text"), (None, "null"), (1.5, "1.5"), (True, "bool")]))
        doc["sizer_profile_version"] = v
        return _dump(doc), f"profile version: {label}"
    if where == "top":
        return _dump(draw(st.sampled_from([[doc], 5, "profile", None]))), "profile: not an object"
    if where in ("env", "raw"):
        doc[where] = draw(st.sampled_from([5, [], "x", None]))
        return _dump(doc), f"profile {where}: not an object"
    if where == "collectives":
        doc["collectives"] = draw(st.sampled_from([{}, 5, "x", [5], [None]]))
        return _dump(doc), "profile collectives: not a list of objects"
    fit = {"op": "all_reduce", "ranks": 8, "nodes": 1,
           "segments": [{"latency_s": 1e-5, "busbw_bytes_per_s": 4e11}]}
    doc["collectives"] = [fit] + [c for c in doc.get("collectives", [])
                                  if (c["op"], c["ranks"], c["nodes"]) != ("all_reduce", 8, 1)]
    if where == "fit":
        key = draw(st.sampled_from(["op", "ranks", "nodes", "segments", "max_bytes", "missing", "duplicate"]))
        if key == "missing":
            gone = draw(st.sampled_from(["op", "ranks", "segments"]))
            del fit[gone]
            return _dump(doc), f"profile fit: missing {gone}"
        if key == "duplicate":
            doc["collectives"].append(dict(fit))
            return _dump(doc), "profile fit: duplicate (op, ranks, nodes)"
        value, label = draw(st.sampled_from({
            "op": [("all_reduce_x", "unknown"), (5, "number"), ("", "empty")],
            "ranks": BAD_INT, "nodes": BAD_INT + [(9, "more than ranks")],
            "segments": [([], "empty"), ({}, "object"), ([5], "number"), ("x", "text")],
            "max_bytes": [(0, "zero"), (-1, "negative"), (float("nan"), "nan"), ("x", "text")]}[key]))
        fit[key] = value
        return _dump(doc), f"profile fit {key}: {label}"
    if where == "segment":
        key = draw(st.sampled_from(["latency_s", "busbw_bytes_per_s"]))
        value, label = draw(st.sampled_from(BAD_NUMBER))
        if key == "latency_s" and label in ("zero", "tiny"):  # a latency may be 0 (or ~0)
            value, label = -1e-6, "negative"
        fit["segments"][0][key] = value
        return _dump(doc), f"profile segment {key}: {label}"
    compute = doc.setdefault("compute", {})
    key = draw(st.sampled_from(["hbm_bytes_per_s", "matmul_flops_per_s", "matmul_half_rows",
                                "attention_flops_per_s", "kernel_launch_s", "not-an-object"]))
    if key == "not-an-object":
        doc["compute"] = draw(st.sampled_from([5, [], "x"]))
        return _dump(doc), "profile compute: not an object"
    value, label = draw(st.sampled_from(BAD_NUMBER))
    if key == "matmul_half_rows" and label in ("zero", "tiny"):  # 0 rows: full rate at any M
        value, label = -64.0, "negative"
    if key in ("matmul_flops_per_s", "attention_flops_per_s", "kernel_launch_s"):
        inner = "bf16" if key != "kernel_launch_s" else "eager"
        wrap = value == {} or draw(st.booleans())  # {} alone is "nothing measured": valid
        value = {inner: value} if wrap else value
        label = label if wrap else f"{label} (not per {'mode' if inner == 'eager' else 'dtype'})"
    compute[key] = value
    return _dump(doc), f"profile compute {key}: {label}"


def _dump(doc) -> bytes:
    return json.dumps(doc).encode()  # NaN/Infinity as Python writes them (json.dump's default)


PROFILE_COMMANDS = (("step", "--model", "8b", "--context", "128", "--json"),
                    ("comm", "--op", "all_reduce", "--bytes", "1MiB", "--gpus", "2", "--json"))


@st.composite
def profile_cases(draw, corrupt_share: float = 0.6):
    """A CLI run with --profile FILE, the file valid or corrupted."""
    argv = draw(st.sampled_from(PROFILE_COMMANDS)) + ("--profile", "@profile.json")
    if draw(st.floats(0, 1)) < corrupt_share:
        data, why = draw(corrupted_profile())
        return Case(argv, why, {"profile.json": data})
    return Case(argv, None, {"profile.json": _dump(draw(valid_profile()))})


# ---------------------------------------------------------------- nvidia-smi topo -m matrices

LEGEND = """
Legend:

  X    = Self
  SYS  = Connection traversing PCIe as well as the SMP interconnect between NUMA nodes (e.g., QPI/UPI)
  NODE = Connection traversing PCIe as well as the interconnect between PCIe Host Bridges within a NUMA node
  PHB  = Connection traversing PCIe as well as a PCIe Host Bridge (typically the CPU)
  PXB  = Connection traversing multiple PCIe bridges (without traversing the PCIe Host Bridge)
  PIX  = Connection traversing at most a single PCIe bridge
  NV#  = Connection traversing a bonded set of # NVLinks
"""
PCIE_RELATIONS = ("PIX", "PXB", "PHB", "NODE", "SYS")
NVLINK_GPUS = ("h100-sxm", "a100-80g-sxm", "a100-80g-pcie", "b200")


def topo_text(rel, n_nics: int = 0, leading_tab: bool = True, legend: bool = True) -> str:
    """`nvidia-smi topo -m` text for a GPU relation matrix (list of lists, "X" on the diagonal)."""
    n = len(rel)
    names = [f"GPU{i}" for i in range(n)] + [f"NIC{i}" for i in range(n_nics)]
    lines = [("\t" if leading_tab else "") + "\t".join(names + ["CPU Affinity", "NUMA Affinity"])]
    for i in range(n):
        row = [" X " if r == "X" else r for r in rel[i]] + ["PIX" if k == i else "SYS" for k in range(n_nics)]
        lines.append("\t".join([f"GPU{i}"] + row + ["0-31", "0"]))
    for k in range(n_nics):
        row = ["PIX" if i == k else "SYS" for i in range(n)] + [" X " if j == k else "SYS" for j in range(n_nics)]
        lines.append("\t".join([f"NIC{k}"] + row))
    return "\n".join(lines) + "\n" + (LEGEND if legend else "")


@st.composite
def relation_matrix(draw, n: int, nvlink: bool):
    kinds = list(PCIE_RELATIONS) + ([f"NV{k}" for k in (1, 2, 4, 6, 8, 12, 18)] if nvlink else [])
    if nvlink and draw(st.booleans()):  # all pairs one bond, as on an NVSwitch board
        bond = draw(st.sampled_from(["NV12", "NV18", "NV4"]))
        return [["X" if i == j else bond for j in range(n)] for i in range(n)]
    rel = [["X"] * n for _ in range(n)]
    for i in range(n):
        for j in range(i + 1, n):
            rel[i][j] = rel[j][i] = draw(st.sampled_from(kinds))
    return rel


@st.composite
def topology_cases(draw, corrupt_share: float = 0.6):
    """`comm ... --topology-file F` with a valid or corrupted `nvidia-smi topo -m` matrix."""
    gpu = draw(st.sampled_from(NVLINK_GPUS + ("l40s",)))
    n = draw(st.sampled_from([2, 3, 4, 8, 8, 16]))
    rel = draw(relation_matrix(n, gpu != "l40s"))
    nics = draw(st.sampled_from([0, 0, 2, n]))
    tab, legend = draw(st.booleans()), draw(st.booleans())
    why = None
    if draw(st.floats(0, 1)) < corrupt_share:
        kind = draw(st.sampled_from(["NV0", "NV99", "FOO", "diagonal", "offdiag X", "asymmetric",
                                     "missing row", "short row", "no header", "too many GPUs",
                                     "duplicate GPU", "NVLink on a PCIe GPU"]))
        why = f"topology: {kind}"
        i, j = 0, 1
        if kind in ("NV0", "NV99", "FOO", "offdiag X"):
            rel[i][j] = rel[j][i] = {"NV0": "NV0", "NV99": "NV99", "FOO": "FOO", "offdiag X": "X"}[kind]
        elif kind == "diagonal":
            rel[1][1] = "SYS"
        elif kind == "asymmetric":
            rel[0][1], rel[1][0] = "PIX", "SYS"
        elif kind == "too many GPUs":
            n = 1000
            rel = [["X" if a == b else "SYS" for b in range(n)] for a in range(n)]
        elif kind == "NVLink on a PCIe GPU":
            gpu = "l40s"
            rel[0][1] = rel[1][0] = "NV4"
        text = topo_text(rel, nics, tab, legend)
        lines = text.split("\n")
        if kind == "missing row":
            del lines[2]
        elif kind == "short row":
            lines[2] = "\t".join(lines[2].split("\t")[:2])
        elif kind == "no header":
            del lines[0]
        elif kind == "duplicate GPU":
            lines[0] = lines[0].replace("GPU1", "GPU0", 1)
        text = "\n".join(lines)
    else:
        text = topo_text(rel, nics, tab, legend)
    gpus = n if n <= 16 else 8
    argv = ("comm", "--op", draw(st.sampled_from(["all_reduce", "all_gather", "all_to_all"])),
            "--bytes", "16MiB", "--gpus", str(gpus), "--gpu", gpu, "--topology-file", "@topo.txt", "--json")
    return Case(argv, why, {"topo.txt": text.encode()})
