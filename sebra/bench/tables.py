"""Tables and a plot from a ``sebra bench`` results CSV: mean ± std over seeds, the selection rule, a marked block
of BENCHMARKS.md rewritten atomically.

    python benchmarks/tables.py --dataset builtin [--markdown BENCHMARKS.md]

The results file holds rows ``method,seed,metric,value`` (:mod:`sebra.bench.store`). Each table cell is the mean over
seeds ± the sample standard deviation (``ddof=1``; a single seed shows the mean alone); the last column counts seeds.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sebra.bench.config import BenchError, default_config, load_config, selection_rules
from sebra.bench.store import read_results
from sebra.cli.config import ConfigError
from sebra.utils.files import atomic_write

__all__ = [
    "aggregate",
    "format_mean_std",
    "label_use",
    "main",
    "markdown_tables",
    "plot_accuracy",
    "selection_text",
    "update_markdown_block",
]

#: Preferred row order; other methods follow alphabetically.
METHOD_ORDER = ("erm", "jtt", "sebra", "groupdro", "oracle")
RANKER_ORDER = ("sebra", "erm_conf_same_budget", "erm_conf_best_epoch", "jtt_error_set")
RANKER_NOTES = {
    "sebra": "Sebra Stage 1",
    "erm_conf_same_budget": "ERM confidence, same optimizer steps as Sebra's Stage 1",
    "erm_conf_best_epoch": "ERM confidence at its best epoch; an upper reference, the epoch is picked with the true levels",
    "jtt_error_set": "JTT error set as two levels, correct then errors, by p_y within a level",
}
SELECTION_TEXT = {
    "val_wga": "best validation worst-group accuracy (uses validation group labels)",
    "val_acc": "best validation accuracy (no group labels)",
    "last": "last epoch (no validation)",
}


def aggregate(results: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample std (``ddof=1``) and number of seeds per (method, metric); NaN values are left out."""
    df = results.dropna(subset=["value"])
    agg = df.groupby(["method", "metric"])["value"].agg(mean="mean", std="std", n="count")
    return agg.reset_index()


