"""Every command reports a failure in one form, ``sebra <command>: error: <message>``, with the statuses of
:mod:`sebra.cli.errors` (2 bad usage or config, 1 an input that cannot be used)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sebra import cli
from sebra.cli.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_USAGE, error_line, exit_status
from sebra.datasets.base import DatasetError, DatasetNotFoundError
from sebra.methods.checkpoints import CheckpointError


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
        (["rank", "--set", "model.init_args.max_steps=0"], "rank", EXIT_USAGE),
        # rank and demo run the built-in benchmark: another data module is refused, not silently ignored
        (["rank", "--set", "data.class_path=sebra.datasets.UrbanCarsDataModule"], "rank", EXIT_USAGE),
    ],
)
def test_each_command_fails_in_the_one_form(argv, command, status, tmp_path: Path, capsys) -> None:
    code = cli.main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == status
    assert f"sebra {command}: error: " in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (DatasetNotFoundError("no UrbanCars at /x"), EXIT_INPUT),
        (DatasetError("metadata.csv: column 'label' missing"), EXIT_INPUT),
        (CheckpointError("last.ckpt is truncated"), EXIT_INPUT),
        (ValueError("gap must be >= 1"), EXIT_USAGE),
        (KeyboardInterrupt(), EXIT_INTERRUPTED),
    ],
)
def test_the_status_follows_the_kind_of_failure_not_its_message(error: BaseException, status: int) -> None:
    assert exit_status(error) == status
