"""Reference rankers: the ranking tables (:mod:`sebra.scoring`), the per-epoch recorder and the rows
the benchmark reads from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from tiny_data import TinyDataModule

from sebra.bench.rankers import (
    ConfidenceRecorder,
    best_epoch_values,
    best_record,
    record_at_budget,
    same_budget_rows,
)
from sebra.cli.fitting import make_trainer
from sebra.methods.erm import ERMModule
from sebra.scoring import confidence_rankings, error_set_rankings, score_dataset


def test_confidence_rankings_order_by_p_y_within_each_class() -> None:
    rk = confidence_rankings([10, 11, 12, 13, 14], [0, 1, 0, 0, 1], [0.2, 0.9, 0.8, 0.8, 0.1])
    assert list(rk.columns) == ["index", "label", "rank", "position", "p_y"]
    got = {(int(r.label), int(r.position)): int(r["index"]) for _, r in rk.iterrows()}
    # class 0: 0.8 (12), 0.8 (13: tie -> lower index first), 0.2 (10); class 1: 0.9 (11), 0.1 (14)
    assert got == {(0, 1): 12, (0, 2): 13, (0, 3): 10, (1, 1): 11, (1, 2): 14}
    assert (rk["rank"] == rk["position"]).all()
    with pytest.raises(ValueError, match="appears twice"):
        confidence_rankings([1, 1], [0, 0], [0.5, 0.4])


def test_error_set_rankings_put_errors_after_correct_even_with_higher_p_y() -> None:
    # three classes: a correct sample can have p_y 0.35, an error p_y 0.45 (another class got 0.5)
    scores = pd.DataFrame(
        {
            "index": [5, 6, 7, 8, 9],
            "label": [0, 0, 0, 0, 1],
            "p_y": [0.9, 0.35, 0.45, 0.2, 0.6],
            "error": [False, False, True, True, False],
        }
    )
    rk = error_set_rankings(scores)
    c0 = rk[rk["label"] == 0].sort_values("position")
    assert c0["index"].tolist() == [5, 6, 7, 8] and c0["rank"].tolist() == [1, 1, 2, 2]
    assert c0["position"].tolist() == [1, 2, 3, 4]
    # from predictions instead of the error flag
    preds = scores.drop(columns="error").assign(pred=[0, 0, 2, 1, 1])
    pd.testing.assert_frame_equal(error_set_rankings(preds), rk)
    # random order inside a level: levels kept, seeded
    r1 = error_set_rankings(scores, within="random", generator=torch.Generator().manual_seed(1))
    r2 = error_set_rankings(scores, within="random", generator=torch.Generator().manual_seed(1))
    pd.testing.assert_frame_equal(r1, r2)
    c0 = r1[r1["label"] == 0].sort_values("position")
    assert c0["rank"].tolist() == [1, 1, 2, 2] and set(c0["index"][:2]) == {5, 6}
    with pytest.raises(ValueError, match="error or pred"):
        error_set_rankings(scores.drop(columns="error"))


def test_record_choice() -> None:
    recs = [
        {"step": 2, "v": 0.1},
        {"step": 4, "v": float("nan")},
        {"step": 6, "v": 0.5},
        {"step": 8, "v": 0.5},
    ]
    assert record_at_budget(recs, 5)["step"] == 4  # a tie between 4 and 6 goes to the earlier
    assert record_at_budget(recs, 100)["step"] == 8
    assert best_record(recs, lambda r: r["v"])[0]["step"] == 6  # NaN never wins; ties keep the earlier
    with pytest.raises(ValueError, match="no records"):
        record_at_budget([], 3)
    with pytest.raises(ValueError, match="NaN"):
        best_record([{"v": float("nan")}], lambda r: r["v"])


def test_confidence_recorder_scores_every_epoch(tmp_path: Path) -> None:
    dm = TinyDataModule()
    rec = ConfidenceRecorder()
    model = ERMModule(backbone="test_resnet", epochs=3, seed=0)
    trainer = make_trainer(tmp_path, "erm", [rec])
    trainer.fit(model, datamodule=dm)
    assert [r["epoch"] for r in rec.records] == [1, 2, 3]
    assert [r["step"] for r in rec.records] == [2, 4, 6]  # 16 samples, batch 8
    assert all(b["seconds"] > a["seconds"] > 0 for a, b in zip(rec.records, rec.records[1:]))
    # the last record is the final network's eval-mode p_y, in dataset order
    assert torch.allclose(rec.records[-1]["p_y"], score_dataset(model, dm), atol=1e-6)
    assert not torch.allclose(rec.records[0]["p_y"], rec.records[-1]["p_y"])
    frame = rec.frame()
    assert len(frame) == 48 and list(frame.columns) == ["epoch", "step", "seconds", "index", "label", "p_y"]
    back = ConfidenceRecorder.records_from_frame(frame)
    assert [r["step"] for r in back] == [2, 4, 6]
    assert np.allclose(back[1]["p_y"].numpy(), rec.records[1]["p_y"].numpy())
    rk = rec.rankings(rec.records[0])
    assert sorted(rk["index"].tolist()) == sorted(dm.train_dataset.indices.tolist())


def test_confidence_ranker_rows_with_only_the_three_level_scheme() -> None:
    """One or three bias attributes give only 3-level scores: the ERM-confidence rows keep what exists."""
    q = pd.DataFrame(
        {
            "epoch": [1, 2, 3],
            "step": [2, 4, 6],
            "seconds": [1.0, 2.0, 3.0],
            "kendall_tau_b_3": [0.3, 0.9, 0.1],
            "weighted_tau_3": [0.3, 0.8, 0.1],
        }
    )
    best = best_epoch_values(q)
    assert (
        best["kendall_tau_b_3"] == 0.9 and best["best_epoch_3"] == 2.0 and best["rank_optimizer_steps"] == 4.0
    )
    assert "kendall_tau_b" not in best
    rows = {r["metric"]: r["value"] for r in same_budget_rows(q, "erm", 0, 6)}
    assert rows["kendall_tau_b_3"] == 0.1 and "kendall_tau_b" not in rows
