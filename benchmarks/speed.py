"""Speed of Sebra relative to ERM on the built-in benchmark, measured in one process.

What is timed (training only: validation is switched off, the data are decoded into the uint8 cache beforehand and an
untimed ERM epoch warms the process up):

* ``erm``: an ERM epoch over the N training samples.
* ``rank_step``: one Sebra ranking step, i.e. the training pass over N draws from the active set plus the scoring pass
  over the still-active samples (``train_s`` and ``score_s`` separately); one row per step and their mean.
* ``confidence_epoch``: the confidence run that ``rank_by="fused"`` (the shipped setting) adds after the elimination
  runs: one plain cross-entropy epoch over all N samples plus one scoring pass over all N.
* ``second_look_epoch``: one epoch of the second look (``second_look_epochs``, shipped 3) that ends Stage 1: a
  plain cross-entropy epoch over N draws balancing each class's first wave against the rest, plus one scoring pass
  over all N.
* ``stage2``: a Stage 2 epoch with ``feature_pass="official"`` (positives and negatives re-encoded without gradients)
  and ``"shared"`` (positive features reused from the training forward). Its anchors are the training samples that
  have a positive (some are dropped); ``seconds_per_n`` rescales the epoch to N anchors, the ERM epoch's sample count,
  and the ratio uses it.

Same data, batch size (anchors per batch in Stage 2) and optimizer family (Adam) everywhere; the settings are those of
:mod:`sebra.bench.presets` unless overridden. Memory: the process's peak RSS so far (``resource.getrusage``; it only grows)
and, on GPU, ``torch.cuda.max_memory_allocated`` per phase. Results go to ``benchmarks/results/speed.csv`` (written
atomically) and a markdown table on stdout.

    python benchmarks/speed.py                                      # 32 px, test_resnet, the whole training split
    python benchmarks/speed.py --limit 512 --max-steps 2 --erm-epochs 1 --stage2-epochs 1   # a quick check
    python benchmarks/speed.py --backbone resnet18 --image-size 64 --accelerator gpu --precision bf16-mixed
"""

from __future__ import annotations

import argparse
import platform
import resource
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import pandas as pd
import torch

from sebra.bench.presets import BUILTIN_DATA, BUILTIN_ERM, BUILTIN_SEBRA
from sebra.datasets.builtin import BuiltinDataModule
from sebra.methods.erm import ERMModule
from sebra.methods.sebra import SebraModule
from sebra.utils.files import atomic_write

COLUMNS = [
    "phase",
    "feature_pass",
    "step",
    "seconds",
    "train_s",
    "score_s",
    "samples",
    "scored",
    "images",
    "seconds_per_n",
    "samples_per_s",
    "images_per_s",
    "ratio_to_erm",
    "peak_rss_mb",
    "cuda_max_alloc_mb",
    "device",
    "backbone",
    "image_size",
    "batch_size",
    "n_train",
    "precision",
]


class LimitedBuiltin(BuiltinDataModule):
    """The built-in benchmark, its training split optionally cut to ``limit`` samples (a seeded random subset)."""

    def __init__(self, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.limit = limit

    def build_splits(self):
        splits = super().build_splits()
        train = splits["train"]
        if self.limit is not None and self.limit < len(train):
            keep = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: self.limit]
            splits["train"] = train.subset(torch.sort(keep).values)
        return splits


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Timed:
    """Mixin: per training epoch, the wall time from building its loader to the end of the module's epoch-end hook
    (for Sebra that includes the ranking step's scoring and elimination), the samples trained on and the scoring
    time."""

    def _init_timing(self) -> None:
        self.epochs_timed: list[dict] = []
        self._loader_s = 0.0

    def train_loader(self, dm):
        start = time.perf_counter()
        loader = super().train_loader(dm)
        self._loader_s = time.perf_counter() - start
        return loader

    def on_train_epoch_start(self) -> None:
        _sync(self.device)
        self._t0 = time.perf_counter()
        self._samples, self._score_s, self._scored = 0, 0.0, 0
        self._stage = getattr(self, "stage", "erm")
        super().on_train_epoch_start()

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self._samples += len(batch["anchor"]["label"] if "anchor" in batch else batch["label"])

    def on_train_epoch_end(self) -> None:
        _sync(self.device)
        t_train = time.perf_counter()
        super().on_train_epoch_end()
        _sync(self.device)
        end = time.perf_counter()
        self.epochs_timed.append(
            {
                "stage": self._stage,
                "seconds": end - self._t0 + self._loader_s,
                "train_s": t_train - self._t0 + self._loader_s,
                "score_s": self._score_s,
                "samples": self._samples,
                "scored": self._scored,
            }
        )


class TimedERM(_Timed, ERMModule):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_timing()


