"""The input contract of the `sizer` command line, checked in-process, and hypothesis strategies
that generate valid and corrupted inputs for it (issue #16, "make it stay fixed").

The contract (README "Exit codes", PREAMBLE rules): the exit code is 0, 1 or 2; corrupted input
gets 2 and exactly one error line on stderr (warnings aside), never a traceback; a valid input
never gets 2; with --json, stdout is exactly one JSON document whose numbers are all finite; no
numpy overflow warnings; an answer within a bounded wall time.

A `Case` is an argument list plus the files it names (written to a temporary folder) and, for a
corrupted case, what was corrupted (`cause`). `check(case)` runs it through
`sizer.cli.main.main` and returns the breaches, each a short cause label. Used by
tests/test_contract.py (a bounded number of examples) and benchmarks/fuzz.py (many, counted).
"""

import contextlib
import io
import json
import math
import os
import signal
import tempfile
import time
import warnings
from dataclasses import dataclass, field

from hypothesis import strategies as st

from sizer.cli.common import MAX_COUNT
from sizer.cli.main import main

# ---------------------------------------------------------------- running one case


@dataclass(frozen=True)
class Case:
    argv: tuple
    corrupted: str | None = None  # what was corrupted ("--ttft inf"), None for a valid case
    files: dict = field(default_factory=dict)  # name -> bytes; "@name" in argv is its path

    @property
    def kind(self) -> str:
        """The corruption's family, for counting causes: '--ttft: inf' -> '--ttft: inf'."""
        return self.corrupted or "valid"


@dataclass(frozen=True)
class Outcome:
    code: int | None
    out: str
    err: str
    seconds: float
    exception: str | None  # type name of an exception that escaped main()
    warnings: tuple


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang()


def run(case: Case, limit_s: float = 30.0) -> Outcome:
    """main(argv) with stdout/stderr captured, warnings recorded and a wall-time limit."""
    with tempfile.TemporaryDirectory(prefix="sizer-contract-") as tmp:
        argv = []
        for name, data in case.files.items():
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(data)
        for a in case.argv:
            argv.append(os.path.join(tmp, a[1:]) if a.startswith("@") and a[1:] in case.files else a)
        out, err = io.StringIO(), io.StringIO()
        code, exc = None, None
        old = signal.signal(signal.SIGALRM, _alarm)
        signal.setitimer(signal.ITIMER_REAL, limit_s)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(record=True) as caught, \
                    contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                warnings.simplefilter("always")
                try:
                    code = main(argv)
                except SystemExit as e:
                    code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
                except _Hang:
                    exc = "Hang"
                except BaseException as e:  # noqa: BLE001 - any escape is a breach
                    exc = type(e).__name__
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
        seconds = time.perf_counter() - start
        return Outcome(code, out.getvalue(), err.getvalue(), seconds, exc,
                       tuple(f"{w.category.__name__}: {w.message}" for w in caught))


def _reject_constant(name):
    raise ValueError(f"non-finite number {name} in JSON output")


def _finite(obj) -> bool:
    if isinstance(obj, float):
        return math.isfinite(obj)
    if isinstance(obj, dict):
        return all(_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_finite(v) for v in obj)
    return True


def json_breach(text: str) -> str | None:
    """None when `text` is exactly one JSON document with every number finite."""
    try:
        doc, end = json.JSONDecoder(parse_constant=_reject_constant).raw_decode(text.lstrip())
    except ValueError as exc:
        return "invalid JSON (non-finite number)" if "non-finite" in str(exc) else "invalid JSON"
    if text.lstrip()[end:].strip():
        return "more than one JSON document"
    if not _finite(doc):  # 1e400 decodes to inf
        return "invalid JSON (non-finite number)"
    return None


