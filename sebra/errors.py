"""What the commands share about failing: whether the user asked for tracebacks.

Kept apart from :mod:`sebra.cli` (which dispatches to the commands) so that a command module can ask without
importing its dispatcher: no import cycle between ``sebra.cli`` and ``sebra.fit_cli``.
"""

from __future__ import annotations

import os

__all__ = ["debug_requested"]


def debug_requested(argv: list[str]) -> tuple[bool, list[str]]:
    """Whether ``--debug`` (or ``SEBRA_DEBUG=1``) asks for tracebacks; ``argv`` without ``--debug``."""
    env = os.environ.get("SEBRA_DEBUG", "").strip().lower() not in ("", "0", "false", "no")
    return env or "--debug" in argv, [a for a in argv if a != "--debug"]
