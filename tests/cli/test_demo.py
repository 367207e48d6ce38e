"""sebra/cli/demo.py: ``sebra rank`` / ``sebra demo`` read the benchmark config and ``--set key=value`` overrides (dotted
as in the config and ``sebra fit``; values read as YAML by sebra.cli.config) into what they build; the demo's table itself
is checked in tests/cli/test_dispatch.py, its reference lines in tests/benchmarks/test_reference.py."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sebra import cli
from sebra.bench.presets import BUILTIN_DATA, BUILTIN_SEBRA, builtin_config
from sebra.cli import demo


class _Stop(Exception):
    pass


@pytest.fixture
def built(monkeypatch) -> list[dict]:
    """What ``sebra rank`` / ``demo`` hand the one schema to build (the run builder ``sebra bench`` uses): the data
    module's arguments (without ``root`` and ``data_seed``, the machine's folder and the benchmark's rendering), the
    method's, and the seed; it stops there: nothing is trained."""
    seen: list[dict] = []

    def capture(cfg: dict, method: str, seed: int) -> None:
        data = dict(cfg["data"]["init_args"])
        assert data.pop("root") is None and data.pop("data_seed") == 0
        seen.extend([data, {**cfg["methods"][method]["model"]["init_args"], "seed": seed}])
        raise _Stop

    monkeypatch.setattr(demo, "build_run", capture)
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
    assert built == [BUILTIN_DATA, {**BUILTIN_SEBRA, **typed, "rank_only": True, "seed": 3}]


def test_dotted_keys_reach_the_data_module_and_the_model(built: list[dict], tmp_path: Path) -> None:
    sets = ["data.init_args.batch_size=64", "methods.sebra.model.init_args.gap=3"]
    with pytest.raises(_Stop):
        demo.main(["--out", str(tmp_path), "--set", *sets])
    assert built == [{**BUILTIN_DATA, "batch_size": 64}, {**BUILTIN_SEBRA, "gap": 3, "seed": 0}]


def test_a_config_file_replaces_the_packaged_one(built: list[dict], tmp_path: Path) -> None:
    cfg = builtin_config()
    cfg["methods"]["sebra"]["model"]["init_args"]["beta_inv"] = 0.5
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(_Stop):
        demo.rank_main(["--out", str(tmp_path), "--config", str(path)])
    assert built[1]["beta_inv"] == 0.5 and built[1]["p_critical"] == BUILTIN_SEBRA["p_critical"]


def test_a_config_file_is_checked_as_the_bench_checks_it(tmp_path: Path) -> None:
    cfg = builtin_config()
    assert cfg["methods"]["oracle"]["bench"] == {"also_select": [], "confidence_ranker": None}  # filled in
    cfg["extra"] = 1
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="unknown top-level key"):
        builtin_config(path)


def test_an_unknown_key_is_one_message_naming_it(built: list[dict], capsys) -> None:
    assert cli.main(["demo", "--set", "methods.sebra.model.init_args.no_such_thing=1"]) == 2
    err = capsys.readouterr().err
    assert (
        "sebra demo: error: "
        f"{builtin_config()['_path']}: methods.sebra.model.init_args: SebraModule got an "
        "unexpected argument 'no_such_thing'" in err
    )
    assert built == []


@pytest.mark.parametrize("bad", ["gap", "=3"])
def test_a_setting_without_key_or_equals_sign_is_refused(bad: str, built: list[dict], capsys) -> None:
    assert cli.main(["rank", "--set", bad]) == 2
    assert "sebra rank: error: --set: expected key=value" in capsys.readouterr().err
    assert built == []  # refused before anything was built


@pytest.mark.parametrize("ranker", ["erm_conf", "error_set"])
def test_rank_by_a_simpler_ranker_writes_the_same_checked_table(
    ranker, monkeypatch, tmp_path, capsys
) -> None:
    from tiny_data import TinyDataModule

    from sebra.export import load_rankings
    from sebra.methods import ERMModule

    def tiny(cfg: dict, method: str, seed: int) -> tuple:
        assert method == "erm" and cfg["methods"]["erm"]["model"]["init_args"]["epochs"] == 1  # --epoch 1
        return TinyDataModule(batch_size=8), ERMModule(backbone="test_resnet", epochs=1, seed=seed)

    monkeypatch.setattr(demo, "build_run", tiny)
    assert demo.rank_main(["--out", str(tmp_path), "--ranker", ranker, "--epoch", "1"]) == 0
    table = load_rankings(tmp_path / "rankings.csv")  # the one checked format
    assert len(table) == 16 and f"rankings: {tmp_path / 'rankings.csv'}" in capsys.readouterr().out
    for _, cls in table.groupby("label"):
        cls = cls.sort_values("position")
        if ranker == "erm_conf":  # one sample per rank, most confident first
            assert (cls["rank"] == cls["position"]).all() and cls["p_y"].is_monotonic_decreasing
        else:  # two levels: correct first, then the error set
            assert set(cls["rank"]) <= {1, 2} and cls["rank"].is_monotonic_increasing


def test_rank_refuses_an_epoch_below_one(tmp_path) -> None:
    assert cli.main(["rank", "--out", str(tmp_path), "--ranker", "erm_conf", "--epoch", "0"]) == 2
