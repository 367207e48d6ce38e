"""Pair mining vs a brute-force loop over (class, rank) buckets; the loss vs a written-out reference."""

from __future__ import annotations

import math
from collections import defaultdict
from decimal import Decimal, getcontext

import pytest
import torch

from sebra.contrastive import PairTable, RankContrastiveLoss, mine_rank_pairs, rank_contrastive_loss


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _reference(ranks: list[int], labels: list[int], gap: int, official: bool, anchors=None):
    """Per anchor: (allowed positives, allowed negatives), or None when dropped. Plain Python loops."""
    buckets = defaultdict(list)
    for i, (y, r) in enumerate(zip(labels, ranks)):
        buckets[(y, r)].append(i)
    global_max = max(ranks)
    out = {}
    for i in range(len(ranks)) if anchors is None else anchors:
        y, r = labels[i], ranks[i]
        class_ranks = sorted({rr for (yy, rr) in buckets if yy == y})
        top = global_max if official else max(class_ranks)
        target = min(r + gap, top)
        above = [rr for rr in class_ranks if target <= rr <= top]
        if not above:
            out[i] = None
            continue
        pos = set(buckets[(y, above[0])])
        neg = set(buckets[(y, r)])
        if not official:
            if above[0] == r and len(pos) > 1:
                pos.discard(i)
            if len(neg) > 1:
                neg.discard(i)
        out[i] = (pos, neg)
    return out


def _check_against_reference(ranks, labels, gap, official, seed=0, anchors=None):
    table = mine_rank_pairs(
        torch.tensor(ranks),
        torch.tensor(labels),
        gap=gap,
        generator=_gen(seed),
        official=official,
        anchors=None if anchors is None else torch.tensor(anchors),
    )
    ref = _reference(ranks, labels, gap, official, anchors)
    kept = [i for i, v in ref.items() if v is not None]
    assert table.anchor.tolist() == kept  # anchor order kept, dropped ones removed
    assert table.n_dropped == len(ref) - len(kept)
    for a, p, n in zip(table.anchor.tolist(), table.positive.tolist(), table.negative.tolist()):
        pos, neg = ref[a]
        assert p in pos, (a, p, pos)
        assert n in neg, (a, n, neg)
    for t in (table.anchor, table.positive, table.negative):
        assert t.dtype == torch.long
    return table


