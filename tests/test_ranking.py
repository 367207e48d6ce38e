"""Stage 1: the confidence-weighted loss and the elimination controller, on hand-made tensors."""

import math

import pandas as pd
import pytest
import torch

from sebra.export import load_rankings, save_rankings
from sebra.ranking import (
    ActiveSetSampler,
    RankingController,
    confidence_weighted_loss,
    first_wave,
    first_wave_weights,
    order_table,
    second_look_continues,
    second_look_order,
    true_class_prob,
)


def test_loss_value_matches_hand_computation():
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.5], [0.0, 0.0]])
    labels = torch.tensor([0, 0, 1])
    beta = 0.7
    expected = 0.0
    for row, y in zip(logits.tolist(), labels.tolist()):
        z = sum(math.exp(v) for v in row)
        p = math.exp(row[y]) / z
        expected += (p**beta) * (-math.log(p))
    expected /= 3
    got = confidence_weighted_loss(logits, labels, beta)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_loss_gradient_treats_weight_as_constant():
    logits = torch.tensor([[2.0, 0.0], [0.5, 1.5]], requires_grad=True)
    labels = torch.tensor([0, 1])
    beta = 0.5
    confidence_weighted_loss(logits, labels, beta).backward()
    # d/dz [w * CE] with w constant = w * (softmax - onehot) / B
    p = torch.softmax(logits.detach(), 1)
    w = p[torch.arange(2), labels] ** beta
    onehot = torch.nn.functional.one_hot(labels, 2).float()
    expected = w[:, None] * (p - onehot) / 2
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    # and it differs from the gradient with the weight not detached
    logits2 = logits.detach().clone().requires_grad_(True)
    ce = torch.nn.functional.cross_entropy(logits2, labels, reduction="none")
    (torch.exp(-ce) ** beta * ce).mean().backward()
    assert not torch.allclose(logits2.grad, expected, atol=1e-4)


def test_true_class_prob():
    logits = torch.tensor([[0.0, math.log(3.0)]])
    assert true_class_prob(logits, torch.tensor([1])).item() == pytest.approx(0.75)


def test_strict_elimination_at_p_critical():
    ctl = RankingController(torch.tensor([0, 0, 1, 1]), p_critical=0.75, max_steps=5)
    out = ctl.update(torch.arange(4), torch.tensor([0.75, 0.7501, 0.9, 0.1]))
    assert out.tolist() == [1, 2]  # 0.75 itself stays: the test is strict
    assert ctl.active.tolist() == [True, False, False, True]
    assert ctl.elim_step.tolist() == [0, 1, 1, 0]


def test_per_class_ranks_and_tie_break():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    ctl = RankingController(
        labels, p_critical=0.5, max_steps=10, indices=torch.tensor([10, 11, 12, 13, 14, 15])
    )
    ctl.update(torch.arange(6), torch.tensor([0.6, 0.9, 0.1, 0.2, 0.7, 0.7]))  # step 1: 11, 10 | 14, 15
    ctl.update(torch.tensor([2, 3]), torch.tensor([0.8, 0.55]))  # step 2: 12 | 13
    df = ctl.rankings()
    c0 = df[df.label == 0]
    assert c0["index"].tolist() == [11, 10, 12]  # step 1, higher p_y first; then step 2
    assert c0["rank"].tolist() == [1, 1, 2]
    assert c0["position"].tolist() == [1, 2, 3]
    c1 = df[df.label == 1]
    assert c1["index"].tolist() == [14, 15, 13]  # equal p_y: dataset index breaks the tie
    assert c1["position"].tolist() == [1, 2, 3]
    assert ctl.done  # nothing active
    assert c0["p_y"].tolist() == pytest.approx([0.9, 0.6, 0.8])


@pytest.mark.parametrize("mode,expected_rank", [("last", 3), ("official", -1)])
def test_never_eliminated(mode, expected_rank):
    ctl = RankingController(torch.tensor([0, 0, 1]), p_critical=0.5, max_steps=2, unranked=mode)
    ctl.update(torch.arange(3), torch.tensor([0.9, 0.1, 0.2]))
    ctl.update(torch.tensor([1, 2]), torch.tensor([0.3, 0.4]))
    assert ctl.done and ctl.num_active == 2
    df = ctl.rankings().set_index("index")
    assert df.loc[0, "rank"] == 1
    assert df.loc[1, "rank"] == expected_rank and df.loc[2, "rank"] == expected_rank
    assert df.loc[1, "p_y"] == pytest.approx(0.3)  # the latest score for samples never eliminated
    if mode == "last":
        assert df.loc[1, "position"] == 2  # appended after the ranked sample of its class
    else:
        assert df.loc[1, "position"] == 1  # -1 sorts first, as the official Stage 2 reads it


