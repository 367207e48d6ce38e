"""What a finished fit reports: its test metrics as one readable table (the demo's and ``sebra fit``'s), the
per-group accuracies under the data set's group names, the ranking quality, and the files they are saved in.

Values are percentages; the gap columns are explained under the data set's own attribute names.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from sebra.metrics import ranking_quality
from sebra.utils.files import atomic_write

if TYPE_CHECKING:
    from sebra.datasets.base import ImageDataset

__all__ = [
    "COLUMNS",
    "TEST_METRICS",
    "group_accuracies",
    "group_names",
    "level_scores",
    "report_results",
    "result_row",
    "results_heading",
    "results_table",
    "write_results",
]

#: Table column -> key of the module's test metrics (``test_<key>``), in the table's order.
TEST_METRICS = {
    "worst_group_acc": "wga",
    "avg_acc": "acc",
    "id_acc": "id_acc",
    "gap_a": "gap_a",
    "gap_b": "gap_b",
    "gap_both": "gap_both",
    "gap_mean": "gap_mean",
}
#: The table's columns, in order (a column no row has is left out).
COLUMNS = (*TEST_METRICS, "kendall_tau_b", "seconds")
#: Metrics kept in ``results.json`` beside the table's: Echoes' gap definition (docs/datasets.md).
EXTRA_METRICS = {
    "echoes_gap_a": "echoes_gap_a",
    "echoes_gap_b": "echoes_gap_b",
    "group_mean_acc": "group_mean",
}
_SELECTION = {
    "val_wga": "validation worst-group accuracy",
    "val_acc": "validation accuracy",
    "last": "none (the last epoch's weights)",
}


def result_row(test: Mapping[str, float], extra: bool = False) -> dict[str, float]:
    """The table's metrics in % from a module's test metrics (``{"test_wga": 0.61, ...}``, fractions); those the data
    set cannot give (I.D. accuracy and gaps need two bias attributes) are left out. ``extra``: the
    :data:`EXTRA_METRICS` too."""
    names = {**TEST_METRICS, **(EXTRA_METRICS if extra else {})}
    row = {}
    for column, key in names.items():
        value = test.get(f"test_{key}")
        if value is not None:
            row[column] = 100 * float(value)
    return row


def level_scores(
    rankings: pd.DataFrame, dataset: ImageDataset, schemes: Sequence[int] = (4, 3)
) -> dict[str, float]:
    """Ranking quality against the true spuriosity levels of ``dataset`` (``BiasSpec.levels``), per scheme; the
    rankings are joined to ``dataset`` by their ``index`` column.

    The 3-level scheme (the number of conflicting attributes: 0..K) applies to any number K of bias attributes; the
    4-level scheme (stronger / weaker attribute) needs exactly two. A scheme that does not apply to ``dataset`` is
    skipped with a warning, and so is everything when ``dataset`` has no bias attributes (no true levels): the
    result then lacks those keys, so a benchmark still writes its other numbers.

    Returns:
        ``kendall_tau_b`` and ``weighted_tau`` for the 4-level scheme, ``kendall_tau_b_3`` and ``weighted_tau_3``
        for the 3-level one (suffix ``_<scheme>`` for any scheme other than 4), for the schemes that apply.

    Raises:
        KeyError: a ranked index is not in ``dataset``.
        ValueError: the rankings give a sample another label than ``dataset``.
    """
    if dataset.bias is None or not dataset.bias.attr_names:
        warnings.warn(
            f"level_scores: {dataset.name!r} has no bias attributes, so there are no true levels; "
            "ranking quality (Kendall tau-b, weighted tau) is not computed",
            stacklevel=2,
        )
        return {}
    pos = dataset.positions_of(torch.from_numpy(np.array(rankings["index"].to_numpy(), dtype=np.int64)))
    labels = dataset.labels[pos]
    if not np.array_equal(labels.numpy(), rankings["label"].to_numpy()):
        raise ValueError(f"level_scores: the rankings give some sample another label than {dataset.name!r}")
    k = len(dataset.bias.attr_names)
    out = {}
    for scheme in schemes:
        if scheme == 4 and k != 2:
            warnings.warn(
                f"level_scores: {dataset.name!r} has {k} bias attribute(s) "
                f"({', '.join(dataset.bias.attr_names)}); the 4-level scheme needs exactly 2, so "
                "kendall_tau_b and weighted_tau are skipped (the 3-level scheme, the number of conflicting "
                "attributes, gives kendall_tau_b_3 and weighted_tau_3)",
                stacklevel=2,
            )
            continue
        levels = dataset.bias.levels(labels, dataset.attrs[pos], scheme=scheme)
        q = ranking_quality(rankings, levels)
        suffix = "" if scheme == 4 else f"_{scheme}"
        out[f"kendall_tau_b{suffix}"] = q["kendall_tau_b"]
        out[f"weighted_tau{suffix}"] = q["weighted_tau"]
    return out


def group_names(dm: Any) -> dict[int, str]:
    """A readable name per group id: the data set's own (``bias.group_names``), else the class and, per bias
    attribute, whether the group is aligned with the class or conflicts with it (``large: bg aligned, coobj
    conflicting``)."""
    bias = getattr(dm, "bias", None)
    if bias is not None and bias.group_names:
        return {int(g): str(n) for g, n in bias.group_names.items()}
    splits = getattr(dm, "splits", None) or {}
    if not splits:
        return {}
    first = next(iter(splits.values()))
    classes = list(getattr(first, "class_names", []))
    attrs = list(bias.attr_names) if bias is not None else []
    names: dict[int, str] = {}
    for ds in splits.values():
        t = ds.table[ds.table["group"] >= 0].drop_duplicates("group")
        for row in t.itertuples(index=False):
            d = row._asdict()
            g, label = int(d["group"]), int(d["label"])
            if g in names:
                continue
            name = classes[label] if label < len(classes) else str(label)
            parts = []
            for k, a in enumerate(attrs):
                v = int(d[a])
                if v < 0:
                    parts.append(f"{a} unknown")
                else:
                    parts.append(f"{a} {'aligned' if v == bias.aligned_value[label][k] else 'conflicting'}")
            names[g] = f"{name}: {', '.join(parts)}" if parts else name
    return dict(sorted(names.items()))


def group_accuracies(test: Mapping[str, float], names: Mapping[int, str]) -> dict[str, float]:
    """Test accuracy in % per group (``test_group_acc<g>``), keyed by group name (the id when unnamed); NaN for a
    group without test samples."""
    out = {}
    g = 0
    while f"test_group_acc{g}" in test:
        out[names.get(g, f"group {g}")] = 100 * float(test[f"test_group_acc{g}"])
        g += 1
    return out


def results_heading(
    title: str, selection: str = "val_wga", attributes: Sequence[str] = (), columns: Sequence[str] = COLUMNS
) -> str:
    """The two lines above the table: what was tested, how the checkpoint was chosen, what the gaps mean.

    Args:
        title: e.g. ``"Built-in benchmark"``.
        selection: the module's selection rule (``val_wga``, ``val_acc``, ``last``).
        attributes: readable names of the two bias attributes (gap_a, gap_b).
        columns: the table's columns (no gap legend without gap columns).
    """
    chosen = _SELECTION.get(selection, selection)
    head = f"{title} (test split, checkpoint chosen by {chosen}; accuracies in %"
    if len(attributes) == 2 and "gap_a" in columns:
        a, b = attributes
        return (
            f"{head};\ngap_a = {a} conflict, gap_b = {b} conflict, gap_both = both, each minus I.D. accuracy)"
        )
    return head + ")"


def results_table(rows: Mapping[str, Mapping[str, float]], columns: Sequence[str] = COLUMNS) -> str:
    """One row per method, the ``columns`` any row has, two decimals, ``-`` for a missing value."""
    table = pd.DataFrame({k: dict(v) for k, v in rows.items()}).T
    table = table[[c for c in columns if c in table.columns]]
    return table.to_string(float_format=lambda v: f"{v:.2f}", na_rep="-")


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def write_results(
    folder: str | Path,
    rows: Mapping[str, Mapping[str, float]],
    groups: Mapping[str, Mapping[str, float]] | None = None,
    info: Mapping[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``results.json`` (rows, per-group accuracies, ``info``; NaN as ``null``) and ``results.csv`` (one row
    per method: the table's values, then ``group_acc: <name>`` columns) to ``folder``, each atomically.

    Returns:
        The two paths.
    """
    folder = Path(folder)
    groups = groups or {}
    doc = {
        **dict(info or {}),
        "units": "%",
        "rows": {m: {k: _finite(float(v)) for k, v in r.items()} for m, r in rows.items()},
        "group_acc": {m: {k: _finite(float(v)) for k, v in g.items()} for m, g in groups.items()},
    }
    json_path = atomic_write(
        folder / "results.json", lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1))
    )
    records = []
    for method, row in rows.items():
        rec: dict[str, Any] = {"method": method, **row}
        rec.update({f"group_acc: {name}": v for name, v in groups.get(method, {}).items()})
        records.append(rec)
    frame = pd.DataFrame(records)
    csv_path = atomic_write(folder / "results.csv", lambda tmp: frame.to_csv(tmp, index=False))
    return json_path, csv_path


