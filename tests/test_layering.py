"""The layout is the data flow (issue #11, STYLE.md "The layout as a map"):
model -> hardware -> cost -> sim -> plan -> cli. A folder imports only itself, the folders
before it and the shared top-level modules; nothing in sizer/ imports torch or streamlit, and
argparse only inside cli/. These tests read every module's imports with `ast`, so a new import
that breaks the order fails here before it becomes a loop."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZER = ROOT / "sizer"
ORDER = ("model", "hardware", "cost", "sim", "plan", "cli")
SHARED = {"errors", "units", "output", "charts"}
FORBIDDEN_EVERYWHERE = {"torch", "streamlit", "probes", "ui"}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(source: str, module: str, is_package: bool = False) -> set[str]:
    """Absolute names of every module `source` imports (relative imports resolved against
    `module`), including imports inside functions."""
    package = module if is_package else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.add(target)
            if not node.module:  # from . import ops -> sizer.cost.ops
                found.update(f"{target}.{alias.name}" for alias in node.names)
    return found


def layer_of(name: str) -> str | None:
    """'model' for sizer.model.catalog, 'shared' for sizer.errors, None outside sizer."""
    parts = name.split(".")
    if parts[0] != "sizer":
        return None
    if len(parts) == 1:
        return "shared"
    if parts[1] == "__main__":  # `python -m sizer`: the command line's other door
        return "cli"
    if parts[1] in ORDER:
        return parts[1]
    return "shared"


def violations(module: str, imported: set[str]) -> list[str]:
    """Every import of `module` that the layering forbids, as 'a imports b' lines."""
    bad = []
    here = layer_of(module)
    for name in sorted(imported):
        top = name.split(".")[0]
        if top in FORBIDDEN_EVERYWHERE:
            bad.append(f"{module} imports {name}")
            continue
        if top == "argparse" and here != "cli":
            bad.append(f"{module} imports argparse outside sizer/cli")
            continue
        there = layer_of(name)
        if there is None or there == "shared" and here == "shared":
            continue
        if here == "shared":
            bad.append(f"shared module {module} imports {name}")
        elif there != "shared" and ORDER.index(there) > ORDER.index(here):
            bad.append(f"{module} ({here}) imports {name} ({there}), a later stage")
    return bad


def sizer_modules():
    return sorted(p for p in SIZER.rglob("*.py"))


def test_every_stage_folder_exists_with_a_docstring_saying_what_it_may_import():
    for stage in ORDER:
        init = SIZER / stage / "__init__.py"
        assert init.exists(), stage
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "May import" in doc, stage


def test_no_sizer_module_imports_a_later_stage_torch_streamlit_or_argparse():
    bad = []
    for path in sizer_modules():
        name = module_name(path)
        bad += violations(name, imports_of(path.read_text(), name, path.name == "__init__.py"))
    assert bad == []


def test_only_cli_ui_and_probes_import_sizer_cli():
    for path in sizer_modules():
        name = module_name(path)
        if layer_of(name) == "cli":
            continue
        assert not any(i.startswith("sizer.cli") for i in imports_of(path.read_text(), name)), name


def test_no_import_loop_between_topology_and_topo_smi():
    """topology.py used to import topo_smi, which imports topology (issue #11)."""
    topo = SIZER / "hardware" / "topology.py"
    assert "sizer.hardware.topo_smi" not in imports_of(topo.read_text(), "sizer.hardware.topology")


@pytest.mark.parametrize("module, source, expect", [
    ("sizer.model.catalog", "from sizer.cost.memory import x", "later stage"),
    ("sizer.hardware.gpus", "from ..plan import search", "later stage"),
    ("sizer.cost.step", "def f():\n    from sizer.sim import events", "later stage"),
    ("sizer.plan.search", "import argparse", "argparse"),
    ("sizer.cost.step", "import torch", "torch"),
    ("sizer.model.split", "import streamlit as st", "streamlit"),
    ("sizer.errors", "from sizer.model.catalog import get_model", "shared module"),
    ("sizer.hardware.topology", "from .topo_smi import read", None),
    ("sizer.cost.step", "from . import ops", None),
    ("sizer.plan.recommend", "from sizer.sim.engine import run", None),
    ("sizer.cli.main", "import argparse\nfrom sizer.plan import recommend", None),
])
def test_the_checker_catches_what_it_must(module, source, expect):
    """The rule itself: a lower folder importing a higher one is reported (so the test above
    can fail), same-stage and earlier-stage imports are not."""
    found = violations(module, imports_of(source, module))
    if expect is None:
        assert found == []
    else:
        assert len(found) == 1 and expect in found[0], found