def test_everything_eliminated_at_step_one():
    ctl = RankingController(torch.tensor([0, 1, 1]), max_steps=10)
    ctl.update(torch.arange(3), torch.tensor([0.99, 0.98, 0.97]))
    assert ctl.done and ctl.step == 1
    assert (ctl.rankings()["rank"] == 1).all()


def test_nothing_eliminated_runs_to_max_steps():
    ctl = RankingController(torch.tensor([0, 1]), max_steps=3)
    while not ctl.done:
        ctl.update(torch.arange(2), torch.tensor([0.1, 0.2]))
    assert ctl.step == 3
    assert (ctl.rankings()["rank"] == 4).all()


def test_class_with_one_sample():
    ctl = RankingController(torch.tensor([0, 1, 1, 1]), max_steps=4)
    ctl.update(torch.arange(4), torch.tensor([0.2, 0.9, 0.1, 0.1]))
    ctl.update(torch.tensor([0, 2, 3]), torch.tensor([0.95, 0.1, 0.1]))
    df = ctl.rankings()
    assert df[df.label == 0][["rank", "position"]].values.tolist() == [[2, 1]]


def test_empty_class_and_bad_labels_raise():
    with pytest.raises(ValueError, match="class 1 has no training samples"):
        RankingController(torch.tensor([0, 0, 2]), num_classes=3)
    with pytest.raises(ValueError, match="label 5 is outside 0..1"):
        RankingController(torch.tensor([0, 5]), num_classes=2)
    with pytest.raises(ValueError, match="label -1"):
        RankingController(torch.tensor([0, -1, 1]), num_classes=2)


@pytest.mark.parametrize("beta,pc", [(0.0, 0.5), (-1.0, 0.5), (0.7, 0.0), (0.7, 1.0), (0.7, 1.5)])
def test_bad_hyperparameters_name_the_value(beta, pc):
    from sebra import SebraModule

    with pytest.raises(ValueError, match=str(beta) if beta <= 0 else str(pc)):
        SebraModule(backbone="test_resnet", beta_inv=beta, p_critical=pc)


def test_duplicate_scores_use_highest_and_inactive_ignored():
    ctl = RankingController(torch.tensor([0, 0, 1]), p_critical=0.5, max_steps=5)
    ctl.update(torch.tensor([0, 0, 1]), torch.tensor([0.2, 0.8, 0.3]))
    assert ctl.active.tolist() == [False, True, True]
    ctl.update(torch.tensor([0, 1]), torch.tensor([0.1, 0.9]))  # 0 already out: its score is ignored
    assert ctl.elim_step.tolist() == [1, 2, 0]
    assert ctl.p_y[0].item() == pytest.approx(0.8)


def test_sampler_draws_only_active_and_is_deterministic():
    def run():
        ctl = RankingController(torch.tensor([0, 0, 1, 1, 0, 1]), max_steps=5, seed=7)
        ctl.update(torch.arange(6), torch.tensor([0.9, 0.1, 0.9, 0.1, 0.1, 0.1]))
        return list(iter(ActiveSetSampler(ctl)))

    a, b = run(), run()
    assert a == b and len(a) == 6
    assert set(a) <= {1, 3, 4, 5}


def test_sampler_shards_across_replicas():
    def draws(rank):
        ctl = RankingController(torch.tensor([0, 1] * 5), seed=3)
        return list(iter(ActiveSetSampler(ctl, num_samples=10, num_replicas=2, rank=rank)))

    full = RankingController(torch.tensor([0, 1] * 5), seed=3).draw(10).tolist()
    assert draws(0) == full[0::2] and draws(1) == full[1::2]


