"""The helpers readers share: the seeded split, the per-class check, the majority BiasSpec and split_table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sebra.datasets.base import DatasetError
from sebra.datasets.splits import check_every_class, majority_bias_spec, seeded_split, split_table


def test_seeded_split_properties() -> None:
    labels = np.array([0] * 10 + [1] * 5 + [2] * 20)
    before = torch.get_rng_state()
    a = seeded_split(len(labels), 0.2, seed=7, test_fraction=0.1, labels=labels)
    assert torch.equal(before, torch.get_rng_state())  # global RNG untouched
    b = seeded_split(len(labels), 0.2, seed=7, test_fraction=0.1, labels=labels)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    allpos = np.concatenate([a["train"], a["val"], a["test"]])
    assert sorted(allpos.tolist()) == list(range(len(labels)))  # a partition
    # per class: round(n * fraction), by hand: val 2/1/4, test 1/0/2
    assert np.bincount(labels[a["val"]]).tolist() == [2, 1, 4]
    assert np.bincount(labels[a["test"]], minlength=3).tolist() == [1, 0, 2]
    assert all((np.diff(a[s]) > 0).all() for s in a)  # sorted: table order kept
    c = seeded_split(len(labels), 0.2, seed=8, test_fraction=0.1, labels=labels)
    assert not np.array_equal(a["val"], c["val"])
    plain = seeded_split(50, 0.3, seed=0)
    assert set(plain) == {"train", "val"} and len(plain["val"]) == 15
    with pytest.raises(ValueError, match="sum < 1"):
        seeded_split(10, 0.6, 0, test_fraction=0.5)


def test_check_every_class_names_the_first_missing_class() -> None:
    check_every_class([0, 2, 1, 2], 3, "here")
    with pytest.raises(
        DatasetError, match=r"^here: class 1 \(dog\) has no samples; every class needs at least one$"
    ):
        check_every_class(pd.Series([0, 2, 2]), 3, "here", ["cat", "dog", "cow"])
    with pytest.raises(DatasetError, match=r"^there: class 2 has no samples"):
        check_every_class(np.array([1, 0]), 3, "there")


def test_majority_bias_spec_by_hand() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    attrs = np.array([[1, 0], [1, -1], [0, 0], [0, 1], [0, 1], [1, 1], [0, -1]])  # -1: unknown, ignored
    spec = majority_bias_spec(labels, attrs, ["a", "b"], 2)
    assert spec.attr_names == ("a", "b") and spec.aligned_value == ((1, 0), (0, 1))
    # a: 2 of 3 class-0 samples have 1, 3 of 4 class-1 samples have 0 -> 5/7; b: 5 known, all at their majority
    assert spec.train_ratios == pytest.approx((5 / 7, 1.0)) and spec.stronger == 1


def test_split_table_by_column_and_by_seed() -> None:
    n = 12
    table = pd.DataFrame(
        {"index": np.arange(n), "path": [f"{i}.png" for i in range(n)], "label": np.arange(n) % 2}
    )
    table["bg"] = [0, 1] * 3 + [1, 0] * 3
    split_of = np.array(["train"] * 8 + ["val"] * 2 + ["test"] * 2)
    kw = {"val_fraction": 0.25, "test_fraction": 0.0, "seed": 0, "image_size": None, "cache": False}
    out = split_table(table.copy(), split_of, ["bg"], ["even", "odd"], "t", **kw)
    assert {s: out[s].indices.tolist() for s in out} == {
        "train": list(range(8)),
        "val": [8, 9],
        "test": [10, 11],
    }
    train = out["train"]
    assert (
        train.groups.tolist() == (train.labels * 2 + train.attrs[:, 0]).tolist()
    )  # mixed radix, 2 bg values
    assert train.bias.aligned_value == ((0,), (1,)) and out["test"].bias is train.bias  # read off train only
    assert out["val"].name == "t [val]" and train.class_names == ["even", "odd"]
    seeded = split_table(table.copy(), None, [], ["even", "odd"], "t", **kw)
    assert set(seeded) == {"train", "val"} and seeded["val"].class_counts().tolist() == [2, 2]
    assert (seeded["train"].groups == -1).all() and seeded["train"].bias is None
    with pytest.raises(DatasetError, match=r"t: no sample is in the train split"):
        split_table(table.copy(), np.array(["val"] * n), [], ["even", "odd"], "t", **kw)
    with pytest.raises(DatasetError, match=r"t, split test: class 0 \(even\) has no samples"):
        split_table(table.copy(), np.array(["train"] * 11 + ["test"]), [], ["even", "odd"], "t", **kw)
