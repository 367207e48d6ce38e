"""benchmarks/reference.py (the multi-seed reference file) and the demo's printing of it."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pandas as pd
import pytest

from sebra.cli.demo import REFERENCE_FILE, REFERENCE_METRICS, reference_text

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "reference.py"


def _run(*args: str) -> None:
    """The script in this process (a subprocess would pay the torch import again)."""
    argv = sys.argv
    sys.argv = [str(SCRIPT), *args]
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as e:
        if e.code:
            raise
    finally:
        sys.argv = argv


def _fake_results(path: Path) -> Path:
    rows = []
    for seed, (wga, acc) in enumerate([(10.0, 70.0), (20.0, 74.0), (30.0, 72.0)]):
        rows += [
            ("sebra", seed, "worst_group_acc", wga),
            ("sebra", seed, "avg_acc", acc),
            ("sebra", seed, "id_acc", 95.0),
            ("sebra", seed, "gap_a", -wga / 10),
            ("sebra", seed, "gap_b", -2.0 * seed),
            ("sebra", seed, "gap_both", -40.0),
            ("sebra", seed, "kendall_tau_b", 0.7),
            ("sebra", seed, "seconds", 100.0),
            ("erm_conf_same_budget", seed, "kendall_tau_b", 0.8),
        ]
    rows += [
        ("erm", 0, "worst_group_acc", 5.0),
        ("erm", 1, "worst_group_acc", 7.0),
        ("erm", 0, "id_acc", 98.0),
    ]
    pd.DataFrame(rows, columns=["method", "seed", "metric", "value"]).to_csv(path, index=False)
    return path


def test_script_writes_means_stds_and_seed_counts(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "ref.csv"
    _run("--results", str(_fake_results(tmp_path / "results.csv")), "--out", str(out))
    ref = pd.read_csv(out)
    assert list(ref.columns) == ["method", "metric", "mean", "std", "seeds"]
    assert list(dict.fromkeys(ref["method"])) == [
        "erm",
        "sebra",
    ]  # benchmark order; ranker-only rows left out
    assert set(ref["metric"]) <= set(REFERENCE_METRICS)  # no tau, no seconds
    got = ref.set_index(["method", "metric"])
    assert got.loc[("sebra", "worst_group_acc"), "mean"] == pytest.approx(20.0)
    assert got.loc[("sebra", "worst_group_acc"), "std"] == pytest.approx(10.0)  # sample std (ddof=1)
    assert got.loc[("sebra", "avg_acc"), "std"] == pytest.approx(2.0)
    assert got.loc[("sebra", "gap_b"), "mean"] == pytest.approx(-2.0)
    assert got.loc[("sebra", "id_acc"), "std"] == pytest.approx(0.0)
    assert got.loc[("erm", "worst_group_acc"), ["mean", "std", "seeds"]].tolist() == pytest.approx(
        [6.0, 2**0.5, 2], abs=1e-4
    )
    assert got.loc[("erm", "id_acc"), "seeds"] == 1 and pd.isna(got.loc[("erm", "id_acc"), "std"])
    assert got.loc[("sebra", "gap_both"), "seeds"] == 3
    assert not list(out.parent.glob(".*.tmp"))  # written through a temporary file, none left behind


def test_script_refuses_a_missing_results_file(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="does not exist"):
        _run("--results", str(tmp_path / "none.csv"), "--out", str(tmp_path / "ref.csv"))
    assert not (tmp_path / "ref.csv").exists()


def test_packaged_reference_matches_the_bench_results() -> None:
    """The shipped file is the script's output for benchmarks/results/builtin.csv with Sebra's rows from the re-runs
    of the shipped settings: look/builtin.csv (the second look), then look/builtin_weighted.csv (the look trained
    with the weighted loss, 5 seeds; BENCHMARKS.md §4, §6, §7.15)."""
    ns = runpy.run_path(str(SCRIPT))
    results = ROOT / "benchmarks" / "results"
    files = [
        results / "builtin.csv",
        results / "look" / "builtin.csv",
        results / "look" / "builtin_weighted.csv",
    ]
    expected = ns["reference_table"](ns["merged_results"](files))
    shipped = pd.read_csv(REFERENCE_FILE)
    assert (
        shipped[["method", "metric", "seeds"]].values.tolist()
        == expected[["method", "metric", "seeds"]].values.tolist()
    )
    assert shipped["mean"].to_numpy() == pytest.approx(expected["mean"].to_numpy(), abs=1e-4)
    assert shipped["std"].to_numpy() == pytest.approx(expected["std"].to_numpy(), abs=1e-4)


def test_demo_prints_the_reference_table(tmp_path: Path) -> None:
    ref = tmp_path / "ref.csv"
    _run("--results", str(_fake_results(tmp_path / "results.csv")), "--out", str(ref))
    text = reference_text(ref)
    lines = text.strip().splitlines()
    assert lines[0].startswith("Reference for these settings: mean ± std over 1/2/3 seeds")
    assert "BENCHMARKS.md §4" in lines[0] and "sebra bench --dataset builtin" in lines[0]
    header = lines[1].split()
    assert header == list(REFERENCE_METRICS)
    erm, sebra = lines[2].split(), lines[3].split()
    assert erm[:4] == ["erm", "6.0", "±", "1.4"]
    assert "-" in erm  # no avg_acc for erm
    assert sebra[:7] == ["sebra", "20.0", "±", "10.0", "72.0", "±", "2.0"]
    assert "98.0" in erm and "98.0 ±" not in lines[2]  # one seed: the mean alone
    assert "worst-group std over seeds 10.0 (sebra), 1.4 (erm)" in lines[-1]


def test_demo_reference_shows_the_label_using_methods(tmp_path: Path) -> None:
    ref = tmp_path / "ref.csv"
    pd.DataFrame(
        [("groupdro", "worst_group_acc", 77.6, 1.4, 3), ("oracle", "worst_group_acc", 82.4, 2.9, 3)],
        columns=["method", "metric", "mean", "std", "seeds"],
    ).to_csv(ref, index=False)
    text = reference_text(ref)
    assert "groupdro (uses group labels)" in text and "82.4 ± 2.9" in text
    assert "single run varies" not in text  # neither sebra nor erm in the file


def test_demo_reference_handles_a_missing_or_broken_file(tmp_path: Path) -> None:
    missing = reference_text(tmp_path / "none.csv")
    assert "no multi-seed reference" in missing and "benchmarks/reference.py" in missing
    assert len(missing.strip().splitlines()) == 1
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert "could not be read" in reference_text(empty)
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    assert "lacks the column" in reference_text(wrong)


def test_demo_prints_the_shipped_reference() -> None:
    text = reference_text()
    ref = pd.read_csv(REFERENCE_FILE).set_index(["method", "metric"])
    for method in ("sebra", "erm"):  # the packaged numbers, as the demo formats them
        mean, std = ref.loc[(method, "worst_group_acc"), ["mean", "std"]]
        assert f"{mean:.1f} ± {std:.1f}" in text


def test_a_later_results_file_replaces_a_methods_rows(tmp_path: Path) -> None:
    first = _fake_results(tmp_path / "a.csv")
    pd.DataFrame(
        [("sebra", s, "worst_group_acc", 50.0 + s) for s in range(3)],
        columns=["method", "seed", "metric", "value"],
    ).to_csv(tmp_path / "b.csv", index=False)
    out = tmp_path / "ref.csv"
    _run("--results", str(first), str(tmp_path / "b.csv"), "--out", str(out))
    got = pd.read_csv(out).set_index(["method", "metric"])
    assert got.loc[("sebra", "worst_group_acc"), "mean"] == pytest.approx(51.0)  # the later file's rows
    assert ("sebra", "avg_acc") not in got.index  # none of the earlier sebra rows kept
    assert got.loc[("erm", "worst_group_acc"), "mean"] == pytest.approx(6.0)  # other methods from the first
