"""Hardware profiles: constants measured by `python -m probes.calibrate`, read by every command.

A profile is a versioned JSON document (schema below). sizer never imports the probes; the
probes write this file and sizer reads it. Every constant a profile lacks falls back to the
catalog default, and `Profile.provenance` says which values came from where.

Schema, version 1 (all numbers SI):
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
from dataclasses import dataclass, field

from sizer.errors import InputError

PROFILE_VERSION = 1
ZERO_ALLOWED = ("matmul_half_rows",)


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
    """Validate a parsed profile document; InputError names what is wrong."""
    if not isinstance(doc, dict) or "sizer_profile_version" not in doc:
        raise InputError(f"{path} is not a sizer hardware profile (no sizer_profile_version)")
    if doc["sizer_profile_version"] != PROFILE_VERSION:
        raise InputError(f"{path}: profile version {doc['sizer_profile_version']!r} is not "
                         f"supported (this sizer reads version {PROFILE_VERSION})")
    fits = []
    try:
        for c in doc.get("collectives", []):
            segs = tuple((float(s["latency_s"]), float(s["busbw_bytes_per_s"]))
                         for s in c["segments"])
            if not segs or any(lat < 0 or bw <= 0 for lat, bw in segs):
                raise ValueError("segments need latency_s >= 0 and busbw_bytes_per_s > 0")
            top = c.get("max_bytes")
            impl = c.get("implementation", "nccl")
            if impl not in ("nccl", "custom"):
                raise ValueError(f"implementation must be 'nccl' or 'custom', got {impl!r}")
            fits.append(CollectiveFit(str(c["op"]), int(c["ranks"]), int(c.get("nodes", 1)),
                                      segs, dict(c.get("fit_error_pct", {})),
                                      float(top) if isinstance(top, (int, float)) and top > 0 else None,
                                      impl))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed collectives entry ({exc})") from None
    compute = doc.get("compute", {})
    if not isinstance(compute, dict):
        raise InputError(f"{path}: 'compute' must be an object")
    return Profile(path, dict(doc.get("env", {})), tuple(fits), compute, dict(doc.get("raw", {})))


def load_profile(path: str | None) -> Profile | None:
    """Read a profile file given with --profile (None passes through)."""
    if path is None:
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise InputError(f"profile file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not JSON ({exc.__class__.__name__}: {exc})") from None
    except OSError as exc:
        raise InputError(f"cannot read profile {path}: {exc}") from None
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
