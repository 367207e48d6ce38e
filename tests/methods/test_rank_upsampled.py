"""RankUpsampledModule: draws follow the table's rank bins, geometric from 1 to upweight; bad input is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_data import ranked_table

from sebra.methods._rank_table import position_bins
from sebra.methods.rank_upsampled import RankUpsampledModule, bin_weights, first_wave_weights


def test_bin_weights_run_geometric_from_one_to_upweight() -> None:
    w = bin_weights(torch.tensor([0, 1, 2, 3, 4]), 5, 16.0)
    assert torch.allclose(w, torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0], dtype=torch.float64))


def test_position_bins_follow_each_class_ranked_order(tiny_dm) -> None:
    tiny_dm.setup("fit")
    train = tiny_dm.train_dataset
    key = np.linspace(1, 0, len(train))
    table = ranked_table(train, key)
    bins = position_bins(table, train, 2, "test")
    for c in train.labels.unique().tolist():
        mine = (train.labels == c).numpy()
        order = np.argsort(-key[mine])  # most spurious first
        got = bins.numpy()[mine][order]
        assert list(got) == sorted(got) and got[0] == 0 and got[-1] == 1  # non-decreasing along the order


def test_least_spurious_bin_is_drawn_more_often_and_fit_runs(tiny_dm, make_trainer) -> None:
    tiny_dm.setup("fit")
    train = tiny_dm.train_dataset
    key = np.linspace(1, 0, len(train))
    model = RankUpsampledModule(
        rankings=ranked_table(train, key), bins=2, upweight=5.0, backbone="test_resnet", epochs=1
    )
    make_trainer().fit(model, datamodule=tiny_dm)
    bins = position_bins(ranked_table(train, key), train, 2, "test")
    assert torch.allclose(model.draw_weights[bins == 1], torch.tensor(5.0, dtype=torch.float64))
    assert torch.allclose(model.draw_weights[bins == 0], torch.tensor(1.0, dtype=torch.float64))
    assert model.current_epoch == 1


def test_bad_input_is_refused_with_what_was_expected(tiny_dm, make_trainer) -> None:
    tiny_dm.setup("fit")
    table = ranked_table(tiny_dm.train_dataset, np.linspace(1, 0, len(tiny_dm.train_dataset)))
    with pytest.raises(ValueError, match="sampling must be 'uniform'"):
        RankUpsampledModule(rankings=table, sampling="group_balanced")
    with pytest.raises(ValueError, match="RankUpsampledModule: upweight must be >= 1"):
        RankUpsampledModule(rankings=table, upweight=0.5)
    other = table.assign(index=table["index"] + 10_000)
    model = RankUpsampledModule(rankings=other, backbone="test_resnet", epochs=1)
    with pytest.raises(ValueError, match="is not a training sample"):
        make_trainer().fit(model, datamodule=tiny_dm)


def test_first_wave_and_the_rest_of_each_class_are_drawn_equally_often(tiny_dm) -> None:
    tiny_dm.setup("fit")
    train = tiny_dm.train_dataset
    table = ranked_table(train, np.linspace(1, 0, len(train)))
    # per class: the first 3/4 of the ranked order leave in wave 1, the rest later (ranks 2 and 3)
    table["rank"] = table.groupby("label")["position"].transform(
        lambda p: np.where(p <= 0.75 * p.max(), 1, np.where(p <= 0.9 * p.max(), 2, 3))
    )
    w = first_wave_weights(table, train, "test")
    ranks = table.set_index("index").loc[train.indices.numpy(), "rank"].to_numpy()
    labels = train.labels.numpy()
    for c in np.unique(labels):
        mine = labels == c
        first, rest = mine & (ranks == 1), mine & (ranks > 1)
        assert first.sum() > rest.sum() > 0
        assert w.numpy()[first].sum() == pytest.approx(w.numpy()[rest].sum())  # equal shares of the draws
        assert w.numpy()[mine].sum() == pytest.approx(mine.sum())  # the class keeps its share
        assert np.allclose(w.numpy()[rest], w.numpy()[rest][0])  # uniform inside a part


def test_a_class_ranked_in_one_wave_is_drawn_uniformly(tiny_dm) -> None:
    tiny_dm.setup("fit")
    train = tiny_dm.train_dataset
    table = ranked_table(train, np.linspace(1, 0, len(train))).assign(rank=1)
    assert torch.allclose(
        first_wave_weights(table, train, "test"), torch.ones(len(train), dtype=torch.float64)
    )


def test_first_wave_weighting_sets_the_draws_and_a_bad_weighting_is_named(tiny_dm, make_trainer) -> None:
    tiny_dm.setup("fit")
    train = tiny_dm.train_dataset
    table = ranked_table(train, np.linspace(1, 0, len(train)))
    table["rank"] = np.where(table["position"] <= 3, 1, 2)
    model = RankUpsampledModule(rankings=table, weighting="first_wave", backbone="test_resnet", epochs=1)
    make_trainer().fit(model, datamodule=tiny_dm)
    assert torch.allclose(model.draw_weights, first_wave_weights(table, train, "test"))
    with pytest.raises(ValueError, match="RankUpsampledModule: weighting must be one of bins, first_wave"):
        RankUpsampledModule(rankings=table, weighting="waves")
