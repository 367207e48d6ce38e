"""The ranker x mitigation grid: every ranker writes the same table, every mitigation reads any of them."""

from __future__ import annotations

import pandas as pd
import pytest
from tiny_data import tiny_splits

from sebra.bench.grid import ERM_CURVE_EPOCHS, RANKERS, parse_mitigation, run_cell, true_level_rankings
from sebra.export import check_ranking_values, check_rankings, load_rankings
from sebra.ranking import combine_rankings


def test_true_levels_rank_by_the_number_of_conflicting_attributes() -> None:
    train = tiny_splits()["train"]
    table = true_level_rankings(train, seed=0)
    check_rankings(table)
    check_ranking_values(table)
    levels = pd.Series(
        train.bias.levels(train.labels, train.attrs, scheme=3).numpy(), index=train.indices.numpy()
    )
    assert (table["rank"].to_numpy() == levels.loc[table["index"]].to_numpy() + 1).all()
    for _, cls in table.groupby("label"):  # positions follow the levels: most spurious first
        assert cls.sort_values("position")["rank"].is_monotonic_increasing
    other = true_level_rankings(train, seed=1)
    assert not table["index"].equals(other["index"])  # the order inside a level is the seed's


def test_mitigation_specs_name_their_settings() -> None:
    assert parse_mitigation("ranked_head:per_class=200,lr=0.01") == (
        "ranked_head:per_class=200,lr=0.01",
        "ranked_head",
        {"per_class": 200, "lr": 0.01},
    )
    assert parse_mitigation("stage2") == ("stage2", "stage2", {})
    with pytest.raises(ValueError, match="unknown mitigation 'dfr'"):
        parse_mitigation("dfr")
    with pytest.raises(ValueError, match="'per_class' in 'ranked_head:per_class' is not KEY=VALUE"):
        parse_mitigation("ranked_head:per_class")


def test_one_cell_runs_every_ranker_under_every_mitigation_and_resumes(cfg, tmp_path) -> None:
    mitigations = ("ranked_head:per_class=2,epochs=2", "stage2", "rank_upsampled:bins=2", "rank_dro:bins=2")
    rows = pd.DataFrame(run_cell(cfg, "toy", "dev", 0, tmp_path, mitigations=mitigations))
    assert set(rows.columns) == {"variant", "role", "ranker", "mitigation", "seed", "metric", "value"}
    pairs = set(zip(rows["ranker"], rows["mitigation"]))
    assert pairs == {("erm", "")} | {(r, m) for r in RANKERS for m in ("", *mitigations)}
    tau = rows[(rows["metric"] == "kendall_tau_b_3") & (rows["mitigation"] == "")].set_index("ranker")[
        "value"
    ]
    assert tau["true_levels"] == pytest.approx(1.0)
    wga = rows[rows["metric"] == "worst_group_acc"]
    assert len(wga) == 1 + len(RANKERS) * len(mitigations)
    head = rows[(rows["metric"] == "head_samples")]["value"]
    assert (head == 4).all()  # two per class, whatever the ranker
    fits = tmp_path / "toy" / "seed0" / "fits"
    dro = [p for p in fits.rglob("hparams.yaml") if "rank_dro" in str(p)]
    assert dro and all("sampling: uniform" in p.read_text() for p in dro)  # never the true groups' draws
    for ranker in RANKERS:  # each ranker's table is kept for inspection, in the one checked format
        load_rankings(tmp_path / "toy" / "seed0" / f"rankings_{ranker}.csv")
    cell = tmp_path / "toy" / "seed0"
    fused = load_rankings(cell / "rankings_sebra_erm.csv")
    both = combine_rankings([load_rankings(cell / f"rankings_{r}.csv") for r in ("sebra", "erm_conf")])
    assert fused["index"].tolist() == both["index"].tolist() and (fused["rank"] == fused["position"]).all()
    scores = pd.read_csv(tmp_path / "toy" / "erm_base" / "erm" / "seed0" / "confidence_by_epoch.csv")
    mean = scores[scores["epoch"] <= ERM_CURVE_EPOCHS].groupby("index")["p_y"].mean()
    curve = load_rankings(cell / "rankings_erm_curve.csv")
    for _, cls in curve.groupby("label"):  # ordered by the mean over the first epochs, highest first
        assert mean.loc[cls.sort_values("position")["index"]].is_monotonic_decreasing
    again = run_cell(cfg, "toy", "dev", 0, tmp_path, mitigations=mitigations, done=pairs)
    assert again == []
