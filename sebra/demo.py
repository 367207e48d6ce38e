"""The main job: Sebra and ERM on the built-in benchmark, one table; and ``sebra rank`` (Stage 1 only).

The settings are :mod:`sebra.presets` (the same the benchmarks use), so the demo shows what BENCHMARKS.md measures.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch

from sebra.datasets.builtin import BuiltinDataModule
from sebra.export import save_rankings
from sebra.methods import ERMModule, SebraModule
from sebra.metrics import ranking_quality
from sebra.presets import BUILTIN_DATA, BUILTIN_ERM, BUILTIN_SEBRA

__all__ = [
    "REFERENCE_FILE",
    "fit_method",
    "main",
    "parse_settings",
    "rank_main",
    "ranking_summary",
    "reference_text",
]

#: Mean ± std over seeds of the same settings (BENCHMARKS.md §4), written by ``benchmarks/reference.py``.
REFERENCE_FILE = Path(__file__).resolve().parent / "configs" / "builtin_reference.csv"
REFERENCE_METRICS = ("worst_group_acc", "avg_acc", "id_acc", "gap_a", "gap_b", "gap_both")
_USES_LABELS = {"groupdro": "groupdro (uses group labels)", "oracle": "oracle (uses group labels)"}


def _trainer(out: Path, name: str) -> L.Trainer:
    from lightning.pytorch.loggers import CSVLogger

    return L.Trainer(
        max_epochs=-1,
        accelerator="auto",
        devices=1,
        logger=CSVLogger(str(out), name=name, version=""),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(out / name),
    )


def ranking_summary(rankings: pd.DataFrame, dm: BuiltinDataModule) -> dict[str, float]:
    """Kendall tau-b and weighted tau of a ranking against the benchmark's 4- and 3-level ground truth."""
    bias = dm.bias
    labels = torch.tensor(rankings["label"].to_numpy())  # a copy: pandas may hand out read-only arrays
    attrs = torch.tensor(rankings[list(bias.attr_names)].to_numpy())
    out = {}
    for scheme in (4, 3):
        q = ranking_quality(rankings, bias.levels(labels, attrs, scheme).numpy())
        suffix = "" if scheme == 4 else "_3"
        out[f"kendall_tau_b{suffix}"] = q["kendall_tau_b"]
        out[f"weighted_tau{suffix}"] = q["weighted_tau"]
    return out


def fit_method(name: str, model: L.LightningModule, dm: BuiltinDataModule, out: Path) -> dict[str, float]:
    """Fit, test the selected checkpoint, return the metrics (accuracies and gaps in %)."""
    trainer = _trainer(out, name)
    t = time.time()
    trainer.fit(model, datamodule=dm)
    res = trainer.test(
        model, datamodule=dm, ckpt_path="best" if model.selection != "last" else None, verbose=False
    )[0]
    row = {
        "worst_group_acc": res["test_wga"],
        "avg_acc": res["test_acc"],
        "id_acc": res["test_id_acc"],
        "gap_a": res["test_gap_a"],
        "gap_b": res["test_gap_b"],
        "gap_both": res["test_gap_both"],
        "gap_mean": res["test_gap_mean"],
    }
    row = {k: 100 * v for k, v in row.items()}
    row["seconds"] = time.time() - t
    return row


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def reference_text(path: str | Path = REFERENCE_FILE) -> str:
    """The multi-seed reference for the demo's settings as printable lines (a one-line note if the file is missing).

    ``path`` is a CSV with columns ``method,metric,mean,std,seeds`` (``benchmarks/reference.py`` writes it from the
    ``sebra bench`` results behind BENCHMARKS.md §4).
    """
    path = Path(path)
    if not path.exists():
        return (
            f"\n(no multi-seed reference: {path} is missing; write it with python benchmarks/reference.py "
            f"--results benchmarks/results/builtin.csv --out {path})"
        )
    try:
        ref = pd.read_csv(path)
        missing = [c for c in ("method", "metric", "mean", "std", "seeds") if c not in ref.columns]
        if missing:
            raise ValueError(f"lacks the column(s) {missing}")
    except (ValueError, pd.errors.ParserError) as e:  # EmptyDataError is a ValueError
        return f"\n(no multi-seed reference: {path} could not be read: {e})"
    ref = ref[ref["metric"].isin(REFERENCE_METRICS)]
    if ref.empty:
        return f"\n(no multi-seed reference: {path} holds none of the metrics {', '.join(REFERENCE_METRICS)})"
    label = {m: _USES_LABELS.get(m, m) for m in dict.fromkeys(ref["method"])}
    table = pd.DataFrame(
        "-",
        index=list(label.values()),
        dtype=object,
        columns=[c for c in REFERENCE_METRICS if c in set(ref["metric"])],
    )
    for r in ref.itertuples(index=False):
        table.loc[label[r.method], r.metric] = _mean_std(r.mean, r.std)
    seeds = "/".join(str(s) for s in sorted({int(s) for s in ref["seeds"].dropna()})) or "?"
    lines = [
        (
            f"\nReference for these settings: mean ± std over {seeds} seeds (BENCHMARKS.md §4: sebra bench --dataset "
            "builtin --methods erm,jtt,groupdro,sebra,oracle --seeds 3, one thread per run; test split, %)"
        ),
        table.to_string(),
    ]
    wga = ref[ref["metric"] == "worst_group_acc"].set_index("method")["std"]
    spread = [f"{wga[m]:.1f} ({m})" for m in ("sebra", "erm") if m in wga.index and pd.notna(wga[m])]
    if spread:
        lines.append(
            f"A single run varies by this much: worst-group std over seeds {', '.join(spread)} points, and "
            "the thread count and the machine change a run's numbers too; compare the run above with these "
            "ranges, not with one number."
        )
    return "\n".join(lines)


