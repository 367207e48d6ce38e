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
import copy
import json
from pathlib import Path

import numpy as np
import torch
import yaml

from sebra.bench.family import family_config
from sebra.bench.presets import builtin_config
from sebra.bench.run import run_one


def _settings(pairs: list[str]) -> dict:
    """``KEY=VALUE`` strings as init_args, each value read as YAML (``8`` an int, ``cosine`` a string, ``1e-4`` a
    float, which YAML 1.1 alone would leave a string)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"stage2_spread: --set {pair!r}: expected KEY=VALUE, e.g. lr_schedule=cosine")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML 1.1 leaves "1e-4" a string; a number is meant
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        out[key] = parsed
    return out


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
    cfg = family_config(builtin_config(), args.variant)
    for run in map(Path, args.runs):
        table = run / "rankings.csv"
        if not table.is_file():
            raise SystemExit(
                f"stage2_spread: {table}: no rankings.csv (expected a finished Stage 1 run folder)"
            )
        entry = copy.deepcopy(cfg["methods"]["sebra"])
        entry["model"]["init_args"]["rankings"] = str(table)
        entry["model"]["init_args"].update(_settings(args.set))
        key = "stage2_fixed"
        local = {**cfg, "methods": {**cfg["methods"], key: entry}}
        values = []
        for seed in args.seeds:
            tag = "_".join(p.replace("=", "") for p in args.set) or "shipped"
            out = Path(args.out_dir) / args.variant / run.parent.name / run.name / tag
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
