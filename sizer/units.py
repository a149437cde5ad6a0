"""Parsing and display of sizes, durations and counts: the one parser every numeric flag uses.

Inside sizer every quantity is in SI base units (bytes, seconds, FLOP/s, bytes/s). Text such as
`16MiB`, `1GB`, `50ms` is converted here, at the edge. GB means 1e9 bytes, GiB 2**30 bytes; a
lower-case b is a bit (SI / IEC 80000-13), so `16Mb` is refused rather than read as 16 MB.

Every parser refuses what cannot be a physical quantity of its kind, with one InputError line:
empty text, NaN, infinities (and literals such as 1e400 that overflow to one), zero and negative
values, a size below one byte (it would round to 0), a count that is not a whole number, and
values above the parser's stated maximum.
"""

import math
import re

from .errors import InputError

_BYTE_UNITS = {
    "": 1, "b": 1,
    "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9,
               "min": 60.0, "h": 3600.0}
_NUM = r"\s*([+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\s*"

MAX_BYTES = 2**50  # 1 PiB: hundreds of times the memory of an 8-GPU node; no message is larger
MAX_SECONDS = 3600.0 * 24 * 365  # one year: a target or a timeout beyond it means "none"


def _split(text, kind: str, examples: str) -> tuple[float, str]:
    """(value, unit) of '16 MiB', '2.5ms', 4096; InputError on text that is not a number and a
    unit, or on a number that is not finite."""
    if isinstance(text, bool) or text is None:
        raise InputError(f"cannot parse {kind} {text!r} (examples: {examples})")
    if isinstance(text, (int, float)):
        value, unit = float(text), ""
    else:
        m = re.fullmatch(_NUM + r"([A-Za-zµ]*)\s*", str(text))
        if not m:
            if str(text).strip().lower().lstrip("+-") in ("inf", "infinity", "nan"):
                raise InputError(f"{kind} must be a finite number, got {text!r}")
            raise InputError(f"cannot parse {kind} {text!r} (examples: {examples})")
        value, unit = float(m.group(1)), m.group(2).lower()
    if not math.isfinite(value):
        raise InputError(f"{kind} must be a finite number, got {text!r}")
    return value, unit


def parse_bytes(text, maximum: float = MAX_BYTES) -> int:
    """'16MiB' -> 16777216, '1GB' -> 1e9, '4096' -> 4096; at least 1 byte, at most `maximum`.
    A count of bytes is whole: a non-integral one rounds to the nearest byte, but a size below
    one byte is refused rather than rounded to 0. Raises InputError on anything else."""
    value, unit = _split(text, "size", "4096, 16MiB, 1GB")
    raw = re.fullmatch(_NUM + r"([A-Za-zµ]*)\s*", str(text)).group(2) if isinstance(text, str) else ""
    if raw.endswith("b") and unit in _BYTE_UNITS:
        # SI / IEC 80000-13: b is the bit, B the byte; 16Mb is 2 MB, not 16 MB
        proper = {"": "B", "k": "KB", "ki": "KiB"}.get(unit[:-1], unit[:-1].capitalize() + "B") \
            if not unit.endswith("ib") else unit[:-2].upper() + "iB"
        raise InputError(f"size {text!r}: a lower-case b means bits; sizes are in bytes (B): write "
                         f"{_respelled(text, raw, proper)} for bytes")
    if unit not in _BYTE_UNITS:
        raise InputError(f"cannot parse size {text!r}: unknown unit {unit!r} (B, KB, KiB, MB, "
                         "MiB, GB, GiB, TB, TiB)")
    size = value * _BYTE_UNITS[unit]
    if size <= 0:
        raise InputError(f"size must be positive, got {text!r}")
    if size < 1:
        raise InputError(f"size must be at least 1 byte, got {text!r}")
    if size > maximum:
        raise InputError(f"size {text!r} is beyond the largest meaningful one ({maximum:.4g} bytes)")
    return int(round(size))


def _respelled(text: str, raw: str, proper: str) -> str:
    """`text` with its unit `raw` spelled `proper` ('16Mb' -> '16MB')."""
    return text.strip()[: len(text.strip()) - len(raw)] + proper


def parse_seconds(text, maximum: float = MAX_SECONDS) -> float:
    """'50ms' -> 0.05, '2' -> 2.0, '0.2s' -> 0.2, '5min' -> 300; positive, finite, at most
    `maximum`. Raises InputError on anything else."""
    value, unit = _split(text, "duration", "0.2, 200ms, 2s, 5min")
    if unit not in _TIME_UNITS:
        raise InputError(f"cannot parse duration {text!r}: unknown unit {unit!r} (ns, us, ms, s, "
                         "min, h)")
    seconds = value * _TIME_UNITS[unit]
    if seconds <= 0:
        raise InputError(f"duration must be positive, got {text!r}")
    if seconds > maximum:
        raise InputError(f"duration {text!r} is beyond {maximum:.4g} s")
    return seconds


def parse_count(text, maximum: int, what: str = "count", minimum: int = 1) -> int:
    """A whole number in [minimum, maximum] (minimum 1 or 0): '8' -> 8. Refuses '2.7' (it would
    be truncated), '1e3', '', values below `minimum` and above `maximum` (say which bound in the
    caller's docstring)."""
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise InputError(f"{what} must be a whole number, got {text!r}")
    body = str(text).strip()
    if not re.fullmatch(r"[+-]?[0-9]+", body):
        raise InputError(f"{what} must be a whole number, got {text!r}")
    if len(body.lstrip("+-")) > 30:  # no int() on thousands of digits
        raise InputError(f"{what} {body[:12]}... is beyond the largest meaningful one ({maximum:,})")
    value = int(body)
    if value < minimum:
        kind = "positive" if minimum == 1 else "non-negative" if minimum == 0 else f">= {minimum}"
        raise InputError(f"{what} must be a {kind} whole number, got {text!r}")
    if value > maximum:
        raise InputError(f"{what} {value:,} is beyond the largest meaningful one ({maximum:,})")
    return value


def parse_positive(text, what: str = "value", maximum: float = 1e15) -> float:
    """A finite number in (0, maximum], e.g. a price: '2.5' -> 2.5."""
    value, unit = _split(text, what, "2.5, 0.75")
    if unit:
        raise InputError(f"{what} must be a plain number, got {text!r}")
    if value <= 0:
        raise InputError(f"{what} must be positive, got {text!r}")
    if value > maximum:
        raise InputError(f"{what} {text!r} is beyond {maximum:.4g}")
    return value


def parse_number(text, low: float, high: float, what: str = "value") -> float:
    """A finite plain number in [low, high], e.g. an acceptance rate in [0, 1]."""
    value, unit = _split(text, what, f"{low:g}, {high:g}")
    if unit or not low <= value <= high:
        raise InputError(f"{what} must be a number in [{low:g}, {high:g}], got {text!r}")
    return value


def parse_fraction(text, what: str = "fraction") -> float:
    """A finite number in (0, 1]: a share of GPU memory."""
    value, unit = _split(text, what, "0.9, 0.85")
    if unit or not 0 < value <= 1:
        raise InputError(f"{what} must be in (0, 1], got {text!r}")
    return value


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
