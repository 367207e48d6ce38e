"""Settings for the built-in benchmark, read from the packaged ``sebra/configs/builtin.yaml``.

That one file drives both the demo (``make demo``) and the benchmark (``sebra bench --dataset builtin``), so the demo
shows what BENCHMARKS.md measures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sebra.config import read_yaml

__all__ = [
    "BUILTIN_CONFIG",
    "BUILTIN_DATA",
    "BUILTIN_ERM",
    "BUILTIN_ORACLE",
    "BUILTIN_SEBRA",
    "builtin_config",
]

BUILTIN_CONFIG = Path(__file__).parent / "configs" / "builtin.yaml"


def builtin_config() -> dict[str, Any]:
    """The built-in benchmark's configuration, as parsed YAML (layout: :mod:`sebra.bench.config`)."""
    return read_yaml(BUILTIN_CONFIG, "benchmark config")


def _init_args(cfg: dict[str, Any], method: str) -> dict[str, Any]:
    return dict(cfg["methods"][method]["model"]["init_args"])


_cfg = builtin_config()
BUILTIN_DATA: dict = {k: v for k, v in _cfg["data"]["init_args"].items() if k not in ("root", "data_seed")}
BUILTIN_ERM: dict = _init_args(_cfg, "erm")
BUILTIN_ORACLE: dict = _init_args(_cfg, "oracle")
BUILTIN_SEBRA: dict = _init_args(_cfg, "sebra")
