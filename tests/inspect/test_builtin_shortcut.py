"""On the built-in benchmark itself, the grids show the shortcut (slow: runs Stage 1 on the full training set)."""

import lightning as L
import pytest

pytest.importorskip("animal_mnist")


@pytest.mark.slow
def test_most_spurious_tiles_are_aligned_least_spurious_conflicting(tmp_path):
    from sebra import SebraModule
    from sebra.bench.presets import BUILTIN_DATA, BUILTIN_SEBRA
    from sebra.datasets import BuiltinDataModule
    from sebra.inspect.selection import extreme_indices

    dm = BuiltinDataModule(root=str(tmp_path / "data"), **BUILTIN_DATA)
    model = SebraModule(**{**BUILTIN_SEBRA, "rank_only": True})
    L.Trainer(
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
    ).fit(model, datamodule=dm)
    table = model.rankings.set_index("index")
    for label in (0, 1):
        most, least = extreme_indices(model.rankings, label, k=8)
        aligned_bg = table.loc[list(most), "bg"] == label
        aligned_sym = table.loc[list(most), "coobj"] == label
        assert aligned_bg.all() and aligned_sym.all()  # the 8 most spurious carry both shortcuts
        least_rows = table.loc[list(least)]
        conflicting = (least_rows["bg"] != label) | (least_rows["coobj"] != label)
        # the 8 least spurious conflict with at least one shortcut (base rate: 10%). The shipped second look moves
        # the first-wave samples its network gets wrong to the tail; on this graded ranking a few of those are
        # aligned noise (7-8 of the last 8, 88-98 of the last 100 per class over 3 bench seeds), so one may show
        assert int(conflicting.sum()) >= 7, int(conflicting.sum())
        tail = model.rankings[model.rankings["label"] == label].nlargest(100, "position")
        assert int(((tail["bg"] != label) | (tail["coobj"] != label)).sum()) >= 80  # chance: about 10
