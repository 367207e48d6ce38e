"""sebra/demo.py: ``sebra rank --set key=value`` (values read as YAML by sebra.config) reaches SebraModule; the demo's
table itself is checked in tests/test_cli.py, its reference lines in tests/benchmarks/test_reference.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from sebra import cli, demo
from sebra.presets import BUILTIN_SEBRA


class _Stop(Exception):
    pass


@pytest.fixture
def built(monkeypatch) -> list[dict]:
    """The SebraModule arguments ``sebra rank`` builds with (it stops there: nothing is trained)."""
    seen: list[dict] = []

    def capture(**kwargs: object) -> None:
        seen.append(kwargs)
        raise _Stop

    monkeypatch.setattr(demo, "BuiltinDataModule", lambda root=None, **kwargs: None)
    monkeypatch.setattr(demo, "SebraModule", capture)
    return seen


def test_rank_settings_are_typed_and_override_the_shipped_ones(built: list[dict], tmp_path: Path) -> None:
    sets = [
        "p_critical=0.9",
        "max_steps=20",
        "compile=true",
        "rank_bins=null",
        "scoring=full",
        "rank_lr=1e-3",
    ]
    with pytest.raises(_Stop):
        demo.rank_main(["--out", str(tmp_path), "--seed", "3", "--set", *sets])
    typed = {
        "p_critical": 0.9,
        "max_steps": 20,
        "compile": True,
        "rank_bins": None,
        "scoring": "full",
        "rank_lr": 1e-3,
    }
    # the shipped settings, the typed overrides, Stage 1 only and the command's seed
    assert built == [{**BUILTIN_SEBRA, **typed, "rank_only": True, "seed": 3}]


@pytest.mark.parametrize("bad", ["gap", "=3"])
def test_a_setting_without_key_or_equals_sign_is_refused(bad: str, built: list[dict], capsys) -> None:
    assert cli.main(["rank", "--set", bad]) == 2
    assert "sebra rank: error: --set: expected key=value" in capsys.readouterr().err
    assert built == []  # refused before anything was built
