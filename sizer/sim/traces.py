"""Reading request traces: CSV or JSON Lines, one request per row.

Columns (case-insensitive; the first name found wins):
- prompt tokens: `input_tokens`, `num_prefill_tokens` (vidur's processed traces, e.g.
  microsoft/vidur data/processed_traces/splitwise_conv.csv), `ContextTokens` (the Azure LLM
  inference traces used by Splitwise), `input_length` (Mooncake), `input_len`, `prompt_len`,
  `prompt_tokens`, `isl`;
- output tokens: `output_tokens`, `num_decode_tokens` (vidur), `GeneratedTokens` (Azure),
  `output_length` (Mooncake), `output_len`, `completion_tokens`, `osl`;
- arrival time, optional: `arrival_s`, `arrival_time`, `arrived_at` (vidur), `time` in
  seconds; `timestamp` (Mooncake) or `arrival_ms` in milliseconds; `TIMESTAMP` (Azure) as a
  date-time. Times are taken relative to the first row; rows must be in arrival order.

Without an arrival column, arrivals come from --rate and the rows give only the lengths (as
vidur's trace-length generator and ShareGPT-derived length files are used). Every parse error
names the file, line and column.
"""

import csv
import json
import math
import os
from datetime import datetime

import numpy as np

from sizer.errors import InputError
from .arrivals import MAX_REQUESTS, Trace

INPUT = ("input_tokens", "num_prefill_tokens", "contexttokens", "input_length", "input_len",
         "prompt_len", "prompt_tokens", "prompt_length", "isl")
OUTPUT = ("output_tokens", "num_decode_tokens", "generatedtokens", "output_length", "output_len",
          "completion_tokens", "osl")
SECONDS = ("arrival_s", "arrival_time", "arrived_at", "time")
MILLISECONDS = ("timestamp", "arrival_ms", "timestamp_ms")


def _pick(columns, names):
    lower = {c.lower().strip(): c for c in columns if isinstance(c, str)}
    for n in names:
        if n in lower:
            return lower[n]
    return None


def _rows(path: str):
    """(line number, dict) for every data row of a CSV or JSONL file."""
    if not os.path.isfile(path):
        raise InputError(f"--trace {path}: no such file")
    with open(path, encoding="utf-8", newline="") as f:
        first = f.read(4096)
        f.seek(0)
        if first.lstrip().startswith("{"):
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path} line {i}: not JSON ({exc.msg}, column {exc.colno})") from None
                if not isinstance(row, dict):
                    raise InputError(f"{path} line {i}: expected a JSON object per line")
                yield i, row
        else:
            reader = csv.DictReader(f)
            if not reader.fieldnames:
                raise InputError(f"{path}: empty trace (no header row)")
            for row in reader:
                if None in row:
                    raise InputError(f"{path} line {reader.line_num}: more fields than the header's "
                                     f"{len(reader.fieldnames)} columns")
                yield reader.line_num, row


def _count(path, line, col, value) -> int:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{path} line {line}, column {col!r}: expected a token count, got {value!r}") from None
    if not math.isfinite(x) or x != int(x):
        raise InputError(f"{path} line {line}, column {col!r}: expected a whole token count, got {value!r}")
    if x < 0:
        raise InputError(f"{path} line {line}, column {col!r}: negative length {value!r}")
    if x < 1:
        raise InputError(f"{path} line {line}, column {col!r}: a request needs at least 1 token, got {value!r}")
    return int(x)


def _time(path, line, col, value, scale: float) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        try:
            return datetime.fromisoformat(str(value).strip()).timestamp()
        except ValueError:
            raise InputError(f"{path} line {line}, column {col!r}: expected a time, got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{path} line {line}, column {col!r}: expected a finite time, got {value!r}")
    return x * scale


def read_trace(path: str) -> Trace:
    """The Trace in `path` (module docstring); InputError naming line and column on bad rows."""
    isl, osl, times = [], [], []
    cols = None
    for line, row in _rows(path):
        if cols is None:
            cin, cout = _pick(row, INPUT), _pick(row, OUTPUT)
            if cin is None or cout is None:
                missing = "prompt-length" if cin is None else "output-length"
                names = INPUT if cin is None else OUTPUT
                raise InputError(f"{path} line {line}: no {missing} column (one of {', '.join(names)})")
            csec, cms = _pick(row, SECONDS), _pick(row, MILLISECONDS)
            ct, scale = (csec, 1.0) if csec is not None else (cms, 1e-3)
            cols = (cin, cout, ct, scale)
        cin, cout, ct, scale = cols
        for c in (cin, cout) + ((ct,) if ct else ()):
            if c not in row or row[c] in (None, ""):
                raise InputError(f"{path} line {line}, column {c!r}: missing value")
        isl.append(_count(path, line, cin, row[cin]))
        osl.append(_count(path, line, cout, row[cout]))
        if ct is not None:
            t = _time(path, line, ct, row[ct], scale)
            if times and t < times[-1]:
                raise InputError(f"{path} line {line}, column {ct!r}: arrival {row[ct]!r} is before the "
                                 "previous row's (rows must be in arrival order)")
            times.append(t)
        if len(isl) > MAX_REQUESTS:
            raise InputError(f"{path}: more than the simulator's limit of {MAX_REQUESTS:,} requests")
    if not isl:
        raise InputError(f"{path}: the trace has no requests")
    arrival = np.asarray(times, dtype=float) - times[0] if times else None
    return Trace(path, np.asarray(isl, dtype=np.int64), np.asarray(osl, dtype=np.int64), arrival)
