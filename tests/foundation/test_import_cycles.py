"""No import cycle inside ambient/: each module can be read (and loaded) before what uses it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(root: Path, path: Path, modules: set[str]) -> set[str]:
    """Modules of ambient/ this module imports at module level (TYPE_CHECKING blocks too)."""
    name = _module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    statements = list(ast.parse(path.read_text()).body)
    while statements:
        node = statements.pop()
        if isinstance(node, ast.If | ast.Try):  # `if TYPE_CHECKING:`, `try: import ...`
            statements += [*node.body, *node.orelse]
            statements += [s for h in getattr(node, "handlers", []) for s in h.body]
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                # `from a.b import c` imports the module a.b.c when there is one, else a.b.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return found & modules - {name}


def _cycles(root: Path) -> list[list[str]]:
    paths = sorted((root / "ambient").rglob("*.py"))
    modules = {_module_name(root, p) for p in paths}
    graph = {_module_name(root, p): _imports(root, p, modules) for p in paths}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph[module]):
            if state.get(imported) == 1:
                cycles.append([*path[path.index(imported) :], imported])
            elif imported not in state:
                visit(imported)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return cycles


def test_no_module_of_ambient_imports_itself_through_others() -> None:
    assert _cycles(ROOT) == []


def test_two_modules_importing_each_other_are_a_cycle_even_for_type_checking(
    tmp_path: Path,
) -> None:
    package = tmp_path / "ambient"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from ambient import b\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import x\n"
    )
    assert _cycles(tmp_path) == [["ambient.a", "ambient.b", "ambient.a"]]
