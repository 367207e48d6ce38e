"""The Colored MNIST block of BENCHMARKS.md §8 from the merged ``colored_mnist.csv``: one row per method, one column
per conflict ratio, cells the unbiased test accuracy as mean ± std over the seeds finished (``n`` shown when fewer
than three), beside the published numbers, which are kept here as the one copy the table is written from."""

from __future__ import annotations

import pandas as pd

__all__ = ["PUBLISHED", "colored_mnist_markdown"]

#: Unbiased test accuracy (%), mean ± std over 5 seeds, DeNetDM (NeurIPS 2024) Table 1 (baselines from the official
#: repositories); ratios 0.5%, 1%, 2%, 5%.
PUBLISHED: dict[str, dict[float, tuple[float, float]]] = {
    "erm": {0.005: (35.34, 0.13), 0.01: (50.34, 0.16), 0.02: (62.29, 1.47), 0.05: (77.63, 0.13)},
    "jtt": {0.005: (53.03, 3.89), 0.01: (61.68, 2.02), 0.02: (74.23, 3.21), 0.05: (85.03, 1.10)},
    "lff": {0.005: (63.39, 1.97), 0.01: (74.01, 2.21), 0.02: (80.48, 0.45), 0.05: (85.39, 0.94)},
}

_NAMES = {
    "erm": "ERM",
    "jtt": "JTT",
    "lff": "LfF",
    "sebra": "Sebra",
    "sebra_bins10": "Sebra, 10 bins / gap 7 (before the validation choice)",
    "oracle": "group-balanced (colour labels)",
}


def _cell(values: pd.Series) -> str:
    v = values.dropna()
    if v.empty:
        return "—"
    text = f"{v.mean():.2f} ± {v.std(ddof=1):.2f}" if len(v) > 1 else f"{v.iloc[0]:.2f}"
    return text + ("" if len(v) >= 3 else f" (n={len(v)})")


def colored_mnist_markdown(df: pd.DataFrame, metric: str = "unbiased_acc") -> str:
    """A markdown table of the main rows (last epoch) of ``df`` (``ratio,method,seed,metric,value``), ours beside
    the published row of the same method; methods without results are left out, ratios without any too."""
    main = df[(df["metric"] == metric) & df["method"].isin(list(_NAMES))]
    ratios = sorted(main["ratio"].unique())
    if not ratios:
        return "(no Colored MNIST results yet)"
    head = "| method | " + " | ".join(f"{100 * r:g}%" for r in ratios) + " |"
    lines = [head, "|---|" + "---|" * len(ratios)]
    for method, name in _NAMES.items():
        ours = main[main["method"] == method]
        if ours.empty:
            continue
        cells = [_cell(ours[ours["ratio"] == r]["value"]) for r in ratios]
        lines.append(f"| **{name}, ours** | " + " | ".join(cells) + " |")
        if method in PUBLISHED:
            pub = (PUBLISHED[method].get(float(r)) for r in ratios)
            cells = [f"{p[0]:.2f} ± {p[1]:.2f}" if p else "—" for p in pub]
            lines.append(f"| {name}, published | " + " | ".join(cells) + " |")
    return "\n".join(lines)
