"""The package's layout: one subpackage per concept of the data flow, and imports that only run down it.

docs/architecture.md draws the same picture; this test keeps the two true. It reads the imports from
the source (module-level and function-level alike), so it costs no torch import.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ecasweep"

#: what each part of the package may import (besides itself and the third-party libraries)
ALLOWED = {
    "errors": set(),
    "models": {"errors"},
    "engine": {"errors", "models", "__version__"},
    "spec": {"errors", "models", "engine"},
    "stats": {"errors", "spec"},
    "store": {"errors", "models", "engine", "spec"},
    "report": {"errors", "models", "engine", "spec", "stats", "store", "__version__"},
    "sweep": {"errors", "models", "engine", "spec", "stats", "store", "report"},
    "launch": {"errors", "models", "engine", "spec", "stats", "store", "sweep"},
    "bench": {"errors", "models", "engine", "spec", "stats", "store", "report", "sweep"},
    "cli": {"errors", "models", "engine", "spec", "stats", "store", "report", "sweep", "launch", "bench",
            "__version__"},
    "__main__": {"cli", "sweep"},
    "__init__": {"models"},
}


def _module(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _imports() -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    """Each module of the package -> the package's modules (or names) it imports."""
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = defaultdict(set)
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        package = module if path.name == "__init__.py" else module[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    target = package[: len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
                elif node.module and node.module.split(".")[0] == "ecasweep":
                    target = node.module.split(".")
                else:
                    continue
                for alias in node.names:
                    edges[tuple(module)].add(tuple(target) if len(target) > 1 else (*target, alias.name))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "ecasweep":
                        edges[tuple(module)].add(tuple(alias.name.split(".")))
    return edges


def _part(module: tuple[str, ...]) -> str:
    if len(module) == 1:
        return "__init__"
    return module[1]


def test_the_top_level_reads_as_the_architecture():
    entries = sorted(p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "_")) and p.name != "reference")
    assert len(entries) <= 12, entries
    parts = {p.removesuffix(".py") for p in entries}
    assert parts == set(ALLOWED) - {"__main__", "__init__"}, "a new top-level part needs its row in ALLOWED and in docs/architecture.md"
    for sub in PACKAGE.iterdir():
        if sub.is_dir() and (sub / "__init__.py").exists():
            doc = ast.get_docstring(ast.parse((sub / "__init__.py").read_text(encoding="utf-8")))
            assert doc and len(doc) > 40, f"{sub.name}/__init__.py says what the package holds"


def test_imports_only_run_down_the_data_flow():
    wrong = []
    for module, targets in _imports().items():
        source = _part(module)
        for target in targets:
            part = _part(target)
            if part != source and part not in ALLOWED[source]:
                wrong.append(f"{'.'.join(module)} imports {'.'.join(target)}")
    assert not wrong, "\n".join(sorted(wrong))


def test_the_allowed_imports_have_no_cycle():
    order: list[str] = []
    state: dict[str, str] = {}

    def visit(part: str, path: tuple[str, ...]) -> None:
        if state.get(part) == "done":
            return
        assert state.get(part) != "open", f"cycle: {' -> '.join(path + (part,))}"
        state[part] = "open"
        for dependency in ALLOWED.get(part, ()):
            visit(dependency, path + (part,))
        state[part] = "done"
        order.append(part)

    for part in ALLOWED:
        visit(part, ())
    assert order.index("models") < order.index("engine") < order.index("sweep") < order.index("cli")


@pytest.mark.parametrize("library", ["models", "engine", "spec", "stats", "store", "report", "sweep", "launch"])
def test_no_library_module_imports_the_cli_or_the_benchmarks(library):
    for module, targets in _imports().items():
        if _part(module) == library:
            assert not {_part(t) for t in targets} & {"cli", "bench"}, module


def test_the_architecture_page_names_every_part():
    page = (PACKAGE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    for part in set(ALLOWED) - {"__main__", "__init__", "errors"}:
        assert f"`{part}/`" in page, part
