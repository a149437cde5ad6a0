"""Hardware profiles: constants measured by `python -m probes.calibrate`, read by every command.

A profile is a versioned JSON document. sizer never imports the probes; the probes write this
file and sizer reads it. Every constant a profile lacks falls back to the catalog default, and
`Profile.provenance` says which values came from where.

Each version's definition is a JSON Schema file shipped beside this module
(`profile_v1.schema.json`), checked on load with the `jsonschema` library: strict for every
number the time model uses (finite and in a physical range: memory 1e6..1e14 B/s, segment
busbw 1e-3..1e15 B/s as probes/fit.py bounds it, 1e6..1e17 FLOP/s, latencies 0..10 s, ranks and
nodes whole numbers 1..1e6), lenient for provenance (`env`,
`raw`, fit errors: any JSON). An invalid profile is refused with the field's path, never replaced
by defaults in part. Overview of version 1 (all numbers SI):
{
  "sizer_profile_version": 1,
  "created": "2026-11-23T12:00:00Z",
  "env": {"backend": "nccl"|"gloo", "device": "NVIDIA H100 80GB HBM3"|"cpu", "gpu_id": "h100-sxm"|null,
          "world_size": int, "nodes": int, "hostnames": [...], "torch": "...", "nccl": "...", ...},
  "collectives": [   # fitted curves, one per (op, ranks, nodes)
     {"op": "all_reduce", "ranks": 8, "nodes": 1,
      "segments": [{"latency_s": 1.2e-5, "busbw_bytes_per_s": 2.0e11}, ...],
      "min_bytes": 8, "max_bytes": 1073741824,       # measured size range (optional)
      "implementation": "nccl",                      # what was timed (optional, default "nccl");
                                                     #   "custom": an engine's custom all-reduce
      "fit_error_pct": {"median": 3.1, "max": 9.0}, "n_points": 24}
  ],
  "compute": {       # fitted constants of the time model; any may be absent
     "hbm_bytes_per_s": float,                      # achieved streaming bandwidth
     "matmul_flops_per_s": {"bf16": float, ...},    # achieved on large GEMMs
     "matmul_half_rows": float,                     # rows (tokens) at which a GEMM reaches half
                                                    #   of its compute roofline, see sizer/cost/ops.py
     "attention_flops_per_s": {"bf16": float},      # achieved by causal prefill attention
     "kernel_launch_s": {"eager": float, "graph": float},
     "step_overhead_s": float,                      # per forward (engine scheduling, sampling)
     "fit_error_pct": {"<key>": float, ...}
  },
  "raw": {"collectives": [nccl-tests rows], "p2p_matrix": [...], "gemm": [...], "membw": [...],
          "launch": [...], "sharded_forward": [...]}
}
A collective's time for `size` bytes (nccl-tests size) is the cheapest segment:
    min_s (latency_s + size * busbw_factor(op, ranks) / busbw_bytes_per_s)
so that busbw = algbw * factor reproduces the measured busbw curve (nccl-tests PERFORMANCE.md).
"""

import json
import math
import reprlib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from sizer.errors import InputError

PROFILE_VERSION = 1
SCHEMAS = {1: "profile_v1.schema.json"}  # version -> JSON Schema file beside this module
ZERO_ALLOWED = ("matmul_half_rows",)
MAX_PROFILE_BYTES = 64 * 2**20  # a profile of every raw row of a 1,000-rank run is a few MiB


@dataclass(frozen=True)
class CollectiveFit:
    op: str
    ranks: int
    nodes: int
    segments: tuple  # ((latency_s, busbw_bytes_per_s), ...)
    fit_error_pct: dict = field(default_factory=dict)
    max_bytes: float | None = None  # largest size measured (beyond it the fit extrapolates)
    implementation: str = "nccl"  # "nccl", or "custom" when the engine's own all-reduce was timed


