"""The streaming_metrics modules import each other without a circle."""

from __future__ import annotations

import ast
from pathlib import Path

import streaming_metrics

PACKAGE = "streaming_metrics"
SOURCE = Path(streaming_metrics.__file__).parent
MODULES = {path.stem for path in SOURCE.glob("*.py")}


def _targets(node: ast.Import | ast.ImportFrom) -> set[str]:
    """The package's modules an import statement names (``__init__`` for the package)."""
    found: set[str] = set()
    if isinstance(node, ast.Import):
        for alias in node.names:
            parts = alias.name.split(".")
            if parts[0] == PACKAGE:
                found.add(parts[1] if len(parts) > 1 else "__init__")
        return found
    if node.level:
        base = [PACKAGE, *(node.module.split(".") if node.module else [])]
    elif node.module is not None and node.module.split(".")[0] == PACKAGE:
        base = node.module.split(".")
    else:
        return found
    if len(base) > 1:
        found.add(base[1])
        return found
    for alias in node.names:
        # `from streaming_metrics import definitions` names a module; any other name
        # comes from the package's __init__.
        found.add(alias.name if alias.name in MODULES else "__init__")
    return found


def _imports(module: str) -> tuple[set[str], set[str]]:
    """(modules imported at module level, TYPE_CHECKING blocks included; modules
    imported inside a function body, at call time)."""
    tree = ast.parse((SOURCE / f"{module}.py").read_text(encoding="utf-8"))
    top: set[str] = set()
    deferred: set[str] = set()

    def walk(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                (deferred if in_function else top).update(_targets(child) - {module})
            walk(
                child,
                in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef),
            )

    walk(tree, in_function=False)
    return top, deferred


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle in ``graph`` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_cycle_finder_sees_a_circle() -> None:
    """The checker itself reports a circle through TYPE_CHECKING-style edges."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_module_level_imports_are_acyclic() -> None:
    """No circle among the modules' top-level imports, TYPE_CHECKING imports included
    (a type-only circle still ties the modules together for the reader and for mypy)."""
    graph = {module: _imports(module)[0] for module in MODULES}
    assert _cycle(graph) is None


def test_call_time_imports_are_the_known_one() -> None:
    """The only import done inside a function is StreamTimer's reach for the default
    instance (``metrics=None``): the default instance is a StreamingMetrics, whose
    ``timer()`` builds StreamTimers, so one of the two must be resolved at call time.
    A new call-time import would hide a circle from the test above."""
    deferred = {module: sorted(_imports(module)[1]) for module in MODULES}
    assert {module: found for module, found in deferred.items() if found} == {"timer": ["_default"]}
