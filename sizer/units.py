"""Parsing and display of sizes and durations.

Inside sizer every quantity is in SI base units (bytes, seconds, FLOP/s, bytes/s). Text such as
`16MiB`, `1GB`, `50ms` is converted here, at the edge. GB means 1e9 bytes, GiB 2**30 bytes.
"""

import re

from .errors import InputError

_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
_NUM = r"\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*"


def parse_bytes(text) -> int:
    """'16MiB' -> 16777216, '1GB' -> 1e9, '4096' -> 4096. Raises InputError on anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(_NUM + r"([A-Za-z]*)\s*", str(text))
        if not m or m.group(2).lower() not in _BYTE_UNITS:
            raise InputError(f"cannot parse size {text!r} (examples: 4096, 16MiB, 1GB)")
        value, unit = float(m.group(1)), m.group(2).lower()
    size = value * _BYTE_UNITS[unit]
    if size <= 0:
        raise InputError(f"size must be positive, got {text!r}")
    return int(round(size))


def parse_seconds(text) -> float:
    """'50ms' -> 0.05, '2' -> 2.0, '0.2s' -> 0.2. Raises InputError on anything else."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(_NUM + r"([a-zµ]*)\s*", str(text).lower())
        if not m or m.group(2) not in _TIME_UNITS:
            raise InputError(f"cannot parse duration {text!r} (examples: 0.2, 200ms, 2s)")
        value, unit = float(m.group(1)), m.group(2)
    seconds = value * _TIME_UNITS[unit]
    if seconds <= 0:
        raise InputError(f"duration must be positive, got {text!r}")
    return seconds


def fmt_bytes(n: float) -> str:
    """Human size in binary units (GiB), as engines and nvidia-smi report memory."""
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def fmt_seconds(s: float) -> str:
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3f} ms"
    return f"{s * 1e6:.2f} us"
