"""The one-way layering, enforced: each layer imports only from the layers below it, and no module
imports itself back through a chain of module-level imports.

Bottom to top:

1. result types and exceptions (``rm_service`` itself, ``_result``, ``_exceptions``, and the
   leaf helpers the registries share);
2. ``rm_service.models`` (judge backends, embedder);
3. ``graders`` and ``aggregators``;
4. the engine (every other ``rm_service._*`` module: mapper, runner, config, offline, rollout...);
5. the faces (``app``, ``cli``, ``integrations``, the HTTP modules);
6. ``trainer``.

The graph is read from the source with :mod:`ast` (fast, and it sees an import that a warm
``sys.modules`` would hide). An import under ``if TYPE_CHECKING:`` or inside a function is not
module-level and does not count; ``from rm_service import X`` counts as an import of the module
that defines ``X`` (``rm_service`` loads it lazily). ``import a.b`` runs ``a`` too, so it counts as
importing both; a submodule importing its own package's ``__init__`` does not.
"""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rm_service", "graders", "aggregators", "trainer")

TYPES, MODELS, COMPONENTS, ENGINE, FACES, TRAINER = range(1, 7)
LAYER_NAMES = {
    1: "types",
    2: "models",
    3: "graders/aggregators",
    4: "engine",
    5: "faces",
    6: "trainer",
}
# rm_service's own modules that sit below the engine, and those above it; any other
# rm_service._* module is engine.
_TYPES = {
    "rm_service",
    "rm_service._result",
    "rm_service._exceptions",
    "rm_service._importer",
    "rm_service._lazy",
}
_FACES = ("rm_service.app", "rm_service.cli", "rm_service.integrations", "rm_service._serve")


def layer(module: str) -> int:
    top = module.split(".")[0]
    if top == "trainer":
        return TRAINER
    if top in ("graders", "aggregators"):
        return COMPONENTS
    if module in _TYPES or module.startswith("rm_service._registry"):
        return TYPES
    if module == "rm_service.models" or module.startswith("rm_service.models."):
        return MODELS
    if module.startswith("rm_service._http") or any(
        module == f or module.startswith(f + ".") for f in _FACES
    ):
        return FACES
    return ENGINE


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _module_level_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                found.append(node)
            elif isinstance(node, ast.If):
                test = node.test
                if getattr(test, "id", None) == "TYPE_CHECKING" or (
                    getattr(test, "attr", None) == "TYPE_CHECKING"
                ):
                    visit(node.orelse)
                else:
                    visit(node.body)
                    visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)

    visit(tree.body)
    return found


def _chain(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _lazy_names() -> dict[str, dict[str, str]]:
    """``{package: {name: defining module}}`` for the packages that load names lazily."""
    return {pkg: dict(getattr(importlib.import_module(pkg), "_LAZY", {})) for pkg in PACKAGES}


def import_graph() -> dict[str, set[str]]:
    """``{module: the project modules its module-level imports run}``."""
    lazy = _lazy_names()
    graph: dict[str, set[str]] = {}
    for module, path in MODULES.items():
        targets: list[str] = []
        for node in _module_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    targets += _chain(alias.name)
                continue
            if node.level:
                base = module.split(".")
                if MODULES[module].name != "__init__.py":
                    base.pop()
                base = base[: len(base) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets += _chain(source)
            for alias in node.names:
                if f"{source}.{alias.name}" in MODULES:
                    targets.append(f"{source}.{alias.name}")
                elif alias.name in lazy.get(source, {}):
                    targets += _chain(lazy[source][alias.name])
        parents = set(_chain(module)[:-1])
        graph[module] = {t for t in targets if t in MODULES and t != module and t not in parents}
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_layers_are_known() -> None:
    # Guards the test itself: a rename must not silently move a module to another layer.
    assert layer("rm_service._result") == TYPES
    assert layer("rm_service.models._base") == MODELS
    assert layer("graders._judge") == layer("aggregators._base") == COMPONENTS
    assert layer("rm_service._runner") == layer("rm_service._config") == ENGINE
    assert layer("rm_service.app") == layer("rm_service.integrations.trl") == FACES
    assert layer("trainer._run") == TRAINER
    assert {"rm_service._result", "graders._base", "rm_service._runner"} <= set(MODULES)


def test_no_module_level_import_cycle() -> None:
    cycle = _find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_upward_import() -> None:
    upward = [
        f"{m} ({LAYER_NAMES[layer(m)]}) imports {t} ({LAYER_NAMES[layer(t)]})"
        for m, targets in sorted(import_graph().items())
        for t in sorted(targets)
        if layer(t) > layer(m)
    ]
    assert upward == []


def test_graph_sees_imports() -> None:
    # The checks above pass vacuously on an empty graph: pin a few edges that must be seen.
    graph = import_graph()
    assert "rm_service._result" in graph["graders._base"]
    assert "graders._base" in graph["rm_service._mapper"]
    assert "rm_service._runner" not in graph["rm_service"]  # lazy, so not module-level


def _fresh(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_result_types_load_alone() -> None:
    loaded = _fresh(
        "import sys, rm_service._result\n"
        "print(' '.join(m for m in sys.modules if m.split('.')[0] in "
        "('rm_service', 'graders', 'aggregators', 'trainer')))"
    ).split()
    assert "rm_service._result" in loaded
    assert [m for m in loaded if layer(m) != TYPES] == []


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_imports_alone(package: str) -> None:
    heavy = _fresh(
        f"import sys, {package}\n"
        "print(' '.join(m for m in ('torch', 'trl', 'transformers') if m in sys.modules))"
    )
    assert heavy == ""  # ``import trainer`` included: torch and TRL load on first use


def _defines(module: str, name: str) -> bool:
    """Whether ``module`` binds ``name`` at module level (read from source: nothing is imported)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            bound = {node.name}
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound = {t.id for t in targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.ImportFrom):
            bound = {a.asname or a.name for a in node.names}
        else:
            continue
        if name in bound:
            return True
    return False


@pytest.mark.parametrize("package", ["rm_service", "trainer"])
def test_every_lazy_name_resolves(package: str) -> None:
    mod = importlib.import_module(package)
    lazy: dict[str, str] = mod._LAZY
    assert set(lazy) <= set(mod.__all__)
    assert [f"{m}.{n}" for n, m in lazy.items() if not _defines(m, n)] == []
