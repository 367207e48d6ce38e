"""The ``sebra`` command: ``demo``, ``rank``, ``fit``, ``data verify``, ``inspect``, ``bench``.

``sebra fit`` is Lightning's own CLI (``LightningCLI``: YAML configs with ``model``/``data``/``trainer`` sections whose
schema is the typed ``__init__`` arguments); the other sub-commands are small argparse front ends.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["main"]

USAGE = """usage: sebra <command> [options]

commands:
  demo          Sebra and ERM on the built-in benchmark: one table (worst-group, I.D. accuracy, gaps, ranking tau)
  rank          Stage 1 only: write rankings.csv and a summary
  fit           the full pipeline from a config: sebra fit --config configs/urbancars.yaml
                (resume: add --ckpt_path <log_dir>/checkpoints/last.ckpt; --debug shows tracebacks)
  data verify   check a data set on disk: sebra data verify <urbancars|bar|celeba|folder|csv> <root>
  inspect       grids, elimination curves and report.html from a rankings.csv
  bench         benchmark methods x seeds and write the results table

Run `sebra <command> --help` for the options of each."""


FIT_HELP = """sebra fit: the full pipeline from a LightningCLI config.

  sebra fit --config configs/urbancars.yaml [--data.init_args.root <path>] [--model.init_args.<arg> <value> ...]
  sebra fit --config <same config> --ckpt_path <log_dir>/checkpoints/last.ckpt    # resume a killed fit
  sebra fit --config <same config> --ckpt_path last                               # the newest last.ckpt

A resumed fit continues in the checkpoint's log folder (version_N); the earlier metrics.csv is kept as
metrics.<k>.csv. Bad values end with the message alone (exit 2); --debug (or SEBRA_DEBUG=1) shows the traceback.
"""


def _debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    env = os.environ.get("SEBRA_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    return env or "--debug" in argv, [a for a in argv if a != "--debug"]


def _innermost(e: BaseException) -> BaseException:
    """The exception at the bottom of a ``raise ... from`` chain (the constructor's own message under jsonargparse's
    "Does not validate against any of the Union subtypes")."""
    seen = set()
    while e.__cause__ is not None and id(e) not in seen:
        seen.add(id(e))
        e = e.__cause__
    return e


def _short_parse_error(message: str) -> str:
    """jsonargparse's nested "Parser key ... Union subtypes" text as one line: the option, the class, the problem."""
    m = re.search(
        r'Parser key "(\w+)":.*?Problem with given class_path \'([^\']+)\':\s*Parser key "([^"]+)":\s*'
        r"(.+?)(?:\n\s*- |\n\s*Given value|\Z)",
        message,
        re.DOTALL,
    )
    if m:
        return f"--{m[1]}.init_args.{m[3]} ({m[2]}): {' '.join(m[4].split())}"
    lines = [ln for ln in message.splitlines() if not ln.strip().startswith(("Given value", "Subtypes:"))]
    return " ".join(" ".join(lines).split())


def _newest_last_ckpt(root: Path) -> Path | None:
    found = []
    for p in root.glob("version_*/checkpoints/last.ckpt"):
        m = re.fullmatch(r"version_(\d+)", p.parent.parent.name)
        if m:
            found.append((int(m[1]), p))
    return max(found)[1] if found else None


def _resume_in_place(trainer: Any, ckpt: Path) -> Path | None:
    """Point the logger at the checkpoint's own ``version_N`` folder, so a resumed fit continues there (Lightning
    would start a new ``version_N+1``); the folder's earlier ``metrics.csv``, which Lightning's CSV logger would
    delete, is kept as ``metrics.<k>.csv``. Returns the folder, or ``None`` when the checkpoint is elsewhere or the
    logger's version was set by the user."""
    logger = trainer.logger
    folder = ckpt.resolve().parent.parent
    m = re.fullmatch(r"version_(\d+)", folder.name)
    if (
        logger is None
        or ckpt.resolve().parent.name != "checkpoints"
        or m is None
        or getattr(logger, "_version", "unset") is not None
        or not hasattr(logger, "root_dir")
        or Path(logger.root_dir).resolve() != folder.parent
    ):
        return None
    logger._version = int(m[1])
    metrics = folder / "metrics.csv"
    if metrics.exists():
        k = 1
        while (folder / f"metrics.{k}.csv").exists():
            k += 1
        metrics.rename(folder / f"metrics.{k}.csv")
    return folder


