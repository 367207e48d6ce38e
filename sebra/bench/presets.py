"""Settings for the built-in benchmark, read from the packaged ``sebra/configs/builtin.yaml``.

That one file drives both the demo (``make demo``) and the benchmark (``sebra bench --dataset builtin``), so the demo
shows what BENCHMARKS.md measures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from sebra.bench.config import default_config, load_config
from sebra.cli.config import ConfigError, mapping_at

__all__ = [
    "BUILTIN_DATA",
    "BUILTIN_ERM",
    "BUILTIN_SEBRA",
    "SEBRA_SHORT",
    "builtin_config",
    "builtin_settings",
]

#: The data module of the built-in benchmark, the only one ``sebra demo`` and ``sebra rank`` build.
BUILTIN_CLASS_PATH = "sebra.datasets.builtin.BuiltinDataModule"

#: Where a ``--set`` key without a dot points in ``sebra demo`` / ``sebra rank`` (``p_critical=0.8``).
SEBRA_SHORT = "methods.sebra.model.init_args"


def builtin_config(
    path: str | Path | None = None, overrides: Mapping[str, Any] | Iterable[str] = ()
) -> dict[str, Any]:
    """A benchmark configuration in ``builtin.yaml``'s layout (default: the packaged one), read and checked as
    ``sebra bench`` reads it (:func:`sebra.bench.config.load_config`), with dotted overrides
    (``methods.sebra.model.init_args.lr=0.01``) applied.

    Raises:
        ConfigError: as :func:`~sebra.bench.config.load_config`, or the data module is not the built-in benchmark's
            (``sebra demo`` and ``sebra rank`` print its tables: background and symbol, its reference rows).
    """
    cfg = load_config(path or default_config("builtin"), overrides)
    given = cfg["data"]["class_path"]
    if given != BUILTIN_CLASS_PATH:
        raise ConfigError(
            f"{cfg['_path']}: data.class_path must be {BUILTIN_CLASS_PATH} for sebra demo and sebra rank (they "
            f"run the built-in benchmark), got {given!r}; for your own data run sebra fit --config <your config> "
            "(or sebra bench --config)"
        )
    return cfg


def _init_args(cfg: dict[str, Any], method: str) -> dict[str, Any]:
    return dict(mapping_at(cfg, f"methods.{method}.model.init_args", "benchmark config", required=True))


def builtin_settings(cfg: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The keyword arguments of a config's built-in data module (without ``root``, a machine's folder, and
    ``data_seed``, fixed by the benchmark), ``erm``, ``sebra`` and ``oracle``: for scripts that build these modules
    with other settings beside them (``benchmarks/speed.py``); the commands build through the config."""
    data = mapping_at(cfg, "data.init_args", "benchmark config")
    return {
        "data": {k: v for k, v in data.items() if k not in ("root", "data_seed")},
        **{m: _init_args(dict(cfg), m) for m in ("erm", "sebra", "oracle") if m in cfg.get("methods", {})},
    }


_settings = builtin_settings(builtin_config())
BUILTIN_DATA: dict = _settings["data"]
BUILTIN_ERM: dict = _settings["erm"]
BUILTIN_SEBRA: dict = _settings["sebra"]
