"""Group metrics fed batch by batch vs pandas and hand computations; ranking quality vs scipy."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from sebra.datasets.base import BiasSpec
from sebra.metrics import (
    GroupAccuracy,
    chunk_levels,
    echoes_gaps,
    group_accuracy_from_counts,
    group_layout,
    ranking_quality,
)

URBANCARS_LAYOUT = {o * 4 + b * 2 + c: (o, (b, c)) for o in (0, 1) for b in (0, 1) for c in (0, 1)}


def _feed(metric: GroupAccuracy, preds, labels, groups, sizes):
    start = 0
    for size in sizes:
        sl = slice(start, start + size)
        metric.update(preds[sl], labels[sl], groups[sl])
        start += size
    assert start == len(labels)
    return metric.compute()


@pytest.mark.parametrize("seed", range(3))
def test_batches_match_pandas_groupby(seed):
    g = torch.Generator().manual_seed(seed)
    n, num_groups, num_classes = 97, 5, 3
    labels = torch.randint(0, num_classes, (n,), generator=g)
    logits = torch.randn(n, num_classes, generator=g)
    groups = torch.randint(-1, num_groups, (n,), generator=g)
    out = _feed(GroupAccuracy(num_groups), logits, labels, groups, [1, 30, 17, 49])

    df = pd.DataFrame({"hit": (logits.argmax(1) == labels).numpy(), "group": groups.numpy()})
    ref = df[df.group >= 0].groupby("group")["hit"].mean()
    assert out["acc"].item() == pytest.approx(df.hit.mean())
    for gid in range(num_groups):
        assert out["group_acc"][gid].item() == pytest.approx(ref[gid])
    assert out["wga"].item() == pytest.approx(ref.min())
    assert out["group_mean"].item() == pytest.approx(ref.mean())
    assert out["n_empty_groups"].item() == 0


def test_batch_lacking_groups_keeps_group_ids():
    # torchmetrics #3489 class of bug: a batch holding only group 2 must not land in slot 0
    m = GroupAccuracy(3)
    m.update(torch.tensor([1, 1]), torch.tensor([1, 1]), torch.tensor([2, 2]))  # group 2: 2/2
    m.update(torch.tensor([0, 1, 0]), torch.tensor([1, 1, 1]), torch.tensor([0, 0, 0]))  # group 0: 1/3
    m.update(torch.tensor([0]), torch.tensor([0]), torch.tensor([1]))  # group 1: 1/1
    out = m.compute()
    torch.testing.assert_close(out["group_acc"], torch.tensor([1 / 3, 1.0, 1.0]))
    assert out["wga"].item() == pytest.approx(1 / 3)
    assert out["acc"].item() == pytest.approx(4 / 6)


def test_empty_group_is_nan_not_a_crash():
    m = GroupAccuracy(4)
    m.update(torch.tensor([0, 1, 1, 0, 1]), torch.tensor([0, 0, 1, 0, 1]), torch.tensor([0, 0, 1, 2, -1]))
    out = m.compute()
    assert out["group_acc"][:3].tolist() == [0.5, 1.0, 1.0]
    assert math.isnan(out["group_acc"][3].item())
    assert out["n_empty_groups"].item() == 1 and out["group_acc"].isnan().nonzero().flatten().tolist() == [3]
    assert out["wga"].item() == 0.5
    assert out["group_mean"].item() == pytest.approx((0.5 + 1 + 1) / 3)
    assert out["acc"].item() == pytest.approx(4 / 5)  # the group -1 sample counts here only
    with pytest.warns(UserWarning, match="before the ``update``"):
        empty = GroupAccuracy(2).compute()
    assert math.isnan(empty["wga"].item()) and math.isnan(empty["acc"].item())
    assert empty["n_empty_groups"].item() == 2


def test_reset_and_kwargs_reach_torchmetrics():
    m = GroupAccuracy(2, sync_on_compute=False, compute_with_cache=False)
    assert m.sync_on_compute is False and m.compute_with_cache is False
    m.update(torch.tensor([0]), torch.tensor([1]), torch.tensor([0]))
    m.reset()
    m.update(torch.tensor([1]), torch.tensor([1]), torch.tensor([0]))
    assert m.compute()["group_acc"][0].item() == 1.0


def test_bad_input_errors():
    m = GroupAccuracy(3)
    with pytest.raises(ValueError, match=r"-1\.\.2"):
        m.update(torch.tensor([0]), torch.tensor([0]), torch.tensor([3]))
    with pytest.raises(ValueError, match="expected preds"):
        m.update(torch.tensor([0, 1]), torch.tensor([0]), torch.tensor([0]))
    with pytest.raises(ValueError, match="one entry per group"):
        GroupAccuracy(3, group_label=[0, 1], group_aligned=[[True, True]] * 2, train_ratios=[0.9, 0.9])
    with pytest.raises(ValueError, match="exactly 2 bias attributes"):
        GroupAccuracy(2, group_label=[0, 1], group_aligned=[[True], [False]], train_ratios=[0.9])
    with pytest.raises(ValueError, match="together"):
        GroupAccuracy(2, group_label=[0, 1])


def _urbancars_counts():
    """Per UrbanCars group id (obj*4 + bg*2 + coobj): (correct, total)."""
    return {0: (9, 10), 1: (6, 10), 2: (4, 8), 3: (1, 4), 4: (2, 5), 5: (3, 6), 6: (7, 10), 7: (10, 10)}


def test_id_acc_and_gaps_by_hand_with_urbancars_layout():
    spec = BiasSpec(("bg", "coobj"), ((0, 0), (1, 1)), (0.95, 0.8))
    counts = _urbancars_counts()
    preds, labels, groups = [], [], []
    for gid, (correct, total) in counts.items():
        obj = gid // 4
        preds += [obj] * correct + [1 - obj] * (total - correct)
        labels += [obj] * total
        groups += [gid] * total
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    preds, labels, groups = (torch.tensor(x)[perm] for x in (preds, labels, groups))
    m = GroupAccuracy.from_bias_spec(spec, URBANCARS_LAYOUT)
    out = _feed(m, preds, labels, groups, [20, 20, 23])

    acc = {g: c / t for g, (c, t) in counts.items()}
    # obj 0 aligned value 0, obj 1 aligned value 1; cells written out per class
    pp = (acc[0] + acc[7]) / 2  # bg aligned, coobj aligned
    pa = (acc[1] + acc[6]) / 2  # bg aligned, coobj conflicting
    ap = (acc[2] + acc[5]) / 2  # bg conflicting, coobj aligned
    aa = (acc[3] + acc[4]) / 2
    id_acc = 0.95 * 0.8 * pp + 0.95 * 0.2 * pa + 0.05 * 0.8 * ap + 0.05 * 0.2 * aa
    assert out["id_acc"].item() == pytest.approx(id_acc)
    assert out["gap_a"].item() == pytest.approx(ap - id_acc)
    assert out["gap_b"].item() == pytest.approx(pa - id_acc)
    assert out["gap_both"].item() == pytest.approx(aa - id_acc)
    assert out["gap_mean"].item() == pytest.approx((ap + pa + aa) / 3 - id_acc)
    assert out["echoes_gap_a"].item() == pytest.approx(-0.5 * (abs(pp - ap) + abs(pa - aa)))
    assert out["echoes_gap_b"].item() == pytest.approx(-0.5 * (abs(pp - pa) + abs(ap - aa)))
    assert out["wga"].item() == pytest.approx(0.25)
    assert out["acc"].item() == pytest.approx(42 / 63)
    # the functional core on the same counts agrees
    correct = torch.tensor([counts[g][0] for g in range(8)])
    total = torch.tensor([counts[g][1] for g in range(8)])
    core = group_accuracy_from_counts(
        correct, total, group_label=m.group_label, group_aligned=m.group_aligned, train_ratios=[0.95, 0.8]
    )
    assert core["id_acc"].item() == pytest.approx(id_acc)


def test_group_layout_from_bias_spec():
    spec = BiasSpec(("bg", "coobj"), ((0, 0), (1, 1)), (0.95, 0.95))
    labels, aligned = group_layout(spec, URBANCARS_LAYOUT)
    assert labels == [0, 0, 0, 0, 1, 1, 1, 1]
    # group = obj*4 + bg*2 + coobj, aligned when the attribute equals obj
    for gid in range(8):
        obj, bg, co = gid // 4, (gid // 2) % 2, gid % 2
        assert aligned[gid] == [bg == obj, co == obj]
    with pytest.raises(ValueError, match="group ids"):
        group_layout(spec, {0: (0, (0, 0)), 2: (1, (1, 1))})
    no_ratio = GroupAccuracy.from_bias_spec(BiasSpec(("bg", "coobj"), ((0, 0), (1, 1))), URBANCARS_LAYOUT)
    no_ratio.update(torch.tensor([0]), torch.tensor([0]), torch.tensor([0]))
    assert "id_acc" not in no_ratio.compute()


def test_echoes_gaps_hand_case():
    cell = torch.tensor([[0.9, 0.7], [0.6, 0.2]])  # cc, cu / uc, uu
    out = echoes_gaps(cell)
    assert out["echoes_gap_a"].item() == pytest.approx(-0.5 * (0.3 + 0.5))
    assert out["echoes_gap_b"].item() == pytest.approx(-0.5 * (0.2 + 0.4))


# ---------------------------------------------------------------- ranking quality


def _tau_b_brute(x, y):
    """Kendall tau-b from its definition: (concordant - discordant) / sqrt((n0 - ties_x)(n0 - ties_y))."""
    conc = disc = tx = ty = 0
    for i, j in combinations(range(len(x)), 2):
        dx, dy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
        tx += dx == 0
        ty += dy == 0
        conc += dx * dy > 0
        disc += dx * dy < 0
    n0 = len(x) * (len(x) - 1) / 2
    return (conc - disc) / math.sqrt((n0 - tx) * (n0 - ty))


def _table(label_level_position):
    """Ranking table + levels with rows deliberately NOT in position order."""
    rows = pd.DataFrame(label_level_position, columns=["label", "level", "position"])
    rows = rows.sample(frac=1.0, random_state=0).reset_index(drop=True)
    rows["index"] = np.arange(len(rows)) + 100
    rows["rank"] = rows["position"]
    rows["p_y"] = 0.5
    return rows[["index", "label", "rank", "position", "p_y"]], rows["level"].to_numpy()


def test_chunk_levels_hand_case():
    assert chunk_levels([2, 0, 1, 0, 3, 1]).tolist() == [0, 0, 1, 1, 2, 3]
    assert chunk_levels([1, 3, 3]).tolist() == [1, 3, 3]  # absent levels have empty chunks


def test_ranking_quality_perfect_and_reversed():
    levels_by_position = [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    perfect = [(c, lev, p + 1) for c in (0, 1) for p, lev in enumerate(levels_by_position)]
    table, levels = _table(perfect)
    out = ranking_quality(table, torch.tensor(levels))
    assert out["kendall_tau_b"] == pytest.approx(1.0) and out["weighted_tau"] == pytest.approx(1.0)
    reversed_ = [
        (c, lev, len(levels_by_position) - p) for c in (0, 1) for p, lev in enumerate(levels_by_position)
    ]
    table, levels = _table(reversed_)
    out = ranking_quality(table, levels)
    assert out["kendall_tau_b"] == pytest.approx(-1.0)
    assert out["weighted_tau"] == pytest.approx(-1.0)
    assert out["skipped_classes"] == []


def test_ranking_quality_mixed_vs_direct_scipy():
    # class 0 true levels in position order, class 1 another order
    c0 = [0, 1, 0, 2, 1, 3, 2]
    c1 = [1, 0, 0, 3, 2, 2]
    table, levels = _table(
        [(0, lev, p + 1) for p, lev in enumerate(c0)] + [(1, lev, p + 1) for p, lev in enumerate(c1)]
    )
    table["true_level"] = levels
    out = ranking_quality(table, "true_level")
    pred0, pred1 = [0, 0, 1, 1, 2, 2, 3], [0, 0, 1, 2, 2, 3]  # chunks cut by hand
    tb = [_tau_b_brute(pred0, c0), _tau_b_brute(pred1, c1)]
    assert tb[0] == pytest.approx(stats.kendalltau(pred0, c0).statistic)
    wt = [stats.weightedtau(pred0, c0).statistic, stats.weightedtau(pred1, c1).statistic]
    assert out["per_class"][0]["kendall_tau_b"] == pytest.approx(tb[0])
    assert out["per_class"][1]["kendall_tau_b"] == pytest.approx(tb[1])
    assert out["kendall_tau_b"] == pytest.approx(np.mean(tb))
    assert out["weighted_tau"] == pytest.approx(np.mean(wt))
    assert out["per_class"][1]["n"] == 6
    assert -1 < out["kendall_tau_b"] < 1


def test_ranking_quality_constant_class_skipped():
    table, levels = _table([(0, 0, 1), (0, 1, 2), (0, 1, 3), (1, 2, 1), (1, 2, 2)])
    out = ranking_quality(table, levels)
    assert out["skipped_classes"] == [1]
    assert math.isnan(out["per_class"][1]["kendall_tau_b"])
    assert out["kendall_tau_b"] == pytest.approx(1.0)
    only_constant = ranking_quality(*_table([(1, 2, 1), (1, 2, 2)]))
    assert math.isnan(only_constant["kendall_tau_b"])


def test_ranking_quality_bad_input():
    table, levels = _table([(0, 0, 1), (0, 1, 2)])
    with pytest.raises(ValueError, match="one entry per rankings row"):
        ranking_quality(table, levels[:1])
    with pytest.raises(ValueError, match="'position'"):
        ranking_quality(table.drop(columns="position"), levels)
    with pytest.raises(ValueError, match="no column 'gt'"):
        ranking_quality(table, "gt")
    dup = table.copy()
    dup["position"] = 1
    with pytest.raises(ValueError, match="appears twice in class 0"):
        ranking_quality(dup, levels)
