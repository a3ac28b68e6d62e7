"""No import cycles among the project's modules (console/, strategies/,
inventory/, sandbox/), and the layers import one way.

Every import counts, wherever it stands: a module-level one, one deferred
into a function and one under TYPE_CHECKING alike (a deferred import that
closes a loop hides the loop, it does not remove it). Importing `a.b.c`
also runs `a/__init__.py` and `a/b/__init__.py`, so an edge to a module is an
edge to the packages around it as well, except the importer's own (they
have started already when it runs)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("console", "inventory", "sandbox", "strategies")
Graph = dict[str, set[str]]


def modules(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file in the packages."""
    found = {}
    for package in PACKAGES:
        for file in sorted((root / package).rglob("*.py")):
            parts = list(file.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = file
    return found


def _imported(name: str, file: Path, node: ast.Import | ast.ImportFrom, known: dict[str, Path]) -> list[str]:
    """The modules an import statement names (absolute), before trimming."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        here = name.split(".") if file.name == "__init__.py" else name.split(".")[:-1]
        here = here[:len(here) - (node.level - 1)]
        base = ".".join(here + ([node.module] if node.module else []))
    # `from pkg import sub` imports the submodule; `from mod import name` the module
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]


def import_graph(known: dict[str, Path]) -> Graph:
    graph: Graph = {}
    for name, file in known.items():
        edges: set[str] = set()
        for node in ast.walk(ast.parse(file.read_text(), str(file))):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for target in _imported(name, file, node, known):
                parts = target.split(".")
                for n in range(len(parts), 0, -1):  # the module and the packages it runs first
                    head = ".".join(parts[:n])
                    if head in known and head != name and not name.startswith(head + "."):
                        edges.add(head)
        graph[name] = edges
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components with more than one module
    (Tarjan's algorithm, iterative: no recursion limit to meet)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
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
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_packages_have_no_import_cycles() -> None:
    assert cycles(import_graph(modules(ROOT))) == []


# Which package may import which: the console drives strategies, which drive
# the inventory's operations; the sandbox (a rehearsal fleet) builds on the
# inventory and only the console's `sandbox` subcommand uses it.
LAYERS = {("console", "strategies"), ("console", "inventory"), ("console", "sandbox"),
          ("strategies", "inventory"), ("sandbox", "inventory")}


def against_the_layers(graph: Graph) -> list[tuple[str, str]]:
    """Every import from one package into another that LAYERS does not allow."""
    return sorted((a, b) for a, targets in graph.items() for b in targets
                  if a.split(".")[0] != b.split(".")[0] and (a.split(".")[0], b.split(".")[0]) not in LAYERS)


def test_the_layers_import_one_way() -> None:
    assert against_the_layers(import_graph(modules(ROOT))) == []


def test_an_import_up_the_layers_is_found() -> None:
    graph: Graph = {"inventory.ssh": {"strategies.events"}, "sandbox.hosts": {"inventory.validate"},
                    "strategies.engine": {"console.session", "inventory.ssh"}}
    assert against_the_layers(graph) == [("inventory.ssh", "strategies.events"),
                                         ("strategies.engine", "console.session")]


def test_a_deferred_import_closing_a_loop_is_found(tmp_path: Path) -> None:
    """The finder itself: a loop closed inside a function, and one through a
    package's __init__, are both reported."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "inventory" / "a.py").write_text("from .b import x\n")
    (tmp_path / "inventory" / "b.py").write_text("def x():\n    from inventory.a import y\n")
    (tmp_path / "strategies" / "sub").mkdir()
    (tmp_path / "strategies" / "sub" / "__init__.py").write_text("from .m import z\n")
    (tmp_path / "strategies" / "sub" / "m.py").write_text("from ..outside import w\n")
    (tmp_path / "strategies" / "outside.py").write_text("from .sub.values import v\n")
    (tmp_path / "strategies" / "sub" / "values.py").write_text("v = 1\n")
    assert cycles(import_graph(modules(tmp_path))) == [
        ["inventory.a", "inventory.b"],
        ["strategies.outside", "strategies.sub", "strategies.sub.m"],
    ]
