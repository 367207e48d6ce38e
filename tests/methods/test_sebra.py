"""SebraModule inside ``trainer.fit``: both stages, given rankings, model selection, the written ranking table."""

from __future__ import annotations

import json
from pathlib import Path

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from tiny_data import TinyDataModule

from sebra import SebraModule, load_rankings
from sebra.methods import ERMModule

TINY = {
    "backbone": "test_resnet",
    "rank_optimizer": "adam",
    "rank_lr": 1e-2,
    "max_steps": 3,
    "epochs": 2,
    "gap": 1,
    "temperature": 0.1,
    "optimizer": "adam",
    "lr": 1e-3,
}


def test_fit_runs_both_stages_and_writes_rankings(tiny_dm, make_trainer, tmp_path):
    model = SebraModule(**TINY)
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    ctl = model.controller
    assert 1 <= ctl.step <= 3
    assert trainer.current_epoch == ctl.step + 2  # ranking steps, then the Stage 2 epochs
    assert model.final_epoch == 2 and model.stage == "done"
    train = tiny_dm.splits["train"]
    df = model.rankings
    assert sorted(df["index"].tolist()) == sorted(train.indices.tolist())  # dataset indices, not positions
    joined = df.set_index("index").join(
        train.table.set_index("index")[["label", "bg", "group"]], rsuffix="_data"
    )
    assert (joined["label"] == joined["label_data"]).all() and (joined["group"] == joined["group_data"]).all()
    for _, cls in df.groupby("label"):
        assert cls["position"].tolist() == list(range(1, len(cls) + 1))
        assert cls["rank"].is_monotonic_increasing
    on_disk = load_rankings(Path(trainer.log_dir) / "rankings.csv")
    pd.testing.assert_frame_equal(
        on_disk[df.columns.tolist()], df, check_exact=False, atol=1e-5, check_dtype=False
    )


def test_same_seed_same_rankings(make_trainer):
    def ranks():
        model = SebraModule(**{**TINY, "rank_only": True})
        make_trainer(logger=False, enable_checkpointing=False).fit(model, datamodule=TinyDataModule())
        return model.rankings

    pd.testing.assert_frame_equal(ranks(), ranks())


def test_given_rankings_skip_stage_one(tiny_dm, make_trainer, tmp_path):
    dm = TinyDataModule()
    dm.setup("fit")
    t = dm.splits["train"]
    aligned = (t.attrs[:, 0] == t.labels).numpy()
    rankings = pd.DataFrame(
        {
            "index": t.indices.numpy(),
            "label": t.labels.numpy(),
            "rank": 2 - aligned,
            "position": 0,
            "p_y": 0.5,
        }
    )
    rankings["position"] = rankings.groupby("label").cumcount() + 1
    path = tmp_path / "given.csv"
    rankings.to_csv(path, index=False)
    model = SebraModule(**{**TINY, "rankings": str(path)})
    trainer = make_trainer()
    trainer.fit(model, datamodule=dm)
    assert model.controller is None  # no ranking happened
    assert trainer.current_epoch == 2 and model.final_epoch == 2
    assert model.pairs_seen > 0


def test_given_rankings_must_cover_the_training_set(tiny_dm, make_trainer):
    dm = TinyDataModule()
    dm.setup("fit")
    t = dm.splits["train"]
    rankings = pd.DataFrame(
        {"index": t.indices.numpy()[1:], "label": t.labels.numpy()[1:], "rank": 1, "p_y": 0.5}
    )
    rankings["position"] = rankings.groupby("label").cumcount() + 1
    with pytest.raises(ValueError, match="lack 1 training samples"):
        make_trainer().fit(SebraModule(**{**TINY, "rankings": rankings}), datamodule=dm)


class _Scripted:
    """Logs a scripted (val_wga, val_acc) per epoch instead of measuring, to test checkpoint selection."""

    script = [(0.9, 0.9), (0.2, 0.6), (0.5, 0.7), (0.5, 0.8), (0.3, 0.95), (0.1, 0.5)]

    def on_validation_epoch_end(self) -> None:
        if self.selectable:
            wga, acc = self.script[self.current_epoch]
            self.log_dict({"val_wga": wga, "val_acc": acc})
        self.metrics["val"].reset()


