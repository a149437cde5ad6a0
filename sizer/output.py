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


_printed = [0]  # documents emit_json has written since the last reset (main() resets per run)


def documents_printed(reset: bool = False) -> int:
    """How many JSON documents this run has printed; reset=True starts a new run's count."""
    if reset:
        _printed[0] = 0
    return _printed[0]


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
    sys.stdout.write(text + "\n")
    _printed[0] += 1


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


def warn(message: str) -> None:
    sys.stderr.write(f"sizer: warning: {message}\n")
