"""``sebra bench``: run methods x seeds on one data set (or the benchmark family) from a YAML config, resumably.

    sebra bench --dataset builtin --methods erm,jtt,groupdro,sebra,oracle --seeds 3
        [--config sebra/configs/builtin.yaml] [--out benchmarks/results/builtin.csv] [--set KEY=VALUE ...]
    sebra bench --family --role heldout --methods erm,jtt,sebra,oracle --seeds 3 --lane a --threads 1
    sebra bench --dataset colored_mnist --ratios 0.005,0.01 --methods erm,jtt,lff,sebra,oracle --seeds 3 --lane a

Before the first run every selected method is built once, without training, so a setting its class refuses ends
the command at once (exit 2, the file and block named) instead of hours into a sweep. Exit status: 0 done, 1 a run
failed (``--keep-going``), 2 a bad argument, config or results file, 130 interrupted (finished runs are saved; the
same command resumes).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sebra.bench.config import (
    BenchError,
    build_run,
    config_methods,
    default_config,
    load_config,
    parse_seeds,
)
from sebra.bench.store import completed_runs, lane_file, read_results
from sebra.cli.config import ConfigError, add_set_option
from sebra.cli.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_USAGE, error_line

__all__ = ["build_parser", "check_methods", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The ``sebra bench`` argument parser."""
    p = argparse.ArgumentParser(prog="sebra bench", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument(
        "--dataset", default=None, help="data set name (picks the default config and output names)"
    )
    p.add_argument(
        "--family",
        action="store_true",
        help="run the benchmark family (sebra.datasets.family) with the builtin config's settings; "
        "results in benchmarks/results/family.csv",
    )
    p.add_argument(
        "--grid",
        action="store_true",
        help="--family: the ranker x mitigation grid (sebra.bench.grid) instead of methods; rows in "
        "benchmarks/results/grid/<lane>.csv, merged into grid.csv with one table per role",
    )
    p.add_argument(
        "--mitigations",
        nargs="+",
        default=None,
        help="--grid: mitigation specs, space-separated (stage2, stage2:contrastive_weight=1, "
        "ranked_head:per_class=200,epochs=20,lr=0.01, rank_upsampled, rank_dro); default: each with its defaults",
    )
    p.add_argument(
        "--rankers",
        default=None,
        help="--grid: comma list of rankers (default: sebra,erm_conf,error_set,true_levels)",
    )
    p.add_argument(
        "--erm-conf-epoch",
        type=int,
        default=1,
        help="--grid: the ERM epoch the erm_conf and error_set rankers read",
    )
    p.add_argument(
        "--variants", default=None, help="--family: comma list of variants (default: those of --role)"
    )
    p.add_argument(
        "--role",
        default=None,
        choices=("dev", "heldout", "spent"),
        help="--family: every variant of this role (default: all variants)",
    )
    p.add_argument(
        "--lane",
        default="main",
        help="--family, colored_mnist: name of this process's results files (run lanes side by side, one thread "
        "each)",
    )
    p.add_argument(
        "--ratios",
        default=None,
        help="--dataset colored_mnist: comma list of conflict ratios (default 0.005,0.01,0.02,0.05); results in "
        "benchmarks/results/colored_mnist.csv",
    )
    p.add_argument(
        "--methods", default=None, help="comma list of methods of the config (default: all of them)"
    )
    p.add_argument(
        "--seeds", default="3", help="a count (3 -> seeds 0,1,2) or a comma list (0,5,7); default 3"
    )
    p.add_argument(
        "--config", default=None, help="YAML config (default: the packaged sebra/configs/<dataset>.yaml)"
    )
    add_set_option(
        p,
        "override a config value by its dotted key, as sebra fit does: "
        "methods.sebra.model.init_args.lr=0.01, trainer.precision=16-mixed, data.init_args.batch_size=64",
    )
    p.add_argument("--out", default=None, help="results CSV (default benchmarks/results/<dataset>.csv)")
    p.add_argument(
        "--ranking-out", default=None, help="ranking table CSV (default ranking_<dataset>.csv beside --out)"
    )
    p.add_argument(
        "--runs-dir", default="runs/bench", help="logs, checkpoints and per-sample files (runs/bench)"
    )
    p.add_argument("--keep-going", action="store_true", help="record a failed run and go on with the others")
    p.add_argument("--dry-run", action="store_true", help="print the runs still to do and exit")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op CPU threads (1 helps a lot on a small CPU shared with other jobs)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``sebra bench``; returns the exit status (0 ok, 1 a run failed, 2 bad arguments/config)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.grid and not args.family:
        parser.error("--grid runs on the benchmark family: add --family")
    if args.family and args.grid:
        return _as_command(lambda: _grid_run(args))
    if args.family:
        return _as_command(lambda: _family_run(args))
    if args.dataset is None:
        parser.error("--dataset is required (or --family)")
    return _as_command(lambda: _dataset_run(args))


def _as_command(run: Callable[[], int | str]) -> int:
    """Run one ``sebra bench`` entry point: a bad config or input is one line and exit 2, an interruption 130, failed
    runs (``--keep-going``) 1; a returned text is the closing message (exit 0), a returned number the exit status."""
    try:
        done = run()
    except (ConfigError, FileNotFoundError) as e:
        print(error_line("bench", e), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(
            "sebra bench: interrupted; finished runs are saved, run the same command again to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except RuntimeError as e:
        if "run(s) failed" in str(e):
            print(error_line("bench", e), file=sys.stderr)
            return EXIT_INPUT
        raise
    if isinstance(done, int):
        return done
    print(f"sebra bench: {done}", file=sys.stderr)
    return 0


def check_methods(cfg: dict[str, Any], methods: list[str]) -> None:
    """Build the data module and every method's module once, untrained, so a refused setting stops the command
    before the first run.

    Raises:
        BenchError: a class refuses its arguments (the file, block and the class's reason).
    """
    for name in methods:
        build_run(cfg, name, seed=0)


def _load(args: argparse.Namespace, config: Path) -> tuple[dict[str, Any], list[str], list[int]]:
    cfg = load_config(config, args.set)
    return cfg, config_methods(cfg, args.methods), parse_seeds(args.seeds)


def _dataset_run(args: argparse.Namespace) -> int | str:
    if args.dataset == "colored_mnist":
        return _colored_mnist_run(args)
    if args.ratios is not None:
        raise BenchError("--ratios applies to --dataset colored_mnist only")
    out = Path(args.out or f"benchmarks/results/{args.dataset}.csv")
    try:
        done = completed_runs(read_results(out))
    except BenchError as e:
        raise BenchError(f"{e}; move it away (or pass another --out) to start a new results file") from e
    config = Path(args.config) if args.config else default_config(args.dataset)
    cfg, methods, seeds = _load(args, config)
    if cfg.get("dataset") not in (None, args.dataset):
        raise BenchError(f"{config}: dataset is {cfg['dataset']!r} but --dataset is {args.dataset!r}")
    ranking_out = Path(args.ranking_out or out.parent / f"ranking_{args.dataset}.csv")
    check_methods(cfg, methods)
    _check_destinations(
        ("--out", out.parent), ("--ranking-out", ranking_out.parent), ("--runs-dir", args.runs_dir)
    )
    if args.dry_run:
        todo = [(m, s) for s in seeds for m in methods if (m, s) not in done]
        print(f"{len(todo)} of {len(seeds) * len(methods)} run(s) to do -> {out}")
        for m, s in todo:
            print(f"  {m} seed {s}")
        return 0
    from sebra.bench.sweep import run_bench

    _set_threads(args.threads)
    run_bench(
        cfg,
        methods,
        seeds,
        out=out,
        ranking_out=ranking_out,
        runs_dir=Path(args.runs_dir),
        dataset=args.dataset,
        keep_going=args.keep_going,
        progress=not args.no_progress,
    )
    return f"results in {out}, ranking table in {ranking_out}"


def _check_destinations(*folders: tuple[str, str | Path]) -> None:
    """Refuse an unwritable results or runs folder before the first run trains (it would be lost at the write)."""
    from sebra.utils.files import check_writable

    for what, folder in folders:
        check_writable(folder, what, BenchError)


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        if threads < 1:
            raise BenchError(f"--threads must be >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)


def _family_run(args: argparse.Namespace) -> int | str:
    from sebra.bench.family import run_family
    from sebra.datasets.family import variants as registered

    config = Path(args.config) if args.config else default_config("builtin")
    cfg, methods, seeds = _load(args, config)
    names = (
        [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else registered(args.role)
    )
    unknown = [v for v in names if v not in registered()]
    if unknown:
        raise BenchError(f"--variants: unknown variant(s) {unknown}; registered: {', '.join(registered())}")
    _check_lane(args.lane)
    out = Path(args.out or "benchmarks/results/family.csv")
    runs_dir = Path(args.runs_dir if args.runs_dir != "runs/bench" else "runs/family")
    _check_destinations(("--out", out.parent), ("--runs-dir", runs_dir))
    if args.dry_run:
        for v in names:
            _print_todo(v, lane_file(out, v, args.lane), methods, seeds, args.lane)
        return 0
    _set_threads(args.threads)
    run_family(
        cfg,
        methods,
        seeds,
        names,
        out=out,
        runs_dir=runs_dir,
        lane=args.lane,
        keep_going=args.keep_going,
        progress=not args.no_progress,
    )
    return f"results in {out}"


def _grid_run(args: argparse.Namespace) -> int | str:
    from sebra.bench.grid import MITIGATIONS, RANKERS, parse_mitigation
    from sebra.bench.grid_runs import grid_table, markdown_table, merge_grid, run_grid
    from sebra.datasets.family import variants as registered

    if args.role is None:
        raise BenchError("--grid needs --role (dev to choose settings, heldout to report)")
    config = Path(args.config) if args.config else default_config("builtin")
    cfg = load_config(config, args.set)
    names = (
        [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else registered(args.role)
    )
    rankers = tuple(r.strip() for r in (args.rankers or ",".join(RANKERS)).split(",") if r.strip())
    bad = [r for r in rankers if r not in RANKERS]
    if bad:
        raise BenchError(f"--rankers: unknown ranker(s) {bad}; expected some of {', '.join(RANKERS)}")
    mitigations = tuple(args.mitigations or MITIGATIONS)
    try:
        for spec in mitigations:
            parse_mitigation(spec)
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        raise BenchError(str(e)) from None
    _check_lane(args.lane)
    runs_dir = Path(args.runs_dir if args.runs_dir != "runs/bench" else "runs/grid")
    _check_destinations(("benchmarks/results", Path("benchmarks/results")), ("--runs-dir", runs_dir))
    _set_threads(args.threads)
    try:
        lane = run_grid(
            cfg,
            args.role,
            names,
            seeds,
            mitigations,
            rankers=rankers,
            erm_conf_epoch=args.erm_conf_epoch,
            lane=args.lane,
            runs_dir=runs_dir,
            log=lambda line: print(line, file=sys.stderr, flush=True),
        )
    except (ValueError, KeyError) as e:
        raise BenchError(str(e)) from None
    df = merge_grid()
    for role, sub in df.groupby("role"):
        print(f"\n## {role} (worst-group %, mean ± std over seeds of the mean over variants)\n")
        print(markdown_table(grid_table(sub)))
    return f"grid rows in {lane}, merged into benchmarks/results/grid.csv"


def _print_todo(what: str, lane_results: Path, methods: list[str], seeds: list[int], lane: str) -> None:
    """``--dry-run`` of a lane: how many of its (method, seed) runs its results file does not hold yet."""
    done = completed_runs(read_results(lane_results))
    todo = [(m, s) for s in seeds for m in methods if (m, s) not in done]
    print(f"{what}: {len(todo)} of {len(seeds) * len(methods)} run(s) to do (lane {lane})")


def _check_lane(lane: str) -> None:
    """A lane names a results file (``<out stem>.<lane>.csv``): letters, digits, ``-``, ``_`` and ``.`` (so
    ``--lane r0.01`` works), not starting with a dot, never a path."""
    if (
        not lane
        or lane.startswith(".")
        or not lane.replace("-", "").replace("_", "").replace(".", "").isalnum()
    ):
        raise BenchError(
            f"--lane must be letters, digits, '-', '_' or '.', not starting with '.', got {lane!r}"
        )


def _colored_mnist_run(args: argparse.Namespace) -> int | str:
    from sebra.bench.colored_mnist import parse_ratios, ratio_lane_file, run_colored_mnist

    config = Path(args.config) if args.config else default_config("colored_mnist")
    cfg, methods, seeds = _load(args, config)
    ratios = parse_ratios(args.ratios)
    _check_lane(args.lane)
    out = Path(args.out or "benchmarks/results/colored_mnist.csv")
    check_methods(cfg, methods)
    _check_destinations(("--out", out.parent), ("--runs-dir", args.runs_dir))
    if args.dry_run:
        for r in ratios:
            _print_todo(f"ratio {r:g}", ratio_lane_file(out, r, args.lane), methods, seeds, args.lane)
        return 0
    _set_threads(args.threads)
    run_colored_mnist(
        cfg,
        methods,
        seeds,
        ratios,
        out=out,
        runs_dir=Path(args.runs_dir),
        lane=args.lane,
        keep_going=args.keep_going,
        progress=not args.no_progress,
    )
    return f"results in {out}"


if __name__ == "__main__":
    raise SystemExit(main())
