"""Data-parallel Sebra: two ``ddp_spawn`` CPU processes agree with each other and with one process.

Spawned processes cannot hand Python objects back, so a :class:`Recorder` callback writes what each process saw and
decided (its Stage 1 draws, Stage 2 pairs, rankings, validation metrics, the ranker's state when scoring starts) to
``rank<r>.pt``. "Same weights" between one process and two: the DDP-vs-single comparison uses a backbone without
BatchNorm (``test_efficientnet_gn``: GroupNorm is per sample), where a step over the two processes' shares (batch 4
each, gradients averaged) is the same step as one process on batch 8; the ranks must then agree exactly and the
probabilities to float precision. The BatchNorm test checks instead that both processes score with the *same*
network (running statistics included).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from tiny_data import TinyDataModule, tiny_splits
from trainers import quiet_trainer

from sebra import SebraModule, load_rankings
from sebra.datasets.sharding import ShardSampler, shard_positions
from sebra.datasets.transforms import augment_batch
from sebra.ranking import ActiveSetSampler

SETTINGS = {
    "backbone": "test_efficientnet_gn",
    "rank_optimizer": "adam",
    "rank_lr": 3e-3,
    "p_critical": 0.6,
    "max_steps": 4,
    "epochs": 1,
    "gap": 1,
    "temperature": 0.1,
    "lr": 1e-3,
    "num_classes": 2,
}


class OddValDataModule(TinyDataModule):
    """The tiny data with 15 validation samples: two processes get shards of 8, one of them padded."""

    def build_splits(self):
        splits = tiny_splits(self.data_seed)
        splits["val"] = splits["val"].subset(range(15))
        return splits


class Recorder(Callback):
    """Records one process's view of the fit and writes it to ``<out>/rank<global rank>.pt`` at the end."""

    def __init__(self, out: str) -> None:
        self.out = str(out)
        self.draws: dict[int, list[int]] = {}
        self.pairs: list[tuple[int, int, int]] = []
        self.scoring_states: list[torch.Tensor] = []

    def setup(self, trainer: L.Trainer, pl_module: SebraModule, stage: str) -> None:
        torch.set_num_threads(1)  # each spawned process: one thread (2 shared cores)
        score = pl_module.ranking.score

        def recorded_score(host, **kwargs):
            sd = pl_module.ranker.state_dict()
            self.scoring_states.append(torch.cat([v.detach().double().flatten() for v in sd.values()]))
            return score(host, **kwargs)

        pl_module.ranking.score = recorded_score

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: SebraModule, batch: dict, batch_idx: int
    ) -> None:
        if pl_module.stage == "rank":
            self.draws.setdefault(trainer.current_epoch, []).extend(batch["index"].tolist())
        else:
            self.pairs += list(
                zip(
                    batch["anchor"]["index"].tolist(),
                    batch["positive"]["index"].tolist(),
                    batch["negative"]["index"].tolist(),
                )
            )

    def on_train_end(self, trainer: L.Trainer, pl_module: SebraModule) -> None:
        Path(self.out).mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "rankings": pl_module.rankings,
                "rankings_path": getattr(pl_module, "rankings_path", None),
                "draws": self.draws,
                "pairs": self.pairs,
                "scoring_states": self.scoring_states,
                "val": {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")},
                "world_size": trainer.world_size,
            },
            Path(self.out) / f"rank{trainer.global_rank}.pt",
        )


def _fit(root: Path, devices: int, batch_size: int, augment: str = "none", **settings: object) -> Path:
    dm = OddValDataModule(batch_size=batch_size, augment=augment, seed=3)
    trainer = quiet_trainer(
        root,
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        callbacks=[Recorder(str(root / "record"))],
    )
    trainer.fit(SebraModule(**{**SETTINGS, **settings}), datamodule=dm)
    return root


def _load(root: Path, rank: int) -> dict:
    return torch.load(root / "record" / f"rank{rank}.pt", weights_only=False)


