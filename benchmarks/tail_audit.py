"""What Stage 2's positives are made of: the composition of each ranking's position bins by true group.

Stage 2 (``ce_on: positive``, ``gap: 7``, ``rank_bins: 10``) draws its positives, and so its cross-entropy, from a
class's last bins; what those bins hold decides which shortcut Stage 2 unlearns. This script reads the
``rankings.csv`` of benchmark runs on a family variant (each row carries the variant's bias attributes) and prints,
per run, the share of each bin that conflicts with A only, with B only, with both, or with neither (pooled over
the classes), plus the second look's line from ``ranking_diagnostics.json`` and, where the run wrote
``second_look.csv``, how well the look tells each kind of conflicting first-wave sample from the aligned ones
(:func:`look_separation`: AUC, recall and precision of what it moved). It uses the bias labels, so it is an
audit of a ranking, never an input to one. Example::

    python benchmarks/tail_audit.py runs/bench_dov/farm-objcolor-faintpatch/sebra

Several method folders pool their runs. With ``--results`` (a bench results CSV, given once or more; the first
file with a run's ``variant, method, seed`` row wins) each run's last-bin shares are printed beside its test
worst-group accuracy, with their Spearman correlations over the pooled runs: whether the runs that do well are the
ones whose positive bin holds both kinds of conflicting sample (BENCHMARKS.md §7.15)::

    python benchmarks/tail_audit.py runs/bench_dov/farm-objcolor-faintpatch/sebra* \
        --results benchmarks/results/dev_overmove/family.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from sebra.datasets.family import variant
from sebra.methods.sebra import stage2_bins


def bin_composition(table: pd.DataFrame, attrs: tuple[str, str], bins: int = 10) -> pd.DataFrame:
    """Per position bin (1 = most spurious; Stage 2's own per-class bins, :func:`stage2_bins`): the share of
    samples that conflict with A only, B only, both, or neither. Attribute value ``c`` is aligned with class ``c``."""
    a, b = attrs
    bin_ = stage2_bins(table, bins)
    conf_a = table[a].to_numpy() != table["label"].to_numpy()
    conf_b = table[b].to_numpy() != table["label"].to_numpy()
    kind = np.select(
        [conf_a & ~conf_b, conf_b & ~conf_a, conf_a & conf_b], ["A only", "B only", "both"], default="aligned"
    )
    out = pd.crosstab(bin_, kind, normalize="index").mul(100)
    out.index.name = "bin"
    return out.reindex(columns=["aligned", "A only", "B only", "both"], fill_value=0.0)


def look_separation(look: pd.DataFrame, table: pd.DataFrame, attrs: tuple[str, str]) -> dict[str, float]:
    """How well the second look tells each kind of conflicting first-wave sample from the aligned ones: per kind
    (``A only``, ``B only``) the ROC AUC of a lower look ``p_y`` (0.5: blind, 1: perfect), the share of that kind
    the look moved (recall), and the share of the moved that are of that kind (precision). ``look`` is a run's
    ``second_look.csv``, ``table`` its ``rankings.csv`` (the bias attributes, joined on the dataset index)."""
    from sklearn.metrics import roc_auc_score

    a, b = attrs
    d = look.merge(table[["index", a, b]], on="index", validate="one_to_one")
    d = d[d["first_wave"].astype(bool)]
    conf_a, conf_b = d[a].to_numpy() != d["label"].to_numpy(), d[b].to_numpy() != d["label"].to_numpy()
    moved = d["moved"].astype(bool).to_numpy()
    out: dict[str, float] = {"moved": float(moved.sum())}
    for name, kind in (("A only", conf_a & ~conf_b), ("B only", conf_b & ~conf_a)):
        pool = kind | ~(conf_a | conf_b)  # this kind against the aligned ones
        n = int(kind.sum())
        out[f"{name} n"] = float(n)
        out[f"{name} AUC"] = (
            float(roc_auc_score(kind[pool], -d["look_p_y"].to_numpy()[pool]))
            if 0 < n < int(pool.sum())
            else float("nan")
        )
        out[f"{name} recall"] = float((moved & kind).sum() / n) if n else float("nan")
        out[f"{name} precision"] = float((moved & kind).sum() / moved.sum()) if moved.any() else float("nan")
    return out


def worst_group_of(results: list[pd.DataFrame], variant_name: str, method: str, seed: int) -> float | None:
    """The test worst-group accuracy of one run from the first results table that has it (``None``: none has)."""
    for table in results:
        row = table[
            (table["variant"] == variant_name)
            & (table["method"] == method)
            & (table["seed"] == seed)
            & (table["metric"] == "worst_group_acc")
        ]
        if len(row):
            return float(row["value"].iloc[0])
    return None


def outcome_table(rows: list[dict]) -> tuple[pd.DataFrame, pd.Series]:
    """Per run: the last bin's A-only, B-only and smaller of the two shares beside worst-group; and each share's
    Spearman correlation with worst-group over the runs that have one."""
    table = pd.DataFrame(rows)
    table["smaller"] = table[["A only", "B only"]].min(axis=1)
    have = table.dropna(subset=["worst_group"])
    corr = have[["A only", "B only", "smaller"]].corrwith(have["worst_group"], method="spearman")
    return table, corr


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "method_dir",
        type=Path,
        nargs="+",
        help="runs/<bench>/<variant>/<method> (holds seed*/rankings.csv); several pool their runs",
    )
    ap.add_argument(
        "--results",
        type=Path,
        action="append",
        default=[],
        help="bench results CSV for the runs' worst-group (repeatable; the first with the row wins)",
    )
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--last", type=int, default=3, help="print the last this many bins (and bin 1)")
    args = ap.parse_args(argv)
    results = [pd.read_csv(p) for p in args.results]
    last, rows = [], []
    for method_dir in args.method_dir:
        spec = variant(method_dir.parent.name)
        attrs = tuple(spec.attr_names)
        for run in sorted(method_dir.glob("seed*")):
            path = run / "rankings.csv"
            if not path.exists():
                continue
            comp = bin_composition(pd.read_csv(path), attrs, args.bins)
            last.append(comp.loc[args.bins])
            seed = int(run.name.removeprefix("seed"))
            rows.append(
                {
                    "run": str(run),
                    "worst_group": worst_group_of(results, spec.name, method_dir.name, seed),
                    **comp.loc[args.bins].round(1).to_dict(),
                }
            )
            diag = run / "ranking_diagnostics.json"
            look = json.loads(diag.read_text()).get("second_look") if diag.exists() else None
            said = (
                f"second look: {look['epochs']} epochs, moved {look['moved']} of {look['first_wave']} "
                f"({100 * look['moved_share']:.1f}%), wrong share by epoch "
                + " / ".join(f"{100 * s:.1f}" for s in look["wrong_share_by_epoch"])
                if look
                else "no second look"
            )
            print(f"{run}: {said}")
            scores = run / "second_look.csv"
            if scores.exists():  # written by fits from the nineteenth session on
                sep = look_separation(pd.read_csv(scores), pd.read_csv(path), attrs)
                print(
                    "look within the first wave (lower p_y = conflicting): "
                    + "; ".join(
                        f"{k}: n {sep[f'{k} n']:.0f}, AUC {sep[f'{k} AUC']:.3f}, recall {sep[f'{k} recall']:.2f}, "
                        f"precision {sep[f'{k} precision']:.2f}"
                        for k in ("A only", "B only")
                        if sep[f"{k} n"] > 0
                    )
                )
            keep = [1, *range(args.bins - args.last + 1, args.bins + 1)]
            print(comp.loc[[r for r in keep if r in comp.index]].round(1).to_string())
            print()
    if last:
        mean = pd.concat(last, axis=1).mean(axis=1).round(1)
        print(
            f"bin {args.bins}, mean over {len(last)} run(s): "
            + ", ".join(f"{k} {v}" for k, v in mean.items())
        )
    if results and rows:
        table, corr = outcome_table(rows)
        cols = ["run", "worst_group", "A only", "B only", "smaller"]
        print(f"\nbin {args.bins} beside worst-group:")
        print(table[cols].to_string(index=False))
        n = int(table["worst_group"].notna().sum())
        print(
            f"Spearman with worst-group over {n} run(s): "
            + ", ".join(f"{k} {v:+.2f}" for k, v in corr.items())
        )


if __name__ == "__main__":
    main()
