"""The one scoring loop (score_loader, score_dataset) that Sebra's Stage 1, JTT and the reference rankers share."""

from __future__ import annotations

from contextlib import contextmanager

import torch
from tiny_data import TinyDataModule
from torch import nn

from sebra.scoring import batch_transform_of, dataset_scores, score_dataset, score_loader


class ModeNet(nn.Module):
    """Logits ``[-s, s]`` from the mean of each image, times 2 in train mode (so the mode shows in the scores)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.float().mean(dim=(1, 2, 3)) * self.w * (2.0 if self.training else 1.0)
        return torch.stack([-s, s], dim=1)


def _batches() -> list[dict]:
    x = torch.tensor([-1.0, 0.5, 2.0, -0.2]).reshape(4, 1, 1, 1).expand(4, 3, 2, 2)
    return [{"image": x[:3], "label": torch.tensor([0, 1, 0])}, {"image": x[3:], "label": torch.tensor([0])}]


def test_scores_are_the_true_class_probability_and_prediction_in_loader_order() -> None:
    net = ModeNet().train()
    out = score_loader(net, _batches(), device=torch.device("cpu"))
    s = torch.tensor([-1.0, 0.5, 2.0, -0.2])  # eval mode: factor 1
    p1 = torch.sigmoid(2 * s)  # softmax([-s, s])[1]
    expected = torch.where(torch.tensor([0, 1, 0, 0]) == 1, p1, 1 - p1)
    assert torch.allclose(out.p_y, expected, atol=1e-6) and out.p_y.dtype == torch.float32
    assert out.pred.tolist() == [0, 1, 1, 0]
    assert net.training  # its mode given back
    assert not torch.is_grad_enabled() or out.p_y.grad_fn is None


def test_train_flag_scores_in_train_mode_with_the_training_view() -> None:
    views, contexts = [], []

    def transform(x: torch.Tensor, train: bool) -> torch.Tensor:
        views.append(train)
        return x

    @contextmanager
    def context():
        contexts.append(1)
        yield

    net = ModeNet().eval()
    out = score_loader(
        net, _batches(), device=torch.device("cpu"), transform=transform, forward_context=context, train=True
    )
    s = 2 * torch.tensor([-1.0, 0.5, 2.0, -0.2])  # train mode: factor 2
    p1 = torch.sigmoid(2 * s)
    assert torch.allclose(out.p_y, torch.stack([1 - p1[0], p1[1], 1 - p1[2], 1 - p1[3]]), atol=1e-6)
    assert views == [True, True] and len(contexts) == 2  # per batch
    assert not net.training


def test_an_empty_loader_gives_empty_scores() -> None:
    out = score_loader(ModeNet(), [], device=torch.device("cpu"))
    assert out.p_y.shape == (0,) and out.pred.dtype == torch.long


def test_score_dataset_scores_the_training_set_in_dataset_order() -> None:
    dm = TinyDataModule(batch_size=5)
    dm.setup("fit")
    net = ModeNet()
    p = score_dataset(net, dm)
    ds = dm.train_eval_dataset
    assert p.dtype == torch.float64 and len(p) == len(ds)
    x = batch_transform_of(dm)(torch.stack([ds[i]["image"] for i in range(len(ds))]), False)
    with torch.no_grad():
        logits = net.eval()(x)
    expected = torch.softmax(logits, dim=1).gather(1, ds.labels[:, None]).squeeze(1)
    assert torch.allclose(p, expected.double(), atol=1e-6)
    assert batch_transform_of(object()) is None


def test_dataset_scores_keep_the_predictions_score_dataset_drops() -> None:
    dm = TinyDataModule(batch_size=5)
    dm.setup("fit")
    net = ModeNet()
    net.w.data.fill_(-1.0)  # some predictions differ from the labels
    out = dataset_scores(net, dm)
    ds = dm.train_eval_dataset
    assert out.pred.shape == (len(ds),) and out.pred.dtype == torch.long
    x = batch_transform_of(dm)(torch.stack([ds[i]["image"] for i in range(len(ds))]), False)
    with torch.no_grad():
        logits = net.eval()(x)
    assert torch.equal(out.pred, logits.argmax(dim=1))
    # p_y computed here from the logits, not by the function dataset_scores is built from
    expected = torch.softmax(logits, dim=1).gather(1, ds.labels[:, None]).squeeze(1)
    assert torch.allclose(out.p_y.double(), expected.double(), atol=1e-6)
    assert bool((out.pred != ds.labels).any())  # the fill above makes some predictions wrong
