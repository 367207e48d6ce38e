"""The ranker x mitigation grid: several rankers write the same ranking table; several mitigations read it.

For one (variant, seed) :func:`run_cell` trains what the rankers need once, writes one ``rankings_<ranker>.csv``
per ranker, then fits every mitigation on every table and returns rows ``variant, role, ranker, mitigation, seed,
metric, value`` (the rankers' own rows have ``mitigation`` = ``""``: their tau-b against the true levels).

Rankers (:data:`RANKERS`):

* ``sebra``: Sebra's Stage 1 with the config's settings (``rank_only``);
* ``erm_conf``: ERM confidence after a fixed epoch (``erm_conf_epoch``, a setting: never chosen on the truth),
  read from the ERM run's per-epoch scores;
* ``error_set``: JTT's error set of that epoch's network (two levels, random order inside a level, so it carries
  only what the error set carries);
* ``true_levels``: the number of conflicting attributes (label-using: the upper reference), random within a level;
* ``sebra_erm``: Sebra's Stage 1 and ``erm_conf`` fused, per class by mean position percentile
  (:func:`sebra.ranking.combine_rankings`), one sample per rank: label-free, one ERM epoch more than Stage 1 (issue 17's
  "fusing with an early ERM-confidence order").
* ``erm_curve``: the mean ERM ``p_y`` over epochs 1..:data:`ERM_CURVE_EPOCHS` (a per-sample learning-speed statistic:
  learned early, high at every scoring point; learned late, high only at the last), read from the same scores;
* ``sebra_erm_curve``: Stage 1 and ``erm_curve`` fused as ``sebra_erm`` fuses them.

Mitigations (:data:`MITIGATIONS`), each a method of the config run by :func:`sebra.bench.run.run_one` with the
table as its only knowledge of the ranker:

* ``stage2``: Sebra's Stage 2 as the config ships it (``SebraModule(rankings=...)``);
* ``ranked_head``: rank-balanced last-layer retraining of the ERM run's last network
  (:class:`~sebra.methods.ranked_head.RankedHeadModule`);
* ``rank_upsampled``: ERM from scratch with draws weighted by rank bin, JTT's retraining with the table for its
  error set (:class:`~sebra.methods.rank_upsampled.RankUpsampledModule`; the config's ``erm`` settings);
* ``rank_dro``: GroupDRO over (class, rank bin) pseudo-groups (:class:`~sebra.methods.rank_group_dro.RankGroupDROModule`;
  the config's ``groupdro`` settings, ``uniform`` sampling: its ``group_balanced`` draws read the true groups).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from sebra.bench.run import run_dir, run_one
from sebra.cli.results import level_scores
from sebra.export import load_rankings, save_rankings
from sebra.ranking import combine_rankings, number_positions
from sebra.scoring import confidence_rankings, error_set_rankings

__all__ = [
    "GRID_COLUMNS",
    "MITIGATIONS",
    "RANKERS",
    "curve_rankings",
    "mitigation_entry",
    "parse_mitigation",
    "rank_with_sebra",
    "run_cell",
    "true_level_rankings",
]

GRID_COLUMNS = ["variant", "role", "ranker", "mitigation", "seed", "metric", "value"]
RANKERS = ("sebra", "erm_conf", "error_set", "true_levels", "sebra_erm", "erm_curve", "sebra_erm_curve")
#: Epochs the ``erm_curve`` ranker averages (a fixed setting, taken from dev tau-b: benchmarks/confidence_trial.py).
ERM_CURVE_EPOCHS = 3
MITIGATIONS = ("stage2", "ranked_head", "rank_upsampled", "rank_dro")
_FROM_SCRATCH = {
    "rank_upsampled": ("erm", "sebra.methods.rank_upsampled.RankUpsampledModule"),
    "rank_dro": ("groupdro", "sebra.methods.rank_group_dro.RankGroupDROModule"),
}
_ENTRY = {"bench": {"also_select": [], "confidence_ranker": None}, "trainer": {}}


def true_level_rankings(train: Any, seed: int) -> pd.DataFrame:
    """The true spuriosity levels as a ranking table (3-level scheme: number of conflicting attributes; rank =
    level + 1; ``p_y`` a stand-in score falling with the level), seeded random order inside a level. Uses bias labels: a reference, not a method."""
    levels = train.bias.levels(train.labels, train.attrs, scheme=3).numpy()
    key = torch.rand(len(levels), generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy()
    labels = train.labels.numpy()
    order = np.lexsort((key, levels, labels))
    df = pd.DataFrame(
        {
            "index": train.indices.numpy()[order],
            "label": labels[order],
            "rank": levels[order].astype(np.int64) + 1,
            # no probability here: a score in (0, 1) that falls with the level, so p_y order is the rank order
            "p_y": 1.0 - (levels[order] + 1) / (levels.max() + 2.0),
        }
    )
    return number_positions(df)[["index", "label", "rank", "position", "p_y"]]


def _epoch_scores(frame: pd.DataFrame, source: Path, *epochs: int) -> pd.DataFrame:
    """The rows of ``frame`` (an ERM run's ``confidence_by_epoch.csv``, read from ``source``) after ``epochs``."""
    missing = sorted(set(epochs) - set(frame["epoch"]))
    if missing:
        raise ValueError(
            f"{source}: no scores for epoch(s) {missing} (epochs {sorted(frame['epoch'].unique())})"
        )
    return frame[frame["epoch"].isin(epochs)]


def curve_rankings(scores: pd.DataFrame) -> pd.DataFrame:
    """ERM confidence averaged over scoring points (``scores``: ``index, label, p_y`` rows, one per sample and
    epoch): each class ordered by the mean ``p_y``, a per-sample learning-speed statistic (the ``erm_curve``
    ranker)."""
    mean = scores.groupby(["index", "label"], as_index=False)["p_y"].mean()
    return confidence_rankings(mean["index"], mean["label"], mean["p_y"])


def rank_with_sebra(cfg: dict[str, Any], seed: int) -> tuple[Any, float]:
    """Sebra's Stage 1 alone (``rank_only``) with the config's settings: the fitted module (its ``rankings``, and
    ``ranking.elimination_table`` when the ranking is fused) and the seconds it took."""
    import lightning as L

    from sebra.bench.config import build_run
    from sebra.cli.console import quiet_lightning

    entry = copy.deepcopy(cfg["methods"]["sebra"])
    entry["model"]["init_args"]["rank_only"] = True
    local = {**cfg, "methods": {**cfg["methods"], "_sebra_rank": entry}}
    t0 = time.perf_counter()
    with quiet_lightning(own_messages=False):
        L.seed_everything(seed, workers=True, verbose=False)
        dm, module = build_run(local, "_sebra_rank", seed)
        trainer = L.Trainer(
            max_epochs=-1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            **cfg["trainer"],
        )
        trainer.fit(module, datamodule=dm)
    return module, time.perf_counter() - t0


def make_rankings(
    cfg: dict[str, Any], seed: int, cell_dir: Path, erm_dir: Path, erm_conf_epoch: int, train: Any
) -> dict[str, tuple[Path, float]]:
    """Every ranker's table of one (variant, seed), written once (``rankings_<ranker>.csv``; an existing file is
    reused, so a resumed grid does not re-rank); returns ``{ranker: (path, seconds)}``."""
    out: dict[str, tuple[Path, float]] = {}
    source = erm_dir / "confidence_by_epoch.csv"
    frame: pd.DataFrame | None = None

    def scores(
        *epochs: int,
    ) -> pd.DataFrame:  # the ERM run's scores, read once for every ranker that needs them
        nonlocal frame
        if frame is None:
            frame = pd.read_csv(source)
        return _epoch_scores(frame, source, *epochs)

    for ranker in RANKERS:
        path = cell_dir / f"rankings_{ranker}.csv"
        seconds = float("nan")
        if not path.exists():
            t0 = time.perf_counter()
            if ranker == "sebra":
                module, seconds = rank_with_sebra(cfg, seed)
                table = module.rankings
            elif ranker == "erm_conf":
                s = scores(erm_conf_epoch)
                table = confidence_rankings(s["index"], s["label"], s["p_y"])
            elif ranker == "erm_curve":
                table = curve_rankings(scores(*range(1, ERM_CURVE_EPOCHS + 1)))
            elif ranker in ("sebra_erm", "sebra_erm_curve"):  # after both (RANKERS' order)
                other = "erm_conf" if ranker == "sebra_erm" else "erm_curve"
                fused = combine_rankings([load_rankings(out["sebra"][0]), load_rankings(out[other][0])])
                table = fused.assign(rank=fused["position"])
            elif ranker == "error_set":
                # p_y < 0.5: exactly the misclassified samples with two classes (the family's)
                s = scores(erm_conf_epoch).assign(error=lambda d: d["p_y"] < 0.5)
                table = error_set_rankings(s, within="random", generator=torch.Generator().manual_seed(seed))
            else:
                table = true_level_rankings(train, seed)
            if ranker != "sebra":
                seconds = time.perf_counter() - t0
            save_rankings(table, path)
        out[ranker] = (path, seconds)
    return out


def parse_mitigation(spec: str) -> tuple[str, str, dict[str, Any]]:
    """``"ranked_head:per_class=200,epochs=50"`` -> ``(spec, "ranked_head", {"per_class": 200, "epochs": 50})``:
    the spec itself names the grid column, so two settings of one mitigation are two columns."""
    import yaml

    kind, _, rest = spec.partition(":")
    if kind not in MITIGATIONS:
        raise ValueError(f"grid: unknown mitigation {kind!r} in {spec!r}; expected one of {MITIGATIONS}")
    settings: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"grid: mitigation setting {item!r} in {spec!r} is not KEY=VALUE")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML 1.1 leaves "1e-4" a string; a number is meant
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        settings[key] = parsed
    return spec, kind, settings


