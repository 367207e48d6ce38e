"""The ranker x mitigation grid on the benchmark family (:mod:`sebra.bench.grid`), resumable, one lane per process.

    # choose a mitigation's settings on dev variants
    python benchmarks/grid.py --role dev --seeds 0 --mitigations ranked_head:per_class=100 ranked_head:per_class=200 --lane a
    # report on held-out variants, the settings chosen on dev
    python benchmarks/grid.py --role heldout --seeds 0 1 2 --mitigations ranked_head:per_class=200 stage2 --lane h1
    # merge the lane files and write the tables
    python benchmarks/grid.py --merge

Rows go to ``benchmarks/results/grid/<lane>.csv`` (``variant,role,ranker,mitigation,seed,metric,value``) after every
fit; a rerun of the same lane skips every (variant, seed, ranker, mitigation) it already holds. ``--merge`` concatenates
the lane files into ``benchmarks/results/grid.csv`` (a cell finished in two lanes keeps the later file's rows) and
prints one worst-group table per role (rows: rankers, columns: mitigations, mean +- std over seeds) with each
ranker's tau-b (3 levels). The other settings are the shipped ones (``sebra/configs/builtin.yaml``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

from sebra.bench.family import family_config
from sebra.bench.grid import GRID_COLUMNS, RANKERS, run_cell
from sebra.bench.tables import format_mean_std
from sebra.datasets.family import variant, variants
from sebra.presets import builtin_config
from sebra.utils.files import atomic_write

RESULTS = Path("benchmarks/results")


def grid_table(df: pd.DataFrame, metric: str = "worst_group_acc") -> pd.DataFrame:
    """Rows rankers, columns mitigations, cells ``mean +- std (n)`` over seeds of the per-variant mean."""
    sub = df[(df["metric"] == metric) & (df["mitigation"].fillna("") != "")]
    per_seed = sub.groupby(["ranker", "mitigation", "seed"])["value"].mean()
    stats = per_seed.groupby(["ranker", "mitigation"]).agg(["mean", "std", "count"])
    cell = stats.apply(lambda r: f"{format_mean_std(r['mean'], r['std'])} ({int(r['count'])})", axis=1)
    table = cell.unstack("mitigation").fillna("–")  # a (ranker, mitigation) not run
    tau = df[(df["metric"] == "kendall_tau_b_3") & (df["mitigation"].fillna("") == "")]
    table["τ-b (3)"] = tau.groupby("ranker")["value"].mean().round(3)
    return table


def markdown(table: pd.DataFrame) -> str:
    """A pipe table (pandas' ``to_markdown`` needs the optional ``tabulate``)."""
    head = ["ranker", *map(str, table.columns)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join([str(i), *(str(v) for v in row)]) + " |" for i, row in table.iterrows()]
    return "\n".join(lines)


def merge(out: Path) -> pd.DataFrame:
    parts = [pd.read_csv(p, dtype={"mitigation": str}) for p in sorted((RESULTS / "grid").glob("*.csv"))]
    df = pd.concat(parts, ignore_index=True)
    df["mitigation"] = df["mitigation"].astype(object).fillna("")
    df = df.drop_duplicates(["variant", "ranker", "mitigation", "seed", "metric"], keep="last")
    atomic_write(out, lambda tmp: df[GRID_COLUMNS].to_csv(tmp, index=False))
    return df


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--role", choices=["dev", "heldout", "spent"], default="dev")
    p.add_argument("--variants", nargs="*", default=None, help="default: every variant of --role")
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--mitigations", nargs="*", default=["ranked_head", "stage2"])
    p.add_argument("--rankers", nargs="*", default=list(RANKERS), choices=RANKERS)
    p.add_argument("--erm-conf-epoch", type=int, default=1)
    p.add_argument("--lane", default="a")
    p.add_argument("--runs-dir", default="runs/grid")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--merge", action="store_true", help="merge the lane files and print the tables")
    a = p.parse_args()
    if a.merge:
        df = merge(RESULTS / "grid.csv")
        for role, sub in df.groupby("role"):
            print(f"\n## {role} (worst-group %, mean ± std over seeds of the mean over variants)\n")
            print(markdown(grid_table(sub)))
        return
    torch.set_num_threads(a.threads)
    names = a.variants or variants(a.role)
    for name in names:
        if variant(name).role != a.role:
            raise SystemExit(f"grid: {name!r} is a {variant(name).role} variant, not {a.role}")
    lane = RESULTS / "grid" / f"{a.lane}.csv"
    lane.parent.mkdir(parents=True, exist_ok=True)
    held = (
        pd.read_csv(lane, dtype={"mitigation": str}) if lane.exists() else pd.DataFrame(columns=GRID_COLUMNS)
    )

    def save(rows: list[dict]) -> None:
        nonlocal held
        held = pd.concat([held, pd.DataFrame(rows, columns=GRID_COLUMNS)], ignore_index=True)
        atomic_write(lane, lambda tmp: held.to_csv(tmp, index=False))

    base = builtin_config()
    for seed in a.seeds:
        for name in names:
            mine = held[(held["variant"] == name) & (held["seed"] == seed)]
            done = set(zip(mine["ranker"], mine["mitigation"].astype(object).fillna("")))
            cfg = family_config(base, name)
            run_cell(
                cfg,
                name,
                a.role,
                seed,
                a.runs_dir,
                mitigations=tuple(a.mitigations),
                rankers=tuple(a.rankers),
                erm_conf_epoch=a.erm_conf_epoch,
                done=done,
                on_rows=save,
            )
            print(f"grid: {name} seed {seed} done", flush=True)


if __name__ == "__main__":
    main()
