"""The label-free one-shortcut check: fires when the first wave's order is still changing between the middle and
the end of the first ranking step, stays silent when it is stable, and ignores small waves."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from sebra.diagnostics import (
    PartitionCheck,
    second_look_line,
    summary_line,
    tail_agreement,
    unchecked,
    wave_stability,
)


def _scores(stable: bool, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Two classes of 200; the first wave holds 180 of each; ``p_end`` is graded, ``p_mid`` agrees or not."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(400) // 200
    wave = (torch.arange(400) % 200) < 180
    graded = torch.randn(400, generator=g)
    p_end = 0.9 + 0.05 * torch.tanh(graded)
    noise = torch.randn(400, generator=g)
    p_mid = 0.9 + 0.05 * torch.tanh(graded + 0.3 * noise if stable else noise)
    return labels, wave, p_mid, p_end


def test_fires_when_the_first_wave_is_reordered_over_the_step():
    check = wave_stability(*_scores(stable=False))
    assert check.fired and check.status == "partition"
    assert [round(s, 3) for s in check.first_wave_share] == [0.9, 0.9]
    assert max(check.agreement) < 0.3
    line = summary_line(check)
    assert line.startswith("warning: ") and "one shortcut only" in line and "first_step_passes" in line
    assert check.to_dict()["fired"] is True
    assert PartitionCheck.from_dict(check.to_dict()) == check  # checkpoints keep it as a dict


def test_silent_when_the_order_is_stable():
    check = wave_stability(*_scores(stable=True))
    assert not check.fired and check.status == "graded"
    assert min(check.agreement) > 0.5
    assert not summary_line(check).startswith("warning")
    assert "removed 90% of class" in check.message and "can go unseen" in check.message  # never "all clear"


def test_small_first_waves_are_not_candidates():
    check = wave_stability(*_scores(stable=False), min_share=0.95)  # the waves hold 90% of their class
    assert check.status == "graded" and check.worst_class is None


def test_unscored_samples_are_left_out_and_unchecked_says_why():
    labels, wave, p_mid, p_end = _scores(stable=False)
    p_mid[:] = float("nan")
    check = wave_stability(labels, wave, p_mid, p_end)
    assert check.status == "graded" and all(
        a != a for a in check.agreement
    )  # nothing to compare: NaN, silent
    u = unchecked(labels, wave, "not checked: because")
    assert u.status == "unchecked" and not u.fired and u.message == "not checked: because"
    assert u.to_dict()["agreement"] == [None, None]


def _tables(moved: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two classes of 100 ranked twice; the second order moves ``moved`` of class 1's 10 least spurious samples
    (the last positions) to the front."""
    rows_a, rows_b = [], []
    for c in (0, 1):
        idx = list(range(100 * c, 100 * c + 100))
        order_b = idx[90 : 90 + moved] + idx[:90] + idx[90 + moved :] if c == 1 else idx
        for pos, i in enumerate(idx, 1):
            rows_a.append(
                {"index": i, "label": c, "rank": 1 if pos <= 80 else 2, "position": pos, "p_y": 0.5}
            )
        for pos, i in enumerate(order_b, 1):
            rows_b.append({"index": i, "label": c, "rank": pos, "position": pos, "p_y": 0.5})
    return pd.DataFrame(rows_a), pd.DataFrame(rows_b)


def test_tail_agreement_fires_when_the_least_spurious_tails_differ():
    check = tail_agreement(*_tables(moved=5))
    assert check.fired and check.signal == "tail_agreement" and check.worst_class == 1
    assert check.agreement == [1.0, 0.5] and check.first_wave_share == [0.8, 0.8]
    assert (
        "only 50% of the 10% least spurious" in summary_line(check)
        and "rank_by='confidence'" in check.message
    )
    assert PartitionCheck.from_dict(check.to_dict()) == check


def test_tail_agreement_is_silent_when_they_agree_and_checks_its_input():
    check = tail_agreement(*_tables(moved=1), min_overlap=0.8)
    assert not check.fired and check.agreement == [1.0, 0.9]
    a, b = _tables(moved=0)
    with pytest.raises(ValueError, match="rank different samples"):
        tail_agreement(a, b.iloc[1:])
    with pytest.raises(ValueError, match="tail must lie in"):
        tail_agreement(a, b, tail=1.5)