class TimedSebra(_Timed, SebraModule):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._init_timing()
        score = self.ranking.score

        def timed_score(host: Any, **kw: Any):  # the ranker's scoring passes, timed apart from training
            start = time.perf_counter()
            positions, p_y = score(host, **kw)
            _sync(self.device)
            if not kw.get("full"):  # the mid-step check's scoring runs inside the training pass: in train_s
                self._score_s += time.perf_counter() - start
                self._scored += len(positions)
            return positions, p_y

        self.ranking.score = timed_score


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def _trainer(args: argparse.Namespace) -> L.Trainer:
    # default_root_dir: the rankings.csv a ranking run writes goes to a scratch folder, not the working directory
    return L.Trainer(
        accelerator=args.accelerator,
        devices=1,
        precision=args.precision,
        max_epochs=-1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=args.scratch,
    )


def _fit(module: _Timed, dm: LimitedBuiltin, args: argparse.Namespace) -> tuple[list[dict], float | None]:
    """Fit ``module``; its timed epochs and the CUDA peak allocation of this phase (MB; None on CPU)."""
    cuda = torch.cuda.is_available() and args.accelerator in ("gpu", "cuda", "auto")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    _trainer(args).fit(module, datamodule=dm)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return module.epochs_timed, peak


def run(args: argparse.Namespace) -> pd.DataFrame:
    if args.threads:
        torch.set_num_threads(args.threads)
    L.seed_everything(args.seed, verbose=False)
    dm = LimitedBuiltin(
        limit=args.limit,
        root=args.root,
        batch_size=args.batch_size,
        image_size=args.image_size,
        augment=BUILTIN_DATA.get("augment", "crop_flip"),
        num_workers=args.num_workers,
    )
    dm.setup("fit")
    train = dm.train_dataset
    for i in range(len(train)):  # decode into the uint8 cache now: the first timed phase must not pay for it
        train.load_image(i)
    n = len(train)
    gpu = {"channels_last": args.channels_last, "compile": args.compile}
    erm_settings = {**BUILTIN_ERM, "backbone": args.backbone, "optimizer": args.optimizer, **gpu}
    sebra_settings = {
        **BUILTIN_SEBRA,
        "backbone": args.backbone,
        "optimizer": args.optimizer,
        "rank_optimizer": args.rank_optimizer,
        "batch_size": args.batch_size,
        "scoring": args.scoring,
        # per-step costs of one Stage 1 run, and Stage 2 with the paper's contrastive term (the feature
        # passes compared below exist only with it); the shipped config's rank_repeats multiplies the
        # Stage 1 time, its contrastive_weight 0 makes Stage 2 cheaper than measured here
        "rank_repeats": 1,
        "rank_by": "elimination",  # the confidence run of "fused" is its own phase below
        "second_look_epochs": 0,  # and so is the second look
        "contrastive_weight": 1.0,
        **gpu,
    }

    _fit(TimedERM(**{**erm_settings, "epochs": 1}), dm, args)  # warm-up, untimed
    rows: list[dict] = []

    def add(phase: str, rec: dict, peak: float | None, feature_pass: str = "", step: Any = "") -> dict:
        images = rec["samples"] + rec["scored"]
        if phase == "stage2":  # anchor + positive with gradients, negative (and positive) without
            images = rec["samples"] * (4 if feature_pass == "official" else 3)
        row = {
            "phase": phase,
            "feature_pass": feature_pass,
            "step": step,
            "seconds": rec["seconds"],
            "train_s": rec["train_s"],
            "score_s": rec["score_s"],
            "samples": rec["samples"],
            "scored": rec["scored"],
            "images": images,
            "seconds_per_n": rec["seconds"] * n / rec["samples"] if rec["samples"] else float("nan"),
            "samples_per_s": rec["samples"] / rec["seconds"],
            "images_per_s": images / rec["seconds"],
            "peak_rss_mb": _peak_rss_mb(),
            "cuda_max_alloc_mb": peak,
        }
        rows.append(row)
        return row

    def add_mean(phase: str, feature_pass: str = "") -> None:
        part = [
            r
            for r in rows
            if r["phase"] == phase and r["feature_pass"] == feature_pass and r["step"] != "mean"
        ]
        mean = {
            k: sum(r[k] for r in part) / len(part)
            for k in ("seconds", "train_s", "score_s", "samples", "scored", "images", "seconds_per_n")
        }
        rows.append(
            {
                **part[-1],
                **mean,
                "step": "mean",
                "samples_per_s": mean["samples"] / mean["seconds"],
                "images_per_s": mean["images"] / mean["seconds"],
            }
        )

    recs, peak = _fit(TimedERM(**{**erm_settings, "epochs": args.erm_epochs}), dm, args)
    for e, rec in enumerate(recs):
        add("erm", rec, peak, step=e)
    add_mean("erm")

    ranker = TimedSebra(**{**sebra_settings, "max_steps": args.max_steps, "rank_only": True})
    recs, peak = _fit(ranker, dm, args)
    for s, rec in enumerate(recs, start=1):
        add("rank_step", rec, peak, step=s)
    add_mean("rank_step")

    # the confidence run of rank_by="fused" (what it adds to the elimination runs): one plain-CE epoch over every
    # sample and one scoring pass over every sample
    conf = TimedSebra(**{**sebra_settings, "rank_by": "confidence", "confidence_steps": 1, "rank_only": True})
    recs, peak = _fit(conf, dm, args)
    add("confidence_epoch", recs[0], peak, step=1)
    add_mean("confidence_epoch")

    # the second look (second_look_epochs, shipped 3): per epoch, N first-wave-balanced draws of plain CE and one
    # scoring pass over every sample; one ranking step first makes the first wave it balances
    look = TimedSebra(**{**sebra_settings, "max_steps": 1, "second_look_epochs": 1, "rank_only": True})
    recs, peak = _fit(look, dm, args)
    add("second_look_epoch", recs[-1], peak, step=1)
    add_mean("second_look_epoch")

    for feature_pass in ("official", "shared"):
        module = TimedSebra(
            **{
                **sebra_settings,
                "rankings": ranker.rankings,
                "epochs": args.stage2_epochs,
                "feature_pass": feature_pass,
            }
        )
        recs, peak = _fit(module, dm, args)
        for e, rec in enumerate(recs):
            add("stage2", rec, peak, feature_pass=feature_pass, step=e)
        add_mean("stage2", feature_pass=feature_pass)

    df = pd.DataFrame(rows)
    erm_s = float(df.loc[(df.phase == "erm") & (df.step == "mean"), "seconds"].iloc[0])
    df["ratio_to_erm"] = [
        (r.seconds_per_n if r.phase == "stage2" else r.seconds) / erm_s for r in df.itertuples()
    ]
    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available() and args.accelerator != "cpu"
        else f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    )
    df = df.assign(
        device=device,
        backbone=args.backbone,
        image_size=args.image_size,
        batch_size=args.batch_size,
        n_train=n,
        precision=args.precision,
    )
    return df[COLUMNS]


