"""Put the rows of a Sebra configuration chosen on Colored MNIST's validation split into the main results file: the
chosen rows become ``sebra`` (and ``sebra_val_acc`` / ``sebra_val_wga``), the previous ``sebra*`` rows are kept under
a new name (``--old-name``), so BENCHMARKS.md §8 shows both.

    python benchmarks/merge_cmnist_choice.py benchmarks/results/cmnist_trials/c1.csv \\
        --base benchmarks/results/colored_mnist.csv --old-name sebra_bins10
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from sebra.utils.files import atomic_write

COLUMNS = ["ratio", "method", "seed", "metric", "value"]


def merge_choice(chosen: pd.DataFrame, base: pd.DataFrame, old_name: str) -> pd.DataFrame:
    """``base`` with its ``sebra*`` rows renamed ``old_name*`` and ``chosen``'s ``sebra*`` rows added."""
    for name, frame in (("chosen", chosen), ("base", base)):
        missing = [c for c in COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{name} results lack the column(s) {missing}; expected {COLUMNS}")
    if base["method"].str.startswith(old_name).any():
        raise ValueError(f"base already holds {old_name} rows: merged before?")
    base = base.copy()
    is_sebra = base["method"].str.fullmatch(r"sebra(_val_acc|_val_wga)?")
    base.loc[is_sebra, "method"] = base.loc[is_sebra, "method"].str.replace("sebra", old_name, n=1)
    new = chosen[chosen["method"].str.fullmatch(r"sebra(_val_acc|_val_wga)?")]
    return pd.concat([base, new[COLUMNS]], ignore_index=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("chosen")
    p.add_argument("--base", required=True)
    p.add_argument("--old-name", required=True)
    a = p.parse_args()
    out = merge_choice(pd.read_csv(a.chosen), pd.read_csv(a.base), a.old_name)
    atomic_write(Path(a.base), lambda tmp: out.to_csv(tmp, index=False))
    print(f"{a.base}: {len(out)} rows ({(out['method'] == 'sebra').sum()} chosen sebra rows)")


if __name__ == "__main__":
    main()
