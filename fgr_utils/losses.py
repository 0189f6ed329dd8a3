"""Losses shared by the tracks: cosine triplet (fabric), NT-Xent and the token-relation loss (ARNet)."""
from __future__ import annotations

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
