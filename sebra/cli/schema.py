"""The one schema of every command's modules: jsonargparse reads the typed constructors, as LightningCLI does.

``sebra fit`` builds its modules with LightningCLI; ``sebra bench``, ``demo``, ``rank`` and ``inspect`` build theirs
here, through the same parser kind (:class:`jsonargparse.ArgumentParser` with ``add_subclass_arguments``) on the same
bases (:class:`~sebra.methods.base.BaseMethod`, :class:`~sebra.datasets.datamodule.SebraDataModule`). So an
argument's name, type and default are stated once, in the class's signature (a ``Literal`` for a choice, the
``**kwargs`` a class passes on followed up its parents), and checked once, by jsonargparse; what a constructor checks
beyond its types (a range, a combination) it checks itself. This module only turns jsonargparse's nested messages
into one line that names the file, the key, the class and the problem.
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Mapping
from typing import Any, Literal

from sebra.cli.config import ConfigError, import_class

__all__ = ["build_block", "check_block", "check_trainer", "class_defaults", "innermost", "short_parse_error"]

#: The two kinds of block a config holds, and the base class jsonargparse checks a block's class against.
Kind = Literal["model", "data"]


def _base(kind: Kind) -> type:
    if kind == "model":
        from sebra.methods.base import BaseMethod

        return BaseMethod
    from sebra.datasets.datamodule import SebraDataModule

    return SebraDataModule


@functools.cache
def _block_parser(kind: Kind) -> Any:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_subclass_arguments(_base(kind), "block", required=True)
    return parser


@functools.cache
def _class_parser(cls: type) -> Any:
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(cls, "args")
    return parser


def class_defaults(cls: type | str) -> dict[str, Any]:
    """Every argument a class takes, with its default, as jsonargparse reads the signature (the arguments a class
    passes on in ``**kwargs`` included, the nearest declaration's default winning): the one list of a module's
    arguments (``"seed" in class_defaults(ERMModule)``)."""
    if isinstance(cls, str):
        cls = import_class(cls, "class_path")
    defaults = _class_parser(cls).get_defaults()
    return dict(vars(defaults["args"])) if "args" in defaults else {}


def innermost(e: BaseException) -> BaseException:
    """The exception at the bottom of a ``raise ... from`` chain (a constructor's own message under jsonargparse's
    "Does not validate against any of the Union subtypes")."""
    seen = set()
    while e.__cause__ is not None and id(e) not in seen:
        seen.add(id(e))
        e = e.__cause__
    return e


_NOT_ACCEPTED = re.compile(r"(?:Option|does not accept option) '([^']+)'")
_KEY_PROBLEM = re.compile(
    r"Problem with given class_path '([^']+)':\s*Parser key \"([^\"]+)\":\s*(.+?)(?:\n\s*- |\n\s*Given value|\Z)",
    re.DOTALL,
)
_OUTER = re.compile(r'Parser key "(\w+)":')


def short_parse_error(message: str, prefix: str | None = None) -> str:
    """jsonargparse's nested "Parser key ... Union subtypes" text as one line: the key, the class, the problem.

    Args:
        message: the text of jsonargparse's ``ArgumentError``.
        prefix: the dotted key of the block (``methods.sebra.model``); ``None`` reads it from the message
            (``--model`` for ``sebra fit``).
    """
    m = _KEY_PROBLEM.search(message)
    outer = _OUTER.search(message)
    head = prefix if prefix is not None else f"--{outer[1]}" if outer else ""
    if m:
        cls = m[1].rpartition(".")[2]
        return f"{head}.init_args.{m[2]} ({cls}): {_plain_types(m[3])}"
    lines = [ln for ln in message.splitlines() if not ln.strip().startswith(("Given value", "Subtypes:"))]
    return _plain_types(" ".join(lines))


def _plain_types(text: str) -> str:
    """One line, with ``<class 'float'>`` written ``float``."""
    text = re.sub(r"<class '([\w.]+)'>", r"\1", text).replace("Expected a int", "Expected an int")
    return " ".join(text.split())


def _unknown_argument(message: str, cls: type | str) -> str | None:
    """``'name' (did you mean 'nearest'?)`` when jsonargparse's ``message`` refuses an argument ``cls`` does not
    take (the nearest by spelling among the ones it does take), else ``None``."""
    m = _NOT_ACCEPTED.search(message)
    if not m:
        return None
    name = m[1].rpartition(".")[2]
    try:
        accepted = list(class_defaults(cls))
    except ConfigError:
        accepted = []
    near = difflib.get_close_matches(name, accepted, n=1)
    return f"{name!r}" + (f" (did you mean {near[0]!r}?)" if near else "")


def _refusal(block: Mapping[str, Any], key: str, where: str, message: str) -> ConfigError:
    """A config error for jsonargparse's ``message`` on ``block`` at ``key`` of ``where``."""
    cls_path = str(block.get("class_path", ""))
    unknown = _unknown_argument(message, cls_path)
    if unknown:
        cls = cls_path.rpartition(".")[2]
        return ConfigError(f"{where}: {key}.init_args: {cls} got an unexpected argument {unknown}")
    return ConfigError(f"{where}: {short_parse_error(message, key)}")


def check_block(block: Mapping[str, Any], kind: Kind, key: str, where: str) -> Any:
    """A ``{class_path, init_args}`` block parsed against its class's signature (names and types), not built.

    Args:
        block: the block, as a config holds it.
        kind: ``"model"`` (a method) or ``"data"`` (a data module).
        key: its dotted key in the config (``methods.sebra.model``), for messages.
        where: the file (or command) the config came from, for messages.

    Returns:
        jsonargparse's namespace of the block (every argument, with the defaults filled in).

    Raises:
        ConfigError: the class cannot be imported, is not of the kind, takes no such argument (with the nearest
            one it takes) or refuses a value's type.
    """
    from jsonargparse import ArgumentError

    cls = import_class(
        block.get("class_path"), f"{where}: {key}.class_path"
    )  # its own, clearer message first
    base = _base(kind)
    if not issubclass(cls, base):
        what = "method" if kind == "model" else "data module"
        raise ConfigError(
            f"{where}: {key}.class_path {block['class_path']} is not a {what} (a subclass of {base.__name__})"
        )
    try:
        return _block_parser(kind).parse_object({"block": {"init_args": {}, **dict(block)}})
    except ArgumentError as e:
        raise _refusal(block, key, where, str(e)) from e


def build_block(block: Mapping[str, Any], kind: Kind, key: str, where: str) -> Any:
    """The module a block describes, checked (:func:`check_block`) and built by jsonargparse.

    Raises:
        ConfigError: as :func:`check_block`, or the constructor refused a value (its own message, after the key).
    """
    parser = _block_parser(kind)
    cfg = check_block(block, kind, key, where)
    build = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    try:
        return build(cfg)["block"]
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {key}.init_args: {innermost(e)}") from e


def check_trainer(trainer: Mapping[str, Any], key: str, where: str) -> None:
    """A ``trainer:`` mapping parsed against :class:`lightning.Trainer`'s signature (names and types).

    Raises:
        ConfigError: an argument the Trainer does not take (with the nearest one), or a value of the wrong type.
    """
    import lightning as L
    from jsonargparse import ArgumentError

    try:
        _class_parser(L.Trainer).parse_object({"args": dict(trainer)})
    except ArgumentError as e:
        message = str(e)
        unknown = _unknown_argument(message, L.Trainer)
        if unknown:
            raise ConfigError(f"{where}: {key}: lightning.Trainer takes no argument {unknown}") from e
        lines = [
            ln for ln in message.splitlines() if not ln.strip().startswith(("Given value type", "Subtypes:"))
        ]
        text = _plain_types(" ".join(lines)).replace('Parser key "', f"{key}.", 1).replace('":', ":", 1)
        text = text.replace(f"{key}.args.", f"{key}.")
        raise ConfigError(f"{where}: {text} (lightning.Trainer's argument)") from e