def mitigation_entry(
    cfg: dict[str, Any], mitigation: str, rankings: Path, erm_ckpt: Path | None, settings: dict
) -> dict[str, Any]:
    """The config entry that fits ``mitigation`` (a kind of :data:`MITIGATIONS`) on the ranking table ``rankings``
    with ``settings``; ``erm_ckpt`` is the trained ERM network ``ranked_head`` retrains (unused by the others)."""
    if mitigation == "stage2":
        entry = copy.deepcopy(cfg["methods"]["sebra"])
        entry["model"]["init_args"].update(settings, rankings=str(rankings))
        return entry
    if mitigation == "ranked_head":
        return {
            **copy.deepcopy(_ENTRY),
            "model": {
                "class_path": "sebra.methods.ranked_head.RankedHeadModule",
                "init_args": {"checkpoint": str(erm_ckpt), "rankings": str(rankings), **settings},
            },
        }
    if mitigation in _FROM_SCRATCH:
        method, class_path = _FROM_SCRATCH[mitigation]
        args = copy.deepcopy(cfg["methods"][method]["model"]["init_args"])
        args.update(sampling="uniform", rankings=str(rankings), **settings)
        entry = {**copy.deepcopy(_ENTRY), "model": {"class_path": class_path, "init_args": args}}
        if "trainer" in cfg["methods"][method]:
            entry["trainer"] = copy.deepcopy(cfg["methods"][method]["trainer"])
        return entry
    raise ValueError(f"grid: unknown mitigation {mitigation!r}; expected one of {MITIGATIONS}")


