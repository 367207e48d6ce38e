"""RankGroupDROModule: groups are (class, rank bin) from the table; the data set's group labels are never read."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_data import ranked_table

from sebra.methods._rank_table import position_bins
from sebra.methods.rank_group_dro import RankGroupDROModule


def test_pseudo_groups_are_class_and_bin_and_true_groups_are_not_read(tiny_dm, make_trainer) -> None:
    tiny_dm.setup("fit")
    train = tiny_dm.train_dataset
    table = ranked_table(train, np.linspace(1, 0, len(train)))
    train.groups = torch.full_like(train.groups, -1)  # GroupDROModule itself would refuse this split
    model = RankGroupDROModule(rankings=table, bins=2, backbone="test_resnet", epochs=1, eta=0.5)
    make_trainer().fit(model, datamodule=tiny_dm)
    expected = train.labels * 2 + position_bins(table, train, 2, "test")
    assert torch.equal(model.pseudo_groups[train.indices], expected)
    assert model.dro.num_groups == 2 * tiny_dm.num_classes
    assert not torch.allclose(model.dro.q, torch.full_like(model.dro.q, 1 / model.dro.num_groups))
    assert model.dro.q.sum().item() == pytest.approx(1.0)


def test_group_balanced_sampling_is_refused() -> None:
    with pytest.raises(ValueError, match="RankGroupDROModule: sampling must be 'uniform'"):
        RankGroupDROModule(rankings="x.csv", sampling="group_balanced")
