"""The benchmark config: LightningCLI's blocks, checks that name the file and key, overrides, building a run."""

from __future__ import annotations

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from sebra.bench.config import (
    BenchError,
    build_run,
    check_config,
    config_methods,
    default_config,
    load_config,
    parse_seeds,
    selection_rules,
)
from sebra.cli.config import ConfigError

from .helpers import CONFIG


def _write(tmp_path: Path, cfg: dict, name: str = "bad.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_seeds() -> None:
    assert parse_seeds("3") == [0, 1, 2] and parse_seeds("0,5,7") == [0, 5, 7] and parse_seeds("4,") == [4]
    for bad in ("0", "x", "1,1"):
        with pytest.raises(BenchError, match="--seeds"):
            parse_seeds(bad)


def test_optional_sections_are_filled_in(cfg) -> None:
    erm, jtt = cfg["methods"]["erm"], cfg["methods"]["jtt"]
    assert erm["bench"] == {"also_select": [], "confidence_ranker": {"budget_from": "sebra"}}
    assert jtt["bench"] == {"also_select": [], "confidence_ranker": None} and jtt["trainer"] == {}
    assert erm["model"]["class_path"] == "sebra.methods.erm.ERMModule"
    assert check_config(cfg, cfg["_path"]) == cfg  # checking a checked config changes nothing


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda c: c["methods"]["erm"]["model"].pop("class_path"),
            r"methods.erm.model.class_path is missing",
        ),
        (
            lambda c: c["methods"]["erm"]["model"]["init_args"].update(seed=1),
            r"methods.erm.model.init_args.seed is set per run",
        ),
        (
            lambda c: c["methods"].update(erm={"class_path": "x.Y", "init_args": {}}),
            r"methods.erm: unknown key\(s\) \['class_path', 'init_args'\].*goes under model:",
        ),
        (lambda c: c["methods"]["jtt"].update(bench={"also_select": ["val_magic"]}), r"bench.also_select"),
        (lambda c: c["methods"]["jtt"].update(bench={"also": 1}), r"methods.jtt.bench: unknown key\(s\)"),
        (
            lambda c: c["methods"]["erm"]["bench"].update(confidence_ranker={"budget_from": "nope"}),
            r"budget_from 'nope' is not a method of this config",
        ),
        (lambda c: c.update(extra=1), r"unknown top-level key\(s\) \['extra'\]"),
        (lambda c: c.update(methods={}), r"methods must be a non-empty mapping"),
        (
            lambda c: c["data"].update(init_args="batch_size=8"),
            r"data.init_args must be a mapping .*'batch_size=8'",
        ),
        (lambda c: c.update(trainer="cpu"), r"trainer must be a mapping"),
    ],
)
def test_layout_errors_name_the_file_and_key(tmp_path: Path, edit, match: str) -> None:
    broken = copy.deepcopy(CONFIG)
    edit(broken)
    path = _write(tmp_path, broken)
    with pytest.raises(ConfigError, match=match) as e:  # BenchError is a ConfigError
        load_config(path)
    assert str(e.value).startswith(f"{path}: ")


