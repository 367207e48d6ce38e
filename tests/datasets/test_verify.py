"""``sebra data verify``: counts tables, warnings on size deviations (exit 0), layout errors (exit 1)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dataset_fixtures import UC_FOLDERS, make_bar, make_celeba, make_urbancars, write_image

from sebra.cli.verify import main


def _rows(stdout: str) -> dict[str, list[str]]:
    """Table rows by their first cell's leading token (group / class id or 'total')."""
    out = {}
    for line in stdout.splitlines():
        parts = line.split()
        if parts and (parts[0].isdigit() or parts[0] == "total"):
            out[parts[0]] = parts[-3:] if len(parts) >= 3 else parts[1:]
    return out


def test_urbancars_counts_and_size_warnings(tmp_path: Path, capsys) -> None:
    make_urbancars(tmp_path)
    assert main(["urbancars", str(tmp_path)]) == 0
    cap = capsys.readouterr()
    rows = _rows(cap.out)
    # fixture: 4 train, 1 val, 2 test images per group folder
    assert all(rows[str(g)] == ["4", "1", "2"] for g in range(8))
    assert rows["total"] == ["32", "8", "16"]
    assert "0 obj-urban_bg-urban_co_occur_obj-urban" in cap.out
    assert (
        "warning: UrbanCars train obj-urban_bg-urban_co_occur_obj-urban: 4 images, published 3610" in cap.err
    )
    assert cap.out.rstrip().endswith("ok (24 warning(s))")


def test_layout_error_exits_1(tmp_path: Path, capsys) -> None:
    make_urbancars(tmp_path)
    d = tmp_path / "urbancars" / "bg-0.5_co_occur_obj-0.5" / "test" / UC_FOLDERS[6]
    for p in d.iterdir():
        p.unlink()
    d.rmdir()
    assert main(["urbancars", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("sebra data verify: error: UrbanCars:") and UC_FOLDERS[6] in err


def test_decode_finds_a_broken_image(tmp_path: Path, capsys) -> None:
    make_bar(tmp_path)
    bad = tmp_path / "test" / "pole vaulting_6.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    assert main(["bar", str(tmp_path)]) == 0  # without --decode only existence is checked
    capsys.readouterr()
    assert main(["bar", str(tmp_path), "--decode"]) == 1
    assert f"{bad}" in capsys.readouterr().err


def test_bar_per_class_table(tmp_path: Path, capsys) -> None:
    make_bar(tmp_path)
    assert main(["bar", str(tmp_path), "--val-fraction", "0.2"]) == 0
    cap = capsys.readouterr()
    lines = [ln for ln in cap.out.splitlines() if ln.startswith("3 ")]
    assert lines and lines[0].split()[-3:] == ["4", "1", "2"]  # pole vaulting: 5 train -> 4 + 1 val, 2 test
    assert "pole vaulting" in lines[0]
    assert "warning: BAR train climbing: 5 images, published 326" in cap.err


def test_celeba_both_protocols(tmp_path: Path, capsys) -> None:
    rng = np.random.default_rng(0)
    attrs = rng.integers(0, 2, size=(40, 40)).astype(np.uint8)
    part = np.array([0] * 30 + [1] * 5 + [2] * 5)
    attrs[[30, 31, 35, 36], 9] = (0, 1, 0, 1)
    attrs[[0, 1], 9] = (0, 1)
    make_celeba(tmp_path, attrs, part)
    assert (
        main(
            ["celeba", str(tmp_path), "--protocol", "official", "--target", "Blond_Hair", "--biases", "Male"]
        )
        == 0
    )
    cap = capsys.readouterr()
    assert "warning: CelebA file list_attr_celeba.txt (md5" in cap.err
    assert "warning: CelebA official train: 30 images, published 162770" in cap.err
    rows = _rows(cap.out)
    g = 2 * attrs[:, 9].astype(int) + attrs[:, 20]
    for k in range(4):
        assert rows[str(k)] == [str(int((g[part == p] == k).sum())) for p in (0, 1, 2)]
    # without --target/--biases: the data module's defaults for the protocol (Blond_Hair x Male), the same table
    assert main(["celeba", str(tmp_path), "--protocol", "official"]) == 0
    assert _rows(capsys.readouterr().out) == rows
    from sebra.datasets.celeba import CelebADataModule

    official = CelebADataModule(str(tmp_path), protocol="official")
    assert (official.target, official.biases) == ("Blond_Hair", ("Male",))
    assert CelebADataModule(str(tmp_path)).target == "Smiling"  # multibias: Sebra's setting
    # multibias at the published sizes: train swallows all 40 images, so val lacks a class -> error, explained
    assert main(["celeba", str(tmp_path)]) == 1
    cap = capsys.readouterr()
    assert (
        "came up short" in cap.err
        and "error: CelebA multi-bias val" in cap.err
        and "has no samples" in cap.err
    )
    assert main(["celeba", str(tmp_path), "--ratios", "0.5", "0.5"]) == 1
    assert main(["celeba", str(tmp_path), "--target", "Smilling"]) == 1
    assert "no attribute 'Smilling'; valid names" in capsys.readouterr().err


def test_csv_missing_file_and_usage(tmp_path: Path, capsys) -> None:
    write_image(tmp_path / "a.jpg", 0)
    (tmp_path / "m.csv").write_text("path,label,split\na.jpg,0,train\nb.jpg,1,train\n")
    assert main(["csv", str(tmp_path / "m.csv")]) == 1
    assert "row 1 (line 3) names the image" in capsys.readouterr().err
    assert main(["imagenet", str(tmp_path)]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_folder_ok(tmp_path: Path, capsys) -> None:
    for cls in ("a", "b"):
        for i in range(5):
            write_image(tmp_path / cls / f"{i}.jpg", i)
    assert main(["folder", str(tmp_path), "--decode"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert rows["0"][-2:] == ["4", "1"] and rows["1"][-2:] == ["4", "1"]
    assert rows["total"][-2:] == ["8", "2"]
