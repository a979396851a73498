"""The package layout holds: no import cycle, a short top level.

The layers themselves are checked by import-linter (``lint-imports``, the
contract in pyproject.toml); these checks cover what it does not: cycles
between modules of one package, and TYPE_CHECKING or function-level imports
that form one.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dsg_lib"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every dsg_lib module ``name`` imports, wherever the import statement is."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in known:
                    found.add(sub)  # ``from package import submodule``
                elif target in known:
                    found.add(target)
    found.discard(name)
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_type_checking_and_function_level_imports_included() -> None:
    modules = _modules()
    known = set(modules)
    graph = {name: _imports(name, path, known) for name, path in modules.items()}
    # a package's __init__ re-exporting its modules is not a cycle; a module importing its
    # own package's __init__ back is
    assert _cycles(graph) == []


def test_the_top_of_the_package_holds_at_most_15_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 15, top


#: a comparison with a dialect name: ``backend == "postgresql"``, ``dialect in ("mysql", ...)``
_DIALECT_TEST = re.compile(
    r"""(==|!=|\bin\b|\bnot in\b)\s*\(?\s*["'](sqlite|postgresql|mysql|mariadb)["']"""
    r"""|["'](sqlite|postgresql|mysql|mariadb)["']\s*(==|!=|\bin\b)"""
)


def dialect_tests_outside_backends() -> list[str]:
    """``path:line`` of every dialect-name comparison in code outside ``backends/``."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] == "backends":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if _DIALECT_TEST.search(code) and not code.lstrip().startswith((">>>", "...")):
                found.append(f"{path.relative_to(PACKAGE)}:{number}")
    return found


def test_code_that_differs_by_database_lives_in_backends() -> None:
    found = dialect_tests_outside_backends()
    assert len(found) <= 5, found


def test_no_module_imports_the_private_modules_of_another_package() -> None:
    """A package's private modules are its own: others import what its ``__init__`` exports."""
    modules = _modules()
    known = set(modules)
    reaching = []
    for name, path in modules.items():
        own_package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for target in _imports(name, path, known):
            package, _, leaf = target.rpartition(".")
            if leaf.startswith("_") and package != "dsg_lib" and package != own_package:
                reaching.append(f"{name} -> {target}")
    assert reaching == []