def breaches(case: Case, o: Outcome, slow_s: float = 10.0) -> list:
    """The contract's breaches for one run, as cause labels (empty: the run kept the contract)."""
    found = []
    if o.exception == "Hang":
        return [f"hang (> limit)"]
    if o.exception:
        return [f"traceback ({o.exception})"]
    if o.code not in (0, 1, 2):
        found.append(f"exit code {o.code}")
    if case.corrupted and o.code != 2:
        found.append(f"corrupted input accepted (exit {o.code})")
    if not case.corrupted and o.code == 2:
        found.append("valid input refused (exit 2)")
    if "Traceback" in o.err:
        found.append("traceback text on stderr")
    if o.code == 2:
        errors = [ln for ln in o.err.splitlines() if ln.strip() and not ln.startswith("sizer: warning:")]
        if len(errors) != 1:
            found.append(f"error is {len(errors)} lines, not one")
        if o.out.strip():
            found.append("stdout written on a usage error")
    if "--json" in case.argv and o.code in (0, 1) and o.out.strip():
        bad = json_breach(o.out)
        if bad:
            found.append(bad)
    if "--json" in case.argv and o.code == 0 and not o.out.strip():
        found.append("no JSON document")
    if any(w.startswith("RuntimeWarning") for w in o.warnings):
        found.append("numpy RuntimeWarning")
    if o.seconds > slow_s:
        found.append(f"slow (> {slow_s:g} s)")
    return found


def check(case: Case, limit_s: float = 30.0, slow_s: float = 10.0) -> tuple:
    """(breaches, outcome)."""
    o = run(case, limit_s)
    return breaches(case, o, slow_s), o


# ---------------------------------------------------------------- values, valid and corrupted
# Each corrupted value is (text, label); the label names the family for counting causes.

BAD_COUNT = [("0", "zero"), ("-1", "negative"), ("2.7", "fraction"), ("nan", "nan"),
             ("inf", "inf"), ("", "empty"), ("abc", "text"), ("1e400", "overflow"),
             ("1e3", "exponent"), (str(10**30), "huge"), ("0x10", "hex")]
BAD_BYTES = [("0", "zero"), ("0.3", "sub-byte"), ("-16MiB", "negative"), ("1e400", "overflow"),
             ("nan", "nan"), ("inf", "inf"), ("", "empty"), ("16XB", "unit"), ("1e30", "huge"),
             ("MiB", "text")]
BAD_SECONDS = [("0", "zero"), ("-5ms", "negative"), ("inf", "inf"), ("nan", "nan"), ("", "empty"),
               ("1e400", "overflow"), ("soon", "text"), ("5 parsecs", "unit"), ("-inf", "-inf")]
BAD_FRACTION = [("0", "zero"), ("1.5", "above 1"), ("-0.1", "negative"), ("nan", "nan"),
                ("inf", "inf"), ("", "empty"), ("x", "text")]
BAD_PRICE = [("0", "zero"), ("-2", "negative"), ("inf", "inf"), ("nan", "nan"), ("", "empty"),
             ("x", "text"), ("1e400", "overflow")]
BAD_NAME = [("", "empty"), (" ", "blank"), ("no-such-thing", "unknown")]
BAD_PATH = [("", "empty"), ("/nonexistent/sizer-input", "missing"), ("/", "directory"),
            ("/dev/null", "empty file")]

ENGINE_FRACTION = {"vllm": "--gpu-memory-utilization", "sglang": "--mem-fraction-static",
                   "trtllm": "--kv-cache-free-gpu-mem-fraction"}


def _count(lo, hi):
    """A whole number in [lo, hi], and about one time in ten the CLI's bound for counts (1e9):
    the largest valid request must answer too."""
    return st.integers(0, 9).flatmap(
        lambda k: st.just(str(MAX_COUNT)) if k == 0 else st.integers(lo, hi).map(str))


SECONDS = st.sampled_from(["2", "0.5", "500ms", "50ms", "20 ms", "1e-3", "30000us", "1min", "0.01h"])
BYTES = st.sampled_from(["1", "4096", "1.5", "16MiB", "1GB", "8 KiB", "2TiB", "1e6", "3.5 MB"])


