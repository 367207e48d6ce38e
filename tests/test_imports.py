"""The command dispatcher is imported by nothing in the package: commands depend on the core, never on ``sebra.cli``."""

from __future__ import annotations

import ast
from pathlib import Path

import sebra

PACKAGE = Path(sebra.__file__).parent


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def test_no_module_imports_the_dispatcher() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "cli.py" or p.parent != PACKAGE
        if {"sebra.cli", "sebra.cli.main", "sebra.cli.debug_requested"} & _imports(p)
    ]
    assert offenders == []


def test_the_check_sees_an_import_of_the_dispatcher(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sebra.cli import debug_requested\n")
    assert "sebra.cli" in _imports(bad)
