"""The one YAML reader of the argparse commands (``sebra bench``, ``sebra inspect``, ...): files and dotted overrides.

Configs reuse LightningCLI's blocks (``data:``/``model:`` with ``class_path`` + ``init_args``, ``trainer:``), and an
override names a value the way ``sebra fit`` does: ``model.init_args.lr=0.01`` here is ``--model.init_args.lr 0.01``
there. Values are read as YAML (``0.01``, ``true``, ``null``, ``[val_acc]``, ``full``); ``1e-3`` is a number too.
Every error names the file (or the override) and the key.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "add_set_option",
    "apply_overrides",
    "import_class",
    "mapping_at",
    "parse_overrides",
    "read_yaml",
]

_EXPONENT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


class ConfigError(ValueError):
    """A config file or an override is not as expected (the message names the file or override, and the key)."""


def read_yaml(path: str | Path, what: str = "config") -> dict[str, Any]:
    """The mapping a YAML file holds.

    Raises:
        FileNotFoundError: no such file (named, with ``what`` it should be).
        ConfigError: not valid YAML, or not a mapping at the top.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping of 'key: value' lines, got {type(cfg).__name__}")
    return cfg


def mapping_at(cfg: Mapping[str, Any], key: str, where: str, required: bool = False) -> dict[str, Any]:
    """The mapping at dotted ``key`` of ``cfg`` (``{}`` when absent or empty, unless ``required``).

    Raises:
        ConfigError: ``<where>: <key> must be a mapping ...`` when the value is something else (or absent and
            ``required``).
    """
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    if value is None and not required:
        return {}
    if not isinstance(value, Mapping) or (required and not value):
        raise ConfigError(
            f"{where}: {key} must be a {'non-empty ' if required else ''}mapping (one 'name: value' line per "
            f"entry, indented below it), got {value!r}"
        )
    return dict(value)


def import_class(class_path: Any, where: str) -> type:
    """The class a ``class_path`` names (``sebra.methods.erm.ERMModule``).

    Raises:
        ConfigError: not a dotted path, or the module or class cannot be imported (``where`` names the key).
    """
    module, _, name = str(class_path).rpartition(".") if isinstance(class_path, str) else ("", "", "")
    if not module or not name:
        raise ConfigError(
            f"{where}: class_path {class_path!r} is not a dotted path like 'sebra.methods.erm.ERMModule'"
        )
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(
            f"{where}: cannot import module {module!r} of class_path {class_path!r}: {e}"
        ) from e
    cls = getattr(mod, name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"{where}: module {module!r} has no class {name!r} (class_path {class_path!r})")
    return cls


def _value(text: str) -> Any:
    value = yaml.safe_load(text) if text.strip() else ""
    if isinstance(value, str) and _EXPONENT.fullmatch(value.strip()):
        return float(value)  # YAML 1.1 reads 1e-3 as text; a command line means the number
    return value


def add_set_option(parser: argparse.ArgumentParser, help: str) -> None:
    """The commands' ``--set KEY=VALUE ...`` option (repeatable; read with :func:`parse_overrides`)."""
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help=help)


def parse_overrides(pairs: Iterable[str], short: str | None = None, source: str = "--set") -> dict[str, Any]:
    """``["model.init_args.lr=0.01", ...]`` -> ``{"model.init_args.lr": 0.01, ...}`` (values read as YAML).

    Args:
        pairs: ``key=value`` texts, keys dotted as in LightningCLI.
        short: a prefix for keys without a dot (``"model.init_args"`` makes ``lr=0.01`` mean
            ``model.init_args.lr``); ``None`` keeps them as they are.
        source: the option's name, for messages.
    """
    out: dict[str, Any] = {}
    for kv in pairs:
        key, sep, text = str(kv).partition("=")
        key = key.strip()
        if not sep or not key or any(not p for p in key.split(".")):
            raise ConfigError(f"{source}: expected key=value (e.g. model.init_args.lr=0.01), got {kv!r}")
        try:
            value = _value(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{source} {kv}: the value is not valid YAML: {e}") from e
        out[f"{short}.{key}" if short and "." not in key else key] = value
    return out


def apply_overrides(
    cfg: Mapping[str, Any], overrides: Mapping[str, Any] | Iterable[str], source: str = "--set"
) -> dict[str, Any]:
    """A copy of ``cfg`` with dotted overrides applied (``cfg`` itself is left alone).

    A key must exist in ``cfg``, except the last part of an ``init_args`` key or of a ``trainer`` key: whether the
    class (or ``lightning.Trainer``) takes that argument, and of what type, is the schema's to say, once, when the
    config is checked (:mod:`sebra.cli.schema`, jsonargparse, as ``sebra fit`` does).

    Raises:
        ConfigError: an unknown key (with the keys that exist there) or a key through a non-mapping.
    """
    if not isinstance(overrides, Mapping):
        overrides = parse_overrides(overrides, source=source)
    out = _plain(cfg)
    for key, value in overrides.items():
        parts = key.split(".")
        node: Any = out
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if not isinstance(node, dict):
                raise ConfigError(f"{source} {key}: {'.'.join(parts[:i])} is {node!r}, not a mapping of keys")
            internal = i == 0 and part.startswith(
                "_"
            )  # _path: where the checked config came from, not a setting
            if part not in node or internal or (not last and node[part] is None):
                parent = parts[i - 1] if i else ""
                if not last and (part == "trainer" or (part == "init_args" and "class_path" in node)):
                    node[part] = {}  # an empty section may be left out of a file
                elif not last or not (
                    (parent == "init_args" and "class_path" in _block(out, parts[: i - 1]))
                    or parent == "trainer"
                ):
                    have = ", ".join(str(k) for k in node if not str(k).startswith("_")) or "nothing"
                    raise ConfigError(
                        f"{source} {key}: unknown key {'.'.join(parts[: i + 1])!r} (there: {have})"
                    )
            if last:
                node[part] = value
            else:
                node = node[part]
    return out


def _plain(value: Any) -> Any:
    """A deep copy in which no two keys share one object (YAML aliases do): an override changes one place."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    return copy.copy(value)


def _block(cfg: dict[str, Any], parts: list[str]) -> Mapping[str, Any]:
    """The ``class_path`` block that holds an ``init_args`` (an empty mapping when there is none)."""
    node: Any = cfg
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, Mapping) and "class_path" in node else {}
