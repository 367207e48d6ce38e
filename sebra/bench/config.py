"""The benchmark config: LightningCLI's blocks, one ``model:`` per method, the bench-only keys under ``bench:``.

Layout (``sebra/configs/builtin.yaml`` is the shipped one)::

    dataset: builtin                  # optional; must match --dataset when given
    data: {class_path: ..., init_args: {...}}                    # the data module, shared by every method
    trainer: {accelerator: auto, precision: 32-true, ...}        # lightning.Trainer arguments shared by every run
    methods:
      <name>:
        model:                        # what a `sebra fit` config's model: block holds
          class_path: sebra.methods.erm.ERMModule
          init_args: {...}            # the module's arguments (``seed`` is set per run, from --seeds)
        trainer: {...}                # optional: this method's Trainer arguments over the shared ones
        bench:                        # optional: what only the benchmark reads
          also_select: [val_acc]      # test the same run at another selection rule too (val_acc, val_wga, last)
          confidence_ranker: {budget_from: sebra, budget_steps: null}   # ERM-confidence rankings per epoch

Overrides use the same dotted keys (``methods.sebra.model.init_args.lr=0.01``, ``trainer.precision=16-mixed``;
:mod:`sebra.cli.config`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from sebra.cli.config import ConfigError, apply_overrides, mapping_at, read_yaml
from sebra.cli.schema import build_block, check_block, check_trainer, class_defaults

__all__ = [
    "ALSO_SELECT_RULES",
    "BenchError",
    "build_run",
    "check_config",
    "config_methods",
    "default_config",
    "load_config",
    "parse_seeds",
    "selection_rules",
]

ALSO_SELECT_RULES = ("val_acc", "val_wga", "last")
_TOP_KEYS = {"dataset", "data", "trainer", "methods"}
_METHOD_KEYS = {"model", "trainer", "bench"}
_BENCH_KEYS = {"also_select", "confidence_ranker"}


class BenchError(ConfigError):
    """A benchmark config, argument or results file is not as expected (the message names the file and field)."""


def default_config(dataset: str) -> Path:
    """The packaged benchmark config of a data set (``sebra/configs/<dataset>.yaml``)."""
    return Path(__file__).resolve().parent.parent / "configs" / f"{dataset}.yaml"


def load_config(path: str | Path, overrides: Mapping[str, Any] | Iterable[str] = ()) -> dict[str, Any]:
    """Read a benchmark config, apply dotted ``overrides`` (``--set``) and check it (:func:`check_config`).

    Raises:
        FileNotFoundError: no such file.
        ConfigError: not YAML, an unknown override key, or a section or field missing or of the wrong type (the
            message names the file and key; :class:`BenchError`, a subclass, for the bench's own fields).
    """
    cfg = check_config(read_yaml(path, "benchmark config"), str(path))
    if overrides:  # on the checked config, so that every optional section is there to be set
        cfg = check_config(apply_overrides(cfg, overrides), str(path))
    return cfg


def check_config(cfg: Mapping[str, Any], where: str = "config") -> dict[str, Any]:
    """The config with every optional section filled in (empty mappings, ``bench`` keys present); ``where`` names
    the file in errors. The result is what the runner reads (``_path`` holds ``where``).

    Every ``class_path`` block and ``trainer`` mapping is parsed against its class's signature by the one schema
    (:mod:`sebra.cli.schema`, jsonargparse), so an unknown argument or a value of the wrong type is refused here,
    before any run, and in the words ``sebra fit`` uses."""
    unknown = set(cfg) - _TOP_KEYS - {"_path"}
    if unknown:
        raise BenchError(f"{where}: unknown top-level key(s) {sorted(unknown)}; expected {sorted(_TOP_KEYS)}")
    out: dict[str, Any] = {k: cfg[k] for k in ("dataset",) if k in cfg}
    out["data"] = _class_block(cfg, "data", where)
    out["trainer"] = mapping_at(cfg, "trainer", where)
    methods = mapping_at(cfg, "methods", where, required=True)
    out["methods"] = {name: _method(cfg, name, methods, where) for name in methods}
    out["_path"] = where
    _check_schema(out, where)
    return out


@contextlib.contextmanager
def _as_bench_error() -> Iterator[None]:
    """The schema's refusals (:class:`ConfigError`) raised as the bench's own kind, with the same message."""
    try:
        yield
    except BenchError:
        raise
    except ConfigError as e:
        raise BenchError(str(e)) from e


def _check_schema(cfg: Mapping[str, Any], where: str) -> None:
    with _as_bench_error():
        check_block(cfg["data"], "data", "data", where)
        check_trainer(cfg["trainer"], "trainer", where)
        for name, m in cfg["methods"].items():
            check_block(m["model"], "model", f"methods.{name}.model", where)
            if m["trainer"]:
                check_trainer({**cfg["trainer"], **m["trainer"]}, f"methods.{name}.trainer", where)


def _class_block(cfg: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    block = mapping_at(cfg, key, where, required=True)
    if "class_path" not in block:
        raise BenchError(f"{where}: {key}.class_path is missing")
    return {"class_path": block["class_path"], "init_args": mapping_at(cfg, f"{key}.init_args", where)}


def _method(cfg: Mapping[str, Any], name: str, methods: Mapping[str, Any], where: str) -> dict[str, Any]:
    key = f"methods.{name}"
    m = mapping_at(cfg, key, where, required=True)
    bad = set(m) - _METHOD_KEYS
    if bad:
        hint = (
            " (the class goes under model: {class_path, init_args})"
            if bad & {"class_path", "init_args"}
            else ""
        )
        raise BenchError(
            f"{where}: {key}: unknown key(s) {sorted(bad)}; expected {sorted(_METHOD_KEYS)}{hint}"
        )
    model = _class_block(cfg, f"{key}.model", where)
    if "seed" in model["init_args"]:
        raise BenchError(f"{where}: {key}.model.init_args.seed is set per run from --seeds; remove it")
    bench = mapping_at(cfg, f"{key}.bench", where)
    bad = set(bench) - _BENCH_KEYS
    if bad:
        raise BenchError(
            f"{where}: {key}.bench: unknown key(s) {sorted(bad)}; expected {sorted(_BENCH_KEYS)}"
        )
    also = bench.get("also_select") or []
    also = [also] if isinstance(also, str) else also
    if not isinstance(also, list) or not set(also) <= set(ALSO_SELECT_RULES):
        raise BenchError(
            f"{where}: {key}.bench.also_select must be a list of {' / '.join(ALSO_SELECT_RULES)}, "
            f"got {bench.get('also_select')!r}"
        )
    ranker = bench.get("confidence_ranker")
    if ranker is True:
        ranker = {}
    if ranker is not None:
        if not isinstance(ranker, dict) or set(ranker) - {"budget_from", "budget_steps"}:
            raise BenchError(
                f"{where}: {key}.bench.confidence_ranker must be a mapping with budget_from and/or "
                f"budget_steps, got {ranker!r}"
            )
        src = ranker.get("budget_from")
        if src is not None and src not in methods:
            raise BenchError(
                f"{where}: {key}.bench.confidence_ranker.budget_from {src!r} is not a method of this config"
            )
        ranker = dict(ranker)
    return {
        "model": model,
        "trainer": mapping_at(cfg, f"{key}.trainer", where),
        "bench": {"also_select": also, "confidence_ranker": ranker},
    }


def config_methods(cfg: Mapping[str, Any], names: str | None) -> list[str]:
    """The methods ``--methods`` names (a comma list; all of the config's when ``None``), each checked to exist."""
    methods = [m.strip() for m in names.split(",") if m.strip()] if names else list(cfg["methods"])
    missing = [m for m in methods if m not in cfg["methods"]]
    if missing:
        raise BenchError(
            f"{cfg.get('_path', 'config')}: no method(s) {missing} under methods "
            f"(have: {', '.join(cfg['methods'])})"
        )
    return methods


def selection_rules(cfg: Mapping[str, Any]) -> dict[str, str]:
    """Each method's ``selection`` (its init argument, else the class default)."""
    out = {}
    for name, m in cfg["methods"].items():
        sel = m["model"]["init_args"].get("selection")
        if sel is None:
            try:
                sel = class_defaults(m["model"]["class_path"]).get("selection", "?")
            except ConfigError:
                sel = "?"
        out[name] = str(sel)
    return out


def parse_seeds(text: str) -> list[int]:
    """``"3"`` -> seeds 0, 1, 2; ``"0,5,7"`` (or ``"4,"``) -> those seeds."""
    text = str(text).strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise ValueError
            seeds = list(range(n))
    except ValueError:
        raise BenchError(
            f"--seeds must be a count (3 -> 0,1,2) or a comma list (0,5,7), got {text!r}"
        ) from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise BenchError(f"--seeds lists a seed twice or none: {text!r}")
    return seeds


def build_run(cfg: Mapping[str, Any], method: str, seed: int | None) -> tuple[Any, Any]:
    """The data module and the method's module of one run, built by the one schema (:func:`sebra.cli.schema.build_block`),
    each given ``seed`` when its class takes one (the data module's own draws, e.g. batch augmentation, follow the
    run seed unless the config fixes ``data.init_args.seed``).

    Raises:
        BenchError: a class refuses its arguments (the message names the file and block, and the class's reason).
    """
    where = cfg.get("_path", "config")
    data = {"class_path": cfg["data"]["class_path"], "init_args": dict(cfg["data"]["init_args"])}
    model = dict(cfg["methods"][method]["model"])
    model["init_args"] = dict(model["init_args"])
    with _as_bench_error():
        if seed is not None and "seed" in class_defaults(data["class_path"]):
            data["init_args"].setdefault("seed", seed)
        if seed is not None and "seed" in class_defaults(
            model["class_path"]
        ):  # also when handed on in **kwargs
            model["init_args"]["seed"] = seed
        dm = build_block(data, "data", "data", where)
        module = build_block(model, "model", f"methods.{method}.model", where)
    return dm, module