def report_results(
    model: Any, dm: Any, test: dict[str, float], seconds: float, log_dir: str | Path | None, **info: Any
) -> None:
    """Print the test split's table (the demo's columns, as present), the per-group accuracies under the data set's
    group names, and write both to ``results.json`` / ``results.csv`` in ``log_dir``."""
    name = type(model).__name__.removesuffix("Module").lower() or type(model).__name__
    row = result_row(test, extra=True)
    rankings = getattr(model, "rankings", None)
    bias = getattr(dm, "bias", None)
    if rankings is not None and bias is not None and len(bias.attr_names) == 2:  # the table's kendall_tau_b
        row.update(level_scores(rankings, dm.splits["train"]))  # SebraModule checked them against this split
    row["seconds"] = seconds
    columns = [c for c in COLUMNS if c in row]
    attributes = tuple(bias.attr_names) if bias is not None else ()
    title = f"{type(model).__name__} on {type(dm).__name__.removesuffix('DataModule')}"
    heading = results_heading(title, getattr(model, "selection", "val_wga"), attributes, columns)
    if (
        info.get("split", "test") != "test"
    ):  # no test split (own data split by seed): the table is validation's
        heading = heading.replace("(test split,", f"({info['split']} split,", 1)
    print("\n" + heading)
    print(results_table({name: row}, columns))
    groups = group_accuracies(test, group_names(dm))
    if all(math.isnan(a) for a in groups.values()):  # data without groups (own data): no "group 0 nan"
        groups = {}
    if groups:
        width = max(len(g) for g in groups)
        print("\nTest accuracy per group (%):")
        for g, acc in groups.items():
            print(f"  {g:<{width}}  {acc:6.2f}")
    if log_dir:
        legend = {
            "gap_a, gap_b, gap_both": "accuracy on the samples that conflict with the first, the second or both "
            "bias attributes, minus the I.D. accuracy"
            + (f" (attributes: {', '.join(attributes)})" if attributes else ""),
            "echoes_gap_a, echoes_gap_b": "Echoes' gaps: -(|cc - uc| + |cu - uu|) / 2 over the 2x2 cell accuracies "
            "(docs/datasets.md)",
            "group_mean_acc": "unweighted mean of the group accuracies",
        }
        paths = write_results(
            log_dir, {name: row}, {name: groups}, {"split": "test", **info, "legend": legend}
        )
        print(f"\nresults: {paths[0]}, {paths[1]}")
