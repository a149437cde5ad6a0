"""What every face prints: the one JSON document of a `--json` run and warnings on stderr.

Shared by the CLI, the UI and the probes, so none of them imports another's module for it.
"""

import json
import sys


def emit_json(doc) -> None:
    """The one JSON document of a --json run."""
    sys.stdout.write(json.dumps(doc, indent=2, default=jsonable) + "\n")


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
