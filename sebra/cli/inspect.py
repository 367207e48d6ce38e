"""``sebra inspect``: turn a rankings file into grids, elimination curves and one HTML report.

Images come, in order of preference, from ``--data builtin`` (the built-in benchmark), ``--data config.yaml`` (a
LightningCLI-style ``data: {class_path, init_args}`` block), or the rankings' own ``path`` column; without any of
them the report holds the counts and curves only.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

from sebra.cli.config import ConfigError, mapping_at, read_yaml
from sebra.cli.errors import EXIT_INPUT, EXIT_USAGE, error_line
from sebra.datasets.base import DatasetError, ImageDataset
from sebra.export import load_rankings
from sebra.utils.files import atomic_write

__all__ = ["build_parser", "load_datamodule", "main"]


class InspectError(Exception):
    """A user-facing problem with the command's inputs (printed without a traceback)."""


def build_parser() -> argparse.ArgumentParser:
    """The ``sebra inspect`` argument parser."""
    p = argparse.ArgumentParser(prog="sebra inspect", description=__doc__.split("\n\n")[0])
    p.add_argument("rankings", type=Path, help="rankings file written by sebra (.csv or .parquet)")
    p.add_argument("--data", help="'builtin', or a YAML config with data: {class_path, init_args}")
    p.add_argument(
        "--root",
        type=Path,
        help="data root (passed to the data module as root=, or prefixed to "
        "relative paths of the rankings' path column)",
    )
    p.add_argument(
        "--split", default="train", help="split of the data module the ranking covers (default train)"
    )
    p.add_argument(
        "--out", type=Path, help="output folder (default: <rankings stem>_inspect beside the file)"
    )
    p.add_argument(
        "--k", type=int, default=8, help="most / least spurious samples shown per class (default 8)"
    )
    p.add_argument("--per-rank", type=int, default=4, help="samples shown per rank bucket (default 4)")
    p.add_argument("--max-buckets", type=int, default=12, help="rank buckets per class at most (default 12)")
    p.add_argument("--tile", type=int, default=96, help="tile size in pixels (default 96)")
    p.add_argument("--quality", type=Path, help="JSON file of ranking-quality numbers to show in the report")
    p.add_argument("--title", default=None, help="report title")
    return p


def load_datamodule(data: str, root: Path | None = None) -> Any:
    """Build (without setting up) the data module named by ``--data``.

    Args:
        data: ``"builtin"`` or a YAML config path with ``data: {class_path, init_args}``.
        root: when given, passed as ``root=`` (overriding the config's ``init_args.root``).

    Raises:
        InspectError: the built-in benchmark module or the config, its fields or its class cannot be used; the
            message names the file and field (:class:`~sebra.cli.config.ConfigError` when the file is not YAML or the
            class cannot be imported).
    """
    from sebra.cli.schema import build_block

    if data == "builtin":
        block: dict[str, Any] = {"class_path": "sebra.datasets.builtin.BuiltinDataModule", "init_args": {}}
        where = "--data builtin"
    else:
        path = Path(data)
        if not path.is_file():
            raise InspectError(f"--data: {path} is neither 'builtin' nor an existing YAML config file")
        cfg = read_yaml(path, "--data config")
        if not isinstance(cfg.get("data"), dict):
            raise InspectError(f"{path}: expected a top-level 'data' mapping with class_path and init_args")
        if "class_path" not in cfg["data"]:
            raise InspectError(
                f"{path}: field 'data.class_path' is missing; expected e.g. "
                "sebra.datasets.urbancars.UrbanCarsDataModule"
            )
        block = {
            "class_path": cfg["data"]["class_path"],
            "init_args": mapping_at(cfg, "data.init_args", str(path)),
        }
        where = str(path)
    if root is not None:
        block["init_args"]["root"] = str(root)
    try:  # the one schema (sebra.cli.schema), as sebra fit and sebra bench build it
        return build_block(block, "data", "data", where)
    except ConfigError as e:
        raise InspectError(str(e)) from e


def _tail(path: str) -> tuple[str, ...]:
    """A path's file name and folder, which stay the same when a data set is moved to another root."""
    return Path(str(path).replace("\\", "/")).parts[-2:]


def _check_paths(rankings, dataset: ImageDataset, where: str) -> None:
    """Refuse a data set whose images are not the ones the rankings were made on: another data set's config whose
    indices overlap would render its images against these ranks. Compares each shared index's file name and folder
    (the rankings' ``path`` column; the root may differ, the data set may have been moved)."""
    paths = dataset.paths
    if "path" not in rankings.columns or paths is None:
        return
    ours = dict(zip(dataset.indices.tolist(), paths))
    for index, theirs in zip(rankings["index"].tolist(), rankings["path"].tolist()):
        mine = ours.get(int(index))
        if mine is not None and _tail(mine) != _tail(theirs):
            raise InspectError(
                f"{where}: index {index} is the image {mine} but the rankings' path column has {theirs}; "
                "the rankings were made on another data set (or split): pass the config they were fitted with"
            )


