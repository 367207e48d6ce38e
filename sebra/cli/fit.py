"""``sebra fit``: the full pipeline from a LightningCLI config, then the results table of the test split.

Lightning's own CLI (``LightningCLI``: YAML configs with ``model``/``data``/``trainer`` sections whose schema is the
typed ``__init__`` arguments), with sebra's rules on top: the run is seeded once (``seed_everything``; the module's
and the data module's ``seed`` follow it), a killed fit resumes in its own folder, the checkpoint the module's
selection rule chose is tested, and the fit ends with the demo's table, also written to ``results.json`` and
``results.csv`` in the run folder. Lightning's banners and progress bar are replaced by one progress line per
phase unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import signal
import sys
import time
import warnings
from pathlib import Path
from typing import Any

__all__ = ["FIT_HELP", "SeedConflict", "follow_seed", "main"]

FIT_HELP = """sebra fit: the full pipeline from a LightningCLI config.

  sebra fit --config configs/urbancars.yaml [--data.init_args.root <path>] [--model.init_args.<arg> <value> ...]
  sebra fit --config <same config> --ckpt_path <log_dir>/checkpoints/last.ckpt    # resume a killed fit
  sebra fit --config <same config> --ckpt_path last                               # the newest last.ckpt

The run is seeded once, by seed_everything: the model's and the data module's `seed` follow it (a different value
given for either is refused). The fit ends with the test split's table (accuracies in %), also written to
results.json and results.csv in the run folder (<log_dir>). A resumed fit continues in the checkpoint's log folder
(version_N); the earlier metrics.csv is kept as metrics.<k>.csv. Bad values end with the message alone (exit 2);
--debug (or SEBRA_DEBUG=1) shows the traceback; --verbose shows Lightning's own messages and progress bar.
"""


class SeedConflict(ValueError):
    """A config sets a module's ``seed`` to something other than ``seed_everything``."""


def follow_seed(config: Any) -> None:
    """Give the model's and the data module's ``seed`` (where their class has one) the value of
    ``seed_everything``, in place, so that one setting seeds the whole run (``seed_everything: false``: left alone).

    Raises:
        SeedConflict: a ``seed`` was given that is neither the class default nor ``seed_everything``.
    """
    from sebra.cli.schema import class_defaults  # sees a seed passed on through **kwargs

    seed = config.get("seed_everything")
    if seed is None or isinstance(seed, bool):
        return
    for part in ("model", "data"):
        init, class_path = config.get(f"{part}.init_args"), config.get(f"{part}.class_path")
        if init is None or class_path is None or "seed" not in init:
            continue
        default = class_defaults(str(class_path)).get("seed")
        if init["seed"] not in (default, seed):
            raise SeedConflict(
                f"{part}.init_args.seed is {init['seed']} but seed_everything is {seed}: sebra fit seeds a run "
                f"once; set seed_everything only (the {part}'s seed follows it)"
            )
        init["seed"] = seed


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


#: What Lightning writes into a new ``version_N`` before the first checkpoint: the config and the hyper-parameters.
_RUN_START_FILES = frozenset({"config.yaml", "hparams.yaml"})


def _remove_unstarted_run(folder: Path | None, existed: bool) -> None:
    """Remove the ``version_N`` a failed fit created when it holds nothing to resume or read (only Lightning's
    config and hyper-parameters, an empty ``checkpoints/``), so failed attempts do not pile up empty versions and
    the next fit is not ``version_N+1`` beside it. A folder that existed before the fit (a resume) is kept."""
    if existed or folder is None or not folder.is_dir():
        return
    for p in folder.iterdir():
        if p.name == "checkpoints" and p.is_dir() and not any(p.iterdir()):
            continue
        if p.name not in _RUN_START_FILES:
            return
    shutil.rmtree(folder, ignore_errors=True)