@st.composite
def _model_split(draw, model=None):
    """A model preset and a split it accepts (heads and layers divide)."""
    model = model or draw(st.sampled_from(["8b", "8b", "qwen3-30b-a3b"]))
    tp = draw(st.sampled_from([1, 2, 4]))
    pp = draw(st.sampled_from([1, 2]))
    dp = draw(st.sampled_from([1, 2] if tp * pp < 8 else [1]))  # one 8-GPU node at most
    ep = 1
    if model != "8b" and draw(st.booleans()):
        ep = tp * dp
    return model, tp, pp, dp, ep


def _split_args(draw, model, tp, pp, dp, ep) -> list:
    argv = ["--model", model]
    for name, v in (("--tp", tp), ("--pp", pp), ("--dp", dp), ("--ep", ep)):
        if v != 1 or draw(st.booleans()):
            argv += [name, str(v)]
    if draw(st.booleans()):
        argv += ["--gpus", str(tp * pp * dp)]
    return argv


@st.composite
def _optional(draw, flags: dict) -> list:
    """Some of `flags` (name -> strategy of a valid value, or None for a switch)."""
    argv = []
    names = draw(st.lists(st.sampled_from(sorted(flags)), max_size=3, unique=True)) if flags else []
    for name in names:
        value = flags[name]
        argv += [name] if value is None else [name, draw(value)]
    return argv


def _set(argv: list, flag: str, value: str | None) -> list:
    """argv with flag given `value` (replacing an earlier value; None: a switch)."""
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == flag:
            skip = i + 1 < len(argv) and not argv[i + 1].startswith("--")
            continue
        out.append(a)
    return out + ([flag] if value is None else [flag, value])


MODEL_FLAGS = {"--weight-dtype": st.sampled_from(["bf16", "fp8", "int4"]),
               "--kv-dtype": st.sampled_from(["auto", "fp8", "bf16"]),
               "--gpu": st.sampled_from(["h100-sxm", "h200", "a100-80g-sxm"]),
               "--cuda-graphs": None, "--no-cuda-graphs": None, "--json": None}
ENGINE_FLAGS = {"--max-num-batched-tokens": _count(512, 16384), "--max-num-seqs": _count(1, 512)}
MODEL_BAD = {"--tp": BAD_COUNT, "--pp": BAD_COUNT, "--dp": BAD_COUNT, "--ep": BAD_COUNT,
             "--gpus": BAD_COUNT, "--model": BAD_NAME, "--gpu": BAD_NAME,
             "--weight-dtype": BAD_NAME, "--kv-dtype": BAD_NAME}
ENGINE_BAD = {"--engine": BAD_NAME + [("ollama", "unknown")],
              "--gpu-memory-utilization": BAD_FRACTION, "--mem-fraction-static": BAD_FRACTION,
              "--kv-cache-free-gpu-mem-fraction": BAD_FRACTION,
              "--max-num-batched-tokens": BAD_COUNT, "--max-num-seqs": BAD_COUNT}
TOPO_BAD = {"--nodes": BAD_COUNT, "--topology": BAD_NAME, "--inter-node": BAD_NAME,
            "--topology-file": BAD_PATH, "--profile": BAD_PATH}


def _engine_args(draw) -> list:
    engine = draw(st.sampled_from([None, "vllm", "sglang", "trtllm", "none"]))
    if engine is None:
        return []
    argv = ["--engine", engine]
    if engine != "none" and draw(st.booleans()):
        argv += [ENGINE_FRACTION[engine], draw(st.sampled_from(["0.9", "0.5", "1", "0.85"]))]
    return argv


def _topology_args(draw, gpus: int) -> list:
    argv = []
    if gpus >= 2 and draw(st.booleans()):
        argv += ["--nodes", "2"]
        if draw(st.booleans()):
            argv += ["--inter-node", draw(st.sampled_from(["ndr", "roce-400g", "hdr"]))]
    return argv