def format_mean_std(mean: float, std: float, digits: int = 1) -> str:
    """``"72.3 ± 1.4"``; the mean alone when ``std`` is NaN (one seed); ``"–"`` when there is no value."""
    if mean is None or pd.isna(mean):
        return "–"
    if std is None or pd.isna(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def _ordered(methods: Sequence[str], order: Sequence[str]) -> list[str]:
    first = [m for m in order if m in methods]
    return first + sorted(m for m in methods if m not in first)


def label_use(cfg: Mapping[str, Any] | None) -> dict[str, bool]:
    """Methods that train with **training** group labels: GroupDRO, and group-balanced sampling."""
    if cfg is None:
        return {"groupdro": True, "oracle": True}
    out = {}
    for name, m in cfg["methods"].items():
        model = m["model"]
        out[name] = (
            model["class_path"].endswith("GroupDROModule")
            or model["init_args"].get("sampling") == "group_balanced"
        )
    return out


def selection_text(cfg: Mapping[str, Any] | None, methods: Sequence[str]) -> str:
    """One line stating each method's model-selection rule (from the config)."""
    if cfg is None:
        return "Model selection: not recorded (no benchmark config given)."
    rules = selection_rules(dict(cfg))
    by_rule: dict[str, list[str]] = {}
    for m in methods:
        if m in rules:
            by_rule.setdefault(rules[m], []).append(m)
    parts = [
        f"{SELECTION_TEXT.get(rule, rule)} (`{rule}`) for {', '.join(ms)}" for rule, ms in by_rule.items()
    ]
    return "Model selection: " + "; ".join(parts) + ". Test metrics are those of the selected checkpoint."


def _cell(agg: pd.DataFrame, method: str, metric: str, digits: int = 1, scale: float = 1.0) -> str:
    row = agg[(agg["method"] == method) & (agg["metric"] == metric)]
    if row.empty:
        return "–"
    r = row.iloc[0]
    return format_mean_std(r["mean"] * scale, r["std"] * scale if pd.notna(r["std"]) else np.nan, digits)


def _seeds(results: pd.DataFrame, method: str) -> int:
    return int(
        results.loc[(results["method"] == method) & (results["metric"] == "seconds"), "seed"].nunique()
    )


def markdown_tables(
    results: pd.DataFrame,
    dataset: str,
    *,
    cfg: Mapping[str, Any] | None = None,
    attr_names: Sequence[str] = ("A", "B"),
    plot: str | None = None,
) -> str:
    """The markdown for one data set: the selection rule, the accuracy table, the ranking table, the plot link."""
    agg = aggregate(results)
    a, b = attr_names
    labels = label_use(cfg)
    methods = _ordered(sorted(set(agg.loc[agg["metric"] == "worst_group_acc", "method"])), METHOD_ORDER)
    rankers = _ordered(sorted(set(agg.loc[agg["metric"] == "kendall_tau_b", "method"])), RANKER_ORDER)
    lines = [
        f"**{dataset}**: mean ± std over seeds (sample std); accuracies and gaps in %, test split.",
        "",
        selection_text(cfg, methods),
        "",
    ]
    if methods:
        lines += [
            (
                f"| Method | Worst-group | Average | I.D. | Gap {a} | Gap {b} | Gap {a}+{b} | Mean gap "
                "| Minutes/run | Seeds |"
            ),
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for m in methods:
            name = f"{m} (uses training group labels)" if labels.get(m) else m
            cells = [
                _cell(agg, m, k)
                for k in ("worst_group_acc", "avg_acc", "id_acc", "gap_a", "gap_b", "gap_both", "gap_mean")
            ]
            cells.append(_cell(agg, m, "seconds", digits=1, scale=1 / 60))
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {_seeds(results, m)} |")
        lines += [
            "",
            (
                "Average = plain test accuracy; I.D. = accuracy weighted by the training cell proportions; "
                f"gaps = cell accuracy − I.D. ({a}, {b} or both conflicting); "
                "minutes = wall time of fit + test."
            ),
            "",
        ]
    if rankers:
        lines += [
            (
                "Ranking quality against the true spuriosity levels (chunked Kendall τ-b and weighted τ per "
                "class, averaged over classes; 4 levels: both aligned / stronger aligned / weaker aligned / none; "
                "3 levels: number of conflicting attributes)."
            ),
            "",
            "| Ranker | τ-b (4 levels) | weighted τ (4) | τ-b (3 levels) | weighted τ (3) | Seconds | Seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        for m in rankers:
            secs_metric = (
                "rank_seconds"
                if ((agg["method"] == m) & (agg["metric"] == "rank_seconds")).any()
                else "seconds"
            )
            cells = [
                _cell(agg, m, k, digits=3)
                for k in ("kendall_tau_b", "weighted_tau", "kendall_tau_b_3", "weighted_tau_3")
            ]
            cells.append(_cell(agg, m, secs_metric, digits=1))
            note = RANKER_NOTES.get(m)
            name = f"{m}: {note}" if note else m
            seeds = int(
                results.loc[
                    (results["method"] == m) & (results["metric"] == "kendall_tau_b"), "seed"
                ].nunique()
            )
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {seeds} |")
        lines.append("")
    if plot:
        lines += [f"![{dataset}: worst-group vs I.D. accuracy]({plot})", ""]
    return "\n".join(lines)


def plot_accuracy(
    results: pd.DataFrame, path: str | Path, dataset: str, cfg: Mapping[str, Any] | None = None
) -> Path:
    """Worst-group (y) against I.D. accuracy (x) per method, error bars = std over seeds; PNG written atomically.

    Uses a bare :class:`matplotlib.figure.Figure` (Agg canvas), so pyplot's global backend is left alone.
    """
    from matplotlib.figure import Figure

    agg = aggregate(results)
    labels = label_use(cfg)
    methods = _ordered(sorted(set(agg.loc[agg["metric"] == "worst_group_acc", "method"])), METHOD_ORDER)
    fig = Figure(figsize=(5.5, 4.2), dpi=120)
    ax = fig.subplots()
    for m in methods:
        (x, xe), (y, ye) = _stat(agg, m, "id_acc"), _stat(agg, m, "worst_group_acc")
        if np.isnan(x) or np.isnan(y):
            continue
        ax.errorbar(
            x,
            y,
            xerr=xe,
            yerr=ye,
            fmt="s" if labels.get(m) else "o",
            capsize=3,
            label=f"{m} (group labels)" if labels.get(m) else m,
        )
    ax.set_xlabel("I.D. accuracy (%)")
    ax.set_ylabel("worst-group accuracy (%)")
    ax.set_title(f"{dataset}: mean ± std over seeds")
    ax.grid(alpha=0.3)
    if methods:
        ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _stat(agg: pd.DataFrame, method: str, metric: str) -> tuple[float, float]:
    """(mean, std) of one method's metric; std 0 for a single seed, mean NaN when absent."""
    r = agg[(agg["method"] == method) & (agg["metric"] == metric)]
    if r.empty:
        return np.nan, 0.0
    return float(r["mean"].iloc[0]), float(np.nan_to_num(r["std"].iloc[0]))


def _markers(key: str) -> tuple[str, str]:
    return f"<!-- bench:{key}:start -->", f"<!-- bench:{key}:end -->"


def update_markdown_block(path: str | Path, key: str, content: str) -> Path:
    """Replace what lies between ``<!-- bench:<key>:start -->`` and ``<!-- bench:<key>:end -->`` in ``path``.

    The markers stay; a file without them gets the block appended (a missing file is created). Written atomically.

    Raises:
        BenchError: only one marker, a marker twice, or the end before the start (names the file and line).
    """
    path = Path(path)
    start, end = _markers(key)
    text = path.read_text() if path.exists() else ""
    n_start, n_end = text.count(start), text.count(end)
    block = f"{start}\n{content.rstrip()}\n{end}"
    if n_start == 0 and n_end == 0:
        new = (text.rstrip("\n") + "\n\n" if text.strip() else "") + block + "\n"
    else:
        if n_start != 1 or n_end != 1:
            raise BenchError(f"{path}: expected one {start} and one {end}, found {n_start} and {n_end}")
        i, j = text.index(start), text.index(end)
        if j < i:
            line = text[:j].count("\n") + 1
            raise BenchError(f"{path}: {end} (line {line}) comes before {start}")
        new = text[:i] + block + text[j + len(end) :]
    return atomic_write(path, lambda tmp: Path(tmp).write_text(new))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="benchmarks/tables.py", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--dataset", required=True)
    p.add_argument("--results", default=None, help="results CSV (default benchmarks/results/<dataset>.csv)")
    p.add_argument(
        "--config",
        default=None,
        help="benchmark config, for the selection rules (default: the packaged sebra/configs/<dataset>.yaml)",
    )
    p.add_argument("--plot", default=None, help="PNG to write (default beside the results: <dataset>.png)")
    p.add_argument(
        "--markdown",
        default=None,
        help="markdown file whose bench:<dataset> block is rewritten (default: print to stdout)",
    )
    p.add_argument("--attr-names", default=None, help="names of attributes A,B for the gap columns")
    return p


def main(argv: list[str] | None = None) -> int:
    """Print (or write into ``--markdown``) the tables and write the plot; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        results_path = Path(args.results or f"benchmarks/results/{args.dataset}.csv")
        if not results_path.exists():
            raise FileNotFoundError(f"results file {results_path} does not exist; run sebra bench first")
        results = read_results(results_path)
        config = Path(args.config) if args.config else default_config(args.dataset)
        cfg = load_config(config) if config.exists() else None
        if args.config and cfg is None:
            raise FileNotFoundError(f"benchmark config {config} does not exist")
        if args.attr_names:
            attr_names = tuple(a.strip() for a in args.attr_names.split(","))
            if len(attr_names) != 2:
                raise BenchError(f"--attr-names needs two names (A,B), got {args.attr_names!r}")
        else:
            attr_names = ("bg", "coobj") if args.dataset == "builtin" else ("A", "B")
        plot = Path(args.plot or results_path.with_suffix(".png"))
        plot_accuracy(results, plot, args.dataset, cfg)
        link = None
        if args.markdown:
            md = Path(args.markdown)
            link = (
                str(Path(plot).resolve().relative_to(md.resolve().parent))
                if _inside(plot, md.parent)
                else str(plot)
            )
        text = markdown_tables(results, args.dataset, cfg=cfg, attr_names=attr_names, plot=link or str(plot))
        if args.markdown:
            update_markdown_block(args.markdown, args.dataset, text)
            print(
                f"tables: wrote the bench:{args.dataset} block of {args.markdown} and {plot}", file=sys.stderr
            )
        else:
            print(text)
    except (ConfigError, FileNotFoundError) as e:
        print(f"tables: {e}", file=sys.stderr)
        return 2
    return 0


def _inside(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
