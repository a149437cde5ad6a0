"""What every face prints: the one JSON document of a `--json` run and warnings on stderr.

Shared by the CLI, the UI and the probes, so none of them imports another's module for it.
The JSON is strict (RFC 8259): NaN and infinities have no JSON spelling, so a document holding
one is never printed; `emit_json` raises NonFiniteOutputError naming where the number is.
"""

import json
import math
import sys


class NonFiniteOutputError(RuntimeError):
    """The answer holds NaN or an infinity: a defect, reported in one line with exit code 1."""

    exit_code = 1


_held: list = []  # documents checked but not yet written, while the CLI holds them
_holding = [False]


def hold_documents() -> None:
    """From now on emit_json checks each document and keeps it: sizer.cli.main writes it once the
    exit code is known (on exit 1 with the reason added; on exit 2, not at all)."""
    _held.clear()
    _holding[0] = True


def release_documents() -> list:
    """Stop holding; the documents held since hold_documents(), in order (not yet written)."""
    _holding[0] = False
    docs = list(_held)
    _held.clear()
    return docs


def emit_json(doc) -> None:
    """The one JSON document of a --json run (strict JSON: every number finite)."""
    try:
        text = json.dumps(doc, indent=2, default=jsonable, allow_nan=False)
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        where = _non_finite_path(json.loads(json.dumps(doc, default=jsonable)))
        raise NonFiniteOutputError(f"internal error: the answer holds a non-finite number at "
                                   f"{where or '?'}; nothing printed (please report)") from None
    if _holding[0]:
        _held.append(doc)
        return
    sys.stdout.write(text + "\n")


def _non_finite_path(obj, path: str = "$") -> str | None:
    """JSONPath of the first NaN/inf in a decoded document, or None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path
    if isinstance(obj, dict):
        items = ((f"{path}.{k}", v) for k, v in obj.items())
    elif isinstance(obj, list):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(obj))
    else:
        return None
    for sub, value in items:
        hit = _non_finite_path(value, sub)
        if hit:
            return hit
    return None


def jsonable(obj):
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


_HELD_WARNINGS: list | None = None  # while the command line is parsed (hold_warnings)


def warn(message: str) -> None:
    line = f"sizer: warning: {message}\n"
    if _HELD_WARNINGS is not None:
        _HELD_WARNINGS.append(line)
    else:
        sys.stderr.write(line)


def hold_warnings() -> None:
    """Keep warnings back while the flags are parsed: a usage error is then the one line on
    stderr (exit 2), not a warning about another flag followed by the error."""
    global _HELD_WARNINGS
    _HELD_WARNINGS = []


def release_warnings(write: bool) -> None:
    """Stop holding; write what was held (the flags parsed) or drop it (a usage error)."""
    global _HELD_WARNINGS
    held, _HELD_WARNINGS = _HELD_WARNINGS or [], None
    if write:
        sys.stderr.write("".join(held))