class ScriptedERM(_Scripted, ERMModule):
    pass


class ScriptedSebra(_Scripted, SebraModule):
    pass


def _best_epoch(trainer) -> int:
    return int(torch.load(trainer.checkpoint_callback.best_model_path, weights_only=False)["epoch"])


@pytest.mark.parametrize("selection,expected", [("val_wga", 0), ("val_acc", 4), ("last", 5)])
def test_erm_selection_picks_the_right_epoch(selection, expected, tiny_dm, make_trainer):
    model = ScriptedERM(backbone="test_resnet", epochs=6, selection=selection)
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    assert _best_epoch(trainer) == expected


@pytest.mark.parametrize("selection,expected", [("val_wga", 2), ("val_acc", 4), ("last", 5)])
def test_sebra_selection_ignores_ranking_epochs(selection, expected, tiny_dm, make_trainer):
    # Two ranking steps (epochs 0-1, whose scripted scores are not selectable), then 4 mitigation epochs (2-5);
    # val_wga ties at epochs 2 and 3 (0.5): the earlier is kept.
    model = ScriptedSebra(
        **{**TINY, "max_steps": 2, "p_critical": 0.999999, "epochs": 4, "selection": selection}
    )
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    assert model.controller.step == 2
    assert _best_epoch(trainer) == expected


def test_max_epochs_too_small_is_explained(tiny_dm, make_trainer):
    with pytest.raises(ValueError, match="max_steps \\+ epochs = 5"):
        make_trainer(max_epochs=2).fit(SebraModule(**TINY), datamodule=tiny_dm)


def test_stage2_bins_are_equal_size_per_class():
    from sebra.methods.sebra_stage2 import stage2_bins

    df = pd.DataFrame({"label": [0] * 10 + [1] * 20, "position": list(range(1, 11)) + list(range(1, 21))})
    bins = stage2_bins(df, 5)
    assert bins[:10].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert (pd.Series(bins[10:]).value_counts() == 4).all() and bins[10:].tolist() == sorted(
        bins[10:].tolist()
    )


def test_rank_bins_change_the_pairing_ranks(tiny_dm, make_trainer):
    # Everything eliminated at step 1 (one raw rank): with rank_bins=2 the pairs still go from the first half of a
    # class's order (bin 1) to the second half (bin 2).
    model = SebraModule(**{**TINY, "p_critical": 0.01, "rank_bins": 2, "epochs": 1})
    make_trainer(logger=False, enable_checkpointing=False).fit(model, datamodule=tiny_dm)
    assert (model.rankings["rank"] == 1).all()
    train = tiny_dm.train_dataset
    ranks = model.mitigation.ranks_by_position(model.rankings, train)
    table = model.mitigation.epoch_pairs(model.rankings, train, model.final_epoch)
    first_half = ranks[table.anchor] == 1
    assert first_half.any()
    assert (ranks[table.positive[first_half]] == 2).all()
    assert (ranks[table.negative] == ranks[table.anchor]).all()


@pytest.mark.parametrize("draws,bad", [("active", False), (5, False), (0, True), ("all", True)])
def test_draws_per_step_setting(draws, bad, tiny_dm, make_trainer):
    if bad:
        with pytest.raises(ValueError, match="draws_per_step"):
            SebraModule(**{**TINY, "draws_per_step": draws})
        return
    model = SebraModule(
        **{**TINY, "draws_per_step": draws, "rank_only": True, "p_critical": 0.999999, "max_steps": 2}
    )
    seen = []
    model.on_train_batch_start = lambda batch, i: seen.append(len(batch["label"]))
    make_trainer(logger=False, enable_checkpointing=False).fit(model, datamodule=tiny_dm)
    per_step = sum(seen) / 2
    assert per_step == (len(tiny_dm.train_dataset) if draws == "active" else draws)
    model.controller.active[:5] = False  # later steps: "active" follows the shrinking active set
    assert model.ranking.draws() == (len(tiny_dm.train_dataset) - 5 if draws == "active" else draws)


