"""One Stage 2 trial on the built-in benchmark: Sebra's mitigation from a saved ranking, with settings overridden.

    sebra rank --out runs/rank                                   # Stage 1 (seed 0) -> runs/rank/rankings.csv
    python benchmarks/stage2_trial.py --rankings runs/rank/rankings.csv --set rank_bins=10 gap=7
    python benchmarks/stage2_trial.py --set gap=7 seed=1          # no --rankings: both stages

The other settings are the shipped ones (``sebra/configs/builtin.yaml``). Prints one line of test metrics (checkpoint
chosen on validation worst-group accuracy) and appends it to ``--out`` (``benchmarks/results/stage2_trials.csv``);
BENCHMARKS.md §3 lists the trials made this way. Run parallel trials with ``--threads 1``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import lightning as L
import torch

from sebra.bench.presets import BUILTIN_DATA, BUILTIN_SEBRA
from sebra.cli.config import add_set_option, parse_overrides
from sebra.cli.fitting import fit_method
from sebra.cli.results import level_scores
from sebra.datasets.builtin import BuiltinDataModule
from sebra.methods import SebraModule
from sebra.utils.files import append_record


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rankings", default=None, help="a rankings.csv (default: run Stage 1 too)")
    add_set_option(p, "SebraModule settings (values read as YAML); seed=N too")
    p.add_argument("--runs-dir", default="runs/stage2_trials")
    p.add_argument("--out", default="benchmarks/results/stage2_trials.csv")
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    settings = parse_overrides(a.set)
    seed = int(settings.pop("seed", 0))
    L.seed_everything(seed, verbose=False)
    dm = BuiltinDataModule(**BUILTIN_DATA)
    model = SebraModule(**{**BUILTIN_SEBRA, **settings, "rankings": a.rankings, "seed": seed})
    tag = "_".join(f"{k}-{v}" for k, v in settings.items()) or "shipped"
    row = fit_method("sebra", model, dm, Path(a.runs_dir) / f"{tag}_seed{seed}")
    if a.rankings is None:
        row.update(level_scores(model.rankings, dm.splits["train"]))
    record = {
        "rankings": a.rankings or "(stage 1 run)",
        "settings": json.dumps(settings, sort_keys=True),
        "seed": seed,
        **row,
    }
    print(json.dumps(record))
    append_record(a.out, record)


if __name__ == "__main__":
    main()