def _without_ckpt_path(argv: list[str]) -> list[str]:
    """The command's arguments less ``--ckpt_path X`` / ``--ckpt_path=X`` (the resume hint gives its own)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--ckpt_path":
            skip = True
        elif not a.startswith("--ckpt_path="):
            out.append(a)
    return out


def main(argv: list[str]) -> int:
    """``sebra fit [--verbose] [--debug] <LightningCLI arguments>``; returns the exit status."""
    from sebra.cli.console import quiet_lightning
    from sebra.cli.errors import debug_requested

    if any(a in ("-h", "--help") for a in argv):
        print(FIT_HELP)
    debug, argv = debug_requested(argv)
    verbose = "--verbose" in argv
    argv = [a for a in argv if a != "--verbose"]
    warnings.filterwarnings(
        "ignore", message=r".*LightningCLI's args parameter is intended to run from within Python.*"
    )
    with quiet_lightning(verbose):
        return _fit(argv, debug, verbose)


def _fit(argv: list[str], debug: bool, verbose: bool) -> int:
    from lightning.pytorch.cli import LightningCLI

    from sebra.cli.console import PhaseProgress
    from sebra.cli.errors import error_line
    from sebra.cli.fitting import selected_checkpoint
    from sebra.cli.schema import innermost, short_parse_error
    from sebra.datasets.base import DatasetError, DatasetNotFoundError
    from sebra.datasets.datamodule import SebraDataModule
    from sebra.methods.base import BaseMethod
    from sebra.methods.checkpoints import CheckpointError
    from sebra.methods.finite import NonFiniteError
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

        def before_instantiate_classes(self) -> None:
            follow_seed(self.config)

    def fail(message: str, status: int, traceback: bool = True) -> int:
        print(error_line("fit", message, traceback_hint=traceback and not debug), file=sys.stderr)
        return status

    quiet = (
        {}
        if verbose
        else {
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "callbacks": [PhaseProgress()],
        }
    )
    try:
        cli = SebraCLI(
            BaseMethod,
            SebraDataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            run=False,
            auto_configure_optimizers=False,  # the methods build their own (optimizer="sgd"/"adam"): no --optimizer
            args=argv,
            trainer_defaults=quiet,
            save_config_kwargs={"overwrite": True},
            parser_kwargs={"exit_on_error": False},
        )
    except argparse.ArgumentError as e:
        if debug:
            raise
        return fail(f"{short_parse_error(str(e))}; `sebra fit --help` lists the options", 2)
    except Exception as e:  # a constructor refused a value: its own message, not jsonargparse's wrapping
        if debug:
            raise
        return fail(str(innermost(e)), 2)
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
        # Lightning's "directory exists" notices for the folder resumed in: console.NOISE_WARNINGS (not --verbose)
        if folder is not None:
            print(f"resuming from {ckpt_path} in {folder}", file=sys.stderr)
    from sebra.utils.files import check_writable

    log_dir = Path(trainer.log_dir) if trainer.log_dir else None
    existed = log_dir is not None and log_dir.exists()
    if log_dir is not None:
        try:  # before training: a read-only run folder would otherwise fail at the first checkpoint
            check_writable(log_dir, "the run folder (trainer.default_root_dir)")
        except OSError as e:
            return fail(str(e), 2, traceback=False)
    sigint = signal.getsignal(signal.SIGINT)  # Lightning ignores Ctrl-C after the first one, and exits
    t = time.time()
    try:
        trainer.fit(model, datamodule=cli.datamodule, ckpt_path=ckpt_path)
        tested = selected_checkpoint(trainer, model)
        if getattr(cli.datamodule, "has_test_split", True):
            out = trainer.test(model, datamodule=cli.datamodule, ckpt_path=tested, verbose=verbose)
            split = "test"
        else:  # own data split by seed has no test split by default: report the validation split, and say so
            print(
                "no test split: the table is the validation split's, which also selected the checkpoint (add "
                "a test/ folder or test_fraction > 0 for an unbiased estimate)",
                file=sys.stderr,
            )
            val = trainer.validate(model, datamodule=cli.datamodule, ckpt_path=tested, verbose=verbose)
            out = [{f"test_{k.removeprefix('val_')}": v for k, v in (val[0] if val else {}).items()}]
            model.test_results = out[0]
            split = "val"
    except (KeyboardInterrupt, SystemExit) as e:
        if isinstance(e, SystemExit) and not trainer.interrupted:
            raise
        signal.signal(signal.SIGINT, sigint)
        last = Path(trainer.log_dir or ".") / "checkpoints" / "last.ckpt"
        again = shlex.join(["sebra", "fit", *_without_ckpt_path(argv)])
        if last.is_file():
            hint = f"resume with {again} --ckpt_path {last}"
        else:
            _remove_unstarted_run(log_dir, existed)
            hint = f"no checkpoint was saved yet; start again with {again}"
        print(f"sebra fit: interrupted; {hint}", file=sys.stderr)
        return 130
    except RuntimeError as e:
        if debug or ckpt_path is None or "Error(s) in loading state_dict" not in str(e):
            _remove_unstarted_run(log_dir, existed)
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
    except (
        DatasetError,
        DatasetNotFoundError,
        ValueError,
        FileNotFoundError,
        KeyError,
        CheckpointError,
    ) as e:
        _remove_unstarted_run(log_dir, existed)
        if debug:
            raise
        last = Path(trainer.log_dir or ".") / "checkpoints" / "last.ckpt"
        unreadable = isinstance(e, CheckpointError) and "not a readable checkpoint" in str(e)
        resume = (
            f"; resume with --ckpt_path {last}"
            if last.is_file() and not unreadable and not isinstance(e, NonFiniteError)
            else ""
        )
        return fail(f"{e}{resume}", 1)
    test = getattr(model, "test_results", None) or (out[0] if out else {})
    from sebra.cli.results import report_results

    report_results(
        model,
        cli.datamodule,
        test,
        time.time() - t,
        trainer.log_dir,
        model_class=f"{type(model).__module__}.{type(model).__qualname__}",
        data_class=f"{type(cli.datamodule).__module__}.{type(cli.datamodule).__qualname__}",
        seed=cli.config.get("seed_everything"),
        selection=getattr(model, "selection", None),
        checkpoint=tested,
        split=split,
    )
    rankings = getattr(model, "rankings", None)
    if rankings is not None and trainer.log_dir:
        print(f"rankings: {Path(trainer.log_dir) / 'rankings.csv'}")
        check = getattr(model, "ranking_check", None)
        if check is not None:
            from sebra.diagnostics import summary_line

            print(f"ranking check: {summary_line(check)}")
        look = getattr(model, "second_look", None)
        if look is not None:
            from sebra.diagnostics import second_look_line

            print(second_look_line(look))
    return 0
