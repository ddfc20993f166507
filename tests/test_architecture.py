"""The floor plan holds: imports only point down, connectors stay apart, and no module borrows another app's page.

Read from the source (ast), every import counted: at module level, inside functions and under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The floors from the ground up (README "Architecture"): each may import itself and the floors below it.
FLOORS = ["iex", "transferlog", "billing", "connections", "scheduling", "dashboard"]
PROJECT = {*FLOORS, "sandbox", "bench", "tests"}
SYSTEMS = "connections.systems"


def modules(package: str) -> dict[str, Path]:
    """Every module of a top-level package, by dotted name."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(name: str, path: Path) -> list[tuple[str, bool]]:
    """(module imported, whether only for type checking) for every import statement of a module."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for statement in block.body
        for node in ast.walk(statement)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, id(node) in typing_only) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            # Relative imports are not used: every import names its floor. `from a.b import c` is recorded as
            # a.b.c, which is the module c or a name in a.b (project_imports tells which).
            base = "." * node.level + (node.module or "")
            found += [(f"{base}.{alias.name}", id(node) in typing_only) for alias in node.names]
    return found


def project_imports() -> list[tuple[str, str, bool]]:
    """(importer, imported project module, typing only) across every floor and the sandbox."""
    known = {name for package in PROJECT for name in modules(package)}
    edges = []
    for package in [*FLOORS, "sandbox"]:
        for name, path in modules(package).items():
            for imported, typing_only in imports(name, path):
                # `from a.b import c`: c is a module of a.b or a name in it.
                target = imported if imported in known else imported.rpartition(".")[0]
                if target.split(".")[0] in PROJECT:
                    edges.append((name, target, typing_only))
    return edges


EDGES = project_imports()


def top(module: str) -> str:
    return module.split(".")[0]


def test_the_walk_sees_the_project():
    assert len({importer for importer, _, _ in EDGES}) > 40
    assert ("connections.pipeline", "billing.usage", False) in EDGES


def test_imports_only_point_down():
    upward = [
        f"{importer} imports {imported}"
        for importer, imported, _ in EDGES
        if top(importer) in FLOORS
        and (top(imported) not in FLOORS or FLOORS.index(top(imported)) > FLOORS.index(top(importer)))
    ]
    assert upward == []


def test_the_ground_imports_no_app():
    assert [f"{a} imports {b}" for a, b, _ in EDGES if top(a) == "iex" and top(b) != "iex"] == []


def test_billing_never_imports_connections():
    assert [f"{a} imports {b}" for a, b, _ in EDGES if top(a) == "billing" and top(b) == "connections"] == []


def test_no_import_loop_between_top_level_packages():
    graph: dict[str, set[str]] = {}
    for importer, imported, _ in EDGES:
        if top(importer) != top(imported):
            graph.setdefault(top(importer), set()).add(top(imported))

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        return any(n == goal or (n not in seen and reaches(n, goal, seen | {n})) for n in graph.get(start, ()))

    assert [package for package in graph if reaches(package, package, set())] == []


def kind_of(module: str) -> str:
    """The connector a module belongs to ("" outside connections/systems/<kind>/)."""
    if not module.startswith(SYSTEMS + "."):
        return ""
    return module.split(".")[2]


def test_a_connector_imports_only_the_contract_the_common_format_and_small_helpers():
    """A connector meets the others only in the common format: no other connector, no page, no pipeline. The
    models it is handed (a Module, a Mapping) it names for type checking only."""
    allowed = {"connections.common", SYSTEMS}
    wrong = []
    for importer, imported, typing_only in EDGES:
        kind = kind_of(importer)
        if not kind or kind_of(imported) == kind or imported in allowed or imported.startswith("iex.lib."):
            continue
        if typing_only and imported == "connections.models":
            continue
        wrong.append(f"{importer} imports {imported}")
    assert wrong == []


def test_no_module_borrows_another_apps_page():
    """A page module (views) is imported by the root URLconf only; what two pages share lives below them."""
    borrowed = [
        f"{importer} imports {imported}"
        for importer, imported, _ in EDGES
        if imported.split(".")[-1] in {"views", "webhooks"}
        and top(imported) != top(importer)
        and importer != "dashboard.urls"
        and not imported.startswith(SYSTEMS)
    ]
    assert borrowed == []


def test_the_sandbox_is_standard_library_only():
    """It stands in for the outside world: nothing of IEX, and nothing to install."""
    stdlib = set(sys.stdlib_module_names)
    outside = []
    for name, path in modules("sandbox").items():
        for imported, _ in imports(name, path):
            if top(imported) not in stdlib and top(imported) != "sandbox":
                outside.append(f"{name} imports {imported}")
    assert outside == []


def test_every_import_is_absolute():
    relative = [
        f"{name} imports {imported}"
        for package in [*FLOORS, "sandbox"]
        for name, path in modules(package).items()
        for imported, _ in imports(name, path)
        if imported.startswith(".")
    ]
    assert relative == []


def test_the_walk_finds_imports_in_functions_and_for_type_checking(tmp_path):
    path = tmp_path / "example.py"
    path.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from connections.models import Module\n"
        "def f():\n    import billing.usage\n"
    )
    assert ("connections.models.Module", True) in imports("example", path)
    assert ("billing.usage", False) in imports("example", path)