def parse_settings(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` overrides (``--set``): a value is read as JSON when it parses (numbers, true, null, lists), else
    kept as text, so ``scoring=full`` and ``p_critical=0.9`` both work."""
    out: dict[str, Any] = {}
    for kv in pairs:
        key, sep, value = kv.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got {kv!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    """``sebra demo``: Sebra and ERM on the built-in benchmark; returns the exit status."""
    p = argparse.ArgumentParser(prog="sebra demo", description="Sebra and ERM on the built-in benchmark.")
    p.add_argument("--out", default="runs/demo", help="output folder (logs, rankings.csv, report.html)")
    p.add_argument(
        "--root", default=None, help="where the benchmark is written (default ~/.cache/sebra/builtin)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-erm", action="store_true")
    a = p.parse_args(argv)
    out = Path(a.out)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    rows: dict[str, dict] = {}
    L.seed_everything(a.seed, verbose=False)
    dm = BuiltinDataModule(root=a.root, **BUILTIN_DATA)
    sebra = SebraModule(**{**BUILTIN_SEBRA, "seed": a.seed})
    rows["sebra"] = fit_method("sebra", sebra, dm, out)
    rows["sebra"].update(ranking_summary(sebra.rankings, dm))
    rank_path = save_rankings(sebra.rankings, out / "rankings.csv")
    if not a.skip_erm:
        L.seed_everything(a.seed, verbose=False)
        dm = BuiltinDataModule(root=a.root, **BUILTIN_DATA)
        rows["erm"] = fit_method("erm", ERMModule(**{**BUILTIN_ERM, "seed": a.seed}), dm, out)
    table = pd.DataFrame(rows).T
    cols = [
        "worst_group_acc",
        "avg_acc",
        "id_acc",
        "gap_a",
        "gap_b",
        "gap_both",
        "gap_mean",
        "kendall_tau_b",
        "seconds",
    ]
    table = table[[c for c in cols if c in table.columns]]
    print(
        "\nBuilt-in benchmark (test split, checkpoint chosen by validation worst-group accuracy; accuracies in %;"
    )
    print("gap_a = background conflict, gap_b = symbol conflict, gap_both = both, each minus I.D. accuracy)")
    print(table.to_string(float_format=lambda v: f"{v:.2f}", na_rep="-"))
    print(reference_text())
    print(f"\nrankings: {rank_path}")
    try:
        from sebra.inspect.report import write_report

        report = write_report(
            sebra.rankings,
            dm.splits["train"],
            out / "inspect",
            class_names=dm.splits["train"].class_names,
            quality={k: v for k, v in rows["sebra"].items() if "tau" in k},
            title="Sebra on the built-in benchmark",
            last_step=sebra.controller.step,
        )
        print(f"report:   {report}")
    except Exception as e:  # the report is a convenience; the run's numbers are already printed
        print(f"report not written: {e}")
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    return 0


def rank_main(argv: list[str] | None = None) -> int:
    """``sebra rank``: Stage 1 only; returns the exit status."""
    p = argparse.ArgumentParser(prog="sebra rank", description="Stage 1 only: rank the training samples.")
    p.add_argument("--out", default="runs/rank")
    p.add_argument("--root", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override a SebraModule setting, e.g. --set p_critical=0.8 max_steps=20",
    )
    a = p.parse_args(argv)
    over = parse_settings(a.set)
    L.seed_everything(a.seed, verbose=False)
    dm = BuiltinDataModule(root=a.root, **BUILTIN_DATA)
    model = SebraModule(**{**BUILTIN_SEBRA, **over, "rank_only": True, "seed": a.seed})
    out = Path(a.out)
    trainer = _trainer(out, "rank")
    t = time.time()
    trainer.fit(model, datamodule=dm)
    path = save_rankings(model.rankings, out / "rankings.csv")
    q = ranking_summary(model.rankings, dm)
    runs = model._repeat_history or [model.controller.history_frame()]
    steps = "; ".join(str(h["eliminated"].tolist()) for h in runs)
    print(
        f"Stage 1: {len(runs)} run(s), {sum(len(h) for h in runs)} ranking steps in {time.time() - t:.0f} s; "
        f"eliminated per step: {steps}; never eliminated: {model.controller.num_active}"
    )
    print(
        "ranking quality (4 levels): tau-b {kendall_tau_b:.3f}, weighted tau {weighted_tau:.3f}; "
        "(3 levels): tau-b {kendall_tau_b_3:.3f}".format(**q)
    )
    print(f"rankings: {path}")
    return 0
