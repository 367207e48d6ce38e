"""Sebra's Stage 1 as a component: :class:`SelfGuidedRanking` driven by a plain loop, without SebraModule or a
Trainer, and its ``state_dict`` resuming a ranking exactly."""

from __future__ import annotations

import copy
from contextlib import nullcontext

import pandas as pd
import pytest
import torch

from sebra.backbones import Classifier
from sebra.methods.sebra_stage1 import SelfGuidedRanking
from tests.support.tiny_data import TinyDataModule

SETTINGS = {"max_steps": 3, "p_critical": 0.6, "beta_inv": 0.5, "seed": 0}


class LoopHost:
    """The least a training loop gives the ranker (``RankingHost``): data, network, one process, no logger."""

    def __init__(self, seed: int = 0) -> None:
        self.datamodule = TinyDataModule(batch_size=8)
        self.datamodule.setup("fit")
        self.device = torch.device("cpu")
        self.ranker = self._net(seed)
        self.optimizer = torch.optim.Adam(self.ranker.parameters(), lr=1e-2)
        self.logged: list[dict] = []

    @staticmethod
    def _net(seed: int) -> Classifier:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return Classifier("test_resnet", 2)

    def replicas(self) -> tuple[int, int]:
        return 1, 0

    def all_gather(self, data: torch.Tensor) -> torch.Tensor:
        return data[None]

    def forward_context(self):
        return nullcontext()

    def log_dict(self, dictionary: dict, **kwargs: object) -> None:
        self.logged.append(dictionary)

    def reset_ranker(self, seed: int) -> None:
        self.ranker.load_state_dict(self._net(seed).state_dict())
        self.optimizer.state.clear()


def _start(ranking: SelfGuidedRanking, host: LoopHost) -> None:
    train = host.datamodule.train_dataset
    ranking.start(train.labels, train.indices, None, 2)


def _step(ranking: SelfGuidedRanking, host: LoopHost, hooks: bool = False) -> tuple[pd.DataFrame, str] | None:
    """One ranking step: train on the step's draws with the ranker's loss, then close it; ``hooks``: call
    ``after_batch`` after every optimizer step, as SebraModule does."""
    dm = host.datamodule
    loader = dm.loader(dm.train_dataset, batch_size=dm.batch_size, sampler=ranking.sampler(host.replicas()))
    for i, batch in enumerate(loader):
        batch = dm.on_after_batch_transfer(batch, 0)
        loss = ranking.loss(host.ranker(batch["image"]), batch["label"])
        host.optimizer.zero_grad()
        loss.backward()
        host.optimizer.step()
        if hooks:
            ranking.after_batch(host, i, len(loader))
    return ranking.close_step(host)


def _rank(ranking: SelfGuidedRanking, host: LoopHost, hooks: bool = False) -> tuple[pd.DataFrame, str]:
    for _ in range(ranking.epochs_needed()):
        done = _step(ranking, host, hooks)
        if done is not None:
            return done
    raise AssertionError("ranking did not end within epochs_needed()")


def test_ranks_every_training_sample_once_without_a_trainer() -> None:
    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(**SETTINGS)
    _start(ranking, host)
    table, note = _rank(ranking, host)
    train = host.datamodule.train_dataset
    assert sorted(table["index"]) == sorted(train.indices.tolist())
    assert (
        table.set_index("index").loc[train.indices.numpy(), "label"].to_numpy() == train.labels.numpy()
    ).all()
    assert table["rank"].min() == 1 and table["rank"].max() <= ranking.steps + 1
    for _, part in table.groupby("label"):  # per class, positions 1..n and ranks non-decreasing along them
        part = part.sort_values("position")
        assert part["position"].tolist() == list(range(1, len(part) + 1))
        assert part["rank"].is_monotonic_increasing
    assert "ranking steps" in note and len(host.logged) == ranking.steps
    assert len(ranking.history()) == ranking.steps


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"rank_repeats": 2},
        {"rank_by": "fused", "confidence_score": "mean"},
        {"second_look_epochs": 2},
        {"rank_by": "fused", "second_look_epochs": 2},
    ],
)
def test_state_dict_resumes_a_ranking_exactly(settings: dict) -> None:
    # Rank one step, save the component (and the network), rank on; a fresh component loaded from the state, with
    # the same network, gives the same table: the component carries everything ranking needs.
    def one_step(ranking: SelfGuidedRanking, host: LoopHost) -> None:
        assert _step(ranking, host) is None

    _, expected, _, got = _save_rank_and_resume(settings, one_step)
    pd.testing.assert_frame_equal(got, expected)


