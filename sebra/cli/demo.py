"""The main job: Sebra and ERM on the built-in benchmark, one table; and ``sebra rank`` (Stage 1 only, or a simpler
ranker: ERM confidence, JTT's error set, each writing the same rankings.csv).

The settings are :mod:`sebra.bench.presets` (the same the benchmarks use), so the demo shows what BENCHMARKS.md measures.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch

from sebra.bench.config import build_run
from sebra.bench.presets import SEBRA_SHORT, builtin_config
from sebra.cli.config import ConfigError, add_set_option, apply_overrides, parse_overrides
from sebra.cli.console import PhaseProgress, quiet_lightning
from sebra.cli.fitting import fit_method, make_trainer
from sebra.cli.results import COLUMNS, level_scores, results_heading, results_table
from sebra.diagnostics import second_look_line, summary_line
from sebra.export import save_rankings

__all__ = ["REFERENCE_FILE", "main", "rank_main", "reference_text"]

#: Mean ± std over seeds of the same settings (BENCHMARKS.md §4), written by ``benchmarks/reference.py``.
REFERENCE_FILE = Path(__file__).resolve().parents[1] / "configs" / "builtin_reference.csv"
REFERENCE_METRICS = ("worst_group_acc", "avg_acc", "id_acc", "gap_a", "gap_b", "gap_both")
_USES_LABELS = {"groupdro": "groupdro (uses group labels)", "oracle": "oracle (uses group labels)"}


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


def _verbose_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verbose",
        action="store_true",
        help="show Lightning's own messages (device banner, tips, notices), muted by default",
    )


def main(argv: list[str] | None = None) -> int:
    """``sebra demo``: Sebra and ERM on the built-in benchmark; returns the exit status."""
    p = _parser("sebra demo", "Sebra and ERM on the built-in benchmark.", "runs/demo")
    p.add_argument("--skip-erm", action="store_true")
    return _run(p, argv, _demo)


def _parser(prog: str, description: str, out: str) -> argparse.ArgumentParser:
    """The options demo and rank share: output folder, data root, seed, config, ``--set``, ``--verbose``."""
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--out", default=out, help="output folder (logs, rankings.csv, report.html)")
    p.add_argument(
        "--root", default=None, help="where the benchmark is written (default ~/.cache/sebra/builtin)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--config",
        default=None,
        help="a benchmark config in sebra/configs/builtin.yaml's layout (default: that file)",
    )
    add_set_option(
        p,
        "override a config value (values read as YAML), keys dotted as in the config and sebra fit: "
        "methods.sebra.model.init_args.p_critical=0.8, data.init_args.batch_size=64; "
        f"a key without a dot means {SEBRA_SHORT}.<key> (p_critical=0.8)",
    )
    _verbose_flag(p)
    return p


def _run(p: argparse.ArgumentParser, argv: list[str] | None, command: Callable[..., int]) -> int:
    a = p.parse_args(argv)
    cfg = builtin_config(a.config, parse_overrides(a.set, short=SEBRA_SHORT))
    with quiet_lightning(a.verbose):
        return command(a, cfg)


def _build(cfg: dict[str, Any], a: argparse.Namespace, method: str, **init_args: Any) -> tuple[Any, Any]:
    """The data module and ``method``'s module, built as ``sebra bench`` builds a run (the one schema:
    :func:`sebra.bench.config.build_run`), with the command's ``--root``, ``--seed`` and its own arguments
    (``rank_only``, ``epochs``) over the config's."""
    if method not in cfg["methods"]:
        raise ConfigError(
            f"{cfg.get('_path', 'config')}: this command needs methods.{method} (have: {', '.join(cfg['methods'])})"
        )
    sets: dict[str, Any] = {"data.init_args.root": a.root} if a.root is not None else {}
    sets.update({f"methods.{method}.model.init_args.{k}": v for k, v in init_args.items()})
    return build_run(apply_overrides(cfg, sets, source=f"sebra {method}"), method, a.seed)


def _demo(a: argparse.Namespace, cfg: dict[str, Any]) -> int:
    out = Path(a.out)
    torch.set_num_threads(max(1, min(torch.get_num_threads(), 4)))
    rows: dict[str, dict] = {}
    L.seed_everything(a.seed, verbose=False)
    dm, sebra = _build(cfg, a, "sebra")
    rows["sebra"] = fit_method("sebra", sebra, dm, out)
    rows["sebra"].update(level_scores(sebra.rankings, dm.splits["train"]))
    rank_path = save_rankings(sebra.rankings, out / "rankings.csv")
    if not a.skip_erm:
        L.seed_everything(a.seed, verbose=False)
        dm, erm = _build(cfg, a, "erm")
        rows["erm"] = fit_method("erm", erm, dm, out)
    print("\n" + results_heading("Built-in benchmark", sebra.selection, ("background", "symbol"), COLUMNS))
    print(results_table(rows, COLUMNS))
    print(reference_text())
    print(f"\nrankings: {rank_path}")
    print(f"ranking check: {summary_line(sebra.ranking_check)}")
    if sebra.second_look is not None:
        print(second_look_line(sebra.second_look))
    try:
        from sebra.inspect.report import write_report

        report = write_report(
            sebra.rankings,
            dm.splits["train"],
            out / "inspect",
            class_names=dm.splits["train"].class_names,
            quality={k: v for k, v in rows["sebra"].items() if "tau" in k},
            title="Sebra on the built-in benchmark",
            last_step=int(sebra.extra_metrics()["rank_steps"]),  # what the method reports, not its state
            check={
                **sebra.ranking_check.to_dict(),
                **({"second_look": sebra.second_look} if sebra.second_look else {}),
            },
        )
        print(f"report:   {report}")
    except Exception as e:  # the report is a convenience; the run's numbers are already printed
        print(f"report not written: {e}")
    (out / "summary.json").write_text(json.dumps(rows, indent=1))
    return 0


