"""The import graph keeps its shape: no cycles, generators as siblings over one catalog, the
runtime free of the generators, and no module reaching into another package's private parts.

The graph is read from the source with ``ast`` (function-level imports included, ``if
TYPE_CHECKING:`` blocks left out, since they never run), so a lazy import cannot hide an edge.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import steadystream

SRC = Path(steadystream.__file__).resolve().parent
PKG = "steadystream"
GENERATORS = ("alerts", "dashboards", "runbooks")


def _modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        found[".".join([PKG, *parts])] = (path, is_pkg)
    return found


MODULES = _modules()


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nearest_module(name: str) -> str:
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str) -> Iterator[str]:
    """Every steadystream module ``module`` imports (``from pkg import submodule`` counts as
    importing the submodule; ``from pkg import name`` as importing ``pkg``)."""
    path, is_pkg = MODULES[module]
    package = module if is_pkg else module.rsplit(".", 1)[0]
    found: list[str] = []

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            if _is_type_checking(node.test):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            for alias in node.names:
                if alias.name == PKG or alias.name.startswith(PKG + "."):
                    found.append(_nearest_module(alias.name))

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not (target == PKG or target.startswith(PKG + ".")):
                return
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.append(full if full in MODULES else _nearest_module(target))

    Visitor().visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
    return (m for m in found if m != module)


GRAPH = {module: sorted(set(_imports(module))) for module in MODULES}


def _private_names(module: str) -> Iterator[str]:
    """``pkg.mod._name`` for every ``from pkg.mod import _name`` in ``module`` (a private
    function, class or constant, not a module) that runs."""
    path, is_pkg = MODULES[module]
    package = module if is_pkg else module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        if not target.startswith(PKG):
            continue
        for alias in node.names:
            full = f"{target}.{alias.name}"
            if (
                alias.name.startswith("_")
                and not alias.name.startswith("__")
                and full not in MODULES
            ):
                yield full


def _edges() -> Iterator[tuple[str, str]]:
    for module, targets in GRAPH.items():
        for target in targets:
            yield module, target


def _part(module: str) -> str:
    """The top-level part of steadystream a module belongs to (``alerts``, ``catalog``,
    ``generate``...); the package ``__init__`` is ``""``."""
    rest = module.removeprefix(PKG).removeprefix(".")
    return rest.split(".", 1)[0]


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    return out


def test_the_graph_sees_lazy_and_relative_imports() -> None:
    """The reader itself works: a function-level import and ``from . import x`` are edges."""
    assert "steadystream.catalog.classes" in GRAPH["steadystream.simulate._faults"]
    assert "steadystream.catalog.names" in GRAPH["steadystream.alerts._rules"]
    assert len(MODULES) > 60


def test_no_import_cycles() -> None:
    """No module can reach itself through imports, at module level or inside a function."""
    assert _cycles() == []


def test_generators_are_siblings_over_the_catalog() -> None:
    """alerts, dashboards and runbooks import the catalog, the spec and the conventions only:
    never one another, generate, triage, the demo, the instrumentation or the simulator."""
    allowed = {"catalog", "spec", "conventions"}
    bad = [
        (module, target)
        for module, target in _edges()
        if _part(module) in GENERATORS
        and _part(target) != _part(module)
        and _part(target) not in allowed
    ]
    assert bad == []


def test_catalog_sits_on_spec_and_conventions() -> None:
    """The catalog, the base of the generators, imports only the spec and the conventions."""
    bad = [
        (module, target)
        for module, target in _edges()
        if _part(module) == "catalog" and _part(target) not in {"catalog", "spec", "conventions"}
    ]
    assert bad == []


def test_importer_sits_between_cli_and_spec() -> None:
    """The importer (Sloth and OpenSLO files in) reads the spec and the conventions only, and
    only the CLI imports it."""
    bad = [
        (module, target)
        for module, target in _edges()
        if _part(module) == "importer" and _part(target) not in {"importer", "spec", "conventions"}
    ]
    bad += [
        (module, target)
        for module, target in _edges()
        if _part(target) == "importer" and _part(module) not in {"importer", "cli"}
    ]
    assert bad == []


def test_runtime_and_simulator_never_import_generators() -> None:
    """The instrumentation, the exporters and the spec never import a generator, the catalog or
    the simulator; the simulator never imports what it tests (it reads the failure-class
    registry in the catalog, which names the profile that reproduces each class)."""
    runtime = {"instrumentation", "exporters", "spec", "conventions"}
    generation = {*GENERATORS, "catalog", "generate", "triage", "demo", "cli", "importer"}
    bad = [
        (module, target)
        for module, target in _edges()
        if _part(module) in runtime and _part(target) in generation | {"simulate"}
    ]
    bad += [
        (module, target)
        for module, target in _edges()
        if _part(module) == "simulate"
        and _part(target) in {"instrumentation", *generation} - {"catalog"}
    ]
    assert bad == []


def test_no_module_imports_the_package_init() -> None:
    """Inside steadystream, nothing imports ``steadystream`` itself (its ``__init__`` is the
    public face, built from the parts, never a dependency of them)."""
    assert [module for module, target in _edges() if target == PKG] == []


def test_no_module_reaches_into_another_packages_private_modules() -> None:
    """A ``_private`` module is imported only from inside its own package."""
    bad = []
    for module, target in _edges():
        parts = target.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and part != "__main__":
                owner = ".".join(parts[:i])
                if not (module == owner or module.startswith(owner + ".")):
                    bad.append((module, target))
                break
    assert bad == []


def test_no_module_uses_another_packages_private_names() -> None:
    """A ``_private`` function, class or constant is used only inside its own package."""
    bad = []
    for module in MODULES:
        package = module if MODULES[module][1] else module.rsplit(".", 1)[0]
        for name in _private_names(module):
            owner = name.rsplit(".", 2)[0]
            if not (package == owner or package.startswith(owner + ".")):
                bad.append((module, name))
    assert bad == []


def test_instrumentation_layers_point_one_way() -> None:
    """providers/ needs nothing but the errors and the conventions; core/ never imports the
    policies, the Prometheus or OpenTelemetry sinks, the monitor or the active mode."""
    inst = f"{PKG}.instrumentation"
    bad = []
    for module, target in _edges():
        if module.startswith(f"{inst}.providers"):
            allowed = (f"{inst}.providers", f"{inst}.errors", f"{PKG}.conventions")
            if not target.startswith(allowed):
                bad.append((module, target))
        if module.startswith(f"{inst}.core"):
            forbidden = (
                f"{inst}.policy",
                f"{inst}.sinks.prometheus",
                f"{inst}.sinks.otel",
                f"{inst}.monitor",
                f"{inst}.active",
                f"{inst}.openai",
            )
            if target.startswith(forbidden):
                bad.append((module, target))
    assert bad == []


def test_runbooks_import_neither_simulator_nor_instrumentation() -> None:
    """Generating runbooks loads no part of the simulator or the instrumentation, as
    ``python -X importtime`` reports what a real interpreter imports."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import steadystream.runbooks"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()}
    assert "steadystream.runbooks" in imported
    assert (
        sorted(
            m
            for m in imported
            if m.startswith(("steadystream.simulate", "steadystream.instrumentation"))
        )
        == []
    )
