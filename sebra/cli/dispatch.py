"""The ``sebra`` command: ``demo``, ``rank``, ``fit``, ``mitigate``, ``data verify``, ``inspect``, ``bench``.

This module only dispatches: ``sebra fit`` is Lightning's own CLI (:mod:`sebra.cli.fit`), the others are small argparse
front ends in their packages. ``demo``, ``rank`` and ``fit`` mute Lightning's own messages unless ``--verbose``.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from sebra.cli.errors import debug_requested, error_line, exit_status

__all__ = ["debug_requested", "main"]

USAGE = """usage: sebra <command> [options]

commands:
  demo          Sebra and ERM on the built-in benchmark: one table (worst-group, I.D. accuracy, gaps, ranking tau)
  rank          Stage 1 only: write rankings.csv and a summary
  fit           the full pipeline from a config: sebra fit --config configs/urbancars.yaml; ends with the
                results table, also in <log_dir>/results.json and results.csv
                (resume: add --ckpt_path <log_dir>/checkpoints/last.ckpt; --debug shows tracebacks)
  mitigate      one mitigation on a rankings.csv you have: sebra mitigate --rankings rankings.csv
                --method <stage2|ranked_head|rank_upsampled|rank_dro> --config <fit config>; the fit's results table
  data verify   check a data set on disk: sebra data verify <urbancars|bar|celeba|folder|csv> <root>
  inspect       grids, elimination curves and report.html from a rankings.csv
  bench         benchmark methods x seeds and write the results table

Run `sebra <command> --help` for the options of each. demo, rank and fit show one progress line per training
phase and mute Lightning's own messages (device banner, tips, notices); --verbose shows them."""


def _guarded(name: str, run: Any, argv: list[str]) -> int:
    """Run a sub-command; a refused setting or input (``ValueError``, a missing data set, an unknown setting name)
    ends with its message alone and the status of its kind (:func:`~sebra.cli.errors.exit_status`: 1 for an input,
    2 for a setting), unless ``--debug`` or ``SEBRA_DEBUG=1`` asks for the traceback."""
    debug, argv = debug_requested(argv)
    from sebra.datasets.base import DatasetNotFoundError

    try:
        return run(argv)
    except (ValueError, DatasetNotFoundError, TypeError) as e:
        if debug or (isinstance(e, TypeError) and "unexpected keyword argument" not in str(e)):
            raise  # a TypeError is a bug unless it is a setting the class does not have (sebra rank --set)
        saved = "; finished runs are saved, the same command resumes" if name == "bench" else ""
        print(error_line(name, f"{e}{saved}", traceback_hint=True), file=sys.stderr)
        return exit_status(e)


def _one_line_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    """A warning on the command line: ``warning: <message>``, without the source line that raised it."""
    return f"warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    """Run one ``sebra`` sub-command; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    previous = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    try:
        return _dispatch(argv[0], argv[1:])
    finally:
        warnings.formatwarning = previous


def _dispatch(cmd: str, rest: list[str]) -> int:
    if cmd == "demo":
        from sebra.cli.demo import main as demo_main

        return _guarded("demo", demo_main, rest)
    if cmd == "rank":
        from sebra.cli.demo import rank_main

        return _guarded("rank", rank_main, rest)
    if cmd == "fit":
        from sebra.cli.fit import main as fit_main

        return fit_main(rest)
    if cmd == "mitigate":
        from sebra.cli.mitigate import main as mitigate_main

        return mitigate_main(rest)
    if cmd == "data":
        if not rest or rest[0] != "verify":
            print("usage: sebra data verify <dataset> <root> [options]", file=sys.stderr)
            return 2
        from sebra.cli.verify import main as verify_main

        return verify_main(rest[1:])
    if cmd == "inspect":
        from sebra.cli.inspect import main as inspect_main

        return inspect_main(rest)
    if cmd == "bench":
        from sebra.cli.bench import main as bench_main

        return _guarded("bench", bench_main, rest)
    print(f"sebra: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