@dataclass(frozen=True)
class Profile:
    path: str
    env: dict
    collectives: tuple  # CollectiveFit
    compute: dict
    raw: dict

    def collective(self, op: str, ranks: int, nodes: int = 1):
        """The fit measured for exactly this op, group size and node count, or None."""
        for c in self.collectives:
            if c.op == op and c.ranks == ranks and c.nodes == nodes:
                return c
        return None

    def compute_value(self, key: str, dtype: str | None = None):
        """A fitted compute constant (e.g. 'hbm_bytes_per_s', ('matmul_flops_per_s', 'bf16')),
        or None when the profile did not measure it."""
        value = self.compute.get(key)
        if isinstance(value, dict):
            value = value.get(dtype) if dtype else None
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        # rates must be positive; a half-efficiency row count of 0 means "full rate at any M"
        ok = value >= 0 if key in ZERO_ALLOWED else value > 0
        return float(value) if ok else None

    def provenance(self) -> dict:
        """Which constants are measured here: {name: 'measured'}; everything else is default."""
        out = {}
        for c in self.collectives:
            out[f"collective:{c.op}:{c.ranks}x{c.nodes}"] = "measured"
        for key, value in self.compute.items():
            if key == "fit_error_pct":
                continue
            if isinstance(value, dict):
                for sub in value:
                    out[f"compute:{key}:{sub}"] = "measured"
            else:
                out[f"compute:{key}"] = "measured"
        return out


def profile_from_dict(doc: dict, path: str = "<dict>") -> Profile:
    """Validate a parsed profile document against its version's JSON Schema, then the checks a
    schema cannot state (nodes <= ranks, min_bytes <= max_bytes, one fit per op x ranks x
    nodes); InputError names the field's path, e.g. `collectives[0].segments[1].latency_s`."""
    if not isinstance(doc, dict) or "sizer_profile_version" not in doc:
        raise InputError(f"{path} is not a sizer hardware profile (no sizer_profile_version)")
    version = doc["sizer_profile_version"]
    if isinstance(version, bool) or version not in SCHEMAS:
        raise InputError(f"{path}: profile version {version!r} is not supported (this sizer reads "
                         f"version{'s' * (len(SCHEMAS) > 1)} {', '.join(map(str, SCHEMAS))})")
    error = _first_error(_validator(version), doc)
    if error:
        raise InputError(f"{path}: {error}")
    fits, seen = [], {}
    for k, c in enumerate(doc.get("collectives", [])):
        ranks, nodes = int(c["ranks"]), int(c.get("nodes", 1))
        if nodes > ranks:
            raise InputError(f"{path}: collectives[{k}].nodes: {nodes} nodes for {ranks} ranks")
        lo, hi = c.get("min_bytes"), c.get("max_bytes")
        if lo is not None and hi is not None and lo > hi:
            raise InputError(f"{path}: collectives[{k}]: min_bytes {lo} > max_bytes {hi}")
        impl = c.get("implementation", "nccl")
        key = (c["op"], ranks, nodes, impl)
        if key in seen:
            raise InputError(f"{path}: collectives[{k}] repeats collectives[{seen[key]}] "
                             f"({c['op']} over {ranks} ranks on {nodes} node{'s' * (nodes > 1)}, {impl})")
        seen[key] = k
        segs = tuple((float(g["latency_s"]), float(g["busbw_bytes_per_s"])) for g in c["segments"])
        fits.append(CollectiveFit(c["op"], ranks, nodes, segs, dict(c.get("fit_error_pct", {})),
                                  float(hi) if hi is not None else None, impl))
    return Profile(path, dict(doc.get("env", {})), tuple(fits), dict(doc.get("compute", {})),
                   dict(doc.get("raw", {})))


def load_profile(path: str | None) -> Profile | None:
    """Read a profile file given with --profile (None passes through): at most
    MAX_PROFILE_BYTES, strict UTF-8 JSON; anything else is an InputError."""
    if path is None:
        return None
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_PROFILE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(f"profile file not found: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read profile {path}: {exc.strerror or exc}") from None
    return profile_from_text(data, path)


