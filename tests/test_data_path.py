"""The data path: every image file is decoded once per fit, scoring reads only active samples, the ranking state is
small.

Decodes are counted by replacing ``sebra.datasets.base.decode_image`` with a wrapper that appends each path to a log
file, so decodes in DataLoader worker processes are counted too.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image
from tiny_data import TINY_BIAS, TinyDataModule, tiny_splits
from torch.utils.data import Dataset
from trainers import quiet_trainer

from sebra import SebraModule
from sebra.datasets import base
from sebra.datasets.base import ImageDataset
from sebra.datasets.datamodule import SebraDataModule
from sebra.ranking import RankingController

TINY = {
    "backbone": "test_resnet",
    "rank_optimizer": "adam",
    "rank_lr": 1e-2,
    "p_critical": 0.9,
    "max_steps": 4,
    "epochs": 1,
    "gap": 1,
    "temperature": 0.1,
    "optimizer": "adam",
    "lr": 1e-3,
}


def _trainer(root: Path, *callbacks: Callback) -> L.Trainer:
    return quiet_trainer(root, logger=False, callbacks=list(callbacks))


# --- each file decoded once ---------------------------------------------------------------------------------------
class FileTinyDataModule(SebraDataModule):
    """:func:`tiny_splits` written as PNG files and read back through the uint8 cache (a file-based data set)."""

    def __init__(self, root: str, **kwargs: object) -> None:
        super().__init__(batch_size=4, augment="crop_flip", image_size=None, seed=2, **kwargs)
        self.root = root

    def build_splits(self) -> dict[str, ImageDataset]:
        out = {}
        for name, ds in tiny_splits().items():
            paths = []
            for i in range(len(ds)):
                p = Path(self.root) / name / f"{int(ds.indices[i])}.png"
                if not p.exists():
                    p.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(ds.load_image(i).permute(1, 2, 0).numpy()).save(p)
                paths.append(str(p))
            out[name] = ImageDataset(
                ds.table.assign(path=paths), cache=True, bias=TINY_BIAS, name=f"files-{name}"
            )
        return out


@pytest.mark.parametrize("num_workers", [0, 2])
def test_every_file_is_decoded_once_per_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, num_workers: int
) -> None:
    log = tmp_path / "decodes.log"
    decode = base.decode_image

    def counting_decode(path, size=None):
        with open(log, "a") as fh:  # append: worker processes write here too
            fh.write(f"{path}\n")
        return decode(path, size)

    dm = FileTinyDataModule(str(tmp_path / "images"), num_workers=num_workers)
    dm.setup("fit")  # writes the files (decodes nothing: the tiny data are in memory)
    files = sorted(str(p) for p in (tmp_path / "images").rglob("*.png"))
    assert len(files) == 16 + 16 + 16
    monkeypatch.setattr(base, "decode_image", counting_decode)
    dm = FileTinyDataModule(str(tmp_path / "images"), num_workers=num_workers)  # fresh caches
    model = SebraModule(**TINY)
    trainer = _trainer(tmp_path)
    trainer.fit(model, datamodule=dm)
    trainer.test(model, datamodule=dm, verbose=False)
    assert model.controller.step >= 3  # several ranking steps (train + scoring passes) and a Stage 2 epoch
    counts = Counter(log.read_text().split())
    assert sorted(counts) == files  # train, val and test files all read...
    assert set(counts.values()) == {1}  # ...exactly once each, over the whole fit


# --- scoring reads only the active samples ------------------------------------------------------------------------
class Recording(Dataset):
    def __init__(self, base: Dataset) -> None:
        self.base, self.seen = base, []

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        self.seen.append(int(i))
        return self.base[i]

    def __getattr__(self, name: str):
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


class RecordingDataModule(TinyDataModule):
    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        for name in ("train_dataset", "train_eval_dataset"):
            if not isinstance(getattr(self, name), Recording):
                setattr(self, name, Recording(getattr(self, name)))


class ActiveBeforeScoring(Callback):
    """Runs before the module's ``on_train_epoch_end`` (where scoring happens): the active set and read counts."""

    def __init__(self) -> None:
        self.active: list[torch.Tensor] = []
        self.marks: list[tuple[int, int]] = []

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: SebraModule) -> None:
        if pl_module.stage == "rank":
            dm = trainer.datamodule
            self.active.append(pl_module.controller.active.clone())
            self.marks.append((len(dm.train_eval_dataset.seen), len(dm.train_dataset.seen)))


def test_scoring_reads_each_active_sample_once_and_nothing_else(tmp_path: Path) -> None:
    dm = RecordingDataModule(batch_size=4)
    probe = ActiveBeforeScoring()
    model = SebraModule(**TINY)
    _trainer(tmp_path, probe).fit(model, datamodule=dm)
    eval_seen = dm.train_eval_dataset.seen
    ends = [m[0] for m in probe.marks[1:]] + [len(eval_seen)]
    sizes = []
    for (start, _), end, active in zip(probe.marks, ends, probe.active):
        scored = eval_seen[start:end]
        assert (
            sorted(scored) == torch.nonzero(active).squeeze(1).tolist()
        )  # each active sample once, no other
        sizes.append(len(scored))
    assert len(sizes) == model.controller.step >= 3 and min(sizes) < len(
        dm.train_dataset
    )  # eliminations happened
    # The training view is read only by the training passes: between two scorings, one step's N draws, no more.
    draws = [b - a for (_, a), (_, b) in zip(probe.marks, probe.marks[1:])]
    assert draws and all(d == 16 for d in draws)


# --- the ranking state stays small --------------------------------------------------------------------------------
def test_ranking_state_for_200k_samples_is_under_50_mb() -> None:
    n = 200_000
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (n,), generator=g)
    groups = torch.randint(0, 40, (n,), generator=g)
    ctl = RankingController(
        labels, num_classes=10, max_steps=50, groups=groups, indices=torch.randperm(n, generator=g) * 3
    )
    for _ in range(10):  # ten steps of history (a few hundred bytes each)
        ctl.update(torch.arange(n), torch.rand(n, generator=g) * 0.76)
    buf = io.BytesIO()
    torch.save(ctl.state_dict(), buf)
    size = buf.tell()
    assert size < 50e6, f"{size / 1e6:.1f} MB"
    back = RankingController(labels, num_classes=10, max_steps=50, groups=groups, indices=ctl.indices)
    buf.seek(0)
    back.load_state_dict(
        torch.load(buf, weights_only=True)
    )  # plain tensors and lists: loadable with weights_only
    assert torch.equal(back.elim_step, ctl.elim_step) and back.step == 10
    assert np.isfinite(back.rankings()["p_y"].to_numpy()).all()