def test_plain_dataloaders_are_refused_with_an_explanation(tiny_dm, make_trainer):
    tiny_dm.setup("fit")
    loader = tiny_dm.loader(tiny_dm.train_dataset, batch_size=8)
    with pytest.raises(ValueError, match="needs a sebra data module"):
        make_trainer().fit(SebraModule(**TINY, num_classes=2), train_dataloaders=loader)


@pytest.mark.parametrize("gap", [5, 7, 9])
def test_binned_pairing_draws_gap_plus_one_tenths_of_positives_from_the_top_bin(gap):
    # The built-in config's mechanism (BENCHMARKS.md §3): with 10 per-class bins, anchors of bins >= 10 - gap take their
    # positive from the top bin, so it supplies (gap + 1) / 10 of the positives, and bins 1..gap supply none.
    from sebra.contrastive import mine_rank_pairs
    from sebra.methods.sebra_stage2 import stage2_bins

    n = 500  # per class
    labels = torch.arange(2).repeat_interleave(n)
    df = pd.DataFrame({"label": labels.numpy(), "position": np.tile(np.arange(1, n + 1), 2)})
    bins = torch.as_tensor(stage2_bins(df, 10))
    table = mine_rank_pairs(bins, labels, gap=gap, generator=torch.Generator().manual_seed(0))
    assert table.n_dropped == 0 and len(table) == 2 * n
    pos_bins = bins[table.positive]
    share = torch.bincount(pos_bins, minlength=11)[1:].double() / len(table)
    expected = torch.zeros(10, dtype=torch.double)
    expected[gap:9] = 0.1  # bins gap+1 .. 9 are the positives of bins 1 .. 9-gap
    expected[9] = (gap + 1) / 10  # the top bin
    assert torch.allclose(share, expected)
    assert (labels[table.positive] == labels[table.anchor]).all()
    assert (bins[table.negative] == bins[table.anchor]).all()


def test_within_step_final_orders_each_step_by_the_final_network(tiny_dm, make_trainer):
    model = SebraModule(**{**TINY, "rank_only": True, "within_step": "final"})
    make_trainer(logger=False, enable_checkpointing=False).fit(model, datamodule=tiny_dm)
    df = model.rankings
    assert df["p_final"].between(0, 1).all()  # every training sample scored by the final ranker
    for (_, _), part in df.groupby(["label", "rank"]):
        assert part["p_final"].is_monotonic_decreasing
    # the same network scored again in eval mode gives the same numbers (no augmentation, no train-mode BN)
    from sebra.scoring import score_dataset

    p = score_dataset(model.ranker, tiny_dm)
    train = tiny_dm.train_dataset
    by_index = dict(zip(train.indices.tolist(), p.tolist()))
    assert [by_index[i] for i in df["index"]] == pytest.approx(df["p_final"].tolist(), abs=1e-5)
    with pytest.raises(ValueError, match="within_step must be one of"):
        SebraModule(**{**TINY, "within_step": "median"})


def test_contrastive_weight_zero_is_ce_on_positives_alone(tiny_dm, make_trainer):
    model = SebraModule(**{**TINY, "contrastive_weight": 0.0, "ce_weight": 2.0})
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    assert model.stage == "done"
    batch = next(iter(model.train_loader(tiny_dm)))
    batch = tiny_dm.on_after_batch_transfer(batch, 0)
    model.net.train()
    loss, parts = model.mitigation.loss(model.net, batch)
    expected = torch.nn.functional.cross_entropy(
        model.net(batch["positive"]["image"]), batch["positive"]["label"]
    )
    assert float(parts["con"]) == 0.0
    assert float(loss) == pytest.approx(2.0 * float(expected), rel=1e-5)
    with pytest.raises(ValueError, match="contrastive_weight must be >= 0"):
        SebraModule(**{**TINY, "contrastive_weight": -1.0})


