"""``sebra mitigate``: fit one mitigation on a ranking table a user already has, with ``sebra fit``'s config and
results table.

    sebra mitigate --rankings runs/rank/rankings.csv --method rank_upsampled --config configs/urbancars.yaml
    sebra mitigate --rankings rankings.csv --method ranked_head --model.checkpoint erm/checkpoints/last.ckpt --config ...

The table may come from any ranker (``sebra rank``, a ``sebra fit`` of Sebra, :mod:`sebra.scoring`): the mitigation
reads only the table and the data module. The config is a ``sebra fit`` config; its ``model`` block's class is
replaced by the method's (the settings the new class also has, such as the backbone, the optimizer and ``epochs``, are
kept), and ``--model.<name> VALUE`` after it sets the method's own settings. No group labels are read in training.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sebra.cli.errors import EXIT_USAGE, error_line

__all__ = ["MITIGATION_CLASSES", "main", "mitigation_argv"]

#: ``--method`` names and the classes they fit.
MITIGATION_CLASSES = {
    "stage2": "sebra.methods.sebra.SebraModule",
    "ranked_head": "sebra.methods.ranked_head.RankedHeadModule",
    "rank_upsampled": "sebra.methods.rank_upsampled.RankUpsampledModule",
    "rank_dro": "sebra.methods.rank_group_dro.RankGroupDROModule",
}

HELP = f"""usage: sebra mitigate --rankings RANKINGS.csv --method {{{",".join(MITIGATION_CLASSES)}}} --config FIT.yaml
                      [--model.<name> VALUE ...] [any other `sebra fit` option]

Fit one mitigation on a ranking table: Stage 2 (stage2), rank-balanced last-layer retraining of a trained ERM network
(ranked_head: give --model.checkpoint), rank-upsampled ERM (rank_upsampled) or GroupDRO on (class, rank bin)
pseudo-groups (rank_dro). Ends with the same results table as `sebra fit` (results.json / results.csv)."""


class MitigateUsageError(ValueError):
    """The command line lacks ``--rankings`` / ``--method`` or names a method or file that does not exist."""


def _take(argv: list[str], flag: str) -> tuple[str | None, list[str]]:
    """The value of ``flag VALUE`` or ``flag=VALUE`` and ``argv`` without it."""
    rest, value, i = [], None, 0
    while i < len(argv):
        arg = argv[i]
        if arg == flag:
            if i + 1 >= len(argv):
                raise MitigateUsageError(f"{flag} needs a value")
            value, i = argv[i + 1], i + 2
            continue
        if arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
        i += 1
    return value, rest


def mitigation_argv(argv: list[str]) -> list[str]:
    """``sebra fit``'s arguments for a ``sebra mitigate`` command line: the method's class and the table inserted
    after the last ``--config`` (so they override the config's model block and the user's ``--model.*`` after
    them still apply).

    Raises:
        MitigateUsageError: ``--rankings`` or ``--method`` missing, the method unknown, or the table not a file.
    """
    rankings, argv = _take(argv, "--rankings")
    method, argv = _take(argv, "--method")
    if rankings is None or method is None:
        raise MitigateUsageError("--rankings RANKINGS.csv and --method NAME are both needed")
    if method not in MITIGATION_CLASSES:
        raise MitigateUsageError(f"--method {method!r} is not one of {sorted(MITIGATION_CLASSES)}")
    if not Path(rankings).is_file():
        raise MitigateUsageError(f"--rankings {rankings}: no such file (expected a rankings.csv)")
    at = 0
    for i, arg in enumerate(argv):
        if arg == "--config":
            at = i + 2
        elif arg.startswith("--config="):
            at = i + 1
    return [*argv[:at], "--model", MITIGATION_CLASSES[method], "--model.rankings", rankings, *argv[at:]]


def main(argv: list[str]) -> int:
    """``sebra mitigate ...``; returns the exit status (2 for a usage error, as ``sebra fit``)."""
    if not argv or argv[0] in ("-h", "--help"):
        print(HELP)
        return 0
    try:
        fit_args = mitigation_argv(argv)
    except MitigateUsageError as e:
        print(f"{error_line('mitigate', e)}\n\n{HELP}", file=sys.stderr)
        return EXIT_USAGE
    from sebra.cli.fit import main as fit_main

    return fit_main(fit_args)