def _save_rank_and_resume(
    settings: dict, advance
) -> tuple[SelfGuidedRanking, pd.DataFrame, SelfGuidedRanking, pd.DataFrame]:
    """Rank with ``settings`` until ``advance(ranking, host)`` returns, save the component, the network and the
    optimizer, rank to the end; then load a fresh component from the saved state and rank to the end again.
    Returns ``(ranking, its table, resumed, its table)``."""
    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(**SETTINGS, **settings)
    _start(ranking, host)
    advance(ranking, host)
    state = copy.deepcopy(ranking.state_dict())
    net = copy.deepcopy(host.ranker.state_dict())
    opt = copy.deepcopy(host.optimizer.state_dict())
    rng = torch.get_rng_state()
    expected, _ = _rank(ranking, host)

    torch.set_rng_state(rng)
    again = LoopHost()
    again.ranker.load_state_dict(net)
    again.optimizer.load_state_dict(opt)
    resumed = SelfGuidedRanking(**SETTINGS, **settings)
    resumed.load_state_dict(state)  # before start(): the controller's state waits for it
    _start(resumed, again)
    got, _ = _rank(resumed, again)
    return ranking, expected, resumed, got


def test_a_fresh_component_without_the_state_ranks_differently() -> None:
    # The control for the test above: the state is what makes the resumed ranking equal.
    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(**SETTINGS)
    _start(ranking, host)
    _step(ranking, host)
    assert ranking.controller.step == 1 and ranking.state_dict()["controller"] is not None
    other = SelfGuidedRanking(**SETTINGS)
    _start(other, LoopHost())
    assert other.controller.step == 0 and int(other.controller.active.sum()) > int(
        ranking.controller.active.sum()
    )