def markdown(df: pd.DataFrame) -> str:
    """The summary: the mean rows, plus each ranking step (its scoring shrinks with the active set)."""
    show = df[(df.step == "mean") | (df.phase == "rank_step")]
    header = (
        "| phase | feature pass | step | seconds | train s | score s | samples/s | images/s | x ERM epoch |"
        " peak RSS MB | CUDA max MB |"
    )
    lines = [header, "|" + "---|" * 11]
    for r in show.itertuples():
        cuda = f"{r.cuda_max_alloc_mb:.0f}" if pd.notna(r.cuda_max_alloc_mb) else "-"
        secs = f"{r.seconds:.3f}" + (f" ({r.seconds_per_n:.3f} per N)" if r.phase == "stage2" else "")
        lines.append(
            f"| {r.phase} | {r.feature_pass or '-'} | {r.step} | {secs} | {r.train_s:.3f} | {r.score_s:.3f} "
            f"| {r.samples_per_s:.0f} | {r.images_per_s:.0f} | {r.ratio_to_erm:.2f} | {r.peak_rss_mb:.0f} "
            f"| {cuda} |"
        )
    first = df.iloc[0]
    lines.append(
        f"\n{first.device}; {first.backbone}, {first.image_size} px, batch {first.batch_size}, "
        f"N = {first.n_train}, precision {first.precision}"
    )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backbone", default=BUILTIN_SEBRA["backbone"], help="timm model (test_resnet)")
    p.add_argument(
        "--image-size", type=int, default=BUILTIN_DATA.get("image_size", 32), help="input side (32)"
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=BUILTIN_DATA.get("batch_size", 128),
        help="ERM / Stage 1 batch and Stage 2 anchors per batch (128)",
    )
    p.add_argument("--limit", type=int, default=None, help="use only this many training samples (all)")
    p.add_argument(
        "--root", default=None, help="where the built-in benchmark lives (default: its cache folder)"
    )
    p.add_argument("--erm-epochs", type=int, default=2, help="timed ERM epochs (2)")
    p.add_argument("--max-steps", type=int, default=5, help="ranking steps at most (5)")
    p.add_argument("--stage2-epochs", type=int, default=2, help="timed Stage 2 epochs per feature pass (2)")
    p.add_argument("--scoring", default="full", choices=("full", "official"), help="Stage 1 scoring (full)")
    p.add_argument(
        "--optimizer", default=BUILTIN_SEBRA.get("optimizer", "adamw"), help="ERM and Stage 2 (adamw)"
    )
    p.add_argument(
        "--rank-optimizer", default=BUILTIN_SEBRA.get("rank_optimizer", "adam"), help="Stage 1 (adam)"
    )
    p.add_argument("--accelerator", default="auto", help="auto, cpu or gpu")
    p.add_argument("--precision", default="32-true", help="Trainer precision: 32-true, bf16-mixed, 16-mixed")
    p.add_argument("--channels-last", action="store_true", help="channels_last networks and inputs")
    p.add_argument("--compile", action="store_true", help="torch.compile the backbones")
    p.add_argument("--num-workers", type=int, default=0, help="DataLoader workers (0)")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads on CPU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "speed.csv"), help="CSV written")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse_args(argv)
    args.scratch = tempfile.mkdtemp(prefix="sebra-speed-")
    try:
        df = run(args)
    finally:
        shutil.rmtree(args.scratch, ignore_errors=True)
    atomic_write(args.out, lambda tmp: df.to_csv(tmp, index=False, float_format="%.6g"))
    print(markdown(df))
    print(f"\nwritten: {args.out}")
    return df


if __name__ == "__main__":
    main()
