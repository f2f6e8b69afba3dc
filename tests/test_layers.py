"""Imports point one way: no cycles, a leaf config module, Ray and MLflow each in one place.

The package's import graph is read from the source (every import statement, function-local
ones included; imports under `if TYPE_CHECKING:` are type-only and do not count), so a test
fails the moment a change adds an arrow that closes a loop.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rnnprune"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def _imports(path: Path) -> set[str]:
    """Every rnnprune module `path` imports at run time (type-only imports left out)."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(node)
        for branch in ast.walk(tree)
        if isinstance(branch, ast.If) and "TYPE_CHECKING" in ast.unparse(branch.test)
        for node in ast.walk(branch)
    }
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from rnnprune import catalogue` depends on the submodule, not on the package's
            # own code (its __init__ runs, but nothing of it is used): `base` counts only when a
            # name is not a submodule; the graph tells them apart.
            found.update(f"{base}:{alias.name}" for alias in node.names)
    return found


def _targets(imported: set[str], modules: set[str]) -> set[str]:
    targets = set()
    for item in imported:
        base, _, name = item.partition(":")
        if name and f"{base}.{name}" in modules:
            targets.add(f"{base}.{name}")
        else:
            targets.add(base)
    return targets


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {
        name: {t for t in _targets(_imports(path), set(modules)) if t in modules and t != name}
        for name, path in modules.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def _unit(module: str) -> str:
    """A subpackage (`rnnprune.sweep`) or a top-level module (`rnnprune.pareto`)."""
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_modules(graph: dict[str, set[str]]) -> None:
    assert _cycles(graph) == []


def test_no_import_cycle_between_subpackages(graph: dict[str, set[str]]) -> None:
    units: dict[str, set[str]] = {}
    for source, targets in graph.items():
        units.setdefault(_unit(source), set()).update(
            _unit(t) for t in targets if _unit(t) not in (_unit(source), "rnnprune")
        )
    assert _cycles(units) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _importers_of(graph_source: Path, library: str) -> set[str]:
    return {
        _module_name(p)
        for p in graph_source.rglob("*.py")
        if any(t == library or t.startswith((f"{library}.", f"{library}:")) for t in _imports(p))
    }


def test_only_tracking_imports_mlflow() -> None:
    assert _importers_of(PACKAGE, "mlflow") <= {"rnnprune.tracking"}


def test_only_the_sweep_layer_imports_ray() -> None:
    assert {m for m in _importers_of(PACKAGE, "ray") if not m.startswith("rnnprune.sweep")} == set()


def test_config_imports_no_task_or_method_module(graph: dict[str, set[str]]) -> None:
    implementations = {
        m
        for m in graph
        if m.startswith(("rnnprune.data.", "rnnprune.pruning."))
        and m.rpartition(".")[2] not in ("base", "registry", "schedules")
    }
    assert graph["rnnprune.config"] & implementations == set()


def _loaded_after(code: str) -> set[str]:
    """Top-level modules (and rnnprune modules) loaded by running `code` in a fresh interpreter."""
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


HEAVY = {"torchvision", "torchaudio", "ray", "mlflow"}


def test_importing_config_loads_no_data_library_ray_or_mlflow() -> None:
    loaded = _loaded_after("import rnnprune.config")
    assert loaded & HEAVY == set()
    assert {m for m in loaded if m.startswith(("rnnprune.data.mnist", "rnnprune.pruning.lattice"))} == set()


def test_validating_a_config_loads_only_its_own_task_and_method() -> None:
    loaded = _loaded_after(
        "from rnnprune.config import validate_config\n"
        "validate_config({'task': {'name': 'seq_mnist'}, 'pruning': {'method': 'random'}})"
    )
    assert loaded & HEAVY == set()
    assert "rnnprune.data.mnist" in loaded and "rnnprune.pruning.random" in loaded
    assert {"rnnprune.data.speech_commands", "rnnprune.pruning.lattice"} & loaded == set()