def profile_from_text(data: bytes | str, path: str = "<text>") -> Profile:
    """A profile from the bytes or text of a file (the CLI's --profile, the UI's upload): at
    most MAX_PROFILE_BYTES of strict UTF-8 JSON, then profile_from_dict."""
    if len(data) > MAX_PROFILE_BYTES:
        raise InputError(f"{path} is larger than {MAX_PROFILE_BYTES // 2**20} MiB: not a profile")
    try:
        doc = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not JSON (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise InputError(f"{path} is not a profile (JSON nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, or an integer literal of thousands of digits
        raise InputError(f"{path} is not JSON ({exc.__class__.__name__}: {_one_line(exc)})") from None
    return profile_from_dict(doc, path)


def device_mismatch(profile: Profile | None, gpu) -> str | None:
    """The warning every face (CLI, UI) gives when a profile was measured on another device than
    the GPU asked about: its measured constants replace the catalog's, so a CPU profile would
    make an H100 look like a CPU. None when there is no profile or it names this GPU."""
    if profile is None:
        return None
    measured_on = profile.env.get("gpu_id")
    if measured_on == gpu.id:
        return None
    where = measured_on or profile.env.get("device") or "an unknown device"
    return (f"profile {profile.path} was measured on {where}, not {gpu.id}: its measured "
            "constants replace the catalog's for this prediction")


@lru_cache(maxsize=None)
def _validator(version: int):
    """A jsonschema validator for one schema version, its "number" and "integer" types finite:
    JSON has no NaN or Infinity, but Python's json module reads them (and 1e400 as inf)."""
    import jsonschema

    schema = json.loads(resources.files(__package__).joinpath(SCHEMAS[version]).read_text("utf-8"))
    base = jsonschema.validators.validator_for(schema)
    checker = base.TYPE_CHECKER.redefine_many({
        "number": lambda c, x: _finite_number(x),
        "integer": lambda c, x: _finite_number(x) and float(x).is_integer()})
    return jsonschema.validators.extend(base, type_checker=checker)(schema)


def _finite_number(x) -> bool:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return False
    return isinstance(x, int) or math.isfinite(x)


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist = 40, 40, 2, 4, 4


def _first_error(validator, doc) -> str | None:
    """'collectives[0].ranks: must be an integer >= 1, got 2.7' for the schema error nearest
    the root (then the first in document order), or None when the document is valid."""
    errors = sorted(validator.iter_errors(doc), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if not errors:
        return None
    e = errors[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in e.absolute_path).lstrip(".")
    got = _SHORT.repr(e.instance)
    v, arg = e.validator, e.validator_value
    if v == "type":
        kinds = [arg] if isinstance(arg, str) else list(arg)
        names = {"number": "a finite number", "integer": "a whole number", "object": "an object",
                 "array": "a list", "string": "a string", "null": "null"}
        reason = f"must be {' or '.join(names.get(k, k) for k in kinds)}, got {got}"
    elif v == "required":
        missing = [k for k in arg if isinstance(e.instance, dict) and k not in e.instance]
        reason = f"missing {', '.join(map(repr, missing))}"
    elif v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[v]
        reason = f"must be {op} {arg:g}, got {got}"
    elif v in ("enum", "const"):
        choices = ", ".join(map(str, arg if v == "enum" else [arg]))
        key = "propertyNames" in e.schema_path
        reason = f"unknown key {got} (known: {choices})" if key else f"must be one of {choices}, got {got}"
    elif v == "minItems":
        reason = f"must hold at least {arg} item{'s' * (arg > 1)}, got {got}"
    elif v == "maxItems":
        reason = f"must hold at most {arg} items, got {len(e.instance)}"
    elif v == "additionalProperties":
        extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
        reason = f"unknown key {', '.join(map(repr, extra))}"
    else:
        reason = _one_line(e.message)
    return f"{where or 'document'}: {reason}"


def _one_line(exc) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