def test_state_dict_round_trip_resumes_identically():
    labels = torch.tensor([0, 1] * 20)
    scores = torch.rand(6, 40, generator=torch.Generator().manual_seed(0))

    def steps(ctl, start, stop):
        for t in range(start, stop):
            pos = ctl.draw(40)
            ctl.update(torch.unique(pos), scores[t][torch.unique(pos)])

    a = RankingController(labels, p_critical=0.8, max_steps=6, seed=1)
    steps(a, 0, 6)
    b = RankingController(labels, p_critical=0.8, max_steps=6, seed=1)
    steps(b, 0, 3)
    state = b.state_dict()
    c = RankingController(labels, p_critical=0.8, max_steps=6, seed=1)
    c.load_state_dict(state)
    steps(c, 3, 6)
    pd.testing.assert_frame_equal(a.rankings(), c.rankings())


def test_rankings_csv_round_trip_atomic(tmp_path):
    ctl = RankingController(torch.tensor([0, 1, 0]), max_steps=1)
    ctl.update(torch.arange(3), torch.tensor([0.9, 0.2, 0.3]))
    path = save_rankings(ctl.rankings(), tmp_path / "rankings.csv")
    back = load_rankings(path)
    pd.testing.assert_frame_equal(back, ctl.rankings(), check_exact=False, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir()] == ["rankings.csv"]  # no temporary file left


def test_within_step_order_by_a_given_score():
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    ctl = RankingController(
        labels, p_critical=0.5, max_steps=10, indices=torch.tensor([10, 11, 12, 13, 14, 15])
    )
    ctl.update(torch.arange(6), torch.tensor([0.9, 0.8, 0.7, 0.1, 0.9, 0.6]))  # step 1: 10, 11, 12 | 14, 15
    ctl.update(torch.tensor([3]), torch.tensor([0.9]))  # step 2: 13
    final = torch.tensor([0.2, 0.9, 0.5, 0.99, 0.1, 0.3])  # e.g. the final network's p_y
    df = ctl.rankings(final)
    c0 = df[df.label == 0]
    assert c0["index"].tolist() == [
        11,
        12,
        10,
        13,
    ]  # step 1 by the given score, higher first; the rank still leads
    assert c0["rank"].tolist() == [1, 1, 1, 2]
    assert c0["p_final"].tolist() == pytest.approx([0.9, 0.5, 0.2, 0.99])
    assert c0["p_y"].tolist() == pytest.approx([0.8, 0.7, 0.9, 0.9])  # p_y at elimination is kept
    assert df[df.label == 1]["index"].tolist() == [15, 14]
    assert "p_final" not in ctl.rankings().columns
    with pytest.raises(ValueError, match="one score per training position"):
        ctl.rankings(torch.ones(5))


def test_combine_rankings_orders_by_mean_position_percentile():
    from sebra.ranking import combine_rankings

    def table(order0, order1, ranks):
        rows = [(i, 0, ranks[i], 0.5) for i in order0] + [(i, 1, ranks[i], 0.5) for i in order1]
        df = pd.DataFrame(rows, columns=["index", "label", "rank", "p_y"])
        df.insert(3, "position", df.groupby("label").cumcount() + 1)
        return df

    ranks = {i: 1 for i in range(7)}
    a = table([0, 1, 2, 3], [4, 5, 6], ranks)
    b = table([1, 0, 3, 2], [6, 5, 4], {**ranks, 3: 3})
    c = table([0, 1, 3, 2], [4, 5, 6], ranks)
    out = combine_rankings([a, b, c])
    c0 = out[out.label == 0]
    # mean positions: 0 -> (1+2+1)/3, 1 -> (2+1+2)/3, 2 -> (3+4+4)/3, 3 -> (4+3+3)/3
    assert c0["index"].tolist() == [0, 1, 3, 2]
    assert c0["position"].tolist() == [1, 2, 3, 4]
    assert c0.set_index("index")["rank"].to_dict() == {0: 1, 1: 1, 2: 1, 3: 2}  # round((1 + 3 + 1) / 3) = 2
    assert out[out.label == 1]["index"].tolist() == [4, 5, 6]  # 4: (1+3+1)/3 < 6: (3+1+3)/3; 5 in the middle
    assert combine_rankings([a]).equals(
        a.sort_values(["label", "position"]).reset_index(drop=True)[out.columns]
    )
    with pytest.raises(ValueError, match="other samples"):
        combine_rankings([a, a[a["index"] != 6]])