def test_older_checks_without_a_signal_field_still_load():
    d = wave_stability(*_scores(stable=True)).to_dict()
    del d["signal"]
    assert PartitionCheck.from_dict(d).signal == "wave_stability"


def test_the_second_look_line_says_how_much_of_the_first_wave_moved():
    low = second_look_line({"epochs": 3, "first_wave": 1000, "moved": 5, "moved_share": 0.005})
    high = second_look_line({"epochs": 3, "first_wave": 1000, "moved": 42, "moved_share": 0.042})
    assert low.startswith("second look (3 epoch(s)") and "5 of 1000 first-wave samples (0.5%)" in low
    assert "42 of 1000 first-wave samples (4.2%)" in high
    assert (
        "warning" not in high
    )  # a description: no threshold on the share separates blind from graded rankings


def test_a_moved_share_beyond_every_validated_run_says_what_it_meant_there():
    from sebra.diagnostics import SECOND_LOOK_UNSEEN

    inside = second_look_line({"epochs": 3, "first_wave": 1000, "moved": 68, "moved_share": 0.068})
    beyond = second_look_line({"epochs": 3, "first_wave": 1000, "moved": 180, "moved_share": 0.18})
    assert 0.068 < SECOND_LOOK_UNSEEN < 0.18
    assert "may not have learned" not in inside
    assert "more than any validated run moved (10%)" in beyond and "in 3 epoch(s)" in beyond
    assert "second_look_epochs=0" in beyond and beyond.count("\n") == 0


def test_a_lengthened_second_look_that_hit_its_cap_says_so_and_what_to_try():
    look = {"epochs": 12, "first_wave": 1000, "moved": 60, "moved_share": 0.06, "max_epochs": 12}
    capped = second_look_line({**look, "stop": "cap"})
    settled = second_look_line({**look, "stop": "plateau"})
    assert "stopped at its cap of 12 epochs" in capped and "second_look_max_epochs" in capped
    assert "cap" not in settled and "(12 epoch(s)" in settled


def test_a_second_look_whose_wrong_share_jumped_says_its_network_had_not_settled():
    from sebra.diagnostics import second_look_unsettled

    look = {"epochs": 3, "first_wave": 1000, "moved": 80, "moved_share": 0.08}
    jumped = second_look_line({**look, "wrong_share_by_epoch": [0.144, 0.048, 0.117]})
    falling = second_look_line({**look, "wrong_share_by_epoch": [0.331, 0.043, 0.029]})
    small = second_look_line({**look, "wrong_share_by_epoch": [0.007, 0.008, 0.009]})
    assert "had not settled" in jumped and "rose from 4.8% to 11.7% at epoch 3" in jumped
    assert "second_look_reduce='median'" in jumped and jumped.count("\n") == 0
    assert "had not settled" not in falling and "had not settled" not in small
    assert "had not settled" not in second_look_line(look)  # older diagnostics files carry no shares
    # the rise must clear both the absolute and the relative bar
    assert second_look_unsettled([0.063, 0.079]) is None  # 1.6 points: under the 2-point bar
    assert second_look_unsettled([0.10, 0.125]) is None  # 2.5 points but not twice the lowest
    assert second_look_unsettled([0.013, 0.043, 0.076]) == (1, 0.013, 0.043)


def test_a_calm_second_look_says_when_it_left_the_epoch_that_jumped_out():
    look = {"epochs": 6, "first_wave": 1000, "moved": 40, "moved_share": 0.04, "stop": "calm"}
    shares = [0.148, 0.060, 0.366, 0.086, 0.037, 0.152]
    left_out = second_look_line({**look, "wrong_share_by_epoch": shares, "read_epochs": [2, 4, 5]})
    read_in = second_look_line({**look, "wrong_share_by_epoch": shares, "read_epochs": [2, 3, 5]})
    assert "rose from 6.0% to 36.6% at epoch 3" in left_out
    assert (
        "the calm reduce read epochs 2, 4, 5, leaving that one out" in left_out and "compare" not in left_out
    )
    assert "may be that epoch's noise" in read_in and "leaving that one out" not in read_in