#: ``sebra rank --ranker``: every ranker writes the same ranking table (rankings.csv).
RANKERS = ("sebra", "erm_conf", "error_set")


def rank_main(argv: list[str] | None = None) -> int:
    """``sebra rank``: rank the training samples only (Sebra's Stage 1, or a simpler ranker); returns the exit status."""
    p = _parser("sebra rank", "Rank the training samples (Stage 1 only, or a simpler ranker).", "runs/rank")
    p.add_argument(
        "--ranker",
        choices=RANKERS,
        default="sebra",
        help="sebra: Stage 1 (default); erm_conf: the config's ERM network after --epoch epochs, per class by "
        "p_y; error_set: that network's errors last (JTT's two levels, p_y order inside a level)",
    )
    p.add_argument(
        "--epoch", type=int, default=1, help="erm_conf / error_set: ERM epochs before scoring (a setting)"
    )
    return _run(p, argv, _rank)


def _rank_by_erm(a: argparse.Namespace, cfg: dict[str, Any], out: Path) -> int:
    """ERM trained ``--epoch`` epochs, scored once on the training split: its confidence or its error set."""
    from sebra.scoring import confidence_rankings, dataset_scores, error_set_rankings

    dm, model = _build(cfg, a, "erm", epochs=a.epoch)
    t = time.time()
    make_trainer(out, "rank", [PhaseProgress()]).fit(model, datamodule=dm)
    train = dm.train_eval_dataset
    scores = dataset_scores(model.net, dm, train)
    if a.ranker == "erm_conf":
        table = confidence_rankings(train.indices, train.labels, scores.p_y.double())
    else:  # an error is a wrong argmax (p_y < 0.5 says so only with two classes)
        frame = pd.DataFrame(
            {
                "index": train.indices.numpy(),
                "label": train.labels.numpy(),
                "p_y": scores.p_y.double().numpy(),
                "pred": scores.pred.numpy(),
            }
        )
        table = error_set_rankings(frame)
    path = save_rankings(table, out / "rankings.csv")
    print(f"{a.ranker}: ERM after {a.epoch} epoch(s), scored in {time.time() - t:.0f} s")
    q = level_scores(table, dm.splits["train"])
    print(
        "ranking quality (4 levels): tau-b {kendall_tau_b:.3f}, weighted tau {weighted_tau:.3f}; "
        "(3 levels): tau-b {kendall_tau_b_3:.3f}".format(**q)
    )
    print(f"rankings: {path}")
    return 0


def _rank(a: argparse.Namespace, cfg: dict[str, Any]) -> int:
    if a.ranker != "sebra" and a.epoch < 1:
        raise ValueError(f"sebra rank: --epoch must be >= 1, got {a.epoch}")
    L.seed_everything(a.seed, verbose=False)
    if a.ranker != "sebra":
        return _rank_by_erm(a, cfg, Path(a.out))
    dm, model = _build(cfg, a, "sebra", rank_only=True)
    out = Path(a.out)
    trainer = make_trainer(out, "rank", [PhaseProgress()])
    t = time.time()
    trainer.fit(model, datamodule=dm)
    path = save_rankings(model.rankings, out / "rankings.csv")
    q = level_scores(model.rankings, dm.splits["train"])
    runs = [h for _, h in model.ranking_history().groupby("repeat")]
    steps = "; ".join(str(h["eliminated"].tolist()) for h in runs)
    print(
        f"Stage 1: {len(runs)} run(s), {sum(len(h) for h in runs)} ranking steps in {time.time() - t:.0f} s; "
        f"eliminated per step: {steps}; never eliminated: {int(runs[-1]['active'].iloc[-1])}"
    )
    print(
        "ranking quality (4 levels): tau-b {kendall_tau_b:.3f}, weighted tau {weighted_tau:.3f}; "
        "(3 levels): tau-b {kendall_tau_b_3:.3f}".format(**q)
    )
    print(f"ranking check: {summary_line(model.ranking_check)}")
    if model.second_look is not None:
        print(second_look_line(model.second_look))
    print(f"rankings: {path}")
    return 0