def test_combine_rankings_max_keeps_each_table_least_spurious_samples_in_the_tail():
    from sebra.ranking import combine_rankings

    def table(order):  # one class, one sample per position
        return pd.DataFrame(
            {"index": order, "label": 0, "rank": 1, "position": range(1, len(order) + 1), "p_y": 0.5}
        )

    a = table([2, 0, 1, 3, 4, 5])  # sees sample 5 as least spurious, 2 as the most spurious
    b = table([0, 3, 4, 1, 5, 2])  # sees sample 2 as least spurious
    mean = combine_rankings([a, b])["index"].tolist()
    union = combine_rankings([a, b], reduce="max")["index"].tolist()
    # max positions: 0 2, 1 4, 2 6, 3 4, 4 5, 5 6 (ties by index); means: 0 1.5, 3 3, 1 3.5, 2 3.5, 4 4, 5 5.5
    assert union == [0, 1, 3, 4, 2, 5]
    assert set(union[-2:]) == {2, 5} and set(mean[-2:]) != {2, 5}  # the mean loses one table's tail sample
    with pytest.raises(ValueError, match="reduce must be 'mean' or 'max'"):
        combine_rankings([a, b], reduce="min")


def test_order_table_sorts_by_class_rank_score_then_index_with_nan_last():
    df = pd.DataFrame(
        {
            "index": [5, 3, 9, 1, 7, 2],
            "label": [1, 0, 0, 0, 1, 0],
            "rank": [1, 2, 1, 1, 1, 1],
            "p_y": [0.2, 0.9, float("nan"), 0.5, 0.8, 0.5],
        }
    )
    out = order_table(df)
    assert out["index"].tolist() == [1, 2, 9, 3, 7, 5]  # class 0: rank 1 (0.5 tie by index, NaN last), rank 2
    assert out["position"].tolist() == [1, 2, 3, 4, 1, 2]
    assert list(out.columns[:4]) == ["index", "label", "rank", "position"]


def test_balanced_draw_weights_split_each_class_equally_between_strata():
    labels = torch.tensor([0] * 10 + [1] * 6)
    # class 0: 8 in stratum 0, 2 in stratum 1; class 1: one stratum only
    strata = torch.tensor([0] * 8 + [1] * 2 + [0] * 6)
    ctl = RankingController(labels, p_critical=0.5, strata=strata, seed=0)
    w = ctl.draw_weights()
    mass = {(c, s): float(w[(labels == c) & (strata == s)].sum()) for c, s in [(0, 0), (0, 1), (1, 0)]}
    assert mass[(0, 0)] == pytest.approx(mass[(0, 1)]) == pytest.approx(5.0)  # half of class 0's 10 each
    assert mass[(1, 0)] == pytest.approx(6.0)  # classes keep their share of the active set
    draws = ctl.draw(20000)
    share_rare = float(((labels[draws] == 0) & (strata[draws] == 1)).float().mean())
    assert share_rare == pytest.approx(5 / 16, abs=0.02)  # uniform draws would give 2 / 16
    # eliminating stratum 1 of class 0 gives its mass back to stratum 0
    ctl.update(torch.arange(16), torch.tensor([0.1] * 8 + [0.9] * 2 + [0.1] * 6))
    w = ctl.draw_weights()
    assert float(w[8:10].sum()) == 0 and float(w[:8].sum()) == pytest.approx(8.0)
    with pytest.raises(ValueError, match="strata must hold one id"):
        RankingController(labels, strata=torch.zeros(3, dtype=torch.long))


def test_strata_survive_the_state_dict():
    labels = torch.tensor([0, 0, 1, 1])
    ctl = RankingController(labels, strata=torch.tensor([0, 1, 0, 1]), seed=3)
    other = RankingController(labels, seed=3)
    other.load_state_dict(ctl.state_dict())
    assert torch.equal(other.strata, ctl.strata)
    assert torch.equal(other.draw(50), ctl.draw(50))


