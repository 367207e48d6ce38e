"""The command-line wing: the ``sebra`` command and the parts only commands use.

``dispatch`` routes ``sebra <command>`` to its front end (``fit``: Lightning's CLI; ``demo`` and ``rank``;
``mitigate``; ``verify``: ``sebra data verify``; ``sebra inspect`` and ``sebra bench`` live in their own wings and
import from here). The shared parts: ``errors`` (one error line and one exit status per kind), ``config`` (the YAML
configs with dotted overrides), ``fitting`` (one fit with checkpoint selection and test), ``results`` (the results
table), ``console`` (the progress lines). The core (``sebra.ranking``, ``sebra.contrastive``, ``sebra.methods``,
``sebra.datasets``, ...) never imports from here.
"""

from sebra.cli.dispatch import main

__all__ = ["main"]
