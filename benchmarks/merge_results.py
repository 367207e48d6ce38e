"""Merge results files of parallel ``sebra bench`` sweeps (disjoint methods or seeds) into one, and rebuild the
ranking table from it.

    python benchmarks/merge_results.py benchmarks/results/lane_*.csv --out benchmarks/results/builtin.csv
    python benchmarks/merge_results.py benchmarks/results/lane_sebra*.csv --base benchmarks/results/builtin.csv \
        --out benchmarks/results/builtin.csv      # re-ran one method: its new rows replace the base's

Two sweeps must not write the same results file, so a benchmark split across processes (e.g. one per core) writes
one file each; this joins them, refusing a (method, seed, metric) that two files both report. With ``--base``, the
base table's rows of every (method, seed) that the files report are dropped first (a re-run replaces the old run).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sebra.bench.config import BenchError
from sebra.bench.store import merge_results, ranking_table
from sebra.utils.files import atomic_write


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--out", required=True)
    p.add_argument("--ranking-out", default=None, help="default: ranking_<name of --out>")
    p.add_argument(
        "--base", default=None, help="an earlier merged table whose re-run (method, seed)s are replaced"
    )
    a = p.parse_args()
    frames = [
        pd.read_csv(f) for f in a.files if not Path(f).name.startswith("ranking_") and "_ranking" not in f
    ]
    try:
        merged = merge_results(frames, base=pd.read_csv(a.base) if a.base else None)
    except BenchError as e:
        raise SystemExit(str(e)) from None
    out = Path(a.out)
    atomic_write(out, lambda tmp: merged.to_csv(tmp, index=False))
    rank_out = Path(a.ranking_out or out.with_name(f"ranking_{out.name}"))
    table = ranking_table(merged)
    atomic_write(rank_out, lambda tmp: table.to_csv(tmp, index=False))
    print(f"{len(merged)} rows -> {out}; ranking table ({len(table)} rows) -> {rank_out}")


if __name__ == "__main__":
    main()