def test_overrides_use_lightning_cli_keys(tmp_path: Path) -> None:
    path = _write(tmp_path, CONFIG, "toy.yaml")
    cfg = load_config(
        path,
        [
            "methods.sebra.model.init_args.gap=3",
            "methods.erm.model.init_args.lr=1e-3",  # not in the file: an argument of ERMModule
            "trainer.precision=bf16-mixed",
            "methods.jtt.trainer.max_epochs=5",
            "methods.jtt.bench.also_select=[val_acc]",
        ],
    )
    assert cfg["methods"]["sebra"]["model"]["init_args"]["gap"] == 3
    assert cfg["methods"]["erm"]["model"]["init_args"]["lr"] == 0.001
    assert cfg["trainer"]["precision"] == "bf16-mixed" and cfg["methods"]["jtt"]["trainer"] == {
        "max_epochs": 5
    }
    assert cfg["methods"]["jtt"]["bench"]["also_select"] == ["val_acc"]
    with pytest.raises(
        ConfigError, match=r"methods.erm.model.init_args: ERMModule got an unexpected argument 'lrr'"
    ):
        load_config(path, ["methods.erm.model.init_args.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"unknown key 'methods.magic'"):
        load_config(path, ["methods.magic.model.init_args.lr=0.1"])


def test_the_shipped_config_loads_with_its_values() -> None:
    cfg = load_config(default_config("builtin"))
    raw = yaml.safe_load(default_config("builtin").read_text())
    for name, m in cfg["methods"].items():
        assert m["model"] == raw["methods"][name]["model"]
    assert cfg["methods"]["sebra_single_rank"]["model"]["init_args"] == {
        **cfg["methods"]["sebra"]["model"]["init_args"],
        "rank_by": "elimination",
        "rank_repeats": 1,
        "second_look_epochs": 0,
    }
    shipped = cfg["methods"]["sebra"]["model"]["init_args"]
    assert shipped["rank_by"] == "fused" and shipped["second_look_epochs"] == 3  # BENCHMARKS.md §7.9, §7.11
    assert cfg["methods"]["sebra_elimination"]["model"]["init_args"] == {
        **shipped,
        "rank_by": "elimination",
        "second_look_epochs": 0,
    }
    assert cfg["methods"]["sebra_fused"]["model"]["init_args"] == {**shipped, "second_look_epochs": 0}
    assert set(selection_rules(cfg).values()) == {"val_wga"}
    assert config_methods(cfg, "erm, sebra") == ["erm", "sebra"]
    with pytest.raises(BenchError, match=r"no method\(s\) \['nope'\]"):
        config_methods(cfg, "erm,nope")


def test_build_run_seeds_both_modules_and_names_a_refused_argument(cfg) -> None:
    dm, module = build_run(cfg, "sebra", seed=4)
    assert module.hparams.seed == 4 and dm.aug_generator.initial_seed() == 4
    bad = copy.deepcopy(cfg)
    bad["methods"]["jtt"]["model"]["init_args"]["upweigth"] = 4
    with pytest.raises(BenchError, match=r"toy.yaml: methods.jtt.model.init_args: JTTModule .*'upweigth'"):
        build_run(bad, "jtt", seed=0)
    bad["data"]["init_args"]["batchsize"] = 8
    with pytest.raises(BenchError, match=r"toy.yaml: data.init_args: .*'batchsize'"):
        build_run(bad, "erm", seed=0)


def test_build_run_seeds_a_method_that_takes_seed_through_kwargs(cfg, tmp_path) -> None:
    # RankUpsampledModule declares only its own arguments and hands seed on in **kwargs (to ERMModule, then
    # NetworkArgs): the run seed must still reach it (it once did not: every seed ran as seed 0)
    local = copy.deepcopy(cfg)
    table = pd.DataFrame({"index": [0], "label": [0], "rank": [1], "position": [1], "p_y": [0.9]})
    args = {**cfg["methods"]["erm"]["model"]["init_args"], "rankings": table}
    local["methods"]["up"] = {
        "model": {"class_path": "sebra.methods.rank_upsampled.RankUpsampledModule", "init_args": args},
        "trainer": {},
        "bench": {"also_select": [], "confidence_ranker": None},
    }
    for seed in (2, 5):
        _, module = build_run(local, "up", seed=seed)
        assert module.hparams.seed == seed and module.sample_generator.initial_seed() == seed


def test_build_run_seeds_a_data_module_whose_seed_it_hands_on(cfg) -> None:
    """The family module takes ``seed`` through ``**kwargs``: the run seed still reaches it, unless the config sets
    one."""
    cfg = copy.deepcopy(cfg)
    cfg["data"] = {"class_path": "sebra.datasets.family.FamilyDataModule", "init_args": {"batch_size": 8}}
    dm, _ = build_run(cfg, "erm", seed=4)
    assert dm.aug_generator.initial_seed() == 4 and dm.batch_size == 8
    cfg["data"]["init_args"]["seed"] = 9
    assert build_run(cfg, "erm", seed=4)[0].aug_generator.initial_seed() == 9
