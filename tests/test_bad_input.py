"""Bad input as a new user would give it (issue 12): every case ends with one clear message naming the file, the field
or row and what was expected; nothing is written half way and no earlier result is lost; fits and benchmarks resume.

One test (or a few) per row of the issue's table, in its order; then the cases found while trying more of the same.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback

sys.path.insert(0, str(Path(__file__).parent / "datasets"))  # dataset_fixtures
from dataset_fixtures import make_bar, make_urbancars, write_image
from tiny_data import TinyDataModule, tiny_splits

from sebra import cli
from sebra.bench.config import load_config
from sebra.bench.sweep import run_bench
from sebra.bench.tables import main as tables_main
from sebra.cli.inspect import main as inspect_main
from sebra.cli.results import level_scores
from sebra.cli.verify import main as verify_main
from sebra.datasets.bar import read_bar, read_bar_torch
from sebra.datasets.base import BiasSpec, DatasetError, ImageDataset
from sebra.datasets.csv_manifest import read_manifest
from sebra.datasets.urbancars import read_urbancars
from sebra.export import load_rankings, save_rankings
from sebra.methods import ERMModule, GroupDROModule, JTTModule, SebraModule
from sebra.utils import files
from sebra.utils.files import _host, atomic_write, remove_stale_temporaries

TINY = {"backbone": "test_resnet", "max_steps": 2, "epochs": 2, "gap": 1, "rank_lr": 0.01}


def _tmp_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.name.endswith(".tmp"))


# ------------------------------------------------------------------------- sebra bench with 1 or 3 bias attributes
def _reattributed(ds: ImageDataset, k: int) -> ImageDataset:
    """The tiny split with ``k`` bias attributes: ``bg`` only (1), or bg, coobj and an always-aligned third (3)."""
    table = ds.table.copy()
    if k == 1:
        table = table.drop(columns="coobj")
        bias = BiasSpec(("bg",), ((0,), (1,)), (0.75,))
    else:
        table["third"] = table["label"]
        bias = BiasSpec(("bg", "coobj", "third"), ((0, 0, 0), (1, 1, 1)), (0.75, 0.75, 1.0))
    return ImageDataset(
        table, images=ds._images, bias=bias, class_names=ds.class_names, name=f"{ds.name}-{k}attr"
    )


class OneBiasData(TinyDataModule):
    def build_splits(self) -> dict[str, ImageDataset]:
        return {s: _reattributed(ds, 1) for s, ds in tiny_splits(self.data_seed).items()}


class ThreeBiasData(TinyDataModule):
    def build_splits(self) -> dict[str, ImageDataset]:
        return {s: _reattributed(ds, 3) for s, ds in tiny_splits(self.data_seed).items()}


@pytest.mark.parametrize("k", [1, 3])
def test_level_scores_skip_the_four_level_scheme_unless_two_attributes(k: int) -> None:
    train = _reattributed(tiny_splits()["train"], k)
    lv3 = train.bias.levels(train.labels, train.attrs, scheme=3).numpy()
    from sebra.scoring import confidence_rankings

    perfect = confidence_rankings(train.indices, train.labels, 1.0 - lv3 / 10)
    with pytest.warns(UserWarning, match=rf"has {k} bias attribute\(s\).*the 4-level scheme needs exactly 2"):
        s = level_scores(perfect, train)
    assert set(s) == {"kendall_tau_b_3", "weighted_tau_3"}
    assert s["kendall_tau_b_3"] == pytest.approx(1.0)
    no_bias = ImageDataset(train.table, images=train._images, name="plain")
    with pytest.warns(UserWarning, match="'plain' has no bias attributes"):
        assert level_scores(perfect, no_bias) == {}


@pytest.mark.parametrize("data", ["OneBiasData", "ThreeBiasData"])
def test_bench_writes_results_whatever_the_number_of_attributes(data: str, tmp_path: Path) -> None:
    config = {
        "data": {"class_path": f"test_bad_input.{data}", "init_args": {"batch_size": 8}},
        "trainer": {"accelerator": "cpu"},
        "methods": {"sebra": {"model": {"class_path": "sebra.methods.sebra.SebraModule", "init_args": TINY}}},
    }
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(config))
    cfg = load_config(tmp_path / "toy.yaml")
    out = tmp_path / "r.csv"
    earlier = pd.DataFrame(
        {"method": "erm", "seed": 7, "metric": ["worst_group_acc", "seconds"], "value": [1.0, 2.0]}
    )
    earlier.to_csv(out, index=False)
    with pytest.warns(UserWarning, match="the 4-level scheme needs exactly 2"):
        res = run_bench(
            cfg,
            ["sebra"],
            [0],
            out=out,
            ranking_out=tmp_path / "rk.csv",
            runs_dir=tmp_path / "runs",
            dataset="toy",
            progress=False,
        )
    wide = res[res["method"] == "sebra"].set_index("metric")["value"]
    assert "seconds" in wide and "worst_group_acc" in wide and -1 <= wide["kendall_tau_b_3"] <= 1
    assert "kendall_tau_b" not in wide  # skipped, not made up
    back = pd.read_csv(out)
    assert len(back[back["method"] == "erm"]) == 2  # the earlier result is still there
    assert pd.read_csv(tmp_path / "rk.csv")["levels"].tolist() == [3]
    assert _tmp_files(tmp_path) == []


# --------------------------------------------------------------------------------------- CSV manifest: labels
@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    names = []
    for i in range(6):
        write_image(tmp_path / "img" / f"{i}.png", i, fmt="PNG")
        names.append(f"img/{i}.png")
    return names


def _manifest(tmp_path: Path, rows: list[str], header: str = "path,label,split") -> Path:
    p = tmp_path / "m.csv"
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (
            ["0", "1", "cat", "0", "1", "0"],
            r"m\.csv: labels mix class ids and class names: row 0 \(line 2\) has '0', "
            r"row 2 \(line 4\) has 'cat'; labels must be all integers",
        ),
        (
            ["0", "1", "-1", "0", "1", "0"],
            r"m\.csv: row 2 \(line 4\) label -1 is negative; expected a class id >= 0",
        ),
    ],
    ids=["ids-and-names", "negative"],
)
def test_manifest_bad_labels_name_the_rows(
    tmp_path: Path, images: list[str], labels: list[str], message: str
) -> None:
    rows = [f"{p},{lab},{'train' if i < 4 else 'val'}" for i, (p, lab) in enumerate(zip(images, labels))]
    with pytest.raises(DatasetError, match=message):
        read_manifest(_manifest(tmp_path, rows))


# ----------------------------------------------------------------------------------- CSV manifest: duplicates
def test_manifest_image_in_train_and_test_names_both_rows(tmp_path: Path, images: list[str]) -> None:
    rows = [
        f"{images[0]},0,train",
        f"{images[1]},1,train",
        f"{images[2]},0,val",
        f"{images[3]},1,val",
        f"./{images[0]},0,test",
        f"{images[1]},1,test",
    ]
    with pytest.raises(
        DatasetError,
        match=r"rows 0 \(line 2\) and 4 \(line 6\) both list the image .*0\.png "
        r"\(split 'train' vs 'test'\); expected each image once",
    ):
        read_manifest(_manifest(tmp_path, rows))


def test_manifest_image_twice_with_two_labels_is_refused(tmp_path: Path, images: list[str]) -> None:
    rows = [f"{images[0]},0,train", f"{images[0]},1,train", f"{images[2]},0,val", f"{images[3]},1,val"]
    with pytest.raises(
        DatasetError, match=r"rows 0 \(line 2\) and 1 \(line 3\) both list .*\(label '0' vs '1'\)"
    ):
        read_manifest(_manifest(tmp_path, rows))


def test_manifest_exact_repeat_of_a_row_is_a_warning(tmp_path: Path, images: list[str], capsys) -> None:
    rows = [
        f"{images[0]},0,train",
        f"{images[1]},1,train",
        f"{images[0]},0,train",
        f"{images[2]},0,val",
        f"{images[3]},1,val",
    ]
    path = _manifest(tmp_path, rows)
    with pytest.warns(UserWarning, match=r"row 2 \(line 4\) repeats row 0 \(line 2\) exactly .*ignored"):
        splits = read_manifest(path)
    assert len(splits["train"]) == 2 and splits["train"].indices.tolist() == [0, 1]
    assert verify_main(["csv", str(path)]) == 0
    assert "warning: manifest" in capsys.readouterr().err


# ---------------------------------------------------------------------- empty / corrupt CSV files of every kind
def test_empty_manifest_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("")
    with pytest.raises(
        DatasetError,
        match=r"manifest .*m\.csv is empty \(0 bytes\); expected a CSV file with a header "
        r"path,label",
    ):
        read_manifest(tmp_path / "m.csv")
    (tmp_path / "m.csv").write_text("\n\n")
    with pytest.raises(DatasetError, match=r"m\.csv holds no CSV header"):
        read_manifest(tmp_path / "m.csv")


@pytest.mark.parametrize(
    "content, match",
    [
        (
            b"",
            (
                r"rankings file .*rankings\.csv is empty \(0 bytes\); expected a CSV file with a header "
                r"index,label,rank,position,p_y"
            ),
        ),
        (b"index,label,rank,position,p_y\n", r"rankings\.csv has a header but no rows"),
        (
            b"index,label,rank,position,p_y\n1,0,1,1,0.5\n2,0,2,2,0.4,9,9\n",
            r"rankings\.csv is not a well-formed CSV table \(Expected 5 fields in line 3, saw 7\)",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", r"rankings\.csv is not a text \(UTF-8\) CSV file"),
    ],
)
def test_empty_or_corrupt_rankings_name_the_file(tmp_path: Path, content: bytes, match: str, capsys) -> None:
    path = tmp_path / "rankings.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_rankings(path)
    assert inspect_main([str(path), "--out", str(tmp_path / "report")]) == 1
    assert "sebra inspect: error:" in capsys.readouterr().err
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(
    "content, match",
    [
        (
            b"",
            r"results file .*r\.csv is empty \(0 bytes\); expected a CSV file with a header method,seed,metric,value",
        ),
        (
            b"method,seed,metric,value\nerm,0,seconds,1\nerm,1,seconds,2,3,4\n",
            r"r\.csv is not a well-formed CSV table \(Expected 4 fields in line 3, saw 6\)",
        ),
    ],
)
def test_empty_or_corrupt_results_file_names_it_and_stays(
    tmp_path: Path, content: bytes, match: str, capsys
) -> None:
    out = tmp_path / "r.csv"
    out.write_bytes(content)
    assert cli.main(["bench", "--dataset", "builtin", "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sebra bench: error: results file") and re.search(match, err)
    assert (
        tables_main(["--dataset", "builtin", "--results", str(out), "--plot", str(tmp_path / "p.png")]) == 2
    )
    assert "tables: results file" in capsys.readouterr().err
    assert out.read_bytes() == content and _tmp_files(tmp_path) == []  # nothing overwritten, nothing left


# ----------------------------------------------------------------------------- rankings.csv values out of range
def _rankings(n: int = 4) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "index": np.arange(n),
            "label": [0, 0, 1, 1][:n],
            "rank": [1, 2, 1, 2][:n],
            "position": [1, 2, 1, 2][:n],
            "p_y": [0.9, 0.5, 0.8, 0.3][:n],
        }
    )


@pytest.mark.parametrize(
    "column, value, match",
    [
        (
            "p_y",
            1.7,
            r"column 'p_y' holds 1.7 on (line 3|row 1) \(dataset index 1\); expected a probability in \[0, 1\]",
        ),
        ("p_y", -0.3, r"column 'p_y' holds -0.3 on (line 3|row 1) .*expected a probability in \[0, 1\]"),
        (
            "rank",
            0,
            (
                r"column 'rank' holds 0 on (line 3|row 1) .*expected an elimination step >= 1 \(or -1: never "
                r"eliminated\)"
            ),
        ),
        ("rank", -5, r"column 'rank' holds -5 on (line 3|row 1)"),
        ("index", -4, r"column 'index' holds -4 on (line 3|row 1) .*expected a dataset index >= 0"),
        ("label", -1, r"column 'label' holds -1 on (line 3|row 1) .*expected a class id >= 0"),
    ],
)
def test_rankings_values_out_of_range(tmp_path: Path, column: str, value, match: str, capsys) -> None:
    df = _rankings()
    df.loc[1, column] = value
    path = tmp_path / "rankings.csv"
    df.to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"rankings\.csv: " + match.replace("(line 3|row 1)", "line 3")):
        load_rankings(path)
    assert inspect_main([str(path), "--out", str(tmp_path / "report")]) == 1
    assert match.split(" holds")[0].replace("\\", "") in capsys.readouterr().err
    assert not (tmp_path / "report").exists()
    with pytest.raises(ValueError, match=match):
        SebraModule(**{**TINY, "rankings": str(path)})
    with pytest.raises(
        ValueError, match=r"SebraModule\(rankings=\.\.\.\): " + match.replace("(line 3|row 1)", "row 1")
    ):
        SebraModule(**{**TINY, "rankings": df})


def test_rankings_positions_must_number_each_class(tmp_path: Path) -> None:
    df = _rankings()
    df["position"] = 1
    path = tmp_path / "rankings.csv"
    df.to_csv(path, index=False)
    with pytest.raises(
        ValueError,
        match=r"rankings\.csv: column 'position' of class 0: position 1 appears 2 times; "
        r"expected each of 1..2 once",
    ):
        load_rankings(path)
    df["position"] = [1, 3, 1, 2]
    with pytest.raises(ValueError, match=r"class 0: position 2 is missing \(the highest is 3\)"):
        SebraModule(**{**TINY, "rankings": df})


def _train_rankings() -> pd.DataFrame:
    t = tiny_splits()["train"]
    df = pd.DataFrame({"index": t.indices.numpy(), "label": t.labels.numpy(), "rank": 1, "p_y": 0.5})
    df["position"] = df.groupby("label").cumcount() + 1
    return df


def test_rankings_rows_that_are_not_training_samples_are_refused(make_trainer_fast) -> None:
    df = _train_rankings()
    extra = pd.DataFrame(
        {
            "index": [99999],
            "label": [0],
            "rank": [1],
            "p_y": [0.5],
            "position": [int((df["label"] == 0).sum()) + 1],
        }
    )
    df = pd.concat([df, extra], ignore_index=True)
    with pytest.raises(
        ValueError,
        match=r"SebraModule\(rankings=...\): row 16 \(dataset index 99999\) is not a "
        r"training sample of 'tiny-train'.*expected one row per training sample",
    ):
        make_trainer_fast().fit(SebraModule(**{**TINY, "rankings": df}), datamodule=TinyDataModule())


def test_rankings_label_beyond_the_classes_is_refused(make_trainer_fast) -> None:
    df = _train_rankings()
    df.loc[df["label"] == 1, "label"] = 5
    with pytest.raises(ValueError, match="another label than the training data"):
        make_trainer_fast().fit(SebraModule(**{**TINY, "rankings": df}), datamodule=TinyDataModule())


@pytest.fixture
def make_trainer_fast(tmp_path: Path):
    import lightning as L

    def make(**kw) -> L.Trainer:
        return L.Trainer(
            max_epochs=-1,
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            default_root_dir=str(tmp_path),
            **kw,
        )

    return make


# ------------------------------------------------------------------------------------------- BAR .torch file
@pytest.fixture(scope="module")
def bar_file(tmp_path_factory) -> tuple[Path, dict]:
    root = make_bar(tmp_path_factory.mktemp("bar") / "BAR")
    obj = {}
    for split in ("train", "test"):
        ds = read_bar(root, split)
        obj[split] = [
            [str(Path(p).relative_to(root.parent)) for p in ds.table["path"]],
            ds.table["label"].tolist(),
        ]
    return root / "dataset0.01.torch", obj


@pytest.mark.parametrize(
    "labels, match",
    [
        (
            lambda y: ["climbing"] + y[1:],
            (
                r"train label at position 0 is 'climbing'; expected integer class ids 0..5 "
                r"\(climbing, diving, fishing, pole vaulting, racing, throwing"
            ),
        ),
        (
            lambda y: [float(v) + 0.5 for v in y],
            r"train label at position 0 is 0.5; expected integer class ids 0..5",
        ),
        (lambda y: y[:3] + [9] + y[4:], r"train label at position 3 is 9; expected integer class ids 0..5"),
        (
            lambda y: torch.tensor(y, dtype=torch.float32) / 2,
            r"train label at position 5 is 0.5",
        ),  # tensor of halves: 0, 0, 0, 0, 0, 0.5
    ],
)
def test_bar_torch_labels(bar_file, labels, match: str) -> None:
    path, obj = bar_file
    torch.save({**obj, "train": [obj["train"][0], labels(obj["train"][1])]}, path)
    with pytest.raises(DatasetError, match=r"BAR file .*dataset0\.01\.torch: " + match):
        read_bar_torch(path, "train")


def test_bar_torch_integral_float_labels_are_read_exactly(bar_file) -> None:
    path, obj = bar_file
    torch.save({**obj, "train": [obj["train"][0], [float(v) for v in obj["train"][1]]]}, path)
    assert read_bar_torch(path, "train").labels.tolist() == obj["train"][1]


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", r"dataset0\.01\.torch is empty \(0 bytes\); expected IRMCon's torch\.save"),
        (
            b"paths,labels\nBAR/train/climbing_0.jpg,0\n",
            r"is not a file written by torch\.save \(it starts with b'paths,la'\)",
        ),
    ],
)
def test_bar_torch_empty_or_text_file(bar_file, content: bytes, match: str) -> None:
    path, _ = bar_file
    path.write_bytes(content)
    with pytest.raises(DatasetError, match=r"BAR file .*" + match):
        read_bar_torch(path, "train")


# ------------------------------------------------------------------------------------- constructor arguments
@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": -1}, r"SebraModule: epochs must be >= 1 \(an integer; Stage 2 epochs\), got -1"),
        (
            {"epochs": 0},
            r"SebraModule: epochs must be >= 1 \(Stage 2 epochs\), got 0; for Stage 1 only pass rank_only=True",
        ),
        ({"epochs": 2.5}, r"epochs must be >= 1 \(an integer.*got 2.5"),
        (
            {"ce_weight": -1},
            r"SebraModule: ce_weight must be >= 0 \(a number; the weight lambda .*\), got -1",
        ),
        ({"batch_size": 0}, r"SebraModule: batch_size must be >= 1 or None \(an integer\), got 0"),
        (
            {"gap": 2.5},
            (
                r"SebraModule: gap must be >= 1 \(an integer; positives come from rank r \+ gap or higher\), "
                r"got 2.5"
            ),
        ),
        (
            {"backbone": "resnet5O"},
            (
                r"SebraModule: unknown model: backbone 'resnet5O' is not a timm model name; close "
                r"names: resnet50"
            ),
        ),
        ({"temperature": 0}, r"temperature must be > 0"),
        ({"lr": -0.1}, r"lr must be > 0 \(a number\), got -0.1"),
        ({"optimizer": "adamm"}, r"optimizer must be one of sgd, adam, adamw, got 'adamm'"),
        ({"max_steps": 2.5}, r"max_steps must be"),
        ({"rankings": 3}, r"rankings must be a ranking table \(DataFrame\) or a rankings.csv path, got int"),
    ],
)
def test_sebra_constructor_refuses_with_the_allowed_range(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SebraModule(**{**TINY, **kwargs})


def test_stage_one_only_has_its_own_switch() -> None:
    model = SebraModule(**{**TINY, "rank_only": True})  # what `sebra rank` runs
    assert model.hparams.epochs == 0 and model.hparams.rank_only


@pytest.mark.parametrize(
    "cls, kwargs, match",
    [
        (ERMModule, {"epochs": 0}, r"ERMModule: epochs must be >= 1 \(an integer\), got 0"),
        (ERMModule, {"backbone": "no_such_net"}, r"ERMModule: unknown model: backbone 'no_such_net'"),
        (ERMModule, {"lr_schedule": "Cosine"}, r"lr_schedule must be one of none, cosine, got 'Cosine'"),
        (JTTModule, {"id_epochs": 0}, r"JTTModule: id_epochs must be >= 1"),
        (JTTModule, {"id_lr": 0}, r"JTTModule: id_lr must be > 0 or None"),
        (GroupDROModule, {"eta": -1}, r"GroupDROModule: eta must be >= 0"),
        (GroupDROModule, {"weight_decay": -1}, r"GroupDROModule: weight_decay must be >= 0"),
    ],
)
def test_other_methods_refuse_with_the_allowed_range(cls, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(backbone=kwargs.pop("backbone", "test_resnet"), **kwargs)


# ------------------------------------------------------------------------------------------------- sebra fit
class Killed(RuntimeError):
    pass


class CrashAt(Callback):
    """Raises at the start of epoch ``epoch``, as a killed job would stop (``last.ckpt`` holds epoch - 1)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            raise Killed(f"killed at epoch {self.epoch}")


