"""Every command reports a failure in one form, ``sebra <command>: error: <message>``, with the statuses of
:mod:`sebra.cli.errors` (2 bad usage or config, 1 an input that cannot be used)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sebra import cli
from sebra.cli.errors import EXIT_INPUT, EXIT_USAGE, error_line


def test_error_line_has_one_form() -> None:
    assert error_line("bench", "bad") == "sebra bench: error: bad"
    assert error_line("fit", "bad", traceback_hint=True).endswith("for the traceback)")


@pytest.mark.parametrize(
    ("argv", "command", "status"),
    [
        (["data", "verify", "urbancars", "{tmp}"], "data verify", EXIT_INPUT),
        (["inspect", "{tmp}/missing.csv"], "inspect", EXIT_INPUT),
        (["inspect", "{tmp}/missing.csv", "--k", "0"], "inspect", EXIT_USAGE),
        (["bench", "--dataset", "builtin", "--config", "{tmp}/missing.yaml"], "bench", EXIT_USAGE),
        (["mitigate", "--rankings", "{tmp}/r.csv"], "mitigate", EXIT_USAGE),
        (["fit", "--no-such-option", "1"], "fit", EXIT_USAGE),
    ],
)
def test_each_command_fails_in_the_one_form(argv, command, status, tmp_path: Path, capsys) -> None:
    code = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == status
    assert f"sebra {command}: error: " in err and "Traceback" not in err
