"""benchmarks/grid.py: the per-role table (rankers x mitigations, mean +- std over seeds) and its pipe markdown."""

import runpy
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "grid.py"


def _rows() -> pd.DataFrame:
    rows = []
    for seed, (a, b) in enumerate([(40.0, 60.0), (50.0, 70.0)]):
        for variant, shift in (("v1", 0.0), ("v2", 10.0)):
            rows += [
                (variant, "dev", "sebra", "ranked_head", seed, "worst_group_acc", a + shift),
                (variant, "dev", "sebra", "stage2", seed, "worst_group_acc", b + shift),
                (variant, "dev", "sebra", "", seed, "kendall_tau_b_3", 0.5 + shift / 100),
            ]
    cols = ["variant", "role", "ranker", "mitigation", "seed", "metric", "value"]
    return pd.DataFrame(rows, columns=cols)


def test_cells_are_seed_means_of_the_variant_mean_with_the_ranker_tau() -> None:
    mod = runpy.run_path(str(SCRIPT))
    table = mod["grid_table"](_rows())
    # per seed the mean over v1, v2: ranked_head 45, 55 -> 50 +- 7.1; stage2 65, 75 -> 70 +- 7.1
    assert table.loc["sebra", "ranked_head"] == "50.0 ± 7.1 (2)"
    assert table.loc["sebra", "stage2"] == "70.0 ± 7.1 (2)"
    assert table.loc["sebra", "τ-b (3)"] == 0.55
    md = mod["markdown"](table).splitlines()
    assert md[0] == "| ranker | ranked_head | stage2 | τ-b (3) |"
    assert md[2] == "| sebra | 50.0 ± 7.1 (2) | 70.0 ± 7.1 (2) | 0.55 |"