def test_the_confidence_run_trains_plain_cross_entropy() -> None:
    ranking = SelfGuidedRanking(rank_by="confidence")
    logits, labels = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    assert torch.allclose(ranking.loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels))
    weighted = SelfGuidedRanking(beta_inv=0.7)
    assert not torch.allclose(weighted.loss(logits, labels), ranking.loss(logits, labels))
    assert (
        ranking.epochs_needed() == 1 and SelfGuidedRanking(max_steps=4, rank_repeats=2).epochs_needed() == 8
    )


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"rank_by": "median"}, "SelfGuidedRanking: rank_by must be one of elimination, confidence, fused"),
        ({"rank_repeats": 0}, "SelfGuidedRanking: rank_repeats must be >= 1"),
        ({"within_step": "mean", "scoring": "official"}, "within_step='mean' .* needs scoring='full'"),
        ({"draws_per_step": 0}, "draws_per_step must be None, 'active' or an integer >= 1"),
        ({"second_look_epochs": -1}, "SelfGuidedRanking: second_look_epochs must be >= 0"),
        ({"rank_by": "confidence", "second_look_epochs": 1}, "needs rank_by='elimination' or 'fused'"),
        (
            {"second_look_epochs": 3, "second_look_max_epochs": 2},
            r"second_look_max_epochs \(2\) must be 0 .* at least",
        ),
        ({"second_look_max_epochs": 4}, "lengthens a second look: set second_look_epochs"),
        ({"second_look_reduce": "max"}, "second_look_reduce"),
        (
            {"second_look_epochs": 3, "second_look_reduce": "calm"},
            r"second_look_reduce='calm' .* needs second_look_max_epochs > second_look_epochs > 0, got 0 and 3",
        ),
        (
            {"second_look_epochs": 3, "second_look_ema_epochs": -1},
            "second_look_ema_epochs must be a number >= 0",
        ),
        ({"second_look_ema_epochs": 1}, "weight average: set second_look_epochs"),
        ({"second_look_loss": "gce"}, "second_look_loss"),
        ({"second_look_place": "end"}, "second_look_place"),
    ],
)
def test_bad_settings_name_the_component_and_the_argument(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SelfGuidedRanking(**kwargs)


def test_the_second_look_balances_the_first_wave_trains_plain_ce_and_regrades_only_that_wave() -> None:
    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(**SETTINGS, second_look_epochs=2)
    _start(ranking, host)
    done = None
    while done is None and not ranking.second_look_run:
        done = _step(ranking, host)
    assert done is None and ranking.second_look_run  # the table is made, the second look has started
    base, _ = ranking._look_base
    assert ranking.epochs_needed() == SETTINGS["max_steps"] + 2
    # its loss is plain cross-entropy, whatever beta_inv says
    logits, labels = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    assert torch.allclose(ranking.loss(logits, labels), torch.nn.functional.cross_entropy(logits, labels))
    # its draws: every class's first wave and the rest about equally often, seeded (the same when asked again)
    draws = torch.tensor(ranking.second_look_positions())
    assert draws.tolist() == ranking.second_look_positions() and len(draws) == len(ranking.controller)
    epochs = []  # 50 epochs' draws (each epoch seeded apart), enough to measure the shares on 16 samples
    for e in range(50):
        ranking.second_look_done = e
        epochs.append(torch.tensor(ranking.second_look_positions()))
    ranking.second_look_done = 0
    assert not torch.equal(epochs[0], epochs[1])
    draws = torch.cat(epochs)
    first, labels = ranking._look_first, ranking.controller.labels
    for c in labels.unique():
        mine = labels[draws] == c
        if first[labels == c].all() or not first[labels == c].any():
            continue
        share = first[draws][mine].float().mean()
        assert 0.4 < float(share) < 0.6, float(share)
    table, note = _rank(ranking, host)
    assert "the second look (2 epochs) moved" in note and ranking.second_look_moved is not None
    assert not ranking.second_look_run
    # only first-wave samples may move: the rest keep their relative order within their class
    wave = pd.Series(first.numpy(), index=ranking.controller.indices.numpy())
    for c, part in table.groupby("label"):
        rest_before = [i for i in base[base["label"] == c]["index"] if not wave[i]]
        rest_after = [i for i in part.sort_values("position")["index"] if not wave[i]]
        assert rest_after == rest_before
    assert sorted(table["index"]) == sorted(base["index"])


def test_a_lengthened_second_look_stops_where_its_wrong_share_stops_falling_and_reads_its_last_epochs() -> (
    None
):
    from sebra.ranking import second_look_continues

    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(**SETTINGS, second_look_epochs=1, second_look_max_epochs=6)
    assert ranking.epochs_needed() == SETTINGS["max_steps"] + 6  # the budget is the cap
    _start(ranking, host)
    table, note = _rank(ranking, host)
    look = ranking.second_look_summary()
    shares = look["wrong_share_by_epoch"]
    assert look["window"] == 1 and look["max_epochs"] == 6 and look["epochs"] == len(shares)
    assert 1 <= len(shares) <= 6 and f"the second look ({len(shares)} epochs)" in note
    # it went on exactly while the share fell, and stopped for the reason it records
    assert all(second_look_continues(shares[:k]) for k in range(2, len(shares)))
    if look["stop"] == "plateau":
        assert not second_look_continues(shares)
    else:
        assert look["stop"] == "cap" and len(shares) == 6
    # the recorded share is the last epoch's, from the p_y the order reads (window 1: that epoch alone)
    last = ranking.second_look_recent[-1]
    first = ranking._look_first
    assert len(ranking.second_look_recent) == 1
    assert shares[-1] == pytest.approx(float((last[first] < 0.5).float().mean()))
    assert sorted(table["index"]) == sorted(ranking.controller.indices.tolist())


def test_a_median_second_look_ignores_one_epoch_that_errs_on_many_samples_where_the_mean_moves_them() -> None:
    # three epochs' p_y for four samples: the middle epoch's snapshot errs on the first three at once
    recent = [
        torch.tensor([0.7, 0.8, 0.6, 0.2]),
        torch.tensor([0.05, 0.1, 0.2, 0.3]),
        torch.tensor([0.7, 0.6, 0.65, 0.1]),
    ]
    looks = {}
    for reduce in ("mean", "median"):
        ranking = SelfGuidedRanking(**SETTINGS, second_look_epochs=3, second_look_reduce=reduce)
        ranking.second_look_recent = recent
        looks[reduce] = ranking._look_score()
    assert torch.allclose(looks["mean"], torch.stack(recent).mean(0))
    assert torch.allclose(looks["median"], torch.tensor([0.7, 0.6, 0.6, 0.2]))
    # the mean moves two samples the other epochs got right; the median moves only the one most epochs got wrong
    assert (looks["mean"] < 0.5).tolist() == [True, False, True, True]
    assert (looks["median"] < 0.5).tolist() == [False, False, False, True]


def test_a_median_second_look_moves_the_first_wave_samples_whose_median_p_y_is_below_one_half() -> None:
    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(**SETTINGS, second_look_epochs=3, second_look_reduce="median")
    _start(ranking, host)
    table, note = _rank(ranking, host)
    look = ranking.second_look_summary()
    assert look["reduce"] == "median" and look["epochs"] == 3 and len(ranking.second_look_recent) == 3
    score = torch.stack(ranking.second_look_recent).double().median(0).values
    assert ranking.second_look_moved == int((score[ranking._look_first] < 0.5).sum())
    assert sorted(table["index"]) == sorted(ranking.controller.indices.tolist())


def test_a_calm_second_look_reads_its_calmest_epochs_so_a_snapshot_that_errs_on_many_is_left_out() -> None:
    # four epochs' p_y for four samples, the first wave being samples 0-2: epoch 3 errs on all three at once
    recent = [
        torch.tensor([0.3, 0.45, 0.9, 0.2]),
        torch.tensor([0.7, 0.8, 0.6, 0.2]),
        torch.tensor([0.05, 0.1, 0.2, 0.3]),
        torch.tensor([0.7, 0.6, 0.2, 0.1]),
    ]
    ranking = SelfGuidedRanking(
        **SETTINGS, second_look_epochs=2, second_look_max_epochs=4, second_look_reduce="calm"
    )
    ranking.second_look_recent = recent
    ranking.second_look_shares = [2 / 3, 0.0, 1.0, 1 / 3]
    assert ranking.second_look_calm_epochs() == [1, 3]  # 0-based, in epoch order
    assert torch.allclose(ranking._look_score(), (recent[1] + recent[3]) / 2)
    # the mean of the last two epochs would move samples 0-2; the calm epochs move only sample 2
    assert ((recent[2] + recent[3]) / 2 < 0.5)[:3].tolist() == [True, True, True]
    assert (ranking._look_score() < 0.5)[:3].tolist() == [False, False, True]
    ranking.second_look_shares = [0.1, 0.1, 0.1, 0.0]  # a tie goes to the earlier epoch
    assert ranking.second_look_calm_epochs() == [0, 3]


def test_a_calm_second_look_runs_all_its_epochs_and_moves_by_the_mean_of_the_calmest() -> None:
    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(
        **SETTINGS, second_look_epochs=2, second_look_max_epochs=4, second_look_reduce="calm"
    )
    _start(ranking, host)
    table, note = _rank(ranking, host)
    look = ranking.second_look_summary()
    shares = look["wrong_share_by_epoch"]
    assert (
        look["stop"] == "calm"
        and look["epochs"] == 4
        and len(shares) == 4
        and len(ranking.second_look_recent) == 4
    )
    calm = sorted(range(4), key=lambda k: (shares[k], k))[:2]
    assert look["read_epochs"] == [k + 1 for k in sorted(calm)]
    score = (ranking.second_look_recent[min(calm)] + ranking.second_look_recent[max(calm)]) / 2
    assert ranking.second_look_moved == int((score[ranking._look_first] < 0.5).sum())
    assert "the second look (4 epochs)" in note
    assert sorted(table["index"]) == sorted(ranking.controller.indices.tolist())


def test_a_calm_second_look_resumed_mid_look_gives_the_same_table() -> None:
    settings = {"second_look_epochs": 2, "second_look_max_epochs": 4, "second_look_reduce": "calm"}

    def two_look_epochs(ranking: SelfGuidedRanking, host: LoopHost) -> None:
        while not (ranking.second_look_run and ranking.second_look_done >= 2):
            assert _step(ranking, host) is None

    ranking, expected, resumed, got = _save_rank_and_resume(settings, two_look_epochs)
    pd.testing.assert_frame_equal(got, expected)
    assert resumed.second_look_summary() == ranking.second_look_summary()


def _until_look_epoch(ranking: SelfGuidedRanking, host: LoopHost, epochs: int) -> None:
    """Rank (with the module's hooks) until the second look has trained ``epochs`` epochs."""
    while not (ranking.second_look_run and ranking.second_look_done >= epochs):
        assert _step(ranking, host, hooks=True) is None


def test_an_ema_second_look_scores_the_weight_average_of_its_network_not_its_last_snapshot() -> None:
    from sebra.scoring import score_loader

    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(**SETTINGS, second_look_epochs=2, second_look_ema_epochs=2.0)
    _start(ranking, host)
    while not ranking.second_look_run:
        assert _step(ranking, host, hooks=True) is None
    assert ranking._look_ema is None  # the elimination steps kept no average
    # the look's first epoch, batch by batch: the average follows ema <- d * ema + (1 - d) * ranker
    dm = host.datamodule
    loader = dm.loader(dm.train_dataset, batch_size=dm.batch_size, sampler=ranking.sampler(host.replicas()))
    n = len(loader)
    expected: dict[str, torch.Tensor] | None = None
    for i, batch in enumerate(loader):
        batch = dm.on_after_batch_transfer(batch, 0)
        loss = ranking.loss(host.ranker(batch["image"]), batch["label"])
        host.optimizer.zero_grad()
        loss.backward()
        host.optimizer.step()
        ranking.after_batch(host, i, n)
        now = {k: v.detach().clone() for k, v in host.ranker.state_dict().items()}
        d = 1.0 - 1.0 / max(1.0, 2.0 * n)
        if expected is None:
            expected = now  # a copy of the ranker after the look's first step
        else:
            expected = {
                k: v.lerp(now[k].to(v.dtype), 1 - d) if v.is_floating_point() else now[k]
                for k, v in expected.items()
            }
    assert n >= 2 and ranking._look_ema.decay == pytest.approx(1.0 - 1.0 / max(1.0, 2.0 * n))
    for k, v in ranking._look_ema.module.state_dict().items():
        assert torch.allclose(v.float(), expected[k].float(), atol=1e-6), k
    assert ranking.close_step(host) is None  # epoch 1 of 2 closed
    # its recorded p_y is the average's, not the last snapshot's (which differs)
    every = torch.arange(len(ranking.controller))
    eval_loader = dm.loader(dm.train_eval_dataset, sampler=every.tolist())
    ema_p = score_loader(
        ranking._look_ema.module, eval_loader, device=host.device, transform=dm.batch_transform
    ).p_y
    net_p = score_loader(host.ranker, eval_loader, device=host.device, transform=dm.batch_transform).p_y
    assert torch.allclose(ranking.second_look_recent[-1], ema_p.float(), atol=1e-6)
    assert not torch.allclose(ema_p, net_p, atol=1e-4)
    table, note = _rank(ranking, host, hooks=True)
    assert ranking.second_look_summary()["ema_epochs"] == 2.0 and ranking._look_ema is None
    assert sorted(table["index"]) == sorted(ranking.controller.indices.tolist())


def test_an_ema_second_look_resumed_mid_look_gives_the_same_table() -> None:
    torch.manual_seed(0)
    host = LoopHost()
    settings = {**SETTINGS, "second_look_epochs": 3, "second_look_ema_epochs": 1.0}
    ranking = SelfGuidedRanking(**settings)
    _start(ranking, host)
    _until_look_epoch(ranking, host, 1)
    state = copy.deepcopy(ranking.state_dict())
    assert state["second_look"]["ema"] is not None  # the average travels with the checkpoint
    net = copy.deepcopy(host.ranker.state_dict())
    opt = copy.deepcopy(host.optimizer.state_dict())
    rng = torch.get_rng_state()
    expected, _ = _rank(ranking, host, hooks=True)

    torch.set_rng_state(rng)
    again = LoopHost()
    again.ranker.load_state_dict(net)
    again.optimizer.load_state_dict(opt)
    resumed = SelfGuidedRanking(**settings)
    resumed.load_state_dict(state)
    _start(resumed, again)
    got, _ = _rank(resumed, again, hooks=True)
    pd.testing.assert_frame_equal(got, expected)
    # without the average (a checkpoint that lost it) the look restarts its average and ranks differently
    torch.set_rng_state(rng)
    third = LoopHost()
    third.ranker.load_state_dict(net)
    third.optimizer.load_state_dict(opt)
    lost = SelfGuidedRanking(**settings)
    lost.load_state_dict({**state, "second_look": {**state["second_look"], "ema": None}})
    _start(lost, third)
    other, _ = _rank(lost, third, hooks=True)
    assert not torch.equal(torch.stack(lost.second_look_recent), torch.stack(ranking.second_look_recent))


def test_a_weighted_second_look_trains_with_the_ranking_loss_and_the_plain_look_with_cross_entropy() -> None:
    from sebra.ranking import confidence_weighted_loss

    logits, labels = torch.randn(6, 2), torch.tensor([0, 1, 0, 1, 0, 1])
    plain = torch.nn.functional.cross_entropy(logits, labels)
    weighted = confidence_weighted_loss(logits, labels, SETTINGS["beta_inv"])
    assert not torch.allclose(plain, weighted)
    for loss, expected in (("ce", plain), ("weighted", weighted)):
        ranking = SelfGuidedRanking(**SETTINGS, second_look_epochs=1, second_look_loss=loss)
        assert torch.allclose(ranking.loss(logits, labels), weighted)  # Stage 1 itself: always weighted
        ranking.second_look_run = True
        assert torch.allclose(ranking.loss(logits, labels), expected), loss
        ranking.second_look_run, ranking.confidence_run = False, True
        assert torch.allclose(ranking.loss(logits, labels), plain)  # the confidence run: always plain
    torch.manual_seed(0)
    host = LoopHost()
    ranking = SelfGuidedRanking(**SETTINGS, second_look_epochs=2, second_look_loss="weighted")
    _start(ranking, host)
    table, _ = _rank(ranking, host)
    assert ranking.second_look_summary()["loss"] == "weighted"
    assert sorted(table["index"]) == sorted(ranking.controller.indices.tolist())


def test_the_second_look_places_what_it_moves_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    import sebra.methods.sebra_stage1 as stage1

    seen: list[str] = []
    real = stage1.second_look_order

    def spy(*args, **kwargs):
        seen.append(kwargs.get("place", "percentile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(stage1, "second_look_order", spy)
    for place in ("percentile", "tail"):
        torch.manual_seed(0)
        host = LoopHost()
        ranking = SelfGuidedRanking(**SETTINGS, second_look_epochs=2, second_look_place=place)
        _start(ranking, host)
        table, _ = _rank(ranking, host)
        assert ranking.second_look_summary()["place"] == place
        assert sorted(table["index"]) == sorted(ranking.controller.indices.tolist())
    assert seen == ["percentile", "tail"]
