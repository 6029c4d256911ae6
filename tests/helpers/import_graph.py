"""The package's import graph, read from the source with ``ast`` (nothing is imported).

Every ``import`` statement counts, wherever it is: at module level, inside a function, under
``if TYPE_CHECKING``. An import hidden inside a function still couples two modules both ways, so
a cycle through it is a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path
from typing import Iterator

Graph = dict[str, set[str]]  # module -> modules of the same package it imports


def module_names(package_dir: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py file under ``package_dir``."""
    root = package_dir.parent
    names = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def _resolve_relative(module: str, is_package: bool, level: int, target: str | None) -> str:
    """``from ..x import y`` inside ``module`` -> the absolute name of ``..x``."""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (level - 1)] if level > 1 else base
    return ".".join(base + ([target] if target else []))


def _imported_modules(node: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """Package modules an import statement loads by name.

    ``from a import b`` means the submodule ``a.b`` when there is one, otherwise the name ``b``
    defined in ``a``; ``import a.b.c`` and names below a module (``a.b.func``) map to their module.
    """
    if isinstance(node, ast.Import):
        targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
        source = _resolve_relative(module, is_package, node.level, node.module) if node.level else node.module
        targets = [f"{source}.{alias.name}" for alias in node.names]
    else:
        return
    for name in targets:
        owner = _owning_module(name, known)
        if owner is not None:
            yield owner


def _owning_module(name: str, known: set[str]) -> str | None:
    """The longest known module that ``name`` is or lies inside (``a.b.func`` -> ``a.b``)."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph(package_dir: Path) -> Graph:
    """Edges from each module to the package modules it imports, at any nesting depth."""
    files = module_names(package_dir)
    known = set(files)
    graph: Graph = {name: set() for name in files}
    for module, path in files.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            for target in _imported_modules(node, module, is_package, known):
                if target != module:
                    graph[module].add(target)
    return graph


def find_cycles(graph: Graph) -> list[list[str]]:
    """One cycle (as a closed path ``a -> b -> a``) per strongly connected component with one."""
    cycles = []
    for component in _strongly_connected_components(graph):
        if len(component) > 1:
            cycles.append(_cycle_inside(graph, component))
    return sorted(cycles)


def _strongly_connected_components(graph: Graph) -> list[set[str]]:
    """Tarjan's algorithm, iterative (the graph is small, but recursion depth is not ours to spend)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _cycle_inside(graph: Graph, component: set[str]) -> list[str]:
    """A shortest closed path through the component's smallest module (breadth-first)."""
    start = min(component)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        next_frontier = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return path[::-1] + [start]
                if child not in parents:
                    parents[child] = node
                    next_frontier.append(child)
        frontier = next_frontier
    raise AssertionError(f"no cycle in component {sorted(component)}")


def layer_of(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: ``pkg.detection.backbone`` -> ``detection``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "(package)"


def forbidden_imports(graph: Graph, allowed: dict[str, set[str]]) -> list[str]:
    """``"a -> b (a.x imports b.y)"`` for every import between layers that ``allowed`` does not permit.

    ``allowed[a]`` is the set of layers that modules of layer ``a`` may import; a layer missing from
    the table may import nothing, so a new subpackage has to be placed in the table to be used.
    """
    problems = []
    for module in sorted(graph):
        for target in sorted(graph[module]):
            source_layer, target_layer = layer_of(module), layer_of(target)
            if source_layer != target_layer and target_layer not in allowed.get(source_layer, set()):
                problems.append(f"{source_layer} -> {target_layer} ({module} imports {target})")
    return problems
