"""Scoring a network on data, and the per-sample ranking tables built from the scores.

One scoring loop (:func:`score_loader`) serves every method that reads a network's confidence on the training set:
Sebra's Stage 1 elimination, JTT's identification (:func:`dataset_scores`) and the reference rankers (:func:`score_dataset`). The ranking
tables have Sebra's columns (``index``, ``label``, ``rank``, ``position``, ``p_y``; :mod:`sebra.export`), so
:func:`sebra.metrics.ranking_quality` scores every ranker the same way:

* **ERM confidence** (:func:`confidence_rankings`): within each class, samples ordered by the true-class probability
  ``p_y``, highest first (most spurious first); ``rank = position``.
* **JTT error set** (:func:`error_set_rankings`): correct samples rank 1, errors rank 2; within a rank by ``p_y``
  descending.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import torch

from sebra.datasets.base import ImageDataset
from sebra.ranking import number_positions, order_table, true_class_prob

__all__ = [
    "Scores",
    "batch_transform_of",
    "confidence_rankings",
    "dataset_scores",
    "error_set_rankings",
    "score_dataset",
    "score_loader",
]


class Scores(NamedTuple):
    """Per-sample results of :func:`score_loader`, in loader order (on the CPU)."""

    p_y: torch.Tensor  #: ``[N]`` float32 true-class probability
    pred: torch.Tensor  #: ``[N]`` int64 predicted class


@torch.no_grad()
def score_loader(
    net: torch.nn.Module,
    batches: Iterable[dict],
    *,
    device: torch.device,
    transform: Callable[[torch.Tensor, bool], torch.Tensor] | None = None,
    forward_context: Callable[[], AbstractContextManager] | None = None,
    train: bool = False,
) -> Scores:
    """``p_y`` and the prediction of every sample ``batches`` yields, without gradients.

    The network runs in eval mode (``train``: train mode, with ``transform``'s training view: Sebra's official
    scoring) and gets its previous mode back afterwards.

    Args:
        batches: dicts with ``image`` and ``label`` (a data module's loader).
        device: where the images go.
        transform: ``transform(images, train)`` on the device (a data module's ``batch_transform``), if any.
        forward_context: wraps each forward pass (``trainer.precision_plugin.forward_context``), so mixed
            precision runs score in the precision they train in.

    Raises:
        sebra.methods.finite.NonFiniteScores: a score is NaN or infinite (the network's weights or inputs are).
    """
    forward_context = forward_context or nullcontext
    was_training = net.training
    net.train(train)
    p_y, pred = [], []
    try:
        for batch in batches:
            x = batch["image"].to(device)
            x = transform(x, train) if transform is not None else x
            with forward_context():
                logits = net(x)
            pred.append(logits.argmax(dim=1).cpu())
            p_y.append(true_class_prob(logits, batch["label"].to(device)).cpu())
    finally:
        net.train(was_training)
    if not p_y:
        return Scores(torch.zeros(0), torch.zeros(0, dtype=torch.long))
    scores = Scores(torch.cat(p_y), torch.cat(pred))
    bad = ~torch.isfinite(scores.p_y)
    if bool(bad.any()):  # a NaN network: its scores would rank (and eliminate) nothing, silently
        from sebra.methods.finite import NonFiniteScores  # sebra.methods imports this module

        raise NonFiniteScores(
            f"scoring: the true-class probability is {scores.p_y[bad][0].item()} for {int(bad.sum())} of "
            f"{len(bad)} samples (the network's outputs are not finite)"
        )
    return scores


def batch_transform_of(dm: Any) -> Callable[[torch.Tensor, bool], torch.Tensor] | None:
    """The data module's on-device batch preprocessing (``batch_transform``), or None when it has none."""
    transform = getattr(dm, "batch_transform", None)
    return transform if callable(transform) else None


def dataset_scores(
    net: torch.nn.Module,
    dm: Any,
    dataset: ImageDataset | None = None,
    device: torch.device | None = None,
    forward_context: Callable[[], AbstractContextManager] | None = None,
) -> Scores:
    """:class:`Scores` of every sample of ``dataset`` (default ``dm.train_eval_dataset``), in dataset order, eval
    mode (:func:`score_loader` over ``dm.loader(dataset)`` with the data module's ``batch_transform``)."""
    ds = dm.train_eval_dataset if dataset is None else dataset
    device = device or next(net.parameters()).device
    return score_loader(
        net, dm.loader(ds), device=device, transform=batch_transform_of(dm), forward_context=forward_context
    )


def score_dataset(
    net: torch.nn.Module,
    dm: Any,
    dataset: ImageDataset | None = None,
    device: torch.device | None = None,
    forward_context: Callable[[], AbstractContextManager] | None = None,
) -> torch.Tensor:
    """``p_y`` (float64) of every sample of ``dataset`` (default ``dm.train_eval_dataset``), in dataset order, eval
    mode (:func:`dataset_scores` without the predictions)."""
    return dataset_scores(net, dm, dataset, device, forward_context).p_y.double()


def _numpy(x: Any, dtype: type) -> np.ndarray:
    return np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=dtype)


def _frame(indices: Any, labels: Any, p_y: Any) -> pd.DataFrame:
    idx, lab, p = _numpy(indices, np.int64), _numpy(labels, np.int64), _numpy(p_y, np.float64)
    if not (idx.shape == lab.shape == p.shape and idx.ndim == 1):
        raise ValueError(
            f"rankers: indices, labels and p_y must be 1-D of one length, got {idx.shape}, "
            f"{lab.shape}, {p.shape}"
        )
    if len(np.unique(idx)) != len(idx):
        raise ValueError("rankers: a dataset index appears twice; expected one score per sample")
    return pd.DataFrame({"index": idx, "label": lab, "p_y": p})


def confidence_rankings(indices: Any, labels: Any, p_y: Any) -> pd.DataFrame:
    """ERM-confidence ranking: per class, highest ``p_y`` first; ``rank = position`` (one sample per rank).

    Args:
        indices, labels, p_y: ``[N]`` dataset index, class and true-class probability of each sample.
    """
    df = _frame(indices, labels, p_y)
    df.insert(2, "rank", 0)
    df = order_table(df)
    df["rank"] = df["position"]
    return df[["index", "label", "rank", "position", "p_y"]]


def error_set_rankings(
    scores: pd.DataFrame, within: Literal["p_y", "random"] = "p_y", generator: torch.Generator | None = None
) -> pd.DataFrame:
    """JTT's error set as a two-level ranking: correct samples rank 1, misclassified (error set) rank 2.

    With two classes an error is exactly ``p_y < 0.5``, so ordering by ``p_y`` within a level (the default) makes
    the positions those of the identification network's confidence ranking; ``within="random"`` (seeded by
    ``generator``) keeps only the two-level information the error set itself carries.

    Args:
        scores: one row per training sample with ``index``, ``label``, ``p_y`` and ``error`` (bool) or ``pred``
            (``JTTModule.id_scores`` or its ``jtt_scores.csv``).
        within: order inside a level: ``p_y`` descending, or a random permutation.
        generator: draws the permutation for ``within="random"`` (default: seed 0).
    """
    missing = [c for c in ("index", "label", "p_y") if c not in scores.columns]
    if missing or ("error" not in scores.columns and "pred" not in scores.columns):
        raise ValueError(
            f"error_set_rankings: scores lack {missing or ['error or pred']}; got {list(scores.columns)}"
        )
    df = _frame(scores["index"].to_numpy(), scores["label"].to_numpy(), scores["p_y"].to_numpy())
    if "error" in scores.columns:
        err = scores["error"].astype(bool).to_numpy()
    else:
        err = scores["pred"].to_numpy() != scores["label"].to_numpy()
    df.insert(2, "rank", np.where(err, 2, 1).astype(np.int64))
    if within == "random":
        g = generator if generator is not None else torch.Generator().manual_seed(0)
        key = torch.rand(len(df), generator=g, dtype=torch.float64).numpy()
        order = np.lexsort((key, df["rank"].to_numpy(), df["label"].to_numpy()))
        df = number_positions(df.iloc[order].reset_index(drop=True))
        return df[["index", "label", "rank", "position", "p_y"]]
    if within != "p_y":
        raise ValueError(f"error_set_rankings: within must be 'p_y' or 'random', got {within!r}")
    return order_table(df)[["index", "label", "rank", "position", "p_y"]]