def _corrupt(draw, argv: list, bad: dict, extra_ignored: dict = None) -> tuple:
    """One corrupted flag value (or a flag the command does not use, or an abbreviation)."""
    choice = draw(st.sampled_from(["value"] * 6 + ["abbrev", "unknown"] + (["ignored"] * 2 if extra_ignored else [])))
    if choice == "abbrev":
        longs = sorted({a for a in argv if a.startswith("--") and len(a) > 5})
        names = sorted(bad) + longs
        flag = draw(st.sampled_from(names))
        cut = draw(st.integers(3, len(flag) - 1))
        prefix = flag[:cut]
        if prefix in bad or prefix in argv or prefix.rstrip("-") == "-" or prefix == "--":
            prefix = flag[:-1]
        return argv + [prefix, "4"] if not prefix.endswith("-") else argv + [prefix + "x", "4"], \
            "abbreviated flag"
    if choice == "unknown":
        return argv + ["--no-such-flag", "1"], "unknown flag"
    if choice == "ignored":
        flag = draw(st.sampled_from(sorted(extra_ignored)))
        return _set(argv, flag, draw(extra_ignored[flag])), f"{flag} (not used by this command)"
    flag = draw(st.sampled_from(sorted(bad)))
    text, label = draw(st.sampled_from(bad[flag]))
    return _set(argv, flag, text), f"{flag}: {label}"


@st.composite
def memory_case(draw, corrupt: bool):
    model, tp, pp, dp, ep = draw(_model_split())
    argv = ["memory"] + _split_args(draw, model, tp, pp, dp, ep) + _engine_args(draw)
    argv += draw(_optional({**MODEL_FLAGS, **ENGINE_FLAGS, "--batch": _count(1, 64),
                            "--context": st.sampled_from(["128", "4096", "131072", "10000000"])}))
    why = None
    if corrupt:
        argv, why = _corrupt(draw, argv, {**MODEL_BAD, **ENGINE_BAD, "--batch": BAD_COUNT,
                                          "--context": BAD_COUNT})
    return Case(tuple(argv), why)


@st.composite
def step_case(draw, corrupt: bool):
    model, tp, pp, dp, ep = draw(_model_split())
    argv = ["step"] + _split_args(draw, model, tp, pp, dp, ep) + _topology_args(draw, tp * pp * dp)
    if draw(st.booleans()):
        argv += ["--phase", "prefill", "--seq", draw(st.sampled_from(["1", "512", "8192"]))]
    else:
        argv += ["--context", draw(st.sampled_from(["1", "4096", "131072"]))]
    argv += draw(_optional({**MODEL_FLAGS, "--batch": _count(1, 256), "--overlap": None,
                            "--sequence-parallel": None,
                            "--engine": st.sampled_from(["vllm", "sglang", "none"])}))
    why = None
    if corrupt:
        ignored = {"--gpu-memory-utilization": st.just("0.8"),
                   "--mem-fraction-static": st.just("0.8"),
                   "--max-num-seqs": st.just("16"), "--max-num-batched-tokens": st.just("2048")}
        argv, why = _corrupt(draw, argv, {**MODEL_BAD, **TOPO_BAD, "--batch": BAD_COUNT,
                                          "--seq": BAD_COUNT, "--context": BAD_COUNT,
                                          "--engine": ENGINE_BAD["--engine"]}, ignored)
    return Case(tuple(argv), why)


@st.composite
def estimate_case(draw, corrupt: bool):
    model, tp, pp, dp, ep = draw(_model_split())
    argv = ["estimate"] + _split_args(draw, model, tp, pp, dp, ep) + _engine_args(draw)
    argv += _topology_args(draw, tp * pp * dp)
    mode = draw(st.sampled_from(["", "--batch", "--concurrency"]))
    if mode:
        argv += [mode, draw(st.sampled_from(["1", "8", "64"]))]
    argv += draw(_optional({**MODEL_FLAGS, "--isl": _count(1, 8192), "--osl": _count(1, 2048),
                            "--max-batch": _count(1, 512), "--max-num-tokens": _count(256, 16384)}))
    why = None
    if corrupt:
        argv, why = _corrupt(draw, argv, {**MODEL_BAD, **ENGINE_BAD, **TOPO_BAD,
                                          "--isl": BAD_COUNT, "--osl": BAD_COUNT,
                                          "--batch": BAD_COUNT, "--concurrency": BAD_COUNT,
                                          "--max-batch": BAD_COUNT, "--max-num-tokens": BAD_COUNT})
    return Case(tuple(argv), why)