def _fit(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(FIT_HELP)
    debug, argv = _debug_requested(argv)
    warnings.filterwarnings(
        "ignore", message=r".*LightningCLI's args parameter is intended to run from within Python.*"
    )
    from lightning.pytorch.cli import LightningCLI

    from sebra.datasets.base import DatasetError, DatasetNotFoundError
    from sebra.datasets.datamodule import SebraDataModule
    from sebra.methods.base import BaseMethod
    from sebra.methods.sebra import SebraModule

    class SebraCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            parser.add_argument(
                "--ckpt_path",
                type=str | None,
                default=None,
                help="resume from this checkpoint (<log_dir>/checkpoints/last.ckpt), or 'last': the "
                "newest version_*/checkpoints/last.ckpt of the logger's folder",
            )

    def fail(message: str, status: int, traceback: bool = True) -> int:
        hint = "" if debug or not traceback else " (run with --debug, or SEBRA_DEBUG=1, for the traceback)"
        print(f"sebra fit: error: {message}{hint}", file=sys.stderr)
        return status

    try:
        cli = SebraCLI(
            BaseMethod,
            SebraDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            args=argv,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False},
        )
    except argparse.ArgumentError as e:
        if debug:
            raise
        return fail(f"{_short_parse_error(str(e))}; `sebra fit --help` lists the options", 2)
    except Exception as e:  # a constructor refused a value: its own message, not jsonargparse's wrapping
        if debug:
            raise
        return fail(str(_innermost(e)), 2)
    model, trainer = cli.model, cli.trainer
    if isinstance(model, SebraModule) and model.hparams.get("rank_only"):
        return fail(
            "--model.init_args.rank_only trains Stage 1 only and leaves nothing to test; for Stage 1 only "
            "run `sebra rank` (built-in benchmark) or SebraModule(rank_only=True) from Python",
            2,
            traceback=False,
        )
    ckpt_path = cli.config.get("ckpt_path")
    if ckpt_path == "last":
        root = getattr(trainer.logger, "root_dir", None)
        found = _newest_last_ckpt(Path(root)) if root else None
        if found is None:
            return fail(
                f"--ckpt_path last: no version_*/checkpoints/last.ckpt under {root or 'the logger folder'}; "
                "pass the checkpoint file",
                2,
                traceback=False,
            )
        ckpt_path = str(found)
    if ckpt_path is not None:
        if not Path(ckpt_path).is_file():
            return fail(
                f"--ckpt_path {ckpt_path} does not exist; expected a checkpoint such as "
                "<log_dir>/checkpoints/last.ckpt",
                2,
                traceback=False,
            )
        folder = _resume_in_place(trainer, Path(ckpt_path))
        if folder is not None:
            warnings.filterwarnings(
                "ignore", message=r".*Experiment logs directory .* exists and is not empty.*"
            )
            warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")
            print(f"resuming from {ckpt_path} in {folder}", file=sys.stderr)
    try:
        trainer.fit(model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        trainer.test(
            model, datamodule=cli.datamodule, ckpt_path="best" if model.selection != "last" else None
        )
    except RuntimeError as e:
        if debug or ckpt_path is None or "Error(s) in loading state_dict" not in str(e):
            raise
        missing, unexpected = (
            len(re.findall(r'"[^"]+"', part))
            for part in (
                str(e).partition("Missing key(s)")[2].partition("Unexpected key(s)")[0],
                str(e).partition("Unexpected key(s)")[2],
            )
        )
        return fail(
            f"--ckpt_path {ckpt_path} holds the weights of another model ({missing} of this model's "
            f"parameters missing, {unexpected} unexpected); resume with the config that wrote it (same "
            f"model class_path and backbone)",
            2,
        )
    except (DatasetError, DatasetNotFoundError, ValueError, FileNotFoundError, KeyError) as e:
        if debug:
            raise
        last = Path(trainer.log_dir or ".") / "checkpoints" / "last.ckpt"
        resume = f"; resume with --ckpt_path {last}" if last.is_file() else ""
        return fail(f"{e}{resume}", 1)
    rankings = getattr(model, "rankings", None)
    if rankings is not None and trainer.log_dir:
        print(f"rankings: {Path(trainer.log_dir) / 'rankings.csv'}")
    return 0


def _guarded(name: str, run: Any, argv: list[str]) -> int:
    """Run a sub-command; a refused setting or input (``ValueError``, a missing data set, an unknown setting name)
    ends with its message alone, exit 2, unless ``--debug`` or ``SEBRA_DEBUG=1`` asks for the traceback."""
    debug, argv = _debug_requested(argv)
    from sebra.datasets.base import DatasetNotFoundError

    try:
        return run(argv)
    except (ValueError, DatasetNotFoundError, TypeError) as e:
        if debug or (isinstance(e, TypeError) and "unexpected keyword argument" not in str(e)):
            raise  # a TypeError is a bug unless it is a setting the class does not have (sebra rank --set)
        saved = "; finished runs are saved, the same command resumes" if name == "bench" else ""
        print(
            f"sebra {name}: error: {e}{saved} (run with --debug, or SEBRA_DEBUG=1, for the traceback)",
            file=sys.stderr,
        )
        return 2


def main(argv: list[str] | None = None) -> int:
    """Run one ``sebra`` sub-command; returns the exit status."""
    # Lightning 2.x calls a pytree API that torch 2.14 deprecates, once per loader: noise, not a user problem.
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    cmd, rest = argv[0], argv[1:]
    if cmd == "demo":
        from sebra.demo import main as demo_main

        return _guarded("demo", demo_main, rest)
    if cmd == "rank":
        from sebra.demo import rank_main

        return _guarded("rank", rank_main, rest)
    if cmd == "fit":
        return _fit(rest)
    if cmd == "data":
        if not rest or rest[0] != "verify":
            print("usage: sebra data verify <dataset> <root> [options]", file=sys.stderr)
            return 2
        from sebra.datasets.verify import main as verify_main

        return verify_main(rest[1:])
    if cmd == "inspect":
        from sebra.inspect.cli import main as inspect_main

        return inspect_main(rest)
    if cmd == "bench":
        from sebra.bench.cli import main as bench_main

        return _guarded("bench", bench_main, rest)
    print(f"sebra: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
