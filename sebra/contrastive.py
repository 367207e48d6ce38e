"""Stage 2 of Sebra: rank-aware pair mining (index tuples, like a PML miner) and the contrastive loss.

Plain torch, no Lightning: the miner returns positions only, so a Stage 2 module maps them to dataset indices
and images, and the loss takes the three feature batches. See ``docs/sebra-method.md`` §2 for the rules
reproduced.

Example:
    >>> g = torch.Generator().manual_seed(0)
    >>> table = mine_rank_pairs(torch.tensor([1, 1, 2, 3]), torch.tensor([0, 0, 0, 0]), gap=1, generator=g)
    >>> table.anchor.tolist(), table.positive.tolist()
    ([0, 1, 2, 3], [2, 2, 3, 3])
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["PairTable", "RankContrastiveLoss", "mine_rank_pairs", "rank_contrastive_loss"]


@dataclass(frozen=True)
class PairTable:
    """One epoch of mined (anchor, positive, negative) rows, as positions ``0 .. N-1`` into the mined arrays.

    Attributes:
        anchor: LongTensor ``[M]``, the kept anchors in the order they were given.
        positive: LongTensor ``[M]``, same class as the anchor, rank ``>= min(r + gap, R)``.
        negative: LongTensor ``[M]``, same class and same rank as the anchor.
        n_dropped: number of anchors dropped because no bucket of their class at or above the target rank
            exists.
    """

    anchor: Tensor
    positive: Tensor
    negative: Tensor
    n_dropped: int = 0

    def __len__(self) -> int:
        return int(self.anchor.numel())

    def take(self, index: Tensor) -> PairTable:
        """Map positions to dataset indices (``index[pos]``), e.g. the ranking table's ``index`` column."""
        index = torch.as_tensor(index)
        return PairTable(index[self.anchor], index[self.positive], index[self.negative], self.n_dropped)


def _draw(count: Tensor, exclude: Tensor | None, generator: torch.Generator) -> Tensor:
    """Uniform offset in ``0 .. count-1`` per row, skipping offset ``exclude`` (if >= 0) when count > 1."""
    u = torch.rand(count.shape, generator=generator, dtype=torch.float64, device=count.device)
    if exclude is None:
        return torch.minimum((u * count).long(), count - 1)
    avoid = (exclude >= 0) & (count > 1)
    k = torch.where(avoid, count - 1, count)
    off = torch.minimum((u * k).long(), k - 1)
    return torch.where(avoid & (off >= exclude), off + 1, off)


