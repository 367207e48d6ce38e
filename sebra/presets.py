"""Settings for the built-in benchmark, read from the packaged ``sebra/configs/builtin.yaml``.

That one file drives both the demo (``make demo``) and the benchmark (``sebra bench --dataset builtin``), so the demo
shows what BENCHMARKS.md measures.
"""

from __future__ import annotations

from pathlib import Path

import yaml

__all__ = [
    "BUILTIN_CONFIG",
    "BUILTIN_DATA",
    "BUILTIN_ERM",
    "BUILTIN_ORACLE",
    "BUILTIN_SEBRA",
    "builtin_config",
]

BUILTIN_CONFIG = Path(__file__).parent / "configs" / "builtin.yaml"


def builtin_config() -> dict:
    """The built-in benchmark's configuration, as parsed YAML."""
    with open(BUILTIN_CONFIG) as f:
        return yaml.safe_load(f)


_cfg = builtin_config()
BUILTIN_DATA: dict = {k: v for k, v in _cfg["data"]["init_args"].items() if k not in ("root", "data_seed")}
BUILTIN_ERM: dict = dict(_cfg["methods"]["erm"]["init_args"])
BUILTIN_ORACLE: dict = dict(_cfg["methods"]["oracle"]["init_args"])
BUILTIN_SEBRA: dict = dict(_cfg["methods"]["sebra"]["init_args"])
