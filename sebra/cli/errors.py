"""What the commands share about failing: one message form, the exit statuses, whether tracebacks were asked for.

Kept apart from :mod:`sebra.cli.dispatch` (which dispatches to the commands) so that a command module can ask
without importing its dispatcher: no import cycle between the dispatcher and ``sebra.cli.fit``.
"""

from __future__ import annotations

import os

__all__ = ["EXIT_INPUT", "EXIT_INTERRUPTED", "EXIT_USAGE", "debug_requested", "error_line", "exit_status"]


def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether ``--debug`` (or ``SEBRA_DEBUG=1``) asks for tracebacks; ``argv`` without ``--debug``."""
    env = os.environ.get("SEBRA_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    return env or "--debug" in argv, [a for a in argv if a != "--debug"]


#: Exit statuses of the ``sebra`` commands.
EXIT_INPUT = 1  # an input could not be used (a data set's layout, a file), or benchmark runs failed
EXIT_USAGE = 2  # bad arguments, config or setting
EXIT_INTERRUPTED = 130


def error_line(command: str, message: object, *, traceback_hint: bool = False) -> str:
    """The one form every command reports a failure in: ``sebra <command>: error: <message>``, with the hint
    that ``--debug`` shows the traceback where the command can show one."""
    hint = " (run with --debug, or SEBRA_DEBUG=1, for the traceback)" if traceback_hint else ""
    return f"sebra {command}: error: {message}{hint}"


def exit_status(error: BaseException) -> int:
    """The exit status of a failure, by its kind (its type, never its message): an input that could not be used
    (:class:`~sebra.datasets.base.DatasetError`, :class:`~sebra.datasets.base.DatasetNotFoundError`,
    :class:`~sebra.methods.checkpoints.CheckpointError`) is :data:`EXIT_INPUT`, an interrupt
    :data:`EXIT_INTERRUPTED`, anything else a command refuses (a setting, an argument, a config) :data:`EXIT_USAGE`."""
    from sebra.datasets.base import DatasetError, DatasetNotFoundError
    from sebra.methods.checkpoints import CheckpointError

    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(error, (DatasetError, DatasetNotFoundError, CheckpointError)):
        return EXIT_INPUT
    return EXIT_USAGE
