"""Losses shared by the tracks: cosine triplet (fabric), NT-Xent and the token-relation loss (ARNet),
E-InfoNCE (RPF) and the uncertainty loss weighting (AG-MAN).

The attribute-retrieval papers' triplet loss (ASEN, AG-MAN, RPF) is ``MarginRankingLoss(0.2)`` on the
dot products of L2-normalised embeddings, i.e. mean(relu(margin - a·p + a·n)). For unit vectors the
dot product is the cosine, so that is exactly :func:`cosine_triplet` (tested against
``nn.MarginRankingLoss``); the attribute track uses it rather than a duplicate.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cosine_triplet(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor,
                   margin: float = 0.2) -> torch.Tensor:
    """mean(max(0, margin - cos(a, p) + cos(a, n))) over the batch (the fabric paper's loss).

    ``F.cosine_similarity`` broadcasts, so a single anchor row of shape (D,) is compared with every
    positive and negative of the batch: that is exactly the released stage-2 defect
    (``anchor_index_bug``), reproduced by passing ``anchor[0]``.
    """
    pos = F.cosine_similarity(anchor, positive, dim=-1)
    neg = F.cosine_similarity(anchor, negative, dim=-1)
    return F.relu(margin - pos + neg).mean()


def nt_xent(f1: torch.Tensor, f2: torch.Tensor, tau: float = 0.07) -> torch.Tensor:
    """SimCLR's NT-Xent over two views (B x D each), as ARNet uses it.

    The 2B L2-normalised rows are compared with each other; row i's positive is its partner (i <-> i+B);
    the other 2B - 2 rows, same-modality ones included, are its negatives. Cross-entropy over the
    similarities / ``tau``, averaged over the 2B rows.
    """
    if f1.shape != f2.shape or f1.dim() != 2:
        raise ValueError(f"nt_xent needs two B x D tensors of one shape, got {tuple(f1.shape)} and {tuple(f2.shape)}")
    b = f1.shape[0]
    z = F.normalize(torch.cat([f1, f2]), dim=-1)
    logits = (z @ z.T) / tau
    logits = logits.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)
    return F.cross_entropy(logits, target)


def token_relation_loss(tokens: torch.Tensor, target: torch.Tensor, channels: int = 16) -> torch.Tensor:
    """MSTR's recycling loss: MSE between the tokens' Gram matrix and a fixed relation map.

    ``tokens`` (B, T, D) are average-pooled over channels down to ``channels`` (ARNet: kernel 48 on
    768 = 16), their raw dot products (B, T, T) compared with ``target`` (T, T).
    """
    b, t, d = tokens.shape
    if d % channels:
        raise ValueError(f"token width {d} is not a multiple of {channels} pooled channels")
    pooled = F.avg_pool1d(tokens.reshape(b * t, 1, d), kernel_size=d // channels).reshape(b, t, channels)
    gram = pooled @ pooled.transpose(1, 2)
    return F.mse_loss(gram, target.to(gram).expand_as(gram))


def e_infonce(region: torch.Tensor, patch: torch.Tensor, background: torch.Tensor, attrs: torch.Tensor,
              values: torch.Tensor, tau: float = 0.07, alpha: float = 12.0, reduction: str = "mean") -> torch.Tensor:
    """RPF's E-InfoNCE (``DELoss`` type 1, reference §4.3) over the N = 3B items of a triplet batch.

    Rows are L2-normalised. For item i: P(i) = items with the same (attribute, value), i included;
    N1(i) = items with a different (attribute, value); N2(i) = items with the same attribute, i
    included, taken through their *background* embeddings. With s_ij = r_i·p_j / tau and
    t_ij = r_i·b_j / tau:

        L_i = log(sum_P e^s + sum_N1 e^s + alpha sum_N2 e^t) - log sum_P e^s,   loss = mean_i L_i.

    P and N1 partition all items, so the first two sums are one sum over every j. Computed with
    logsumexp over boolean masks (masked terms are -inf), not with the release's ±1e4 logits.
    ``reduction="none"`` returns the per-item L_i (N,).
    """
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', not {reduction!r}")
    if not (region.shape == patch.shape == background.shape) or region.dim() != 2:
        raise ValueError("e_infonce needs region, patch and background embeddings of one (N, D) shape, got "
                         f"{tuple(region.shape)}, {tuple(patch.shape)}, {tuple(background.shape)}")
    r, p, b = (F.normalize(x, dim=-1) for x in (region, patch, background))
    s = r @ p.T / tau
    t = r @ b.T / tau
    same_attr = attrs[:, None] == attrs[None, :]
    positive = same_attr & (values[:, None] == values[None, :])
    neg_inf = float("-inf")
    if alpha < 0:
        raise ValueError(f"e_infonce needs alpha >= 0, got {alpha}")
    if alpha > 0:
        background_terms = (t + math.log(alpha)).masked_fill(~same_attr, neg_inf)
        denominator = torch.logsumexp(torch.cat([s, background_terms], dim=1), dim=1)
    else:
        denominator = torch.logsumexp(s, dim=1)
    numerator = torch.logsumexp(s.masked_fill(~positive, neg_inf), dim=1)
    per_item = denominator - numerator
    return per_item.mean() if reduction == "mean" else per_item


class AutomaticWeightedLoss(torch.nn.Module):
    """AG-MAN's uncertainty weighting of ``n`` losses: sum_i 0.5 / p_i^2 · L_i + log(1 + p_i^2), p = 1 at init.

    In the released code these parameters are never given to the optimiser (it receives only the
    network's parameters), so they stay at 1 and the total is 0.5 · sum_i L_i + n · log 2: an equal,
    fixed weighting. Faithful mode therefore keeps them out of the optimiser (or uses equal weights);
    the track exposes training them as a switch.
    """

    def __init__(self, n: int):
        super().__init__()
        self.params = torch.nn.Parameter(torch.ones(n))

    def forward(self, *losses: torch.Tensor) -> torch.Tensor:
        if len(losses) != self.params.numel():
            raise ValueError(f"AutomaticWeightedLoss({self.params.numel()}) got {len(losses)} losses")
        p2 = self.params ** 2
        return sum(0.5 / p2[i] * loss + torch.log1p(p2[i]) for i, loss in enumerate(losses))
