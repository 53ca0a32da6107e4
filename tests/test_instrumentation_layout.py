"""The instrumentation's layout holds: an acyclic import graph, no reach-ins to private names,
no module importing the package ``__init__``, and the layers importing downwards only."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import steadystream

SRC = Path(steadystream.__file__).parent.parent
#: The part of the package this test keeps honest (the generators have their own).
SCOPE = (
    "steadystream.instrumentation",
    "steadystream.exporters",
    "steadystream.testing",
    "steadystream.spec",
    "steadystream.conventions",
    "steadystream.version",
)
#: Where no module may import another module's private name (spec/ and the generators are
#: kept by their own tests).
_OWN_NAMES = ("steadystream.instrumentation", "steadystream.exporters", "steadystream.testing")


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in (SRC / "steadystream").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = (path, is_pkg)
    return out


MODULES = _modules()


def _in_scope(name: str) -> bool:
    return any(name == s or name.startswith(s + ".") for s in SCOPE)


def _imports(name: str) -> Iterator[tuple[str, str | None]]:
    """(imported module, imported name or None) for every import of ``name`` that runs (at
    module level or in a function), leaving out ``if TYPE_CHECKING:`` blocks."""
    path, is_pkg = MODULES[name]
    package = name if is_pkg else name.rpartition(".")[0]
    found: list[tuple[str, str | None]] = []

    class Visitor(ast.NodeVisitor):
        def visit_If(self, node: ast.If) -> None:
            test = node.test
            if (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
                isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
            ):
                for child in node.orelse:
                    self.visit(child)
                return
            self.generic_visit(node)

        def visit_Import(self, node: ast.Import) -> None:
            found.extend((alias.name, None) for alias in node.names)

        def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.extend((module, alias.name) for alias in node.names)

    Visitor().visit(ast.parse(path.read_text()))
    yield from found


def _target(module: str, name: str | None) -> str | None:
    """The steadystream module an import loads (a submodule when ``name`` is one)."""
    if not module.startswith("steadystream"):
        return None
    if name is not None and f"{module}.{name}" in MODULES:
        return f"{module}.{name}"
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    return module or None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for name in MODULES:
        if not _in_scope(name):
            continue
        edges = graph.setdefault(name, set())
        for module, imported in _imports(name):
            target = _target(module, imported)
            if target is not None and target != name:
                edges.add(target)
    return graph


def test_no_import_cycle() -> None:
    """No cycle among the instrumentation, exporters, testing, spec and conventions modules."""
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == []


def test_no_module_imports_the_package_init() -> None:
    """Inside the package, only ``steadystream/__init__`` may not be imported: it imports them."""
    offenders = [
        name
        for name in [*(n for n in MODULES if _in_scope(n)), "steadystream.cli"]
        for module, imported in _imports(name)
        if _target(module, imported) == "steadystream"
    ]
    assert offenders == []


def test_no_reach_into_private_names() -> None:
    """No module imports another package's private module, and no module of the
    instrumentation, exporters or testing imports another module's ``_private`` name."""
    offenders = []
    for name in MODULES:
        if not _in_scope(name):
            continue
        for module, imported in _imports(name):
            if not module.startswith("steadystream"):
                continue
            target = _target(module, imported)
            private_module = any(
                part.startswith("_") and not part.startswith("__")
                for part in (target or "").split(".")
            )
            if private_module and target is not None:
                owner = target.rpartition(".")[0]
                if not (name == owner or name.startswith(owner + ".")):
                    offenders.append(f"{name} -> {target}")
            if (
                not name.startswith(_OWN_NAMES)
                or target is None
                or not target.startswith(_OWN_NAMES)
            ):
                continue
            if (
                imported is not None
                and imported.startswith("_")
                and not imported.startswith("__")
                and target != name
            ):
                offenders.append(f"{name} -> {module}.{imported}")
    assert offenders == []


def test_layers_point_one_way() -> None:
    """providers/ needs nothing but errors and conventions; core/ never imports the policies,
    the Prometheus or OpenTelemetry sinks, the monitor or the active mode."""
    graph = _graph()
    inst = "steadystream.instrumentation"
    for name, targets in graph.items():
        if name.startswith(f"{inst}.providers"):
            allowed = (f"{inst}.providers", f"{inst}.errors", "steadystream.conventions")
            assert all(t.startswith(allowed) for t in targets), (name, targets)
        if name.startswith(f"{inst}.core"):
            forbidden = (
                f"{inst}.policy",
                f"{inst}.sinks.prometheus",
                f"{inst}.sinks.otel",
                f"{inst}.monitor",
                f"{inst}.active",
                f"{inst}.openai",
            )
            assert not any(t.startswith(forbidden) for t in targets), (name, targets)
