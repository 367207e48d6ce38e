"""RankUpsampledModule: draws follow the table's rank bins, geometric from 1 to upweight; bad input is named."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_data import ranked_table

from sebra.methods.rank_table import position_bins
from sebra.methods.rank_upsampled import RankUpsampledModule, bin_weights


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