def _fit_config(tmp_path: Path, crash_at: int | None = None, **model) -> Path:
    trainer = {
        "accelerator": "cpu",
        "max_epochs": -1,
        "num_sanity_val_steps": 0,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path / "runs"),
    }
    if crash_at is not None:
        trainer["callbacks"] = [{"class_path": "test_bad_input.CrashAt", "init_args": {"epoch": crash_at}}]
    cfg = {
        "seed_everything": 0,
        "trainer": trainer,
        "model": {"class_path": "sebra.SebraModule", "init_args": {**TINY, "p_critical": 0.999, **model}},
        "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
    }
    path = tmp_path / ("crash.yaml" if crash_at is not None else "fit.yaml")
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize(
    "args, match",
    [
        (
            ["--model.init_args.p_critical", "1.5"],
            r"^sebra fit: error: p_critical must lie in \(0, 1\), got 1.5 \(",
        ),
        (
            ["--model.init_args.gap", "2.5"],
            r"^sebra fit: error: --model.init_args.gap \(SebraModule\): Expected an int. Got value: 2.5;",
        ),
        (["--model.init_args.ce_weight", "-1"], r"^sebra fit: error: SebraModule: ce_weight must be >= 0"),
        (
            ["--model.init_args.backbone", "resnet5O"],
            r"^sebra fit: error: SebraModule: unknown model: backbone",
        ),
        (
            ["--model.init_args.epochs", "0"],
            r"^sebra fit: error: SebraModule: epochs must be >= 1 \(Stage 2 epochs\)",
        ),
        (
            ["--model.init_args.rank_only", "true"],
            r"^sebra fit: error: --model.init_args.rank_only trains Stage 1 only",
        ),
        (["--ckpt_path", "nope.ckpt"], r"^sebra fit: error: --ckpt_path nope.ckpt does not exist"),
        (
            ["--ckpt_path", "last"],
            r"^sebra fit: error: --ckpt_path last: no version_\*/checkpoints/last.ckpt under",
        ),
    ],
)
def test_sebra_fit_bad_value_is_one_message_exit_2(
    tmp_path: Path, args: list[str], match: str, capsys
) -> None:
    assert cli.main(["fit", "--config", str(_fit_config(tmp_path)), *args]) == 2
    err = capsys.readouterr().err
    line = [ln for ln in err.splitlines() if ln.startswith("sebra fit:")]
    assert len(line) == 1 and re.search(match, line[0]), err
    assert "Traceback" not in err and not (tmp_path / "runs" / "lightning_logs").exists()