def test_two_processes_rank_like_one(tmp_path: Path) -> None:
    one = _load(_fit(tmp_path / "single", devices=1, batch_size=8), 0)
    ddp = _fit(tmp_path / "ddp", devices=2, batch_size=4)
    r0, r1 = _load(ddp, 0), _load(ddp, 1)
    assert r0["world_size"] == r1["world_size"] == 2

    # Stage 1: both processes drew the same N positions per step and trained on complementary strided shares.
    assert one["draws"].keys() == r0["draws"].keys() == r1["draws"].keys() and len(one["draws"]) >= 3
    for step, drawn in one["draws"].items():
        assert len(drawn) == 16 and r0["draws"][step] == drawn[0::2] and r1["draws"][step] == drawn[1::2]

    # The same rankings on both processes, written once (global rank 0), and equal to the single-process ones.
    pd.testing.assert_frame_equal(r0["rankings"], r1["rankings"], check_exact=True)
    assert r0["rankings_path"] is not None and r1["rankings_path"] is None
    on_disk = load_rankings(r0["rankings_path"])
    pd.testing.assert_frame_equal(
        on_disk[r0["rankings"].columns.tolist()],
        r0["rankings"],
        check_exact=False,
        atol=1e-6,
        check_dtype=False,
    )
    a, b = one["rankings"], r0["rankings"]
    assert b["rank"].nunique() >= 3  # a ranking over several steps, not a single elimination
    pd.testing.assert_frame_equal(
        a[["index", "label", "rank", "position"]], b[["index", "label", "rank", "position"]]
    )
    np.testing.assert_allclose(a["p_y"].to_numpy(), b["p_y"].to_numpy(), atol=1e-5)

    # Stage 2: one pair table (same seeded generator everywhere), each process a strided share padded to equal size.
    table = one["pairs"]
    padded = table + table[: len(table) % 2]
    assert len(table) >= 8 and r0["pairs"] == padded[0::2] and r1["pairs"] == padded[1::2]

    # Validation metrics, synced over the two shards (15 samples: one padding row), equal those of a single process
    # evaluating the same weights (the DDP run's last checkpoint).
    assert r0["val"] == r1["val"] and {"val_acc", "val_wga"} <= r0["val"].keys()
    check = L.Trainer(
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=str(tmp_path / "check"),
    )
    ckpt = ddp / "logs" / "v" / "checkpoints" / "last.ckpt"
    single_eval = check.validate(
        SebraModule(**SETTINGS), datamodule=OddValDataModule(batch_size=8), ckpt_path=ckpt, verbose=False
    )[0]
    assert {k: single_eval[k] for k in r0["val"]} == pytest.approx(r0["val"], abs=0, nan_ok=True)


def test_processes_score_with_the_same_batchnorm_statistics(tmp_path: Path) -> None:
    # BatchNorm + augmentation + the official (sampler-drawn, train-mode) scoring: the processes' last training
    # batches differ, yet each ranking step must start scoring from identical parameters *and* running statistics,
    # and all processes must reach the same ranking.
    root = _fit(
        tmp_path,
        devices=2,
        batch_size=4,
        augment="crop_flip",
        backbone="test_resnet",
        scoring="official",
        rank_lr=1e-2,
        p_critical=0.75,
        max_steps=3,
        rank_only=True,
    )
    r0, r1 = _load(root, 0), _load(root, 1)
    assert len(r0["scoring_states"]) == len(r1["scoring_states"]) >= 2
    for s0, s1 in zip(r0["scoring_states"], r1["scoring_states"]):
        assert torch.equal(s0, s1)
    pd.testing.assert_frame_equal(r0["rankings"], r1["rankings"], check_exact=True)
    assert r0["draws"][0] != r1["draws"][0]  # different shares of the draws


# --- without spawning: sharding and augmentation streams ---------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 7, 8, 15])
def test_shard_positions_cover_every_sample_once(n: int) -> None:
    shards = [shard_positions(n, 3, r) for r in range(3)]
    assert len({len(p) for p, _ in shards}) == 1  # equal lengths: equal batch counts on every process
    kept = sorted(int(i) for p, v in shards for i in p[v])
    assert kept == list(range(n))
    with pytest.raises(ValueError, match="rank must lie in 0..2"):
        shard_positions(n, 3, 3)


def test_lightning_keeps_our_samplers_under_ddp() -> None:
    """Lightning wraps any other sampler in a DistributedSamplerWrapper (a second, shuffled sharding)."""
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False)
    dm = TinyDataModule()
    dm.setup("fit")
    dm.trainer = SimpleNamespace(world_size=2, global_rank=1)
    model = SebraModule(**SETTINGS)
    model.datamodule  # noqa: B018
    from sebra.ranking import RankingController

    ctl = RankingController(dm.train_dataset.labels, max_steps=3)
    ours = [
        dm.loader(dm.train_dataset, sampler=ActiveSetSampler(ctl, None, 2, 1)),
        dm.loader(dm.train_dataset, sampler=ShardSampler(range(4), 2, 1)),
        dm.val_dataloader(),
    ]
    plain = dm.loader(dm.train_dataset, batch_size=4, shuffle=True)
    requires = trainer._data_connector._requires_distributed_sampler
    assert requires(plain)  # the check is live for ordinary loaders
    assert not any(requires(loader) for loader in ours)
    batch = next(iter(dm.val_dataloader()))
    assert "valid" in batch and len(dm.val_dataloader().sampler) == 8


def test_augmentation_differs_per_process_but_the_generator_state_is_shared() -> None:
    x = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    outs, states = [], []
    for rank in (0, 1):
        dm = TinyDataModule(augment="crop_flip", seed=5)
        dm.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        outs.append(dm.batch_transform(x, train=True))
        states.append(dm.aug_generator.get_state())
    assert not torch.equal(outs[0], outs[1])  # independent augmentation on the two processes
    assert torch.equal(states[0], states[1])  # one shared stream: what the checkpoint holds is right for both
    # One process: unchanged, the data module's own generator drives augment_batch directly.
    single = TinyDataModule(augment="crop_flip", seed=5)
    got = single.batch_transform(x, train=True)
    ref = augment_batch(x.float() / 255, "crop_flip", None, torch.Generator().manual_seed(5))
    mean = torch.tensor(single.mean)[:, None, None]
    std = torch.tensor(single.std)[:, None, None]
    torch.testing.assert_close(got, (ref - mean) / std)