@pytest.mark.parametrize("official", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_random_tables_match_brute_force(official, seed):
    g = torch.Generator().manual_seed(100 + seed)
    n = int(torch.randint(5, 60, (1,), generator=g))
    labels = torch.randint(0, 3, (n,), generator=g).tolist()
    # sparse ranks with gaps between values and the official unranked -1
    ranks = torch.tensor([-1, 1, 2, 4, 5, 9])[torch.randint(0, 6, (n,), generator=g)].tolist()
    gap = int(torch.randint(0, 5, (1,), generator=g))
    _check_against_reference(ranks, labels, gap, official, seed=seed)


def test_anchor_subset():
    ranks = [1, 1, 2, 3, 1, 2, 2]
    labels = [0, 0, 0, 0, 1, 1, 1]
    table = _check_against_reference(ranks, labels, 1, False, anchors=[5, 0, 3])
    assert table.anchor.tolist() == [5, 0, 3]


def test_anchor_at_highest_rank_gets_positive_from_own_bucket():
    # class 0: ranks 1 (x2), 3 (x2); gap 5 -> target = R_0 = 3
    table = mine_rank_pairs(torch.tensor([1, 1, 3, 3]), torch.tensor([0, 0, 0, 0]), gap=5, generator=_gen())
    assert set(table.positive[:2].tolist()) <= {2, 3}
    assert table.positive[2].item() == 3 and table.positive[3].item() == 2  # own bucket, not the anchor
    assert table.negative.tolist() == [1, 0, 3, 2]


def test_empty_bucket_scans_up():
    # class 0 has ranks 1, 5, 6; target 1 + 2 = 3 is empty -> 5 (the first present rank above)
    ranks, labels = [1, 5, 6, 3], [0, 0, 0, 1]
    for official in (False, True):
        table = mine_rank_pairs(
            torch.tensor(ranks), torch.tensor(labels), gap=2, generator=_gen(), official=official
        )
        assert table.positive[0].item() == 1
        _check_against_reference(ranks, labels, 2, official)


def test_bucket_of_one_negative_is_anchor():
    table = mine_rank_pairs(torch.tensor([1, 2, 2]), torch.tensor([0, 0, 0]), gap=1, generator=_gen())
    assert table.negative[0].item() == 0
    assert table.positive[0].item() in (1, 2)


def test_single_rank_class():
    ranks, labels = [4, 4, 4, 1, 2], [0, 0, 0, 1, 1]
    for seed in range(5):
        table = mine_rank_pairs(torch.tensor(ranks), torch.tensor(labels), gap=2, generator=_gen(seed))
        for a, p, n in zip(*(t[:3].tolist() for t in (table.anchor, table.positive, table.negative))):
            assert p != a and n != a and {p, n} <= {0, 1, 2}
    table = mine_rank_pairs(torch.tensor([7]), torch.tensor([0]), gap=1, generator=_gen())
    assert table.positive.tolist() == [0] and table.negative.tolist() == [0] and table.n_dropped == 0


def test_draws_cover_the_bucket_uniformly():
    # anchor 0 (rank 1) has 4 candidates at rank 2 and 3 negatives at rank 1 (itself excluded)
    ranks = torch.tensor([1, 1, 1, 1, 2, 2, 2, 2])
    labels = torch.zeros(8, dtype=torch.long)
    # the same anchor repeated 400 times: 400 independent draws in one call
    t = mine_rank_pairs(ranks, labels, gap=1, generator=_gen(3), anchors=torch.zeros(400, dtype=torch.long))
    pos_counts = torch.bincount(t.positive, minlength=8)
    neg_counts = torch.bincount(t.negative, minlength=8)
    assert pos_counts[:4].sum() == 0 and neg_counts[0] == 0 and neg_counts[4:].sum() == 0
    assert (pos_counts[4:] > 60).all() and (neg_counts[1:4] > 90).all()  # expected 100 and 133


def test_official_global_rmax_drops_anchors():
    # class 0 stops at rank 2, class 1 reaches rank 5
    ranks = [1, 2, 2, 1, 3, 5]
    labels = [0, 0, 0, 1, 1, 1]
    paper = _check_against_reference(ranks, labels, 2, official=False)
    assert paper.n_dropped == 0
    assert paper.positive[0].item() in (1, 2)  # min(1 + 2, R_0 = 2) = 2
    official = _check_against_reference(ranks, labels, 2, official=True)
    assert official.anchor.tolist() == [3, 4, 5] and official.n_dropped == 3
    # official: negative and positive may be the anchor itself; paper: never when avoidable
    ranks2, labels2 = [1, 1], [0, 0]
    seen = set()
    for seed in range(40):
        t = mine_rank_pairs(
            torch.tensor(ranks2), torch.tensor(labels2), gap=0, generator=_gen(seed), official=True
        )
        seen |= {("n", t.negative[0].item()), ("p", t.positive[0].item())}
        p = mine_rank_pairs(torch.tensor(ranks2), torch.tensor(labels2), gap=0, generator=_gen(seed))
        assert p.negative.tolist() == [1, 0] and p.positive.tolist() == [1, 0]
    assert seen == {("n", 0), ("n", 1), ("p", 0), ("p", 1)}


def test_determinism_and_take():
    g = _gen(9)
    ranks, labels = torch.randint(1, 6, (200,), generator=g), torch.randint(0, 2, (200,), generator=g)
    a = mine_rank_pairs(ranks, labels, gap=2, generator=_gen(5))
    b = mine_rank_pairs(ranks, labels, gap=2, generator=_gen(5))
    c = mine_rank_pairs(ranks, labels, gap=2, generator=_gen(6))
    assert torch.equal(a.positive, b.positive) and torch.equal(a.negative, b.negative)
    assert not torch.equal(a.positive, c.positive)
    index = torch.arange(200) * 10 + 7
    mapped = a.take(index)
    assert torch.equal(mapped.anchor, index[a.anchor]) and torch.equal(mapped.positive, index[a.positive])


def test_empty_and_bad_input():
    e = torch.empty(0, dtype=torch.long)
    t = mine_rank_pairs(e, e, gap=1, generator=_gen())
    assert isinstance(t, PairTable) and len(t) == 0 and t.n_dropped == 0
    with pytest.raises(ValueError, match="equal length"):
        mine_rank_pairs(torch.tensor([1, 2]), torch.tensor([0]), gap=1, generator=_gen())
    with pytest.raises(ValueError, match="gap"):
        mine_rank_pairs(torch.tensor([1]), torch.tensor([0]), gap=-1, generator=_gen())
    with pytest.raises(ValueError, match="anchor"):
        mine_rank_pairs(
            torch.tensor([1]), torch.tensor([0]), gap=1, generator=_gen(), anchors=torch.tensor([3])
        )


# ---------------------------------------------------------------- loss


def _loss_reference_decimal(za, zp, zn, tau):
    """The formula written out per anchor in 50-digit Decimal arithmetic (no overflow, no logsumexp)."""
    getcontext().prec = 50

    def s(a, b):
        dot = sum(Decimal(x) * Decimal(y) for x, y in zip(a, b))
        na = sum(Decimal(x) ** 2 for x in a).sqrt()
        nb = sum(Decimal(y) ** 2 for y in b).sqrt()
        return dot / (na * nb) / Decimal(tau)

    za, zp, zn = (t.double().tolist() for t in (za, zp, zn))
    bsz = len(za)
    denom = sum(s(za[j], zp[j]).exp() for j in range(bsz)) + sum(s(za[j], zn[j]).exp() for j in range(bsz))
    total = sum(-(s(za[i], zp[i]) - denom.ln()) for i in range(bsz))
    return float(total / bsz)


def _loss_reference_torch(za, zp, zn, tau):
    """Same formula as a float64 torch loop, for autograd into the anchors."""
    terms, exps = [], []
    for j in range(za.shape[0]):
        for other in (zp[j], zn[j]):
            exps.append(torch.exp(torch.dot(za[j], other) / (za[j].norm() * other.norm()) / tau))
    denom = torch.stack(exps).sum()
    for i in range(za.shape[0]):
        s_pos = torch.dot(za[i], zp[i]) / (za[i].norm() * zp[i].norm()) / tau
        terms.append(-(s_pos - torch.log(denom)))
    return torch.stack(terms).mean()


@pytest.mark.parametrize(
    "seed,b,d,scale,tau",
    [
        (0, 4, 3, 1.0, 0.5),
        (1, 7, 5, 1.0, 0.05),
        (2, 3, 8, 1e4, 0.05),
        (3, 5, 4, 1e-3, 0.15),
        (4, 6, 6, 30.0, 0.01),
    ],
)
def test_loss_matches_written_out_reference(seed, b, d, scale, tau):
    g = _gen(seed)
    za, zp, zn = (torch.randn(b, d, generator=g, dtype=torch.float64) * scale for _ in range(3))
    got = rank_contrastive_loss(za, zp, zn, tau)
    assert got.item() == pytest.approx(_loss_reference_decimal(za, zp, zn, tau), rel=1e-10, abs=1e-10)


def test_loss_stable_at_tiny_temperature_float32():
    # s up to 1/tau = 1000: exp overflows float32 (and float64), logsumexp must not
    g = _gen(11)
    za, zp, zn = (torch.randn(5, 4, generator=g) for _ in range(3))
    got = rank_contrastive_loss(za, zp, zn, 1e-3)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(_loss_reference_decimal(za, zp, zn, 1e-3), rel=1e-4)


def test_gradient_only_into_anchors():
    g = _gen(12)
    base = [torch.randn(6, 5, generator=g, dtype=torch.float64) for _ in range(3)]
    za, zp, zn = (t.clone().requires_grad_(True) for t in base)
    rank_contrastive_loss(za, zp, zn, 0.1).backward()
    assert zp.grad is None and zn.grad is None
    ra = base[0].clone().requires_grad_(True)
    _loss_reference_torch(ra, base[1], base[2], 0.1).backward()
    torch.testing.assert_close(za.grad, ra.grad, rtol=1e-9, atol=1e-12)


def test_loss_module_combines_ce():
    g = _gen(13)
    za, zp, zn = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    logits = torch.randn(4, 3, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 2, 1, 1])
    crit = RankContrastiveLoss(temperature=0.2, ce_weight=0.7)
    total, parts = crit(za, zp, zn, logits, labels)
    ce = (
        -sum(
            math.log(math.exp(logits[i, labels[i]]) / sum(math.exp(v) for v in logits[i].tolist()))
            for i in range(4)
        )
        / 4
    )
    con = _loss_reference_decimal(za, zp, zn, 0.2)
    assert parts["ce"].item() == pytest.approx(ce, rel=1e-10)
    assert parts["con"].item() == pytest.approx(con, rel=1e-10)
    assert total.item() == pytest.approx(con + 0.7 * ce, rel=1e-10)
    assert not parts["con"].requires_grad


def test_loss_bad_input():
    z = torch.randn(3, 2)
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        rank_contrastive_loss(z, z[:2], z, 0.1)
    with pytest.raises(ValueError, match="empty"):
        rank_contrastive_loss(z[:0], z[:0], z[:0], 0.1)
    with pytest.raises(ValueError, match="temperature"):
        rank_contrastive_loss(z, z, z, 0.0)


def test_loss_is_float32_from_bf16_features_under_autocast():
    # Under Trainer(precision="bf16-mixed") the networks hand bf16 features to the loss; cosines / 0.05 summed in
    # bf16 (8-bit mantissa) would be off by ~1%. The loss must be computed in float32 from those features.
    g = torch.Generator().manual_seed(0)
    za, zp, zn = (torch.randn(64, 32, generator=g).bfloat16() for _ in range(3))
    za.requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = rank_contrastive_loss(za, zp, zn, 0.05)
    assert loss.dtype == torch.float32
    want = rank_contrastive_loss(za.detach().float(), zp.float(), zn.float(), 0.05)
    torch.testing.assert_close(loss.detach(), want, rtol=1e-6, atol=1e-6)
    loss.backward()
    assert za.grad is not None and za.grad.dtype == torch.bfloat16 and torch.isfinite(za.grad).all()