@st.composite
def comm_case(draw, corrupt: bool):
    gpus = draw(st.sampled_from([1, 2, 4, 8]))
    argv = ["comm", "--op", draw(st.sampled_from(["all_reduce", "all_gather", "reduce_scatter",
                                                   "all_to_all", "send_recv", "broadcast"])),
            "--gpus", str(gpus)]
    argv += ["--sweep"] if draw(st.integers(0, 5)) == 0 else ["--bytes", draw(BYTES)]
    argv += _topology_args(draw, gpus)
    argv += draw(_optional({"--gpu": st.sampled_from(["h100-sxm", "a100-80g-sxm", "b200"]),
                            "--nccl-only": None, "--json": None}))
    why = None
    if corrupt:
        argv, why = _corrupt(draw, argv, {"--op": BAD_NAME, "--bytes": BAD_BYTES,
                                          "--gpus": BAD_COUNT, "--gpu": BAD_NAME, **TOPO_BAD})
    return Case(tuple(argv), why)


@st.composite
def recommend_case(draw, corrupt: bool):
    gpus = draw(st.sampled_from([1, 2, 4, 8]))
    argv = ["recommend", "--model", "8b", "--gpus", str(gpus)] + _topology_args(draw, gpus)
    if draw(st.booleans()):
        argv += ["--objective", "cost", "--gpu-hour-price", draw(st.sampled_from(["2.5", "0.9", "10"]))]
    argv += draw(_optional({"--isl": _count(1, 4096), "--osl": _count(1, 1024), "--ttft": SECONDS,
                            "--tpot": SECONDS, "--batch": _count(1, 64), "--max-batch": _count(1, 512),
                            "--max-num-tokens": _count(256, 16384), "--top": _count(1, 20),
                            "--weight-dtype": st.sampled_from(["bf16", "bf16,fp8"]),
                            "--kv-dtype": st.sampled_from(["auto", "auto,fp8"]),
                            "--engine": st.sampled_from(["vllm", "sglang", "trtllm"]),
                            "--allow-idle": None, "--json": None}))
    why = None
    if corrupt:
        argv, why = _corrupt(draw, argv, {"--gpus": BAD_COUNT, "--model": BAD_NAME,
                                          "--ttft": BAD_SECONDS, "--tpot": BAD_SECONDS,
                                          "--gpu-hour-price": BAD_PRICE, "--isl": BAD_COUNT,
                                          "--osl": BAD_COUNT, "--batch": BAD_COUNT,
                                          "--concurrency": BAD_COUNT, "--top": BAD_COUNT,
                                          "--engine": BAD_NAME + [("ollama", "unknown")],
                                          **TOPO_BAD})
    return Case(tuple(argv), why)


@st.composite
def listing_case(draw, corrupt: bool):
    cmd = draw(st.sampled_from(["models", "gpus"]))
    argv = [cmd] + (["--json"] if draw(st.booleans()) else [])
    if cmd == "gpus" and draw(st.booleans()):
        argv += [draw(st.sampled_from(["h100-sxm", "H100", "b200"]))]
    if not corrupt:
        return Case(tuple(argv))
    which = draw(st.sampled_from(["nocommand", "unknown", "abbrev"]))
    if which == "nocommand":
        return Case(tuple(draw(st.sampled_from([[], ["--json"]]))), "no command")
    if which == "abbrev":
        return Case((cmd, "--js"), "abbreviated flag")
    if cmd == "gpus":
        return Case(("gpus", "no-such-gpu"), "gpus: unknown name")
    return Case(("models", "--bogus"), "unknown flag")


BUILDERS = {"memory": memory_case, "step": step_case, "estimate": estimate_case,
            "comm": comm_case, "recommend": recommend_case, "listing": listing_case}


@st.composite
def cli_cases(draw, commands=tuple(BUILDERS), corrupt_share: float = 0.5):
    """A CLI argument list for one of `commands`, corrupted in one place about half the time."""
    cmd = draw(st.sampled_from(commands))
    corrupt = draw(st.floats(0, 1)) < corrupt_share
    return draw(BUILDERS[cmd](corrupt))


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
