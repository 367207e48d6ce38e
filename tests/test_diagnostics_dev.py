"""On dev variants of the benchmark family, with the shipped settings and ``rank_by="fused"``: the tail-agreement
check fires where Stage 1 is blind to the slower shortcut (farm-dot-border, BENCHMARKS.md §7.5) and stays silent
where it is graded (builtin). Slow: Stage 1's three runs and one ERM epoch on the full training sets."""

from __future__ import annotations

import lightning as L
import pytest


@pytest.mark.slow
@pytest.mark.parametrize(("variant", "fires"), [("farm-dot-border", True), ("builtin", False)])
def test_tail_check_fires_on_a_blind_dev_variant_only(variant: str, fires: bool) -> None:
    from sebra.bench.config import build_run, default_config, load_config
    from sebra.bench.family import family_config

    cfg = family_config(
        load_config(
            default_config("builtin"),
            ["methods.sebra.model.init_args.rank_only=true", "methods.sebra.model.init_args.rank_by=fused"],
        ),
        variant,
    )
    L.seed_everything(0, workers=True, verbose=False)
    dm, module = build_run(cfg, "sebra", 0)
    L.Trainer(
        max_epochs=-1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    ).fit(module, datamodule=dm)
    check = module.ranking_check
    assert check.signal == "tail_agreement"
    assert check.fired is fires, check.message