def test_sebra_fit_debug_shows_the_traceback(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(ValueError, match="p_critical must lie in"):
        cli.main(
            ["fit", "--config", str(_fit_config(tmp_path)), "--model.init_args.p_critical", "1.5", "--debug"]
        )
    monkeypatch.setenv("SEBRA_DEBUG", "1")
    with pytest.raises(ValueError, match="p_critical must lie in"):
        cli.main(["fit", "--config", str(_fit_config(tmp_path)), "--model.init_args.p_critical", "1.5"])


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_sebra_fit_resumes_from_the_command_line_in_the_same_folder(tmp_path: Path, capsys) -> None:
    with pytest.raises(Killed, match="killed at epoch 3"):
        cli.main(["fit", "--config", str(_fit_config(tmp_path, crash_at=3))])
    run = tmp_path / "runs" / "lightning_logs" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file() and (run / "rankings.csv").is_file()
    before = (run / "metrics.csv").read_text()
    stale = run / f".rankings.csv.{_host()}.{_dead_pid()}.abc.tmp"
    stale.write_text("half a ta")  # what a kill -9 during the rankings write leaves
    capsys.readouterr()
    assert (
        cli.main(
            [
                "fit",
                "--config",
                str(_fit_config(tmp_path)),
                "--ckpt_path",
                str(run / "checkpoints" / "last.ckpt"),
            ]
        )
        == 0
    )
    cap = capsys.readouterr()
    assert f"resuming from {run / 'checkpoints' / 'last.ckpt'} in {run}" in cap.err
    assert sorted(p.name for p in (tmp_path / "runs" / "lightning_logs").iterdir()) == ["version_0"]
    assert (run / "metrics.1.csv").read_text() == before  # the interrupted part's log is kept
    assert (run / "metrics.csv").is_file() and not stale.exists()
    assert pd.read_csv(run / "metrics.csv")["epoch"].dropna().min() == 3  # continued, not restarted
    assert pd.read_csv(run / "metrics.1.csv")["epoch"].dropna().max() == 2
    assert f"rankings: {run / 'rankings.csv'}" in cap.out
    assert load_rankings(run / "rankings.csv")["index"].nunique() == 16


# ----------------------------------------------------------------------------------------- sebra data verify
def test_verify_zero_byte_image_fails_without_decode(tmp_path: Path, capsys) -> None:
    make_bar(tmp_path)
    bad = tmp_path / "test" / "racing_6.jpg"
    bad.write_bytes(b"")
    assert verify_main(["bar", str(tmp_path)]) == 1
    assert f"image file {bad} is empty (0 bytes)" in capsys.readouterr().err


def test_verify_says_images_were_not_decoded(tmp_path: Path, capsys) -> None:
    make_bar(tmp_path)
    bad = tmp_path / "test" / "racing_6.jpg"
    bad.write_bytes(bad.read_bytes()[:40])  # truncated JPEG
    assert verify_main(["bar", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "images found (listed and not empty, not decoded: a truncated or corrupt image shows only with --decode)"
        in out
    )
    assert verify_main(["bar", str(tmp_path), "--decode"]) == 1
    assert str(bad) in capsys.readouterr().err


# ------------------------------------------------------------------------------ kill during the rankings write
def test_kill_during_rankings_write_leaves_a_temporary_the_next_write_removes(tmp_path: Path) -> None:
    target = tmp_path / "rankings.csv"
    save_rankings(_rankings(), target)
    # sebra/utils/files.py alone (pandas, no torch): the child starts in about a second
    script = textwrap.dedent(f"""
        import importlib.util, time
        from pathlib import Path
        spec = importlib.util.spec_from_file_location("files", {str(Path(files.__file__))!r})
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        def slow(tmp):
            Path(tmp).write_text("index,label")
            print("writing", flush=True)
            time.sleep(60)
        mod.atomic_write({str(target)!r}, slow)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
        live = _tmp_files(tmp_path)
        assert len(live) == 1
        assert remove_stale_temporaries(tmp_path) == []  # a live writer's file is left alone
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        proc.kill()
    assert _tmp_files(tmp_path) == live  # what kill -9 leaves behind
    pd.testing.assert_frame_equal(load_rankings(target), _rankings())  # the earlier table is intact
    save_rankings(_rankings(3), target)  # the next write of the file (e.g. the resumed run's) cleans up
    assert _tmp_files(tmp_path) == [] and len(load_rankings(target)) == 3


def test_old_style_temporaries_are_removed_only_when_old(tmp_path: Path) -> None:
    old, new = tmp_path / ".rankings.csv.k2j4h5g6.tmp", tmp_path / ".rankings.csv.z9y8x7w6.tmp"
    old.write_text("x")
    new.write_text("x")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert remove_stale_temporaries(tmp_path) == [old] and new.exists()


def test_atomic_write_names_its_temporary_after_host_and_process(tmp_path: Path) -> None:
    seen = []
    atomic_write(tmp_path / "a.csv", lambda tmp: (seen.append(Path(tmp).name), Path(tmp).write_text("x")))
    assert seen[0].startswith(".a.csv.") and f".{os.getpid()}." in seen[0] and seen[0].endswith(".tmp")


# ------------------------------------------------------------------------------------------- UrbanCars option
def test_urbancars_several_ratio_folders_names_the_options(tmp_path: Path, capsys) -> None:
    make_urbancars(tmp_path)
    make_urbancars(tmp_path, ratio_dirs={"train": "bg-0.9_co_occur_obj-0.9"}, splits=("train",))
    with pytest.raises(
        DatasetError,
        match=r"several ratio folders .* pick one with --train-dir "
        r"bg-0.95_co_occur_obj-0.95 \(sebra data verify\), --data.init_args.train_dir "
        r".* \(sebra fit\) or train_dir='bg-0.95_co_occur_obj-0.95' \(Python\)",
    ):
        read_urbancars(tmp_path, "train")
    assert verify_main(["urbancars", str(tmp_path)]) == 1
    assert "--train-dir" in capsys.readouterr().err
    assert (
        verify_main(["urbancars", str(tmp_path), "--train-dir", "bg-0.95"]) == 1
    )  # a bad name: message, no traceback
    assert (
        "sebra data verify: error: UrbanCars: train_dir (--train-dir) 'bg-0.95' is not a ratio folder name"
        in capsys.readouterr().err
    )
    assert verify_main(["urbancars", str(tmp_path), "--train-dir", "bg-0.95_co_occur_obj-0.95"]) == 0


# ------------------------------------------------------------------------- more of the same kind, found by trying
def test_manifest_index_column_repeated_names_both_rows(tmp_path: Path, images: list[str]) -> None:
    rows = [
        f"{images[0]},0,train,5",
        f"{images[1]},1,train,6",
        f"{images[2]},0,val,5",
        f"{images[3]},1,val,7",
    ]
    with pytest.raises(
        DatasetError, match=r"rows 0 \(line 2\) and 2 \(line 4\) both have index 5; expected a unique"
    ):
        read_manifest(_manifest(tmp_path, rows, header="path,label,split,index"))


def test_verify_empty_manifest_names_it(tmp_path: Path, capsys) -> None:
    (tmp_path / "m.csv").write_text("")
    assert verify_main(["csv", str(tmp_path / "m.csv")]) == 1
    assert "error: manifest" in (err := capsys.readouterr().err) and "m.csv is empty (0 bytes)" in err


def test_celeba_empty_kaggle_csv_names_it(tmp_path: Path) -> None:
    from dataset_fixtures import celeba_to_kaggle, make_celeba

    from sebra.datasets.celeba_files import load_celeba_metadata

    rng = np.random.default_rng(0)
    root = celeba_to_kaggle(
        make_celeba(tmp_path / "o", rng.integers(0, 2, (6, 40)), np.array([0, 0, 0, 1, 1, 2]), images=False),
        tmp_path / "k",
    )
    (root / "celeba" / "list_attr_celeba.csv").write_text("")
    with pytest.raises(
        DatasetError,
        match=r"CelebA attribute file .*list_attr_celeba\.csv is empty \(0 bytes\); "
        r"expected a CSV file with a header image_id,<40 attribute names>",
    ):
        load_celeba_metadata(root)


def test_bench_checks_every_method_before_the_first_run(tmp_path: Path, capsys) -> None:
    config = {
        "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
        "methods": {
            "erm": {
                "model": {
                    "class_path": "sebra.methods.erm.ERMModule",
                    "init_args": {"backbone": "test_resnet", "epochs": 1},
                }
            },
            "sebra": {
                "model": {"class_path": "sebra.methods.sebra.SebraModule", "init_args": {**TINY, "gap": 0}}
            },
            "jtt": {
                "model": {
                    "class_path": "sebra.methods.jtt.JTTModule",
                    "init_args": {"backbone": "test_resnet", "upweigth": 4},
                }
            },
        },
    }
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config))
    args = [
        "bench",
        "--dataset",
        "toy",
        "--config",
        str(path),
        "--out",
        str(tmp_path / "r.csv"),
        "--runs-dir",
        str(tmp_path / "runs"),
        "--no-progress",
    ]
    # a name or a type the schema refuses: found when the file is read, in any method of it
    assert cli.main([*args, "--methods", "erm,sebra"]) == 2
    assert (
        "methods.jtt.model.init_args: JTTModule got an unexpected argument 'upweigth' (did you mean 'upweight'?)"
        in capsys.readouterr().err
    )
    # a value only the constructor can refuse: found when the runs are built, before the first one
    config["methods"]["jtt"]["model"]["init_args"] = {"backbone": "test_resnet", "upweight": 4}
    path.write_text(yaml.safe_dump(config))
    assert cli.main([*args, "--methods", "erm,sebra"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"sebra bench: error: {path}: methods.sebra.model.init_args: SebraModule: gap must be >= 1 (an integer; positives come "
        "from rank r + gap or higher), got 0"
    )
    assert not (tmp_path / "r.csv").exists() and not (tmp_path / "runs").exists()  # nothing was trained


def test_sebra_rank_refused_setting_is_one_message(tmp_path: Path, capsys) -> None:
    assert cli.main(["rank", "--set", "gap=0", "--out", str(tmp_path / "rank")]) == 2
    err = capsys.readouterr().err
    assert "methods.sebra.model.init_args: SebraModule: gap must be >= 1" in err and "Traceback" not in err
    assert err.startswith("sebra rank: error: ") and err.count("\n") == 1
    assert cli.main(["rank", "--set", "gap=2.5", "--out", str(tmp_path / "rank")]) == 2
    assert (
        "methods.sebra.model.init_args.gap (SebraModule): Expected an int. Got value: 2.5"
        in capsys.readouterr().err
    )
    assert cli.main(["rank", "--set", "gapp=2", "--out", str(tmp_path / "rank")]) == 2
    assert (
        "methods.sebra.model.init_args: SebraModule got an unexpected argument 'gapp' (did you mean 'gap'?)"
        in capsys.readouterr().err
    )


def test_sebra_fit_missing_data_is_one_message_exit_1(tmp_path: Path, capsys) -> None:
    cfg = yaml.safe_load(_fit_config(tmp_path).read_text())
    cfg["data"] = {
        "class_path": "sebra.datasets.csv_manifest.CSVDataModule",
        "init_args": {"csv_path": "nope.csv"},
    }
    (tmp_path / "fit.yaml").write_text(yaml.safe_dump(cfg))
    assert cli.main(["fit", "--config", str(tmp_path / "fit.yaml")]) == 1
    err = capsys.readouterr().err
    assert "sebra fit: error: manifest nope.csv does not exist; expected a CSV with columns path,label" in err
    assert "Traceback" not in err


def test_sebra_fit_checkpoint_of_another_model_is_one_message(tmp_path: Path, capsys, make_trainer) -> None:
    erm = ERMModule(backbone="test_resnet", epochs=1)
    trainer = make_trainer(logger=False, default_root_dir=str(tmp_path / "erm"))
    trainer.fit(erm, datamodule=TinyDataModule())
    ckpt = tmp_path / "erm" / "checkpoints" / "last.ckpt"
    assert cli.main(["fit", "--config", str(_fit_config(tmp_path)), "--ckpt_path", str(ckpt)]) == 2
    err = capsys.readouterr().err
    assert f"sebra fit: error: --ckpt_path {ckpt} holds the weights of another model" in err
    assert "Traceback" not in err and "Missing key(s)" not in err


@pytest.mark.parametrize(
    "make",
    [
        lambda: SebraModule(**{**TINY, "epochs": 1}),
        lambda: ERMModule(backbone="test_resnet", epochs=2),
        lambda: JTTModule(backbone="test_resnet", id_epochs=1, epochs=1),
    ],
)
def test_resuming_a_finished_fit_trains_nothing_more(make, make_trainer_fast, tmp_path: Path) -> None:
    # The modules end the fit themselves (max_epochs=-1): resumed from the last.ckpt of a finished fit, they used to
    # train for ever. Now the fit ends at once and testing goes on from the restored checkpoints.
    first = make_trainer_fast()
    first.fit(make(), datamodule=TinyDataModule())
    epochs = first.current_epoch
    again = make_trainer_fast()
    model = make()
    again.fit(model, datamodule=TinyDataModule(), ckpt_path=str(tmp_path / "checkpoints" / "last.ckpt"))
    assert again.current_epoch == epochs and model.fit_finished()
    assert again.test(model, datamodule=TinyDataModule(), ckpt_path="best", verbose=False)[0]["test_acc"] >= 0


def test_manifest_from_a_spreadsheet(tmp_path: Path, images: list[str]) -> None:
    rows = [f"{images[0]},0,train", f"{images[1]},1,train", f"{images[2]},0,val", f"{images[3]},1,val"]
    path = _manifest(tmp_path, rows)
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # Excel's "CSV UTF-8" starts with a byte-order mark
    assert len(read_manifest(path)["train"]) == 2
    path.write_text(path.read_text(encoding="utf-8-sig").replace(",", ";"))
    with pytest.raises(
        DatasetError,
        match=r"lacks the column\(s\) \['path', 'label'\]; found \['path;label;split'\].*"
        r"\(the header is separated by ';'; a manifest is comma-separated\)",
    ):
        read_manifest(path)


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda c: c["data"].update(init_args="batch_size=8"),
            r"data.init_args must be a mapping .*got 'batch_size=8'",
        ),
        (
            lambda c: c["methods"]["erm"]["model"].update(init_args=[1, 2]),
            r"methods.erm.model.init_args must be a mapping .*got \[1, 2\]",
        ),
        (lambda c: c.update(trainer="cpu"), r"trainer must be a mapping"),
    ],
)
def test_bench_config_sections_that_are_not_mappings(tmp_path: Path, edit, match: str, capsys) -> None:
    config = {
        "data": {"class_path": "tiny_data.TinyDataModule", "init_args": {"batch_size": 8}},
        "methods": {
            "erm": {"model": {"class_path": "sebra.methods.erm.ERMModule", "init_args": {"epochs": 1}}}
        },
    }
    edit(config)
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(config))
    assert (
        cli.main(["bench", "--dataset", "toy", "--config", str(path), "--out", str(tmp_path / "r.csv")]) == 2
    )
    err = capsys.readouterr().err
    assert re.search(rf"^sebra bench: error: {re.escape(str(path))}: {match}", err) and "Traceback" not in err


def test_inspect_out_that_is_a_file(tmp_path: Path, capsys) -> None:
    save_rankings(_rankings(), tmp_path / "rankings.csv")
    (tmp_path / "afile").write_text("keep me")
    assert inspect_main([str(tmp_path / "rankings.csv"), "--out", str(tmp_path / "afile")]) == 1
    assert f"--out {tmp_path / 'afile'} is a file; expected a folder" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "keep me"
