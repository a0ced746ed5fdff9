"""The layer arrows: each package imports only from the layers below it.

core <- storage <- actors <- api, and drills / bench on top (they may import anything).
Imports inside functions count too: a lazy import is still an arrow, and the one from the
Supervisor to the drills made a cycle supervisor -> drills -> facade -> supervisor.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

FORBIDDEN: dict[str, frozenset[str]] = {
    "core": frozenset({"terminals", "storage", "actors", "api", "drills", "bench"}),
    "storage": frozenset({"actors", "api", "drills", "bench"}),
    "actors": frozenset({"api", "drills", "bench"}),
    "api": frozenset({"bench"}),
}

KNOWN: frozenset[tuple[str, str]] = frozenset({("actors/alerts.py", "api")})
"""Upward imports known and left for later: the alerts redact with `api.redact.Redactor`
(pure string code that belongs in `core`). Nothing may join this list."""


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """The top-level package of every absolute import in `path`, with its line."""
    found: set[tuple[str, int]] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update((alias.name.split(".")[0], node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_from_the_layers_above_it(package: str) -> None:
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for name, line in imported_packages(path)
        if name in FORBIDDEN[package] and (str(path.relative_to(ROOT)), name) not in KNOWN
    ]
    assert not wrong, wrong


def test_the_drills_are_a_top_level_package_above_the_facade() -> None:
    assert not (ROOT / "actors" / "drills").exists()
    assert (ROOT / "drills" / "__init__.py").is_file()


def module_graph() -> dict[str, set[str]]:
    """Every project module and the project modules it imports (lazily or not)."""
    packages = (*FORBIDDEN, "terminals", "drills", "bench")
    modules: dict[str, Path] = {}
    for package in packages:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                wanted = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                wanted = [alias.name for alias in node.names]
            else:
                continue
            targets.update(w for w in wanted if w in modules and w != name)
        graph[name] = targets
    return graph


def test_the_supervisor_reaches_neither_the_drills_nor_the_facade() -> None:
    graph = module_graph()
    seen: set[str] = set()
    todo = ["actors.supervisor"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph[module])
    assert not {m for m in seen if m.startswith("drills") or m == "actors.facade"}
