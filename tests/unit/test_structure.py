"""The package's imports run one way: no module of ``splade`` imports,
directly or through others, a module that imports it back (imports inside
functions included: an import hidden in a function is still a circle), nor
does a folder (a sub-package counted as one module); the floors, from the
ground: ``distributed``, ``workarounds/`` (patches of the libraries),
``engines/``, ``configuration``, the parts, ``checks`` and ``experiment``"""

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "splade"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, modules: set[str]) -> set[str]:
    """The package's modules that `path` imports, anywhere in its code"""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for target in targets:
            # "from splade import x" names the module splade.x when it exists
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != "splade":
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported(path, modules) for path in paths}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)"""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
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

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_graph_sees_the_package():
    graph = import_graph()
    assert "splade.configuration" in graph["splade.experiment"]
    assert "splade.workarounds.xpmir" in graph


def test_no_import_circle():
    assert cycles(import_graph()) == []


def folder(module: str) -> str:
    """The module, or the folder (sub-package of ``splade``) it is in"""
    return ".".join(module.split(".")[:2])


def folder_graph() -> dict[str, set[str]]:
    """The import graph with each folder counted as one module"""
    graph: dict[str, set[str]] = {}
    for module, imports in import_graph().items():
        targets = graph.setdefault(folder(module), set())
        targets.update(folder(target) for target in imports)
        targets.discard(folder(module))
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    """What a module imports, directly or through others"""
    seen, stack = set(), [start]
    while stack:
        for target in graph.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def test_no_circle_between_folders():
    assert cycles(folder_graph()) == []


def test_the_ground_floors():
    """The engines import only the work-arounds (patches of libraries),
    which import only ``distributed`` (torch), which imports nothing"""
    graph = folder_graph()
    assert reachable(graph, "splade.distributed") == set()
    assert reachable(graph, "splade.workarounds") <= {"splade.distributed"}
    assert reachable(graph, "splade.engines") <= {
        "splade.workarounds",
        "splade.distributed",
    }


def test_configuration_is_at_the_bottom():
    """configuration.py, where ConfigurationError and the choices live,
    imports only the engines' registry (their names and settings)"""
    assert import_graph()["splade.configuration"] == {"splade.engines"}


def test_private_names_stay_in_their_folder():
    """No module imports an underscored name from another folder's module
    (private names are used inside their package only), and every module of
    the engines declares its public names (``__all__``)"""
    modules = set(import_graph())
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and not node.level:
                source = node.module or ""
                if source in modules and folder(source) != folder(name):
                    private = [a.name for a in node.names if a.name.startswith("_")]
                    assert not private, (name, source, private)
        if name.startswith("splade.engines"):
            declared = [
                node
                for node in tree.body
                if isinstance(node, ast.Assign)
                and any(getattr(t, "id", None) == "__all__" for t in node.targets)
            ]
            assert declared, f"{name} does not declare __all__"
