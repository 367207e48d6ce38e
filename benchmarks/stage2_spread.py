"""How much of Sebra's seed spread is Stage 2's own: Stage 2 refitted on one fixed ranking table with other seeds.

Sebra's worst-group accuracy on the family's dev variants spreads over 20-70 points across seeds, and two runs whose
Stage 2 positives were made of nearly the same samples scored 20.0 and 55.2 (BENCHMARKS.md §7.17). This script
takes the ``rankings.csv`` of finished benchmark runs and, for each, fits the shipped Stage 2 (``SebraModule`` of
``builtin.yaml``'s ``sebra`` entry with ``rankings=`` that table, so Stage 1 is skipped) once per ``--seeds``
value. It prints one JSON line per fit and, per table, the mean and spread over those seeds. The ranking is held
fixed, so whatever spread is left is Stage 2's alone: its initialisation, its draws and its checkpoint selection::

    python benchmarks/stage2_spread.py --variant farm-objcolor-faintpatch \
        --runs runs/bench_dov/farm-objcolor-faintpatch/sebra_look_calm/seed4 --seeds 10 11 12
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sebra.bench.family import family_config
from sebra.bench.grid import mitigation_entry, parse_mitigation
from sebra.bench.presets import builtin_config
from sebra.bench.run import run_one


def _settings(pairs: list[str]) -> dict:
    """``KEY=VALUE`` strings as Stage 2 init_args, read as the grid reads a mitigation's settings
    (:func:`~sebra.bench.grid.parse_mitigation`: YAML values, ``1e-4`` a float)."""
    for pair in pairs:
        if not pair.partition("=")[0] or "=" not in pair:
            raise SystemExit(f"stage2_spread: --set {pair!r}: expected KEY=VALUE, e.g. lr_schedule=cosine")
    return parse_mitigation("stage2:" + ",".join(pairs))[2]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--variant", required=True, help="the family variant the runs were trained on")
    ap.add_argument("--runs", nargs="+", required=True, help="finished run folders, each with a rankings.csv")
    ap.add_argument("--seeds", nargs="+", type=int, default=[10, 11, 12], help="Stage 2 seeds")
    ap.add_argument("--out-dir", default="runs/stage2_spread", help="where the refits go")
    ap.add_argument("--metric", default="worst_group_acc", help="the result row to summarise")
    ap.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="Stage 2 settings to change (SebraModule init_args, YAML values), e.g. lr_schedule=cosine",
    )
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    settings = _settings(args.set)
    tag = "_".join(p.replace("=", "") for p in args.set) or "shipped"
    runs = list(map(Path, args.runs))
    for table in (run / "rankings.csv" for run in runs):  # every folder checked before anything trains
        if not table.is_file():
            raise SystemExit(
                f"stage2_spread: {table}: no rankings.csv (expected a finished Stage 1 run folder)"
            )
    cfg = family_config(builtin_config(), args.variant)
    key = "stage2_fixed"
    for run in runs:
        table = run / "rankings.csv"
        entry = mitigation_entry(cfg, "stage2", table, None, settings)
        local = {**cfg, "methods": {**cfg["methods"], key: entry}}
        out = Path(args.out_dir) / args.variant / run.parent.name / run.name / tag
        values = []
        for seed in args.seeds:
            rows = run_one(local, key, seed, out, "fits")
            got = {r["metric"]: r["value"] for r in rows if r["method"] == key}
            values.append(float(got[args.metric]))
            print(
                json.dumps(
                    {"rankings": str(table), "set": args.set, "seed": seed, args.metric: round(values[-1], 2)}
                ),
                flush=True,
            )
        print(
            json.dumps(
                {
                    "rankings": str(table),
                    "set": args.set,
                    "seeds": args.seeds,
                    "mean": round(float(np.mean(values)), 2),
                    "std": round(float(np.std(values, ddof=1)), 2) if len(values) > 1 else None,
                    "min": round(min(values), 2),
                    "max": round(max(values), 2),
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
