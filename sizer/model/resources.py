"""Reading the packaged presets (the repository's `data/`, installed as `sizer_data`).

This is the I/O edge for presets: the model modules receive plain dicts from here and never
open files themselves.
"""

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=None)
def read_json(relpath: str):
    """Parse a JSON file below `data/`, e.g. `gpus.json` or `models/llama-3.1-8b.json`."""
    node = resources.files("sizer_data")
    for part in relpath.split("/"):
        node = node.joinpath(part)
    return json.loads(node.read_text(encoding="utf-8"))


def list_dir(relpath: str, suffix: str = ".json") -> list[str]:
    """Names (without suffix) of the files in a folder below `data/`."""
    node = resources.files("sizer_data")
    for part in relpath.split("/"):
        node = node.joinpath(part)
    return sorted(p.name[: -len(suffix)] for p in node.iterdir() if p.name.endswith(suffix))
