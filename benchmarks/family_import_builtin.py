"""Copy the built-in benchmark's baseline runs (``benchmarks/results/builtin.csv``, made by ``sebra bench --dataset
builtin`` with the same settings and data) into the family as the lane ``imported`` of the variant ``builtin``.

    python benchmarks/family_import_builtin.py

ERM, JTT, GroupDRO and the group-balanced reference (and their rankers) are copied; Sebra and the same-budget ERM
ranker are not, since they depend on Sebra's settings, which the family re-runs. Merge with
``sebra bench --family --variants builtin --methods sebra --seeds 3`` (which rewrites family.csv after every run).
"""

from __future__ import annotations

from pathlib import Path

from sebra.bench.store import lane_file, read_results, write_table

KEEP = (
    "erm",
    "jtt",
    "oracle",
    "groupdro",
    "erm_val_acc",
    "jtt_val_acc",
    "erm_conf_best_epoch",
    "jtt_error_set",
)


def main() -> None:
    res = read_results("benchmarks/results/builtin.csv")
    rows = res[res["method"].isin(KEEP)]
    out = lane_file(Path("benchmarks/results/family.csv"), "builtin", "imported")
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(out, rows)
    print(f"{len(rows)} rows -> {out}")


if __name__ == "__main__":
    main()