def test_rank_repeats_combines_independent_stage_one_runs(tiny_dm, make_trainer, tmp_path):
    from sebra.ranking import combine_rankings

    model = SebraModule(**{**TINY, "rank_only": True, "rank_repeats": 2})
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    first, second = model.ranking.repeat_tables
    assert not first[["index", "position"]].equals(second[["index", "position"]])  # another ranker and draws
    expected = combine_rankings([first, second])
    pd.testing.assert_frame_equal(model.rankings[expected.columns], expected)
    hist = pd.read_csv(Path(trainer.log_dir) / "ranking_history.csv")
    assert sorted(hist["repeat"].unique()) == [0, 1]
    pd.testing.assert_frame_equal(model.ranking_history()[hist.columns], hist, check_dtype=False)
    assert trainer.current_epoch == len(hist)  # every ranking step of both runs was one epoch
    with pytest.raises(ValueError, match="rank_repeats must be >= 1"):
        SebraModule(**{**TINY, "rank_repeats": 0})
    side = json.loads((Path(trainer.log_dir) / "ranking_diagnostics.json").read_text())
    assert side == model.ranking_check.to_dict()  # the check made in the first run's first step
    assert side["status"] in ("graded", "partition") and len(side["first_wave_share"]) == 2


def test_balanced_repeat_draws_are_balanced_over_the_previous_first_wave(tiny_dm, make_trainer):
    model = SebraModule(**{**TINY, "rank_only": True, "rank_repeats": 2, "repeat_draws": "balanced"})
    trainer = make_trainer()
    trainer.fit(model, datamodule=tiny_dm)
    first = model.ranking.repeat_tables[0].set_index("index")
    ctl = model.controller  # the second run's
    wave1 = torch.as_tensor(first.loc[ctl.indices.numpy(), "rank"].to_numpy() == 1)
    assert torch.equal(ctl.strata, (~wave1).long())
    with pytest.raises(ValueError, match="repeat_draws must be one of"):
        SebraModule(**{**TINY, "repeat_draws": "stratified"})


def test_first_step_passes_lengthens_only_each_runs_first_step(tiny_dm, make_trainer):
    class Batches(L.Callback):
        def __init__(self) -> None:
            self.per_epoch: list[int] = []

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            self.per_epoch.append(int(trainer.num_training_batches))

    seen = Batches()
    model = SebraModule(
        **{
            **TINY,
            "rank_only": True,
            "max_steps": 2,
            "rank_repeats": 2,
            "first_step_passes": 3,
            "p_critical": 0.999,
        }
    )
    make_trainer(callbacks=[seen]).fit(model, datamodule=tiny_dm)
    one = len(tiny_dm.splits["train"]) // tiny_dm.batch_size  # draws of a normal step, in batches (rounded)
    first, second = seen.per_epoch[0], seen.per_epoch[1]
    assert first == pytest.approx(3 * second, abs=1) and second == pytest.approx(one, abs=1)
    assert seen.per_epoch[2] == first  # the second run starts with a long step again
    with pytest.raises(ValueError, match="first_step_passes must be > 0"):
        SebraModule(**{**TINY, "first_step_passes": 0})


def test_retain_eliminated_reaches_every_runs_controller(tiny_dm, make_trainer):
    model = SebraModule(**{**TINY, "rank_only": True, "rank_repeats": 2, "retain_eliminated": 0.2})
    make_trainer().fit(model, datamodule=tiny_dm)
    assert model.repeat == 1 and model.controller.retain == 0.2  # the second run's controller has it too
    ctl = model.controller
    w = ctl.draw_weights()
    assert torch.equal(w[~ctl.active], torch.full((int((~ctl.active).sum()),), 0.2))
    with pytest.raises(ValueError, match=r"retain_eliminated must be in \[0, 1\]"):
        SebraModule(**{**TINY, "retain_eliminated": -0.1})