def test_retained_samples_keep_a_share_of_the_draws_but_never_leave_twice():
    labels = torch.tensor([0] * 6 + [1] * 4)
    ctl = RankingController(labels, p_critical=0.5, seed=0, retain=0.25)
    assert torch.equal(ctl.draw_weights(), torch.ones(10))  # nothing eliminated yet: the paper's draws
    first = torch.tensor([0.9] * 4 + [0.1] * 2 + [0.9] * 2 + [0.1] * 2)
    ctl.update(torch.arange(10), first)
    w = ctl.draw_weights()
    assert torch.equal(w, torch.where(ctl.active, 1.0, 0.25))
    draws = ctl.draw(40000)
    share_eliminated = float((~ctl.active[draws]).float().mean())
    assert share_eliminated == pytest.approx(6 * 0.25 / (6 * 0.25 + 4), abs=0.01)
    # eliminated samples are drawn for training but keep the step they left at, whatever they score later
    ctl.update(torch.arange(10), torch.full((10,), 0.99))
    assert ctl.ranks().tolist() == [1, 1, 1, 1, 2, 2, 1, 1, 2, 2]
    paper = RankingController(labels, p_critical=0.5, seed=0)
    paper.update(torch.arange(10), first)
    assert float(paper.draw_weights()[~paper.active].sum()) == 0.0
    with pytest.raises(ValueError, match=r"retain must lie in \[0, 1\]"):
        RankingController(labels, retain=1.5)


def test_mean_after_elimination_grades_a_wave_by_later_scores():
    labels = torch.tensor([0, 0, 0, 0])
    ctl = RankingController(labels, p_critical=0.5, seed=0)
    first = torch.tensor([0.9, 0.8, 0.2, 0.1])
    ctl.update(torch.arange(4), first)
    ctl.observe(first)  # the step's own scores count for the two that left
    later = torch.tensor([0.1, 0.9, 0.95, 0.3])
    ctl.update(torch.arange(4)[ctl.active], later[ctl.active])  # position 2 leaves at step 2
    ctl.observe(later)
    mean = ctl.mean_after()
    assert mean[:3].tolist() == pytest.approx([0.5, 0.85, 0.95]) and mean[3] == pytest.approx(
        0.3
    )  # 3: latest p_y
    table = ctl.rankings(mean)
    assert table["index"].tolist() == [1, 0, 2, 3]  # within step 1 the later network's grade wins
    other = RankingController(labels, p_critical=0.5, seed=0)
    other.load_state_dict(ctl.state_dict())
    assert torch.equal(other.mean_after(), mean)
    with pytest.raises(ValueError, match="one score per training position"):
        ctl.observe(torch.zeros(3))


def test_mean_after_window_stops_adding_late_scores():
    labels = torch.tensor([0, 0])
    ctl = RankingController(labels, p_critical=0.5, max_steps=5, seed=0)
    ctl.update(torch.arange(2), torch.tensor([0.9, 0.1]))
    for p in (0.9, 0.5, 0.1):  # the step's own score, then two later ones
        ctl.observe(torch.tensor([p, 0.1]), window=2)
    assert ctl.after_count.tolist() == [2, 0] and ctl.mean_after()[0] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="window must be >= 1"):
        ctl.observe(torch.tensor([0.5, 0.5]), window=0)


def test_first_wave_weights_balance_each_class_between_its_first_wave_and_the_rest():
    # class 0: 3 first-wave, 1 other; class 1: all first-wave (one part: drawn uniformly)
    labels = torch.tensor([0, 0, 0, 0, 1, 1])
    first = torch.tensor([True, True, True, False, True, True])
    w = first_wave_weights(labels, first)
    assert w.dtype == torch.float64
    assert math.isclose(float(w[:3].sum()), float(w[3]))  # the two parts of class 0 weigh the same
    assert math.isclose(float(w[:4].sum()), 4.0) and math.isclose(
        float(w[4:].sum()), 2.0
    )  # class shares kept
    assert torch.equal(w[4:], torch.ones(2, dtype=torch.float64))
    with pytest.raises(ValueError, match="labels .* and first .* differ"):
        first_wave_weights(labels, first[:3])


def test_first_wave_is_each_class_lowest_rank():
    table = pd.DataFrame({"index": [0, 1, 2, 3], "label": [0, 0, 1, 1], "rank": [2, 3, 1, 1]})
    assert first_wave(table).tolist() == [True, False, True, True]


def _second_look_table() -> pd.DataFrame:
    # one class of 5: positions 1..5, the first three are the first wave
    return pd.DataFrame(
        {
            "index": [10, 11, 12, 13, 14],
            "label": [0] * 5,
            "rank": [1, 2, 3, 4, 5],
            "position": [1, 2, 3, 4, 5],
        }
    ).assign(p_y=[0.99, 0.98, 0.97, 0.6, 0.4])