def mine_rank_pairs(
    ranks: Tensor,
    labels: Tensor,
    *,
    gap: int,
    generator: torch.Generator,
    official: bool = False,
    anchors: Tensor | None = None,
) -> PairTable:
    """Mine one epoch of Sebra's (anchor, positive, negative) rows at once, with seeded tensor ops.

    For an anchor of class ``y`` and rank ``r`` (Stage 1 elimination step, higher = less spurious):

    * positive: uniform from class ``y`` at rank ``t = min(r + gap, R)``; if that bucket is empty, the next
      higher rank present in class ``y`` (up to ``R``); if none, the anchor is dropped and counted in
      ``n_dropped``.
    * negative: uniform from class ``y`` at rank ``r``.

    Paper mode (default): ``R = R_y``, the highest rank present in class ``y``, so no anchor is dropped; an
    anchor at ``R_y`` gets a positive from its own bucket. Positive (when drawn from the anchor's own bucket)
    and negative differ from the anchor whenever the bucket holds another sample.

    ``official=True`` reproduces the official code: ``R`` is the global highest rank over all classes, so
    anchors of a class whose ranks stop earlier can be dropped, and positive and negative may be the anchor
    itself. (The official UrbanCars/BAR code raises ``KeyError`` when ``r + gap`` was nobody's rank; here it
    scans up instead, as its own empty-bucket path and CelebA do.)

    Ranks are compared as numbers, so the official unranked value ``-1`` sorts below rank 1, as in the
    official code. Rows come out in anchor order; the caller shuffles the epoch order with its own generator.

    Args:
        ranks: LongTensor ``[N]``, rank per sample.
        labels: LongTensor ``[N]``, class per sample.
        gap: rank gap between anchor and positive (``>= 0``).
        generator: the only source of randomness; same seed, same table.
        official: reproduce the official code's rules (see above).
        anchors: LongTensor of positions to use as anchors; every sample by default.

    Returns:
        A :class:`PairTable` of positions ``0 .. N-1``.

    Raises:
        ValueError: shapes differ, ``gap < 0`` or an anchor position is out of range.
    """
    ranks, labels = torch.as_tensor(ranks).long(), torch.as_tensor(labels).long()
    if ranks.dim() != 1 or ranks.shape != labels.shape:
        raise ValueError(
            f"mine_rank_pairs: ranks and labels must be 1-D of equal length, got {tuple(ranks.shape)} "
            f"and {tuple(labels.shape)}"
        )
    if gap < 0:
        raise ValueError(f"mine_rank_pairs: gap must be >= 0, got {gap}")
    n = ranks.numel()
    if anchors is None:
        anchors = torch.arange(n, device=ranks.device)
    anchors = torch.as_tensor(anchors, device=ranks.device).long().reshape(-1)
    if anchors.numel() and (anchors.min() < 0 or anchors.max() >= n):
        raise ValueError(f"mine_rank_pairs: anchor positions must lie in 0..{n - 1}")
    empty = torch.empty(0, dtype=torch.long, device=ranks.device)
    if n == 0 or anchors.numel() == 0:
        return PairTable(empty, empty, empty, 0)

    # Buckets = (class, rank) pairs present, sorted by a composite key; members listed contiguously in
    # `order`.
    uranks, rank_id = torch.unique(ranks, return_inverse=True)
    k = uranks.numel()
    key = labels * k + rank_id
    order = torch.argsort(key, stable=True)
    bkeys, bcounts = torch.unique_consecutive(key[order], return_counts=True)
    bstart = torch.cumsum(bcounts, 0) - bcounts
    slot = torch.empty(n, dtype=torch.long, device=ranks.device)  # offset of each sample inside its bucket
    slot[order] = torch.arange(n, device=ranks.device) - torch.repeat_interleave(bstart, bcounts)

    y, r = labels[anchors], ranks[anchors]
    own = torch.searchsorted(bkeys, key[anchors])  # the anchor's own bucket
    if official:
        rmax = uranks[-1].expand_as(r)
    else:
        last = torch.searchsorted(bkeys, y * k + (k - 1), right=True) - 1  # last bucket of class y
        rmax = uranks[bkeys[last] % k]
    target = torch.minimum(r + gap, rmax)
    tid = torch.searchsorted(uranks, target)  # first global rank >= target (<= rmax by construction)
    pb = torch.searchsorted(bkeys, y * k + tid)  # first bucket of class y at or above it
    ok = pb < bkeys.numel()
    pbc = pb.clamp(max=bkeys.numel() - 1)
    ok &= bkeys[pbc] // k == y  # ranks of class y run up to rmax at most, so no upper check is needed

    anchors, own, pb = anchors[ok], own[ok], pbc[ok]
    excl_neg = None if official else slot[anchors]
    excl_pos = None if official else torch.where(pb == own, slot[anchors], torch.full_like(pb, -1))
    neg = order[bstart[own] + _draw(bcounts[own], excl_neg, generator)]
    pos = order[bstart[pb] + _draw(bcounts[pb], excl_pos, generator)]
    return PairTable(anchors, pos, neg, int((~ok).sum()))


