"""sebra/cli/dispatch.py: the ``sebra`` command's dispatch, usage and error messages; ``sebra demo`` and ``sebra rank`` quiet
by default and verbose on request (run on the tiny data set in place of the built-in benchmark)."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import pytest
from expected import TABLE_METRICS
from tiny_data import TINY_SEBRA

from sebra import cli
from sebra.cli import demo
from sebra.cli.results import COLUMNS


# ------------------------------------------------------------------------------------------------------ dispatch
@pytest.mark.parametrize("argv", [[], ["-h"], ["--help"]])
def test_usage_lists_every_command(argv: list[str], capsys) -> None:
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    for command in ("demo", "rank", "fit", "mitigate", "data verify", "inspect", "bench", "--verbose"):
        assert command in out


def test_dispatch_leaves_the_warning_filters_alone(capsys) -> None:
    # the noise filters live in console.quiet_lightning, scoped to the command (none under --verbose)
    before = list(warnings.filters)
    assert cli.main(["fitt"]) == 2
    assert warnings.filters == before


def test_unknown_command_is_exit_2_with_the_usage(capsys) -> None:
    assert cli.main(["fitt"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sebra: unknown command 'fitt'") and "usage: sebra <command>" in err


def test_data_needs_verify(capsys) -> None:
    assert cli.main(["data", "check"]) == 2
    assert "usage: sebra data verify <dataset> <root>" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "module", "name", "passed"),
    [
        (["demo", "--out", "x"], "sebra.cli.demo", "main", ["--out", "x"]),
        (["rank", "--seed", "1"], "sebra.cli.demo", "rank_main", ["--seed", "1"]),
        (["fit", "--config", "c.yaml"], "sebra.cli.fit", "main", ["--config", "c.yaml"]),
        (["data", "verify", "bar", "r"], "sebra.cli.verify", "main", ["bar", "r"]),
        (["inspect", "r.csv"], "sebra.cli.inspect", "main", ["r.csv"]),
        (["bench", "--dry-run"], "sebra.cli.bench", "main", ["--dry-run"]),
    ],
)
def test_each_command_reaches_its_entry_point(monkeypatch, argv, module, name, passed) -> None:
    import importlib

    seen = []
    monkeypatch.setattr(importlib.import_module(module), name, lambda args: seen.append(list(args)) or 5)
    assert cli.main(argv) == 5
    assert seen == [passed]


def test_a_refused_setting_is_one_message_exit_2_and_debug_shows_the_traceback(monkeypatch, capsys) -> None:
    def refuse(argv: list[str]) -> int:
        raise ValueError("SebraModule: gap must be >= 1 (an integer), got 0")

    monkeypatch.setattr(demo, "rank_main", refuse)
    assert cli.main(["rank"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sebra rank: error: SebraModule: gap must be >= 1") and "--debug" in err
    assert "Traceback" not in err
    with pytest.raises(ValueError, match="gap must be"):
        cli.main(["rank", "--debug"])
    monkeypatch.setenv("SEBRA_DEBUG", "1")
    with pytest.raises(ValueError, match="gap must be"):
        cli.main(["rank"])


def test_a_bug_is_not_dressed_as_a_setting_error(monkeypatch) -> None:
    def bug(argv: list[str]) -> int:
        raise TypeError("'NoneType' object is not subscriptable")

    monkeypatch.setattr(demo, "main", bug)
    with pytest.raises(TypeError):
        cli.main(["demo"])


@pytest.mark.parametrize("command", ["demo", "rank"])
def test_demo_and_rank_offer_verbose(command: str, capsys) -> None:
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0
    assert "--verbose" in capsys.readouterr().out


# ------------------------------------------------------------------------------- demo and rank, on the tiny data
@pytest.fixture
def tiny_builtin(monkeypatch) -> None:
    """The demo's and rank's built-in benchmark and settings replaced by the tiny data set and networks."""
    from sebra.bench.config import check_config
    from sebra.cli.config import apply_overrides

    tiny = {
        "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
        "methods": {
            "sebra": {
                "model": {"class_path": "sebra.methods.sebra.SebraModule", "init_args": dict(TINY_SEBRA)}
            },
            "erm": {
                "model": {
                    "class_path": "sebra.methods.erm.ERMModule",
                    "init_args": {"backbone": "test_resnet", "epochs": 2},
                }
            },
        },
    }
    monkeypatch.setattr(
        demo,
        "builtin_config",
        lambda path=None, sets=(): check_config(apply_overrides(tiny, sets), "tiny.yaml"),
    )


NOISE = ("GPU available", "TPU available", "Tip:", "will override existing callbacks")


def _quiet_output(capsys, caplog) -> tuple[str, str]:
    """The command's stdout and stderr, after checking that neither they nor the log hold Lightning's noise."""
    out = capsys.readouterr()
    for noise in NOISE:
        assert noise not in caplog.text + out.out + out.err, noise
    return out.out, out.err


def test_rank_is_quiet_but_keeps_the_ranking_steps(tmp_path: Path, tiny_builtin, capsys, caplog) -> None:
    caplog.set_level(logging.INFO)
    assert cli.main(["rank", "--out", str(tmp_path)]) == 0
    stdout, stderr = _quiet_output(capsys, caplog)
    assert "ranking step 1: eliminated" in caplog.text and "ranking step 2: eliminated" in caplog.text
    assert "Stage 1 ranking step 1/2 · batch 2/2 · " in stderr and "Stage 1: 2 ranking steps in" in stderr
    assert "Stage 1: 1 run(s), 2 ranking steps in" in stdout and (tmp_path / "rankings.csv").is_file()


def test_rank_verbose_shows_lightnings_messages(tmp_path: Path, tiny_builtin, capsys, caplog) -> None:
    caplog.set_level(logging.INFO)
    assert cli.main(["rank", "--out", str(tmp_path), "--verbose"]) == 0
    assert "GPU available" in caplog.text and "Tip:" in caplog.text


def test_demo_table_keeps_its_columns_and_heading(tmp_path: Path, tiny_builtin, capsys, caplog) -> None:
    caplog.set_level(logging.INFO)
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    stdout, stderr = _quiet_output(capsys, caplog)
    assert "Stage 2: 2 epochs in" in stderr and "ERM: 2 epochs in" in stderr
    lines = stdout.splitlines()
    head = lines.index(
        "Built-in benchmark (test split, checkpoint chosen by validation worst-group accuracy; accuracies in %;"
    )
    assert lines[head + 1] == (
        "gap_a = background conflict, gap_b = symbol conflict, gap_both = both, each minus I.D. accuracy)"
    )
    assert lines[head + 2].split() == [*TABLE_METRICS, "kendall_tau_b", "seconds"] == list(COLUMNS)
    assert lines[head + 3].split()[0] == "sebra" and lines[head + 4].split()[0] == "erm"
    assert lines[head + 4].split()[-2] == "-"  # ERM has no ranking
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert f"{summary['sebra']['worst_group_acc']:.2f}" == lines[head + 3].split()[1]
    assert f"{summary['erm']['seconds']:.2f}" == lines[head + 4].split()[-1]