def test_second_look_moves_only_first_wave_samples_it_gets_wrong_to_their_higher_percentile():
    table = _second_look_table()
    first = [True, True, True, False, False]
    # the second look gets index 11 (first wave) and 14 (not first wave) wrong; 11 is the least confident
    p_y = [0.9, 0.1, 0.8, 0.7, 0.2]
    out, moved = second_look_order(table, first, p_y)
    assert moved == 1
    # 11: its own percentile 2/5, the second look's (lowest p_y: last) 5/5; it ties 14 (5/5) and leads it by index
    assert out["index"].tolist() == [10, 12, 13, 11, 14]
    assert out["position"].tolist() == [1, 2, 3, 4, 5] and out["rank"].tolist() == [1, 2, 3, 4, 5]
    assert out.set_index("index").loc[11, "p_y"] == 0.98  # the table's own p_y is kept


def test_second_look_tail_spreads_moved_samples_over_the_later_waves_instead_of_their_percentile():
    # one class of 10: positions 1-7 the first wave, 8-10 the later waves (index = 10 + position)
    table = pd.DataFrame(
        {
            "index": list(range(11, 21)),
            "label": [0] * 10,
            "rank": [1] * 7 + [2] * 3,
            "position": list(range(1, 11)),
        }
    ).assign(p_y=[0.99 - 0.05 * k for k in range(10)])
    first = [True] * 7 + [False] * 3
    # the look gets positions 2 and 5 wrong (2 the surer), and is unsure of the later waves too
    p_y = [0.9, 0.1, 0.9, 0.9, 0.3, 0.9, 0.9, 0.2, 0.25, 0.05]
    pct, moved_pct = second_look_order(table, first, p_y)
    tail, moved_tail = second_look_order(table, first, p_y, place="tail")
    assert moved_pct == moved_tail == 2  # the same samples move; only where they go differs
    # percentile: 15 takes max(5/10, look 6/10) and stays in front of the first wave's 16, 17
    assert pct["index"].tolist() == [11, 13, 14, 15, 16, 17, 18, 12, 19, 20]
    # tail: the 2 moved ones spread over the last max(3 later, 2 moved) = 3 places, 15 at 0.85 after 18 (0.8),
    # 12 (the surer) at 1.0, tied with 20 and ahead of it by index
    assert tail["index"].tolist() == [11, 13, 14, 16, 17, 18, 15, 19, 12, 20]
    assert tail["rank"].tolist() == list(range(1, 11))
    # a class that is all first wave: the 2 moved ones spread over its last 2 places' percentiles (0.9, 1.0)
    whole, _ = second_look_order(
        table, [True] * 10, [0.9, 0.1, 0.9, 0.9, 0.3, 0.9, 0.9, 0.9, 0.9, 0.9], place="tail"
    )
    assert whole["index"].tolist() == [11, 13, 14, 16, 17, 18, 15, 19, 12, 20]
    with pytest.raises(ValueError, match="place must be 'percentile' or 'tail'"):
        second_look_order(table, first, p_y, place="end")


def test_second_look_that_gets_nothing_wrong_changes_nothing_and_bad_input_is_named():
    table = _second_look_table()
    out, moved = second_look_order(table, [True] * 5, [0.9] * 5)
    assert moved == 0 and out["index"].tolist() == table["index"].tolist()
    with pytest.raises(ValueError, match=r"one value per table row \(5\)"):
        second_look_order(table, [True] * 4, [0.9] * 5)
    with pytest.raises(ValueError, match="p_y has 1 NaN"):
        second_look_order(table, [True] * 5, [0.9, 0.9, float("nan"), 0.9, 0.9])


def test_a_lengthened_second_look_goes_on_only_while_its_wrong_share_clearly_falls():
    assert second_look_continues([0.2])  # one epoch: nothing to compare yet
    assert second_look_continues([0.20, 0.15])  # fell by a quarter, 5 points
    assert not second_look_continues([0.20, 0.19])  # fell by 5%: under a tenth
    assert not second_look_continues([0.20, 0.22])  # rose
    assert second_look_continues([0.030, 0.024])  # a fifth and 0.6 points: both bounds passed
    assert not second_look_continues([0.010, 0.006])  # four tenths, but 0.4 points: under the half point
    assert second_look_continues([0.010, 0.006], absolute=0.001)
    assert second_look_continues([0.3, 0.2, 0.1]) and not second_look_continues(
        [0.1, 0.2, 0.19]
    )  # the last two
