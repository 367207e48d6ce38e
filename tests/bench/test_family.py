"""``sebra bench --family``: lanes per variant merged into one tidy family.csv, same-budget rows derived across
lanes, the config's data block swapped for the variant's."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pandas as pd
import pytest

from sebra.bench.family import FAMILY_COLUMNS, family_config, merge_family, run_family
from sebra.bench.presets import builtin_config
from sebra.bench.store import lane_file

from .helpers import CONFIG, FakeRun


def test_family_config_swaps_only_the_data_block() -> None:
    cfg = builtin_config()
    v = family_config(cfg, "patch-tint")
    assert v["data"]["class_path"] == "sebra.datasets.family.FamilyDataModule"
    assert v["data"]["init_args"]["variant"] == "patch-tint"
    kept = {k: x for k, x in cfg["data"]["init_args"].items() if k not in ("root", "data_seed")}
    assert v["data"]["init_args"] == {
        **kept,
        "variant": "patch-tint",
    }  # the base options pass through **kwargs
    assert {"batch_size", "eval_batch_size", "image_size", "augment"} <= set(kept)
    assert v["methods"] == family_config(cfg, "builtin")["methods"]  # one configuration for every variant
    assert v["methods"]["sebra"]["model"] == cfg["methods"]["sebra"]["model"]
    with pytest.raises(ValueError, match="unknown benchmark variant"):
        family_config(cfg, "nope")


def _lane(cfg: dict, out: Path, methods: list[str], variants: list[str], lane: str, fake: FakeRun) -> None:
    run_family(
        cfg,
        methods,
        [0, 1],
        variants,
        out=out,
        runs_dir=out.parent / "runs",
        lane=lane,
        progress=False,
        run_fn=fake,
    )


def test_lanes_merge_into_one_table_with_roles_and_cross_lane_same_budget(tmp_path: Path) -> None:
    cfg = copy.deepcopy(CONFIG)
    out = tmp_path / "family.csv"
    runs = tmp_path / "runs"
    # lane a runs ERM on two variants, lane b Sebra on one of them: the same-budget ranker needs both
    _lane(cfg, out, ["erm"], ["builtin", "border-faintblur"], "a", FakeRun())
    fam = pd.read_csv(out)
    assert list(fam.columns) == list(FAMILY_COLUMNS)
    assert "erm_conf_same_budget" not in set(fam["method"])
    _lane(cfg, out, ["sebra"], ["border-faintblur"], "b", FakeRun())
    fam = pd.read_csv(out)
    assert set(fam["variant"]) == {"builtin", "border-faintblur"}
    assert set(fam.loc[fam["variant"] == "builtin", "role"]) == {"dev"}
    assert set(fam.loc[fam["variant"] == "border-faintblur", "role"]) == {"spent"}  # its registry role
    sb = fam[(fam["method"] == "erm_conf_same_budget") & (fam["variant"] == "border-faintblur")]
    assert sorted(sb["seed"].unique()) == [0, 1]  # derived from ERM (lane a) and Sebra's budget (lane b)
    assert sb[sb["metric"] == "budget_steps"].sort_values("seed")["value"].tolist() == [5.0, 6.0]
    assert not fam.duplicated(["variant", "method", "seed", "metric"]).any()
    # the derived rows survive a merge without the run folders (a later session)
    shutil.rmtree(runs)
    again = merge_family(cfg, out, runs)
    assert len(again[again["method"] == "erm_conf_same_budget"]) == len(sb)
    # resuming a lane runs nothing new
    fake = FakeRun()
    _lane(cfg, out, ["erm"], ["builtin", "border-faintblur"], "a", fake)
    assert fake.calls == []
    assert lane_file(out, "builtin", "a").exists()
