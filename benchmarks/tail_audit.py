"""What Stage 2's positives are made of: the composition of each ranking's position bins by true group.

Stage 2 (``ce_on: positive``, ``gap: 7``, ``rank_bins: 10``) draws its positives, and so its cross-entropy, from a
class's last bins; what those bins hold decides which shortcut Stage 2 unlearns. This script reads the
``rankings.csv`` of benchmark runs on a family variant (each row carries the variant's bias attributes) and prints,
per run, the share of each bin that conflicts with A only, with B only, with both, or with neither (pooled over
the classes), plus the second look's line from ``ranking_diagnostics.json``. It uses the bias labels, so it is an
audit of a ranking, never an input to one. Example::

    python benchmarks/tail_audit.py runs/bench_dov/farm-objcolor-faintpatch/sebra
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "method_dir", type=Path, help="runs/<bench>/<variant>/<method> (holds seed*/rankings.csv)"
    )
    ap.add_argument("--bins", type=int, default=10)
    ap.add_argument("--last", type=int, default=3, help="print the last this many bins (and bin 1)")
    args = ap.parse_args(argv)
    spec = variant(args.method_dir.parent.name)
    attrs = tuple(spec.attr_names)
    last = []
    for run in sorted(args.method_dir.glob("seed*")):
        path = run / "rankings.csv"
        if not path.exists():
            continue
        comp = bin_composition(pd.read_csv(path), attrs, args.bins)
        last.append(comp.loc[args.bins])
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
        rows = [1, *range(args.bins - args.last + 1, args.bins + 1)]
        print(comp.loc[[r for r in rows if r in comp.index]].round(1).to_string())
        print()
    if last:
        mean = pd.concat(last, axis=1).mean(axis=1).round(1)
        print(
            f"bin {args.bins}, mean over {len(last)} run(s): "
            + ", ".join(f"{k} {v}" for k, v in mean.items())
        )


if __name__ == "__main__":
    main()
