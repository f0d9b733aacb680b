"""No import cycle in the product: each module can be read (and loaded) before what uses it.

An import inside a function counts too: it hides a cycle from the loader, not from a reader."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.parsing import parsed

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [
    f"{d}/**/*.py" for d in ("ambient", "activities", "api", "mcp_server", "workflows", "bench")
]
PRODUCT.append("worker.py")


def _module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(root: Path, path: Path, modules: set[str]) -> set[str]:
    """Modules of the product this module imports, anywhere in it (TYPE_CHECKING blocks and
    function bodies too)."""
    name = _module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(parsed(path.read_text())):
        if isinstance(node, ast.Import):
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
    paths = sorted(p for part in PRODUCT for p in root.glob(part) if p.suffix == ".py")
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


def test_no_module_of_the_product_imports_itself_through_others() -> None:
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
