"""The layout's promises: task configs load without the heavy libraries, and no serl module imports
itself back at import time."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("jax", "flax", "orbax", "mujoco")
PROBE = f"""
import sys
HEAVY = {HEAVY!r}
def heavy():
    return sorted(m for m in sys.modules if m.split(".")[0] in HEAVY and "." not in m)
import serl.envs.contract
print("serl.envs.contract", heavy())
import experiments
for name in experiments.names():
    experiments.load(name)
    print(f"experiments.load({{name!r}})", heavy())
"""


@pytest.mark.timeout(120)
def test_contract_and_task_configs_import_no_jax_flax_orbax_or_mujoco():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         timeout=100)
    assert out.returncode == 0, out.stderr
    heavy = [line for line in out.stdout.splitlines() if not line.endswith("[]")]
    assert not heavy, (
        "imported a heavy library (the first line that shows it names the culprit):\n"
        + ("\n".join(heavy))
    )


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_type_checking(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(test)


def imports(tree: ast.Module, module: str, is_package: bool, top_level_only: bool):
    """(imported module or `from` base, imported names) for each import of `module`: at import time
    only (module and class bodies, not functions, not `if TYPE_CHECKING`), or anywhere."""
    package = module if is_package else module.rpartition(".")[0]
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        if top_level_only and (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                               or is_type_checking(node)):
            continue
        if isinstance(node, ast.Import):
            yield from ((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            yield base, tuple(alias.name for alias in node.names)
        stack.extend(ast.iter_child_nodes(node))


def import_graph(top_level_only: bool) -> dict[str, set[str]]:
    """serl module -> the serl modules it imports."""
    files = {module_name(p): p for p in (ROOT / "serl").rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        edges = graph.setdefault(name, set())
        tree = ast.parse(path.read_text(), str(path))
        for base, names in imports(tree, name, path.name == "__init__.py", top_level_only):
            subs = [f"{base}.{n}" for n in names if f"{base}.{n}" in files]
            edges.update(subs or ([base] if base in files else []))
        edges.discard(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle_among_serl_modules_at_import_time():
    found = cycles(import_graph(top_level_only=True))
    assert not found, "import cycles among serl modules:\n" + "\n".join(map(" <-> ".join, found))


def test_no_import_cycle_among_serl_modules_even_through_function_level_imports():
    """A cycle closed by an import inside a function runs, but still tangles the two modules."""
    found = cycles(import_graph(top_level_only=False))
    assert not found, "import cycles (function-level imports included):\n" + "\n".join(
        map(" <-> ".join, found))


def test_the_architecture_page_names_only_files_that_exist():
    """docs/architecture.md walks a frame through the code by file name: it must stay true."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    named = set(re.findall(r"\b((?:serl|robot_servers|experiments)/[\w/]+\.py)\b", text))
    assert len(named) > 30, "the page names the files a frame passes"
    missing = sorted(p for p in named if not (ROOT / p).is_file())
    assert not missing, f"docs/architecture.md names files that do not exist: {missing}"
