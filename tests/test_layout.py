"""The library's shape: no import cycles between its modules, not even through imports inside
functions (they only hide a cycle). Type-only imports (``if TYPE_CHECKING:``) are not edges.
And the operations tooling (``dags/seedfunnel_ops``) stays outside it: the library imports it only
inside the CLI commands that drive Airflow, and nothing imports a DAG file."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "pipelines"
DAGS = REPO / "dags"
OPS = "seedfunnel_ops"
#: (module, function) of the only imports of the operations tooling the library may hold.
OPS_IMPORTERS = {("pipelines.cli", "demo"), ("pipelines.cli", "cluster_demo")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:``."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", None)) == "TYPE_CHECKING":
            out |= {id(n) for n in ast.walk(node)}
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package's modules it imports (at module level or inside functions)."""
    paths = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = _type_checking_blocks(tree)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")
                if node.level:
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in paths else target)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        graph[name] = {d for d in deps if d in paths and d != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
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


def test_the_library_has_no_import_cycles():
    graph = import_graph()
    assert "pipelines.runner" in graph and "pipelines.quality.validate" in graph["pipelines.runner"]
    assert cycles(graph) == []


def test_quality_depends_on_the_rules_not_on_the_runner():
    graph = import_graph()
    quality = [m for m in graph if m.startswith("pipelines.quality")]
    assert quality and not any("pipelines.runner" in graph[m] for m in quality)
    assert "pipelines.windows" in graph["pipelines.quality.checks"]


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def _imports(path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, innermost enclosing function or None, line) of every absolute import in
    ``path``, ``importlib.import_module("...")`` with a literal name included."""
    out: list[tuple[str, str | None, int]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Import):
            out.extend((a.name, function, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.append((node.module, function, node.lineno))
            out.extend((f"{node.module}.{a.name}", function, node.lineno) for a in node.names)
        elif (
            isinstance(node, ast.Call)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            out.append((node.args[0].value, function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8")), None)
    return out


def _is(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def test_the_library_imports_the_ops_tooling_only_in_the_demo_commands():
    found = {
        (_module_name(path), function, line)
        for path in PACKAGE.rglob("*.py")
        for module, function, line in _imports(path)
        if _is(module, OPS)
    }
    offenders = sorted(f for f in found if f[:2] not in OPS_IMPORTERS)
    assert not offenders, f"the library imports {OPS} outside the CLI's demo commands: {offenders}"
    assert {f[:2] for f in found} == OPS_IMPORTERS  # the check sees the imports that are allowed


def test_nothing_imports_a_dag_file():
    # The DAG files are Airflow's to parse; the library and the tooling never import them.
    dag_modules = {p.stem for p in DAGS.glob("*.py")}
    assert {"seedfunnel_ingest", "seedfunnel_attribution"} <= dag_modules
    offenders = sorted(
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in [*PACKAGE.rglob("*.py"), *(DAGS / OPS).rglob("*.py")]
        for module, _, line in _imports(path)
        if any(_is(module, m) or _is(module, f"dags.{m}") for m in dag_modules) or module == "dags"
    )
    assert not offenders, offenders