def run_cell(
    cfg: dict[str, Any],
    variant: str,
    role: str,
    seed: int,
    runs_dir: str | Path,
    *,
    mitigations: tuple[str, ...] = MITIGATIONS,
    rankers: tuple[str, ...] = RANKERS,
    erm_conf_epoch: int = 1,
    done: set[tuple[str, str]] = frozenset(),
    on_rows: Any = None,
) -> list[dict[str, Any]]:
    """Rankers x mitigations for one (variant, seed); ``done`` holds (ranker, mitigation) pairs already in the
    results (skipped); ``mitigations`` are specs (:func:`parse_mitigation`); ``on_rows(rows)`` is called after each fit, so a killed grid keeps what finished."""
    from sebra.bench.config import build_run

    runs_dir = Path(runs_dir)
    cell_dir = runs_dir / variant / f"seed{seed}"
    cell_dir.mkdir(parents=True, exist_ok=True)
    dm, _ = build_run(cfg, "erm", seed)
    dm.setup("fit")
    train = dm.train_dataset
    rows: list[dict[str, Any]] = []

    def emit(ranker: str, mitigation: str, values: dict[str, float]) -> None:
        new = [
            {
                "variant": variant,
                "role": role,
                "ranker": ranker,
                "mitigation": mitigation,
                "seed": seed,
                "metric": k,
                "value": float(v),
            }
            for k, v in values.items()
        ]
        rows.extend(new)
        if on_rows is not None:
            on_rows(new)

    erm_dir = run_dir(runs_dir / variant, "erm_base", "erm", seed)
    erm_ckpt = erm_dir / "checkpoints" / "last.ckpt"
    if ("erm", "") not in done or not erm_ckpt.exists():
        base = run_one(cfg, "erm", seed, runs_dir / variant, "erm_base")
        if ("erm", "") not in done:
            emit("erm", "", {r["metric"]: r["value"] for r in base if r["method"] == "erm"})
    tables = make_rankings(cfg, seed, cell_dir, erm_dir, erm_conf_epoch, train)
    for ranker in rankers:
        path, seconds = tables[ranker]
        if (ranker, "") not in done:
            emit(ranker, "", {**level_scores(load_rankings(path), train, (3,)), "rank_seconds": seconds})
        for spec in mitigations:
            mitigation, kind, settings = parse_mitigation(spec)
            if (ranker, mitigation) in done:
                continue
            key = f"{mitigation.replace(':', '_').replace(',', '_').replace('=', '')}@{ranker}"
            entry = mitigation_entry(cfg, kind, path, erm_ckpt, settings)
            local = {**cfg, "methods": {**cfg["methods"], key: entry}}
            got = run_one(local, key, seed, cell_dir, "fits")
            emit(ranker, mitigation, {r["metric"]: r["value"] for r in got if r["method"] == key})
    return rows
