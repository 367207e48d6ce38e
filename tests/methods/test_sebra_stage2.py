"""Sebra's Stage 2 as a component: :class:`PairMitigation` used alone, on a ranking table and a training split."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from sebra.backbones import Classifier
from sebra.methods.sebra_stage2 import PairMitigation


def _split(n_per_class: int = 20) -> SimpleNamespace:
    """What the component reads of a training split: dataset indices (not 0..N-1) and labels."""
    labels = torch.arange(2).repeat_interleave(n_per_class)
    return SimpleNamespace(indices=torch.arange(len(labels)) * 3 + 100, labels=labels)


def _table(train: SimpleNamespace, ranks: np.ndarray, **extra: object) -> pd.DataFrame:
    df = pd.DataFrame({"index": train.indices.numpy(), "label": train.labels.numpy(), "rank": ranks})
    df["position"] = df.groupby("label").cumcount() + 1
    df["p_y"] = 0.5
    return df.assign(**extra)


def test_pairs_follow_the_ranks_of_the_table() -> None:
    train = _split()
    ranks = np.tile(np.repeat([1, 2, 3, 4], 5), 2)
    mit = PairMitigation(gap=2, seed=3)
    table = mit.epoch_pairs(_table(train, ranks), train, epoch=0)
    r, y = torch.as_tensor(ranks), train.labels
    assert len(table) > 0
    assert (y[table.positive] == y[table.anchor]).all() and (y[table.negative] == y[table.anchor]).all()
    assert (r[table.negative] == r[table.anchor]).all()
    assert (r[table.positive] >= torch.clamp(r[table.anchor] + 2, max=4)).all()


def test_the_pairs_depend_on_the_ranks_only_not_on_who_made_the_table() -> None:
    # A mitigation must not know which ranker made the table: same ranks -> same pairs, whatever else it says.
    train = _split()
    ranks = np.tile(np.repeat([1, 2, 3, 4], 5), 2)
    plain = _table(train, ranks)
    other = _table(train, ranks, p_y=np.linspace(0, 1, len(ranks)), ranker="erm_conf").sample(
        frac=1, random_state=0
    )
    a = PairMitigation(gap=1, seed=0).epoch_pairs(plain, train, epoch=0)
    b = PairMitigation(gap=1, seed=0).epoch_pairs(other, train, epoch=0)
    assert torch.equal(a.anchor, b.anchor) and torch.equal(a.positive, b.positive)
    assert torch.equal(a.negative, b.negative)
    c = PairMitigation(gap=1, seed=0).epoch_pairs(_table(train, ranks[::-1].copy()), train, epoch=0)
    assert not torch.equal(a.positive, c.positive)  # other ranks, other pairs


def test_state_dict_resumes_the_pair_stream() -> None:
    train = _split()
    df = _table(train, np.tile(np.repeat([1, 2, 3, 4], 5), 2))
    ref = PairMitigation(gap=1, seed=5)
    ref.epoch_pairs(df, train, epoch=0)
    saved = ref.state_dict()
    expected = ref.epoch_pairs(df, train, epoch=1)
    resumed = PairMitigation(gap=1, seed=5)
    resumed.load_state_dict(saved)
    got = resumed.epoch_pairs(df, train, epoch=1)
    assert torch.equal(got.anchor, expected.anchor) and torch.equal(got.positive, expected.positive)
    fresh = PairMitigation(gap=1, seed=5).epoch_pairs(
        df, train, epoch=1
    )  # without the state: epoch 0's pairs
    assert not torch.equal(fresh.anchor, expected.anchor)


def test_an_epoch_is_mined_once_however_often_it_is_asked_for() -> None:
    train = _split()
    df = _table(train, np.tile(np.repeat([1, 2], 10), 2))
    mit = PairMitigation(gap=1)
    first = mit.epoch_pairs(df, train, epoch=0)
    assert mit.epoch_pairs(df, train, epoch=0) is first
    assert not torch.equal(mit.epoch_pairs(df, train, epoch=1).anchor, first.anchor)


def test_data_parallel_shares_cover_the_table_once() -> None:
    train = _split()
    df = _table(train, np.tile(np.repeat([1, 2], 10), 2))
    whole = PairMitigation(gap=1, seed=1).epoch_pairs(df, train, epoch=0)
    shares = [PairMitigation(gap=1, seed=1).epoch_pairs(df, train, epoch=0, replicas=(2, r)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == -(-len(whole) // 2)
    got = sorted(
        zip(
            *(
                torch.cat([s.anchor for s in shares]).tolist(),
                torch.cat([s.positive for s in shares]).tolist(),
            )
        )
    )
    assert set(got) == set(zip(whole.anchor.tolist(), whole.positive.tolist()))


def test_ce_only_loss_is_cross_entropy_on_the_positives_and_counts_anchors() -> None:
    torch.manual_seed(0)
    net = Classifier("test_resnet", 2)
    x = torch.randn(12, 3, 8, 8)
    y = torch.tensor([0, 1] * 6)
    batch = {
        k: {"image": x[i * 4 : i * 4 + 4], "label": y[i * 4 : i * 4 + 4]}
        for i, k in enumerate(["anchor", "positive", "negative"])
    }
    mit = PairMitigation(contrastive_weight=0.0, ce_weight=2.0)
    net.eval()
    loss, parts = mit.loss(net, batch)
    expected = torch.nn.functional.cross_entropy(net(batch["positive"]["image"]), batch["positive"]["label"])
    assert torch.allclose(loss, 2.0 * expected) and float(parts["con"]) == 0.0
    assert mit.pairs_seen == 4
    full = PairMitigation(contrastive_weight=1.0, ce_weight=2.0)
    loss_full, parts_full = full.loss(net, batch)
    assert float(parts_full["con"]) != 0.0 and not torch.allclose(loss_full, loss)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"ce_on": "negative"}, "PairMitigation: ce_on must be one of positive, anchor, both"),
        ({"gap": 0}, "PairMitigation: gap must be >= 1"),
        ({"contrastive_weight": -1.0}, "PairMitigation: contrastive_weight must be >= 0"),
        ({"rank_bins": 1}, "PairMitigation: rank_bins must be >= 2"),
    ],
)
def test_bad_settings_name_the_component_and_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PairMitigation(**kwargs)