def _dataset(args: argparse.Namespace, rankings) -> tuple[ImageDataset | None, dict[int, str] | None]:
    """The split the rankings were made on and its group names, named as the fit's table names them
    (:func:`sebra.cli.results.group_names`: the data set's own, else ``<class>: bg aligned, ...``)."""
    if args.data is not None:
        from sebra.cli.results import group_names

        dm = load_datamodule(args.data, args.root)
        dm.setup()
        splits = getattr(dm, "splits", None) or {}
        if args.split not in splits:
            raise InspectError(
                f"--data {args.data}: the data module has no split {args.split!r} (it has {sorted(splits)})"
            )
        _check_paths(rankings, splits[args.split], f"--data {args.data}")
        return splits[args.split], group_names(dm) or None
    if "path" in rankings.columns:
        from sebra.inspect.grids import paths_dataset

        return paths_dataset(rankings, args.root, name=str(args.rankings)), None
    return None, None


def _run(args: argparse.Namespace) -> Path:
    from sebra.inspect.curves import elimination_table, plot_elimination_curves, save_figure
    from sebra.inspect.grids import missing_images, save_grids
    from sebra.inspect.report import write_report

    rankings = load_rankings(args.rankings)
    quality = None
    if args.quality is not None:
        try:
            quality = json.loads(Path(args.quality).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InspectError(f"--quality {args.quality}: cannot read a JSON object: {e}") from e
        if not isinstance(quality, dict):
            raise InspectError(f"--quality {args.quality}: expected a JSON object of name: number")
    out = args.out if args.out is not None else args.rankings.parent / f"{args.rankings.stem}_inspect"
    if out.exists() and not out.is_dir():
        raise InspectError(
            f"--out {out} is a file; expected a folder for the report (it is created when missing)"
        )
    dataset, group_names = _dataset(args, rankings)
    class_names = dataset.class_names if dataset is not None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # missing images are reported once below, not per grid
        grids = (
            save_grids(
                dataset,
                rankings,
                out / "grids",
                k=args.k,
                per_bucket=args.per_rank,
                max_buckets=args.max_buckets,
                tile=args.tile,
            )
            if dataset is not None
            else []
        )
    for msg in missing_images(grids):
        print(f"sebra inspect: warning: image not readable, placeholder drawn: {msg}", file=sys.stderr)
    fig = plot_elimination_curves(rankings, class_names=class_names, group_names=group_names)
    save_figure(fig, out / "elimination_curves.png")
    tables = [elimination_table(rankings, "label")]
    if "group" in rankings.columns:
        tables.append(elimination_table(rankings, "group"))
    for t in tables:
        by = t.columns[1]
        atomic_write(out / f"elimination_by_{by}.csv", lambda tmp, t=t: t.to_csv(tmp, index=False))
    title = args.title or f"Sebra ranking report: {args.rankings.name}"
    check = None
    side = args.rankings.parent / "ranking_diagnostics.json"  # written beside rankings.csv by Stage 1
    if side.is_file():
        try:
            check = json.loads(side.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise InspectError(f"{side}: cannot read the ranking check (a JSON object): {e}") from e
    return write_report(
        rankings,
        dataset,
        out,
        class_names=class_names,
        quality=quality,
        title=title,
        grids=grids,
        curves=fig,
        group_names=group_names,
        check=check,
    )


def main(argv: list[str] | None = None) -> int:
    """Run ``sebra inspect``; prints the report path.

    Args:
        argv: arguments after ``sebra inspect`` (a leading ``"inspect"`` is skipped); default ``sys.argv[1:]``.

    Returns:
        0 on success, 1 when an input cannot be used (the message names it), 2 on bad usage.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["inspect"]:
        argv = argv[1:]
    args = build_parser().parse_args(argv)  # exits with 2 on bad usage
    for name in ("k", "per_rank", "max_buckets", "tile"):
        if getattr(args, name) < 1:
            print(error_line("inspect", f"--{name.replace('_', '-')} must be at least 1"), file=sys.stderr)
            return EXIT_USAGE
    try:
        report = _run(args)
    except (
        InspectError,
        DatasetError,
        OSError,
        ValueError,
        ImportError,
    ) as e:  # OSError: e.g. --out not writable
        print(error_line("inspect", e), file=sys.stderr)
        return EXIT_INPUT
    print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
