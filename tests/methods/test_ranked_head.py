"""RankedHeadModule: the head is retrained on the least spurious samples the table names; the backbone stays put."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from sebra.methods import ERMModule
from sebra.methods.ranked_head import RankedHeadModule, least_spurious, load_classifier


def _table(labels: list[int], order_key: list[float], indices: np.ndarray | None = None) -> pd.DataFrame:
    """A ranking table: per class, ``order_key`` descending (dataset indices 100, 103, ... unless given)."""
    ids = np.arange(len(labels)) * 3 + 100 if indices is None else indices
    df = pd.DataFrame({"index": ids, "label": labels, "p_y": order_key})
    df = df.sort_values(["label", "p_y"], ascending=[True, False]).reset_index(drop=True)
    df.insert(2, "rank", 1)
    df.insert(3, "position", df.groupby("label").cumcount() + 1)
    return df


def test_least_spurious_takes_the_last_of_each_class_in_equal_numbers() -> None:
    # class 0 has 5 samples, class 1 has 3: per_class=4 takes 3 from each (the smaller class decides)
    table = _table([0, 0, 0, 0, 0, 1, 1, 1], [0.9, 0.8, 0.7, 0.6, 0.5, 0.9, 0.2, 0.1])
    got = least_spurious(table, per_class=4)
    by_idx = table.set_index("index")
    assert list(by_idx.loc[got, "label"]) == [0, 0, 0, 1, 1, 1]
    assert set(by_idx.loc[got[:3], "position"]) == {3, 4, 5}  # the last three of class 0, not the first
    assert list(least_spurious(table, per_class=1)) == [table.loc[4, "index"], table.loc[7, "index"]]
    with pytest.raises(ValueError, match="per_class must be >= 1"):
        least_spurious(table, per_class=0)


def test_load_classifier_names_the_file_and_what_it_expected(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_classifier(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hyper_parameters": {}}, bad)
    with pytest.raises(ValueError, match=r"bad\.ckpt: expected a sebra checkpoint with a 'net' classifier"):
        load_classifier(bad)


def _erm_checkpoint(tiny_dm, make_trainer, tmp_path):
    erm = ERMModule(backbone="test_resnet", epochs=2, lr=0.01)
    trainer = make_trainer(default_root_dir=str(tmp_path / "erm"))
    trainer.fit(erm, datamodule=tiny_dm)
    return erm, trainer.checkpoint_callback.dirpath + "/last.ckpt"


def test_head_is_retrained_on_the_chosen_samples_and_the_backbone_is_frozen(
    tiny_dm, make_trainer, tmp_path
) -> None:
    erm, ckpt = _erm_checkpoint(tiny_dm, make_trainer, tmp_path)
    tiny_dm.setup("fit")
    train = tiny_dm.train_dataset
    table = _table(train.labels.tolist(), list(np.linspace(1, 0, len(train))), train.indices.numpy())
    model = RankedHeadModule(checkpoint=ckpt, rankings=table, per_class=3, epochs=3, lr=0.05)
    make_trainer(default_root_dir=str(tmp_path / "head")).fit(model, datamodule=tiny_dm)
    assert sorted(model.chosen.tolist()) == sorted(least_spurious(table, 3).tolist())
    assert model.extra_metrics() == {"head_samples": 6.0}
    for (name, before), after in zip(
        erm.net.backbone.state_dict().items(), model.net.backbone.state_dict().values()
    ):
        assert torch.equal(before, after), name  # weights and batch-norm statistics alike
    assert not torch.equal(erm.net.head.weight, model.net.head.weight)
    assert model.current_epoch == 3


def test_rankings_of_another_data_set_are_refused(tiny_dm, make_trainer, tmp_path) -> None:
    _, ckpt = _erm_checkpoint(tiny_dm, make_trainer, tmp_path)
    table = _table([0, 0, 1, 1], [0.9, 0.8, 0.7, 0.6])
    model = RankedHeadModule(checkpoint=ckpt, rankings=table, per_class=1, epochs=1)
    with pytest.raises(ValueError, match="is not a training sample"):
        make_trainer(default_root_dir=str(tmp_path / "head")).fit(model, datamodule=tiny_dm)


@pytest.mark.parametrize(
    ("key", "value", "match"), [("per_class", 0, "per_class"), ("lr", 0.0, "lr"), ("epochs", 1.5, "epochs")]
)
def test_settings_are_checked_when_built(key, value, match) -> None:
    table = _table([0, 1], [0.9, 0.8])
    with pytest.raises(ValueError, match=f"RankedHeadModule: {match}"):
        RankedHeadModule(checkpoint="x.ckpt", rankings=table, **{key: value})
