"""The public reference records the tests compare against, read from the copies that ship in
data/reference/ (verbatim, sha256 in data/reference/README.md), never from a path outside the
repository: a plain clone runs every reference test, and a missing file fails loudly instead of
skipping."""

import json
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parents[1] / "data" / "reference"


def path(name: str) -> str:
    """The shipped copy's path; an AssertionError (not a skip) when it is missing."""
    p = REFERENCE_DIR / name
    assert p.is_file(), f"{p} missing: it ships with the repository (data/reference/README.md)"
    return str(p)


def records(name: str) -> list:
    """The file's records, a JSON list of {id, kind, conditions, metric, value, ...}."""
    return json.loads(Path(path(name)).read_text())


def by_id(name: str) -> dict:
    return {r["id"]: r for r in records(name)}


def benchmark(name: str):
    """A script of benchmarks/ imported as a module (the tests check what it computes)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
