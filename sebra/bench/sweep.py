"""The sweep: every unfinished (method, seed) of one data set, appended to one results file, resumable.

A run's rows go into the results file in **one atomic replace** (:func:`~sebra.bench.store.write_run_rows`); a
re-run skips finished runs and redoes the others (dropping any leftover rows of theirs), so a killed sweep is
completed, never duplicated. Rows that need two runs (``<m>_conf_same_budget``: ERM-confidence rankings at the epoch
end closest to the Stage 1 optimizer-step budget of the method named by ``budget_from``, same seed, or to a fixed
``budget_steps``) are derived as soon as both runs are finished. The ranking table
(``method,seed,levels,kendall_tau_b,weighted_tau,seconds``) is rewritten from the results after every run, so the
two never disagree.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from sebra.bench.claims import claim_run, release_run
from sebra.bench.config import ALSO_SELECT_RULES, BenchError, check_config, config_methods
from sebra.bench.rankers import same_budget_rows
from sebra.bench.run import run_dir, run_one
from sebra.bench.store import (
    COLUMNS,
    DONE_METRIC,
    completed_runs,
    ranking_table,
    read_results,
    write_run_rows,
    write_table,
)

__all__ = ["RunFn", "derive_same_budget", "merge_lanes", "owned_methods", "run_bench"]

RunFn = Callable[[dict[str, Any], str, int, Path, str], list[dict[str, Any]]]


def owned_methods(cfg: dict[str, Any], method: str) -> set[str]:
    """Result method names a run of ``method`` writes or invalidates (its rankers, and same-budget rows using it)."""
    names = {
        method,
        f"{method}_error_set",
        f"{method}_conf_best_epoch",
        f"{method}_conf_same_budget",
        *(f"{method}_{rule}" for rule in ALSO_SELECT_RULES),
    }
    for name, m in cfg["methods"].items():
        if (m["bench"]["confidence_ranker"] or {}).get("budget_from") == method:
            names.add(f"{name}_conf_same_budget")
    return names


def derive_same_budget(
    cfg: dict[str, Any], results: pd.DataFrame, runs_dir: Path, dataset: str, seeds: Sequence[int]
) -> list[tuple[int, str, list[dict[str, Any]]]]:
    """Same-budget ranker rows that can be made now (both runs finished) and are not in the results yet, as
    ``(seed, method, rows)``."""
    done = completed_runs(results)
    out = []
    for name, m in cfg["methods"].items():
        ranker = m["bench"]["confidence_ranker"]
        if ranker is None:
            continue
        target = f"{name}_conf_same_budget"
        for seed in seeds:
            if (name, seed) not in done or (target, seed) in done:
                continue
            budget = ranker.get("budget_steps")
            src = ranker.get("budget_from")
            if src is not None:
                if (src, seed) not in done:
                    continue
                sel = results[
                    (results["method"] == src)
                    & (results["seed"] == seed)
                    & (results["metric"] == "rank_optimizer_steps")
                ]
                if sel.empty:
                    continue
                budget = float(sel["value"].iloc[-1])
            if budget is None:
                continue
            qfile = run_dir(runs_dir, dataset, name, seed) / "confidence_quality.csv"
            if not qfile.exists():
                warnings.warn(
                    f"bench: {qfile} is missing, so {target} seed {seed} cannot be derived; rerun {name}",
                    stacklevel=2,
                )
                continue
            out.append((seed, target, same_budget_rows(pd.read_csv(qfile), name, seed, budget)))
    return out


def merge_lanes(
    cfg: dict[str, Any],
    files: Sequence[Path],
    derived_path: Path,
    runs_dir: str | Path,
    dataset: str,
    label: str,
) -> pd.DataFrame:
    """One key's results (a family variant, a Colored MNIST ratio) from its lane files, with the cross-lane rows.

    Same-budget ranker rows are dropped from the lane files and derived again from the run folders (the two runs
    may come from different lanes); rows derived earlier are kept in ``derived_path``, so a later merge without the
    run folders keeps them. A (method, seed) finished in two lanes keeps the rows of the file that sorts last (a
    warning naming ``label`` says so).
    """
    parts = [read_results(f) for f in files]
    res = pd.concat(parts, ignore_index=True)
    res = res[~res["method"].str.endswith("_conf_same_budget")]  # re-derived below, across lanes
    if res[res["metric"] == "seconds"].duplicated(["method", "seed"], keep=False).any():
        warnings.warn(
            f"bench: {label}: a run was finished in two lanes; keeping the last file's rows", stacklevel=2
        )
    res = res.drop_duplicates(["method", "seed", "metric"], keep="last")
    derived = read_results(derived_path)
    seeds = sorted(res["seed"].unique().tolist())
    with warnings.catch_warnings():  # imported rows have no run folders here: nothing to derive, no noise
        warnings.simplefilter("ignore", UserWarning)
        new = derive_same_budget(
            cfg, pd.concat([res, derived], ignore_index=True), Path(runs_dir), dataset, seeds
        )
    if new:
        rows = pd.DataFrame([r for _, _, rs in new for r in rs], columns=list(COLUMNS))
        derived = pd.concat([derived, rows], ignore_index=True).drop_duplicates(
            ["method", "seed", "metric"], keep="last"
        )
        write_table(derived_path, derived)
    return pd.concat([res, derived], ignore_index=True)


def run_bench(
    cfg: dict[str, Any],
    methods: Sequence[str],
    seeds: Sequence[int],
    *,
    out: str | Path,
    ranking_out: str | Path,
    runs_dir: str | Path,
    dataset: str,
    run_fn: RunFn | None = None,
    keep_going: bool = False,
    progress: bool = True,
    after_run: Callable[[], Any] | None = None,
) -> pd.DataFrame:
    """Run every unfinished (method, seed) of ``cfg`` (a benchmark config: :mod:`sebra.bench.config`), seed by
    seed; returns the final results table.

    ``run_fn(cfg, method, seed, runs_dir, dataset) -> rows`` defaults to :func:`~sebra.bench.run.run_one` (tests
    pass a fake); ``after_run()`` is called after each finished run's rows are saved (the family merges its lanes
    there).
    """
    from tqdm.auto import tqdm

    run_fn = run_fn or run_one
    cfg = check_config(cfg, cfg.get("_path", "config"))
    config_methods(cfg, ",".join(methods))
    out, ranking_out, runs_dir = Path(out), Path(ranking_out), Path(runs_dir)
    results = read_results(out)
    jobs = [(m, s) for s in seeds for m in methods]
    done = completed_runs(results)
    pending = [j for j in jobs if j not in done]
    failures = []

    def settle(results: pd.DataFrame) -> pd.DataFrame:
        for seed, target, rows in derive_same_budget(cfg, results, runs_dir, dataset, seeds):
            results = write_run_rows(out, rows, {target}, seed)
        write_table(ranking_out, ranking_table(results))
        return results

    results = settle(results) if not results.empty else results
    bar = tqdm(
        total=len(jobs),
        initial=len(jobs) - len(pending),
        desc=f"bench {dataset}",
        unit="run",
        disable=not progress,
        file=sys.stderr,
    )
    try:
        for method, seed in pending:
            bar.set_postfix_str(f"{method} seed {seed}")
            folder = run_dir(runs_dir, dataset, method, seed)
            holder = claim_run(folder, lane=out.stem)
            if holder is not None:  # another lane trains it now: its rows reach the merged table
                bar.write(
                    f"bench: {method} seed {seed} skipped: lane {holder.get('lane', '?')!r} (pid "
                    f"{holder.get('pid', '?')}) is running it ({folder}.claim)"
                )
                bar.update(1)
                continue
            try:
                try:
                    rows = run_fn(cfg, method, seed, runs_dir, dataset)
                except Exception as e:
                    if not keep_going:
                        raise
                    failures.append((method, seed))
                    bar.write(f"bench: {method} seed {seed} failed: {type(e).__name__}: {e}")
                    bar.update(1)
                    continue
                if not any(r["method"] == method and r["metric"] == DONE_METRIC for r in rows):
                    raise BenchError(
                        f"bench: the run of {method} seed {seed} returned no '{DONE_METRIC}' row"
                    )
                results = write_run_rows(out, rows, owned_methods(cfg, method), seed)
            finally:
                release_run(folder)
            results = settle(results)
            if after_run is not None:
                after_run()
            bar.update(1)
    finally:
        bar.close()
    if failures:
        raise RuntimeError(f"bench: {len(failures)} run(s) failed: {failures}; finished runs are saved")
    return results
