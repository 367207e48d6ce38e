"""One Sebra trial on a **dev** variant of the benchmark family, with settings overridden (held-out variants refused).

    python benchmarks/family_trial.py --variant stripes-objcolor --set within_step=final --rank-only
    python benchmarks/family_trial.py --variant builtin --set within_step=final gap=7 seed=1

The other settings are the shipped ones (``sebra/configs/builtin.yaml``, Sebra's block). ``--rank-only`` runs Stage 1
alone and reports the ranking's tau (3 and 4 levels) and the per-step eliminations; otherwise both stages run and the
test metrics of the checkpoint chosen on validation worst-group accuracy are reported too (with the validation
numbers that choose between settings). Each trial appends one line to ``--out``
(``benchmarks/results/family_trials.csv``). Settings are chosen on dev variants only (BENCHMARKS.md §7): this script
refuses a held-out variant.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning as L
import pandas as pd
import torch

from sebra.bench.family import family_config
from sebra.bench.presets import builtin_config
from sebra.cli.config import add_set_option, parse_overrides
from sebra.cli.console import quiet_lightning
from sebra.cli.fitting import selected_checkpoint
from sebra.cli.results import TEST_METRICS, level_scores
from sebra.datasets.family import FamilyDataModule, variant
from sebra.methods import SebraModule
from sebra.utils.files import append_record

METRICS = {k: v for k, v in TEST_METRICS.items() if k != "gap_mean"}


def top_bin(rankings: pd.DataFrame, bins: int = 10) -> dict[str, int]:
    """Who is in the least spurious bin (the last 1/``bins`` of each class's order): counts by conflict kind."""
    from sebra.methods.sebra import stage2_bins

    top = rankings[stage2_bins(rankings, bins) == bins]
    a_conf = top["bg"] != top["label"]
    b_conf = top["coobj"] != top["label"]
    return {
        "top_aligned": int((~a_conf & ~b_conf).sum()),
        "top_a_conf": int((a_conf & ~b_conf).sum()),
        "top_b_conf": int((~a_conf & b_conf).sum()),
        "top_both_conf": int((a_conf & b_conf).sum()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--variant", required=True)
    add_set_option(p, "SebraModule settings (values read as YAML); seed=N too")
    p.add_argument(
        "--rank-only", action="store_true", help="Stage 1 only (ranking tau, eliminations per step)"
    )
    p.add_argument("--runs-dir", default="runs/family_trials")
    p.add_argument("--out", default="benchmarks/results/family_trials.csv")
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    spec = variant(a.variant)
    if spec.role != "dev":
        raise SystemExit(
            f"family_trial: {a.variant!r} is a {spec.role} variant; settings are chosen on dev variants "
            "only (sebra.datasets.family.variants('dev'))"
        )
    torch.set_num_threads(a.threads)
    settings = parse_overrides(a.set)
    seed = int(settings.pop("seed", 0))
    cfg = family_config(builtin_config(), a.variant)
    data_args = {**cfg["data"]["init_args"], "seed": seed}
    sebra_args = {**cfg["methods"]["sebra"]["model"]["init_args"], **settings, "seed": seed}
    if a.rank_only:
        sebra_args["rank_only"] = True
    tag = "_".join(f"{k}-{v}" for k, v in settings.items()) or "shipped"
    out_dir = Path(a.runs_dir) / a.variant / f"{tag}_seed{seed}"
    t0 = time.perf_counter()
    with quiet_lightning(own_messages=False):
        L.seed_everything(seed, verbose=False)
        dm = FamilyDataModule(**data_args)
        model = SebraModule(**sebra_args)
        from lightning.pytorch.loggers import CSVLogger

        trainer = L.Trainer(
            max_epochs=-1,
            logger=CSVLogger(str(out_dir), name="", version=""),
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(out_dir),
        )
        trainer.fit(model, datamodule=dm)
        record: dict = {
            "variant": a.variant,
            "settings": json.dumps(settings, sort_keys=True),
            "seed": seed,
            "mode": "rank" if a.rank_only else "full",
        }
        if not a.rank_only:
            ckpt = trainer.checkpoint_callback
            val = ckpt.best_model_score
            record["val_wga"] = 100 * float(val) if val is not None else float("nan")
            trainer.test(model, datamodule=dm, ckpt_path=selected_checkpoint(trainer, model), verbose=False)
            res = model.test_results
            record.update({k: 100 * float(res[f"test_{v}"]) for k, v in METRICS.items()})
    record.update(level_scores(model.rankings, dm.splits["train"]))
    record.update(top_bin(model.rankings))
    if (
        getattr(model.hparams, "repeat_draws", "uniform") == "balanced"
        and len(model.ranking.repeat_tables) > 1
    ):
        from sebra.diagnostics import probe_agreement

        agree = probe_agreement(model.ranking.repeat_tables[0], model.ranking.repeat_tables[1])
        record["probe_agreement"] = " ".join(f"{t:.3f}" for t in agree)
    first_run = model.ranking.repeat_tables[0] if model.ranking.repeat_tables else model.rankings
    if (
        "p_final" in first_run.columns
    ):  # within_step="final": elimination vs final order inside the first wave
        from scipy.stats import kendalltau

        wave = first_run[first_run["rank"] == 1]
        record["regrade_agreement"] = " ".join(
            f"{kendalltau(g['p_y'], g['p_final']).statistic:.3f}" for _, g in wave.groupby("label")
        )
    check = model.ranking_check
    record["check"] = check.status
    record["check_agreement"] = " ".join(f"{t:.3f}" for t in check.agreement)
    record["first_wave_share"] = " ".join(f"{t:.3f}" for t in check.first_wave_share)
    record["rank_steps"] = model.controller.step
    runs = [h for _, h in model.ranking_history().groupby("repeat")]
    record["eliminated"] = " | ".join(" ".join(str(int(e)) for e in h["eliminated"]) for h in runs)
    record["seconds"] = time.perf_counter() - t0
    print(json.dumps(record))
    append_record(a.out, record)


if __name__ == "__main__":
    main()