def rank_contrastive_loss(z_anchor: Tensor, z_pos: Tensor, z_neg: Tensor, temperature: float) -> Tensor:
    """Sebra's contrastive loss over a batch of matched (anchor, positive, negative) features.

    With ``s(a, b) = cos(a, b) / temperature`` and one denominator over the batch's matched pairs,
    ``L = mean_i -[s(z_i, z+_i) - log(sum_j exp s(z_j, z+_j) + sum_j exp s(z_j, z-_j))]``,
    computed with ``logsumexp``. Positives and negatives are detached here (stop-gradient), whatever the
    caller did.

    Args:
        z_anchor: ``[B, D]`` anchor features (gradients flow into these only).
        z_pos: ``[B, D]`` positive features.
        z_neg: ``[B, D]`` negative features.
        temperature: ``tau > 0``.

    Returns:
        Scalar loss, float32 for bf16/fp16 features (float64 ones stay float64).

    Raises:
        ValueError: shapes differ, the batch is empty or ``temperature <= 0``.
    """
    if not (z_anchor.dim() == 2 and z_anchor.shape == z_pos.shape == z_neg.shape):
        raise ValueError(
            "rank_contrastive_loss: z_anchor, z_pos, z_neg must all be [B, D], got "
            f"{tuple(z_anchor.shape)}, {tuple(z_pos.shape)}, {tuple(z_neg.shape)}"
        )
    if z_anchor.shape[0] == 0:
        raise ValueError("rank_contrastive_loss: empty batch (no mined pairs)")
    if temperature <= 0:
        raise ValueError(f"rank_contrastive_loss: temperature must be > 0, got {temperature}")
    # float32 whatever the features' dtype: under bf16 autocast the networks return bf16 features, and cosines
    # divided by a small temperature then exponentiated lose all precision in bf16's 8-bit mantissa.
    z_anchor, z_pos, z_neg = (
        z.float() if z.dtype in (torch.bfloat16, torch.float16) else z for z in (z_anchor, z_pos, z_neg)
    )
    s_pos = F.cosine_similarity(z_anchor, z_pos.detach(), dim=1) / temperature
    s_neg = F.cosine_similarity(z_anchor, z_neg.detach(), dim=1) / temperature
    return torch.logsumexp(torch.cat([s_pos, s_neg]), dim=0) - s_pos.mean()


class RankContrastiveLoss(nn.Module):
    """Stage 2 objective ``con_weight * L_con + ce_weight * CE(logits, labels)`` (the paper: ``con_weight`` 1).

    The caller picks the logits: Sebra uses the positives' (less spurious) images, the anchors get no CE term.

    Args:
        temperature: contrastive temperature ``tau``.
        ce_weight: ``lambda``, weight of the cross-entropy term.
        con_weight: weight of the contrastive term (0 switches it off: CE on the rank-chosen images alone).
    """

    def __init__(self, temperature: float = 0.05, ce_weight: float = 0.5, con_weight: float = 1.0) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"RankContrastiveLoss: temperature must be > 0, got {temperature}")
        if con_weight < 0 or ce_weight < 0:
            raise ValueError(
                f"RankContrastiveLoss: weights must be >= 0, got con_weight={con_weight}, "
                f"ce_weight={ce_weight}"
            )
        self.temperature = float(temperature)
        self.ce_weight = float(ce_weight)
        self.con_weight = float(con_weight)

    def forward(
        self, z_anchor: Tensor, z_pos: Tensor, z_neg: Tensor, logits: Tensor, labels: Tensor
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Return ``(total, {"con": L_con, "ce": CE})``; the parts are detached, for logging."""
        con = rank_contrastive_loss(z_anchor, z_pos, z_neg, self.temperature)
        ce = F.cross_entropy(logits, labels)
        total = self.con_weight * con + self.ce_weight * ce
        return total, {"con": con.detach(), "ce": ce.detach()}

    def extra_repr(self) -> str:
        """Show the hyperparameters in ``print(module)``."""
        return f"temperature={self.temperature}, ce_weight={self.ce_weight}, con_weight={self.con_weight}"
