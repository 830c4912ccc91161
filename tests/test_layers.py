"""The import graph, read from the source with ``ast``: each package of pamlive sits in one
layer, no module imports from a layer above its own, and no modules import each other in a
circle (docs/architecture.md, "Layers"). Every import counts: at the top of a module, in a
function, under ``TYPE_CHECKING``."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "pamlive"

# bottom to top; a name is pamlive's top-level module or package ("": pamlive/__init__.py)
LAYERS = [
    ("base", {"", "errors", "utc", "stop", "clock", "buffers", "detection", "fusion",
              "private", "checks", "builtin", "devices", "models", "dsp", "config"}),
    ("services", {"inference", "importers", "alerts", "field", "sources", "sinks"}),
    ("windows", {"windows"}),
    ("detectors", {"pipeline", "calls", "ensemble", "array"}),
    ("tables", {"raven", "scores", "evaluate", "analyze_file"}),
    ("live", {"live", "dashboard"}),
    ("kinds", {"kinds", "engine"}),
    ("commands", {"analyze", "cluster", "export", "app", "cli", "__main__"}),
]
LAYER = {name: level for level, (_, names) in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = ("pamlive", *path.relative_to(SOURCE).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str:
    """The module a dotted import name lands in (``pamlive.a.B`` -> ``pamlive.a``)."""
    while name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> set[str]:
    """The pamlive modules ``module`` imports."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {_resolve(a.name) for a in node.names if a.name.split(".")[0] == "pamlive"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            if base.split(".")[0] == "pamlive":
                out |= {_resolve(f"{base}.{a.name}") for a in node.names}
    return out - {module}


GRAPH = {module: _imports(module) for module in MODULES}


def _top(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_package_has_a_layer() -> None:
    assert {_top(m) for m in MODULES} - set(LAYER) == set()


def test_no_module_imports_from_a_layer_above_its_own() -> None:
    upward = sorted(f"{m} ({LAYERS[LAYER[_top(m)]][0]}) -> {t} ({LAYERS[LAYER[_top(t)]][0]})"
                    for m, targets in GRAPH.items() for t in targets
                    if LAYER[_top(t)] > LAYER[_top(m)])
    assert not upward, "imports from a layer above:\n" + "\n".join(upward)


def test_no_import_circle() -> None:
    try:
        order = list(TopologicalSorter(GRAPH).static_order())
    except CycleError as exc:
        raise AssertionError(f"modules import each other in a circle: {exc.args[1]}") from exc
    assert set(order) == set(MODULES)
