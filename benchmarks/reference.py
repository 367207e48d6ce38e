"""The multi-seed reference the demo prints under its own table: mean ± std over seeds per method and metric.

    python benchmarks/reference.py --results benchmarks/results/builtin.csv benchmarks/results/look/builtin.csv \
        --out sebra/configs/builtin_reference.csv

Reads a ``sebra bench`` results file (rows ``method,seed,metric,value``) and writes a small CSV with columns
``method,metric,mean,std,seeds`` (sample std, ``ddof=1``, empty for a single seed), atomically (temporary file, then
rename), for the demo's metrics only: worst-group, average and I.D. accuracy and the three gaps. Methods without
those metrics (the ranker rows such as ``erm_conf_same_budget``) are left out. Rerun it whenever BENCHMARKS.md §4
is regenerated, so the demo prints the same numbers.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from sebra.bench.config import BenchError
from sebra.bench.store import read_results
from sebra.bench.tables import METHOD_ORDER, aggregate
from sebra.utils.files import atomic_write

#: The demo's metrics, in its column order (accuracies and gaps in %).
METRICS = ("worst_group_acc", "avg_acc", "id_acc", "gap_a", "gap_b", "gap_both")
COLUMNS = ("method", "metric", "mean", "std", "seeds")


def reference_table(results: pd.DataFrame) -> pd.DataFrame:
    """Rows ``method, metric, mean, std, seeds`` for :data:`METRICS`; methods in the benchmark's row order."""
    agg = aggregate(results[results["metric"].isin(METRICS)])
    if agg.empty:
        raise BenchError(f"no rows with the metrics {', '.join(METRICS)}")
    methods = list(dict.fromkeys(agg["method"]))
    order = [m for m in METHOD_ORDER if m in methods] + sorted(m for m in methods if m not in METHOD_ORDER)
    agg["_m"] = agg["method"].map(order.index)
    agg["_k"] = agg["metric"].map(METRICS.index)
    agg = agg.sort_values(["_m", "_k"]).rename(columns={"n": "seeds"})
    agg["seeds"] = agg["seeds"].astype(int)
    return agg[list(COLUMNS)].reset_index(drop=True)


def merged_results(paths: list[str | Path]) -> pd.DataFrame:
    """The rows of several results files; a method present in a later file replaces its rows from the earlier
    ones (``sebra`` re-run under changed settings, the other methods kept from the first file)."""
    frames: list[pd.DataFrame] = []
    for path in paths:
        new = read_results(path)
        frames = [f[~f["method"].isin(set(new["method"]))] for f in frames] + [new]
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--results",
        nargs="+",
        default=["benchmarks/results/builtin.csv"],
        help="sebra bench results CSVs; a method in a later file replaces its rows from the earlier ones "
        "(a re-run of one method under changed settings)",
    )
    p.add_argument("--out", default="sebra/configs/builtin_reference.csv")
    a = p.parse_args(argv)
    for path in a.results:
        if not Path(path).exists():
            raise SystemExit(f"reference: {path} does not exist")
    try:
        table = reference_table(merged_results(a.results))
    except BenchError as e:
        raise SystemExit(f"reference: {', '.join(a.results)}: {e}") from e
    out = atomic_write(a.out, lambda tmp: table.to_csv(tmp, index=False, float_format="%.4f"))
    n = table["method"].nunique()
    print(f"{len(table)} rows ({n} methods) -> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
