"""The input contract of the `sizer` command line, checked in-process, and hypothesis strategies
that generate valid and corrupted argument lists for it (issue #16, "make it stay fixed"; the
profile and topology-file strategies are in file_strategies.py).

The contract (README "Exit codes", PREAMBLE rules): the exit code is 0, 1 or 2; corrupted input
gets 2 and exactly one error line on stderr (warnings aside), never a traceback; a valid input
never gets 2; with --json, stdout is exactly one JSON document whose numbers are all finite (on
exit 0 and on exit 1 alike; on exit 2 stdout stays empty); no
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
        return ["hang (> limit)"]
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
    if "--json" in case.argv and o.code in (0, 1) and not o.out.strip():
        found.append(f"no JSON document (exit {o.code})")
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