def test_within_step_mean_orders_waves_by_their_scores_since_elimination(tiny_dm, make_trainer):
    model = SebraModule(**{**TINY, "rank_only": True, "within_step": "mean", "retain_eliminated": 0.1})
    make_trainer().fit(model, datamodule=tiny_dm)
    ctl, table = model.controller, model.rankings
    left = ~ctl.active
    assert bool((ctl.after_count[left] >= 1).all()) and int(ctl.after_count[ctl.active].sum()) == 0
    # observed every step from the one it left at on (until ranking ended)
    assert torch.equal(ctl.after_count[left], ctl.step - ctl.elim_step[left] + 1)
    mean = pd.Series(ctl.mean_after().numpy(), index=ctl.indices.numpy())
    np.testing.assert_allclose(table["p_final"].to_numpy(), mean.loc[table["index"]].to_numpy())
    for _, g in table.groupby(["label", "rank"]):
        assert g["p_final"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="mean_window must be >= 1 or None"):
        SebraModule(**{**TINY, "within_step": "mean", "mean_window": 0})
    with pytest.raises(ValueError, match="needs scoring='full'"):
        SebraModule(**{**TINY, "within_step": "mean", "scoring": "official"})


class _EpochBatches(L.Callback):
    """Per epoch: the dataset indices trained on and the loss logged (the confidence run's draws)."""

    def __init__(self) -> None:
        self.indices: dict[int, list[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if "index" in batch:
            self.indices.setdefault(trainer.current_epoch, []).extend(batch["index"].tolist())


def test_rank_by_confidence_ranks_each_class_by_an_erm_rankers_p_y(tiny_dm, make_trainer, tmp_path):
    from sebra.scoring import score_dataset

    seen = _EpochBatches()
    model = SebraModule(
        **{**TINY, "rank_only": True, "rank_by": "confidence", "confidence_steps": 2, "rank_bins": 4}
    )
    trainer = make_trainer(callbacks=[seen])
    trainer.fit(model, datamodule=tiny_dm)
    train = tiny_dm.splits["train"]
    assert trainer.current_epoch == 2 and model.controller.step == 0  # two confidence epochs, no elimination
    for epoch in (0, 1):  # every training sample exactly once per epoch, in two different orders
        assert sorted(seen.indices[epoch]) == sorted(train.indices.tolist())
    assert seen.indices[0] != seen.indices[1]
    df = model.rankings
    # the final ranker's own scores of the training set, per class higher p_y first, one sample per rank
    p_y = score_dataset(model.ranker, tiny_dm).numpy()
    by_index = dict(zip(train.indices.tolist(), p_y))
    np.testing.assert_allclose(df["p_y"], [by_index[i] for i in df["index"]], rtol=1e-5, atol=1e-6)
    for _, cls in df.groupby("label"):
        assert cls["p_y"].is_monotonic_decreasing
        assert cls["rank"].tolist() == cls["position"].tolist()
    assert model.extra_metrics() == {"rank_steps": 0.0, "confidence_steps": 2.0}
    assert model.ranking_check.status == "unchecked" and "rank_by='confidence'" in model.ranking_check.message
    assert (Path(trainer.log_dir) / "rankings.csv").exists()


class _EpochScores(L.Callback):
    """The ranker's scores of the training set at the end of every epoch (before the module closes the epoch)."""

    def __init__(self, dm) -> None:
        self.dm, self.scores = dm, []

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        from sebra.scoring import score_dataset

        was_training = pl_module.ranker.training
        self.scores.append(score_dataset(pl_module.ranker, self.dm).numpy())
        pl_module.ranker.train(was_training)


def test_confidence_score_mean_ranks_by_the_mean_p_y_over_the_epochs(tiny_dm, make_trainer):
    seen = _EpochScores(tiny_dm)
    settings = {**TINY, "rank_only": True, "rank_by": "confidence", "confidence_steps": 3, "rank_bins": 4}
    model = SebraModule(**settings, confidence_score="mean")
    make_trainer(logger=False, enable_checkpointing=False, callbacks=[seen]).fit(model, datamodule=tiny_dm)
    assert len(seen.scores) == 3
    train = tiny_dm.splits["train"]
    by_index = dict(zip(train.indices.tolist(), np.mean(seen.scores, axis=0)))
    df = model.rankings
    np.testing.assert_allclose(df["p_y"], [by_index[i] for i in df["index"]], rtol=1e-5, atol=1e-6)
    for _, cls in df.groupby("label"):
        assert cls["p_y"].is_monotonic_decreasing
    last = dict(zip(train.indices.tolist(), seen.scores[-1]))
    assert not np.allclose(df["p_y"], [last[i] for i in df["index"]], atol=1e-4)  # not the last snapshot
    with pytest.raises(ValueError, match="confidence_score must be one of"):
        SebraModule(**settings, confidence_score="median")


def test_rank_by_confidence_trains_with_plain_cross_entropy(tiny_dm, make_trainer):
    import sebra.methods.sebra_stage1 as sebra_module

    seen: list[float] = []
    real = sebra_module.confidence_weighted_loss

    def spy(logits, labels, beta_inv):
        seen.append(beta_inv)
        return real(logits, labels, beta_inv)

    sebra_module.confidence_weighted_loss = spy
    try:
        model = SebraModule(
            **{**TINY, "rank_only": True, "rank_by": "fused", "beta_inv": 0.5, "rank_bins": 4}
        )
        make_trainer(logger=False, enable_checkpointing=False).fit(model, datamodule=tiny_dm)
    finally:
        sebra_module.confidence_weighted_loss = real
    assert (
        0.5 in seen and seen[-1] == 0.0
    )  # the elimination run's weighted loss, then the confidence run's CE
    assert seen == sorted(seen, reverse=True)  # CE only after the elimination run ended


def test_rank_by_fused_combines_the_elimination_table_with_the_confidence_order(tiny_dm, make_trainer):
    from sebra.ranking import combine_rankings
    from sebra.scoring import confidence_rankings, score_dataset

    model = SebraModule(**{**TINY, "rank_only": True, "rank_by": "fused", "rank_bins": 4})
    trainer = make_trainer(logger=False, enable_checkpointing=False)
    trainer.fit(model, datamodule=tiny_dm)
    stage1 = model.ranking.elimination_table
    assert stage1 is not None and model.controller.step >= 1
    assert (
        trainer.current_epoch == model.controller.step + 1
    )  # the elimination steps, then one confidence epoch
    train = tiny_dm.splits["train"]
    conf = confidence_rankings(train.indices, train.labels, score_dataset(model.ranker, tiny_dm))
    expected = combine_rankings([stage1, conf])
    got = model.rankings
    assert got["index"].tolist() == expected["index"].tolist()
    assert got["rank"].tolist() == got["position"].tolist()
    assert not got["index"].equals(stage1["index"])  # the confidence order moved samples
    assert model.ranking_history()["step"].max() == model.controller.step  # history: the elimination run's
    from sebra.diagnostics import tail_agreement

    assert model.ranking_check == tail_agreement(stage1, conf)  # the check of the two halves' tails


def test_rank_by_needs_rank_bins_and_valid_confidence_steps():
    with pytest.raises(ValueError, match="set rank_bins"):
        SebraModule(**{**TINY, "rank_by": "confidence"})
    with pytest.raises(ValueError, match="rank_by must be one of"):
        SebraModule(**{**TINY, "rank_by": "erm", "rank_bins": 4})
    with pytest.raises(ValueError, match="confidence_steps must be >= 1"):
        SebraModule(**{**TINY, "rank_by": "fused", "rank_bins": 4, "confidence_steps": 0})
    assert SebraModule(**{**TINY, "rank_by": "fused", "rank_bins": 4}).epochs_needed() == 3 + 1 + 2
    assert SebraModule(**{**TINY, "rank_by": "confidence", "rank_bins": 4}).epochs_needed() == 1 + 2
