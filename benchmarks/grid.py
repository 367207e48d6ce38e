"""The ranker x mitigation grid on the benchmark family (:mod:`sebra.bench.grid`), resumable, one lane per process.

    # choose a mitigation's settings on dev variants
    python benchmarks/grid.py --role dev --seeds 0 --mitigations ranked_head:per_class=100 ranked_head:per_class=200 --lane a
    # report on held-out variants, the settings chosen on dev
    python benchmarks/grid.py --role heldout --seeds 0 1 2 --mitigations ranked_head:per_class=200 stage2 --lane h1
    # merge the lane files and write the tables
    python benchmarks/grid.py --merge

The same as ``sebra bench --family --grid`` (:mod:`sebra.bench.grid_runs`). Rows go to
``benchmarks/results/grid/<lane>.csv`` (``variant,role,ranker,mitigation,seed,metric,value``) after every fit; a rerun
of the same lane skips every (variant, seed, ranker, mitigation) it already holds. ``--merge`` concatenates the lane
files into ``benchmarks/results/grid.csv`` and prints one worst-group table per role (rows: rankers, columns:
mitigations, mean +- std over seeds) with each ranker's tau-b (3 levels). The other settings are the shipped ones
(``sebra/configs/builtin.yaml``).
"""

from __future__ import annotations

import argparse

import torch

from sebra.bench.grid import RANKERS
from sebra.bench.grid_runs import grid_table, markdown_table, merge_grid, run_grid
from sebra.bench.presets import builtin_config
from sebra.datasets.family import variants

# the names tests and older notes use
markdown = markdown_table
__all__ = ["grid_table", "main", "markdown"]


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
        df = merge_grid()
        for role, sub in df.groupby("role"):
            print(f"\n## {role} (worst-group %, mean ± std over seeds of the mean over variants)\n")
            print(markdown_table(grid_table(sub)))
        return
    torch.set_num_threads(a.threads)
    try:
        run_grid(
            builtin_config(),
            a.role,
            a.variants or variants(a.role),
            a.seeds,
            tuple(a.mitigations),
            rankers=tuple(a.rankers),
            erm_conf_epoch=a.erm_conf_epoch,
            lane=a.lane,
            runs_dir=a.runs_dir,
            log=lambda line: print(line, flush=True),
        )
    except ValueError as e:
        raise SystemExit(str(e)) from None


if __name__ == "__main__":
    main()
