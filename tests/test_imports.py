"""The command-line wing's boundaries: the dispatcher is imported by nothing but the package's entry point, and the
core never imports the wing (data flows from the core to the commands, never back)."""

from __future__ import annotations

import ast
from pathlib import Path

import sebra

PACKAGE = Path(sebra.__file__).parent
#: The wings that are commands themselves and may use the command-line wing's shared parts.
COMMAND_WINGS = ("cli", "bench", "inspect")


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
    entry = PACKAGE / "cli" / "__init__.py"
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p != entry
        if {"sebra.cli.dispatch", "sebra.cli.main", "sebra.cli.dispatch.main"} & _imports(p)
    ]
    assert offenders == []


def test_the_core_never_imports_the_command_line_wing() -> None:
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] not in COMMAND_WINGS
        if any(m == "sebra.cli" or m.startswith("sebra.cli.") for m in _imports(p))
    ]
    assert offenders == []


def test_the_checks_see_an_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sebra.cli.dispatch import main\n    from sebra.cli.console import x\n")
    assert {"sebra.cli.dispatch", "sebra.cli.dispatch.main", "sebra.cli.console"} <= _imports(bad)
